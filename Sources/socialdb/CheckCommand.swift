import ArgumentParser
import StorageEngine

#if canImport(Glibc)
import Glibc
#endif

/// `socialdb check`: verifies a data directory, read-only, file by file (see
/// `DataDirectoryCheck`), prints what it found and exits 1 when anything is damaged.
struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Verify a data directory: every log segment, checkpoint, LSM table, graph base, timeline and search file.",
        discussion: """
        Reads every file by checksum and structure without changing anything. Prints each problem with its file and \
        offset and a stable code in brackets; exits 0 when the directory is sound, 1 when something is damaged, 2 when it \
        cannot run. Run it on a directory no process has open. --deep also decodes every graph adjacency list and search \
        posting list with bounds-checked decoders.
        """
    )

    @OptionGroup var database: DatabaseOptions

    @Flag(name: .long, help: "Print the result as one line of JSON.")
    var json = false

    @Flag(name: .long, help: "List every file verified, not only the problems, and what each LSM key space takes (entries, keys, values, block bytes as built and as stored).")
    var verbose = false

    @Flag(name: .long, help: "Also decode every adjacency list of the graph bases and every posting list of the search segments, checking their invariants (slower; about 4 bytes of memory per edge).")
    var deep = false

    func run() throws {
        let directory = database.directory
        var isDirectory = stat()
        guard stat(directory, &isDirectory) == 0, (isDirectory.st_mode & S_IFMT) == S_IFDIR else {
            printError("socialdb check: \(directory) is not a directory")
            throw ExitCode(2)
        }
        var report = DataDirectoryCheck.run(directory: directory, deep: deep)
        let lockPath = directory + "/LOCK"
        let lock = open(lockPath, O_RDONLY | O_CLOEXEC)
        if lock >= 0 {
            if flock(lock, LOCK_EX | LOCK_NB) != 0 {
                report.notes.append("the database is open in another process: files may have changed while they were read")
            }
            close(lock)
        }
        func relative(_ path: String) -> String {
            path.hasPrefix(directory + "/") ? String(path.dropFirst(directory.count + 1)) : path
        }
        if json {
            var out = ""
            let files: [JSONValue] = report.files.map { file in
                .object([("path", .string(relative(file.path))), ("kind", .string(file.kind)), ("summary", .string(file.summary))])
            }
            let problems: [JSONValue] = report.findings.map { finding in
                let offset: JSONValue = finding.offset.map { .string(String($0)) } ?? .null
                return .object([("code", .string(finding.code.rawValue)), ("file", .string(relative(finding.file))),
                                ("offset", offset), ("problem", .string(finding.problem))])
            }
            JSONValue.object([
                ("ok", .bool(report.isClean)),
                ("directory", .string(directory)),
                ("deep", .bool(deep)),
                ("files_checked", .int(report.files.count)),
                ("files", .array(files)),
                ("problems", .array(problems)),
                ("notes", .array(report.notes.map { .string($0) })),
                ("lsm_key_spaces", .array(report.keySpaces.map { u in
                    .object([("space", .int(Int(u.space))), ("name", .string(u.name)), ("tables", .int(u.tables)),
                             ("entries", .int(Int(u.entries))), ("key_bytes", .int(Int(u.keyBytes))),
                             ("value_bytes", .int(Int(u.valueBytes))), ("blocks", .int(u.blocks)),
                             ("compressed_blocks", .int(u.compressedBlocks)), ("raw_block_bytes", .int(Int(u.rawBlockBytes))),
                             ("stored_block_bytes", .int(Int(u.storedBlockBytes))), ("file_bytes", .int(Int(u.fileBytes)))])
                })),
            ]).render(into: &out)
            writeOut(out + "\n")
        } else {
            if verbose {
                for file in report.files { writeOut("ok       \(file.kind.padding(20)) \(relative(file.path))  (\(file.summary))\n") }
                // What each LSM key space takes: entries, keys and values as written, data
                // blocks as built and as stored, whole table files.
                for u in report.keySpaces {
                    writeOut("lsm      \(u.name.padding(20)) \(u.entries) entries, keys \(u.keyBytes) B, values \(u.valueBytes) B, "
                        + "blocks \(u.rawBlockBytes) B built, \(u.storedBlockBytes) B stored (\(u.compressedBlocks) of \(u.blocks) compressed), "
                        + "files \(u.fileBytes) B in \(u.tables) tables\n")
                }
            }
            for note in report.notes { writeOut("note     \(note)\n") }
            for finding in report.findings {
                writeOut("CORRUPT  \(relative(finding.file))\(finding.offset.map { " at offset \($0)" } ?? ""): \(finding.problem) [\(finding.code.rawValue)]\n")
            }
            writeOut(report.isClean
                ? "\(directory): \(report.files.count) files checked, no problems\n"
                : "\(directory): \(report.files.count) files sound, \(report.findings.count) problem\(report.findings.count == 1 ? "" : "s")\n")
        }
        if !report.isClean { throw ExitCode(1) }
    }
}
