#if canImport(Glibc)
import Glibc
#endif

/// libFuzzer's entry for programs with their own `main` (clang's `libclang_rt.fuzzer_no_main`):
/// parses libFuzzer's flags from `argv` and calls `callback` with each input.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

/// One fuzz target: a name and a function that must return normally for every input (throwing
/// is not an option: every rejection is an ordinary result). A crash, a sanitizer report or a
/// hang (libFuzzer's -timeout) is a finding.
public struct FuzzTarget: Sendable {
    public let name: String
    public let summary: String
    public let run: @Sendable (UnsafeRawBufferPointer) -> Void
    /// Seed inputs written to the corpus folder before a run (valid encodings to mutate), taken
    /// from the sample data directory the program builds (its path is the argument).
    public let seeds: @Sendable (String) -> [[UInt8]]

    public init(_ name: String, _ summary: String, seeds: @escaping @Sendable (String) -> [[UInt8]] = { _ in [] },
                run: @escaping @Sendable (UnsafeRawBufferPointer) -> Void) {
        self.name = name
        self.summary = summary
        self.run = run
        self.seeds = seeds
    }
}

nonisolated(unsafe) private var selected: FuzzTarget?

/// The program's main: `<program> list`, `<program> seeds <folder>` (writes each target's seed
/// corpus into `<folder>/<target>`), or `<program> <target> [libFuzzer flags and corpus folders
/// or input files]`. `sampleDirectory` builds the data directory seeds are taken from.
public func fuzzMain(_ targets: [FuzzTarget], sampleDirectory: () -> String = { "" }) -> Never {
    let arguments = CommandLine.arguments
    func usage() -> Never {
        print("usage: \(arguments[0]) list | seeds <folder> | <target> [libFuzzer options] [corpus folders or files]")
        exit(2)
    }
    guard arguments.count >= 2 else { usage() }
    if arguments[1] == "list" {
        for t in targets { print("\(t.name)\t\(t.summary)") }
        exit(0)
    }
    if arguments[1] == "seeds" {
        guard arguments.count == 3 else { usage() }
        let root = arguments[2]
        mkdir(root, 0o755)
        let sample = sampleDirectory()
        for target in targets {
            let folder = root + "/" + target.name
            mkdir(folder, 0o755)
            let seeds = target.seeds(sample)
            for (i, seed) in seeds.enumerated() {
                seed.withUnsafeBytes { writeFile(folder + "/seed-\(i)", $0) }
            }
            print("\(target.name): \(seeds.count) seeds")
        }
        exit(0)
    }
    guard let target = targets.first(where: { $0.name == arguments[1] }) else {
        print("unknown target \(arguments[1]); targets: \(targets.map(\.name).joined(separator: ", "))")
        exit(2)
    }
    selected = target
    // libFuzzer sees argv without the target name.
    var argv: [UnsafeMutablePointer<CChar>?] = [strdup(arguments[0])] + arguments.dropFirst(2).map { strdup($0) } + [nil]
    var argc = CInt(argv.count - 1)
    let rc = argv.withUnsafeMutableBufferPointer { buffer -> CInt in
        var base: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = buffer.baseAddress
        return LLVMFuzzerRunDriver(&argc, &base) { data, size in
            selected!.run(UnsafeRawBufferPointer(start: data, count: size))
            return 0
        }
    }
    exit(rc)
}

/// A scratch folder for targets that read files, one per process (in /dev/shm when there is one).
public let scratchFolder: String = {
    let base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp"
    let path = "\(base)/socialdb-fuzz-\(getpid())"
    mkdir(path, 0o755)
    return path
}()

/// Writes `bytes` to `path` (replacing it).
public func writeFile(_ path: String, _ bytes: UnsafeRawBufferPointer) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    precondition(fd >= 0, "cannot write \(path)")
    var done = 0
    while done < bytes.count {
        let n = write(fd, bytes.baseAddress! + done, bytes.count - done)
        precondition(n > 0, "short write to \(path)")
        done += n
    }
    close(fd)
}

/// Reads a whole file, or nil.
public func readFile(_ path: String) -> [UInt8]? {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n <= 0 { break }
        out.append(contentsOf: chunk[0..<n])
    }
    return out
}

/// Fails the run (a finding): the decoder returned something it should not have.
public func fuzzFailure(_ message: String) -> Never {
    let text = "FUZZ INVARIANT BROKEN: \(message)\n"
    _ = text.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
    abort()
}
