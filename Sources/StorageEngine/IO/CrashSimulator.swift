import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Simulates a power cut under the file layer, for crash tests of the whole database.
///
/// Attached to a `FaultInjector` (`FaultInjector(crash:)`), it records what a power loss could
/// still take away:
///
/// - per file (by inode, through a duplicate of its descriptor), every write, `fallocate` and
///   `ftruncate` since the last completed fdatasync or fsync of that file, with the bytes and
///   size it replaced (an undo record);
/// - per directory, every name created, renamed or removed and every subdirectory made or
///   removed since the last fsync of that directory (a replaced or removed file is kept alive
///   by a hard link in `stashDirectory`, which must be on the same file system).
///
/// `arm(afterMutations:)` picks the moment: the Nth mutating call from then on (write, sync,
/// fallocate, truncate, open, rename, remove, mkdir, directory fsync) and every later one fails
/// with EIO, as if the machine stopped there; reads keep working. After the caller has closed
/// the database, `powerCut` undoes everything not covered by a completed sync, newest first:
/// all of it, or (with `keepPrefixes`) a random prefix of each file's unsynced writes, as a disk
/// that wrote some of them in order would leave. Not modelled: `O_TRUNC` of an existing file
/// (the engine truncates only its own temporary files) and torn sectors inside one write.
///
/// Thread safety: every member may be called from any thread (one mutex).
public final class CrashSimulator: Sendable {
    struct Undo {
        var offset: UInt64
        var bytes: [UInt8]
        var sizeBefore: UInt64
    }

    struct FileID: Hashable {
        var device: UInt64
        var inode: UInt64
    }

    struct FileState {
        var fd: Int32
        var path: String
        var undo: [Undo] = []
    }

    enum NameOperation {
        case created(String)
        case renamed(from: String, to: String, stash: String?)
        case removed(String, stash: String)
        case madeDirectory(String)
        case removedDirectory(String)
    }

    struct PendingName {
        var operation: NameOperation
        /// The directories whose fsync makes it durable (both of a rename across directories).
        var directories: Set<String>
    }

    struct State {
        var files: [FileID: FileState] = [:]
        var names: [PendingName] = []
        var mutationsLeft: Int?
        var crashed = false
        var stashed = 0
        var mutations = 0
    }

    public let stashDirectory: String
    private let state = Mutex(State())

    public init(stashDirectory: String) {
        self.stashDirectory = stashDirectory
        mkdir(stashDirectory, 0o755)
    }

    /// The `count`th mutating call from now (1 = the next) and every later one fail with EIO.
    public func arm(afterMutations count: Int) {
        precondition(count >= 1)
        state.withLock { $0.mutationsLeft = count }
    }

    /// Whether the simulated power cut has happened (a call has failed for it).
    public var crashed: Bool { state.withLock { $0.crashed } }

    /// Mutating calls seen so far (to pick a crash point in a range that matters).
    public var mutations: Int { state.withLock { $0.mutations } }

    /// What was recorded and not yet synced: files with unsynced writes, unsynced name changes.
    public var pending: (files: Int, writes: Int, names: Int) {
        state.withLock { s in (s.files.count, s.files.values.reduce(0) { $0 + $1.undo.count }, s.names.count) }
    }

    // MARK: Hooks (called by FileSystem and File)

    static func mutates(_ operation: IOOperation) -> Bool {
        switch operation {
        case .read, .stat, .listDirectory, .close, .mmap: false
        default: true
        }
    }

    /// True when this call must fail because the power is off.
    func shouldFail(_ operation: IOOperation) -> Bool {
        guard Self.mutates(operation) else { return false }
        return state.withLock { s in
            if s.crashed { return true }
            s.mutations += 1
            if let left = s.mutationsLeft {
                if left <= 1 {
                    s.crashed = true
                    s.mutationsLeft = nil
                    return true
                }
                s.mutationsLeft = left - 1
            }
            return false
        }
    }

    private static func identity(_ fd: Int32) -> (FileID, UInt64)? {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return nil }
        return (FileID(device: UInt64(st.st_dev), inode: UInt64(st.st_ino)), UInt64(st.st_size))
    }

    private static func parent(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    private static func normalized(_ directory: String) -> String {
        var d = directory
        while d.count > 1 && d.hasSuffix("/") { d.removeLast() }
        return d
    }

    /// Before bytes `[offset, offset + length)` of `fd` change (a write, or `newSize` for a
    /// truncate or fallocate): keep what they were.
    func willChange(fd: Int32, path: String, offset: UInt64, length: Int, newSize: UInt64? = nil) {
        state.withLock { s in
            guard !s.crashed, let (id, size) = Self.identity(fd) else { return }
            var undo = Undo(offset: size, bytes: [], sizeBefore: size)
            // The bytes that change: a write's range within the old size, a truncate's cut tail.
            // Growth past the old size is undone by cutting back to `sizeBefore`.
            let start = newSize ?? offset
            let end = newSize != nil ? size : min(size, offset + UInt64(length))
            if start < end {
                undo.offset = start
                undo.bytes = [UInt8](repeating: 0, count: Int(end - start))
                let n = undo.bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, $0.count, off_t(start)) }
                if n < undo.bytes.count { undo.bytes.removeLast(undo.bytes.count - max(n, 0)) }
            }
            if s.files[id] == nil {
                s.files[id] = FileState(fd: dup(fd), path: path)
            }
            s.files[id]!.undo.append(undo)
        }
    }

    /// After a completed fdatasync or fsync of `fd`: its data so far survives a power cut.
    func synced(fd: Int32) {
        state.withLock { s in
            guard !s.crashed, let (id, _) = Self.identity(fd), let file = s.files.removeValue(forKey: id) else { return }
            close(file.fd)
        }
    }

    func created(_ path: String) {
        state.withLock { s in
            guard !s.crashed else { return }
            s.names.append(PendingName(operation: .created(path), directories: [Self.parent(path)]))
        }
    }

    func madeDirectory(_ path: String) {
        let path = Self.normalized(path)
        state.withLock { s in
            guard !s.crashed else { return }
            s.names.append(PendingName(operation: .madeDirectory(path), directories: [Self.parent(path)]))
        }
    }

    /// Before `rename(from, to)`: a file `to` replaces is kept (hard link) for the undo.
    func willRename(_ from: String, to: String) {
        state.withLock { s in
            guard !s.crashed else { return }
            var stash: String?
            var st = stat()
            if lstat(to, &st) == 0 {
                s.stashed += 1
                let name = stashDirectory + "/\(s.stashed)"
                if link(to, name) == 0 { stash = name }
            }
            s.names.append(PendingName(operation: .renamed(from: from, to: to, stash: stash),
                                       directories: [Self.parent(from), Self.parent(to)]))
        }
    }

    func willRemove(_ path: String) {
        state.withLock { s in
            guard !s.crashed else { return }
            s.stashed += 1
            let name = stashDirectory + "/\(s.stashed)"
            guard link(path, name) == 0 else { return }
            s.names.append(PendingName(operation: .removed(path, stash: name), directories: [Self.parent(path)]))
        }
    }

    func willRemoveDirectory(_ path: String) {
        let path = Self.normalized(path)
        state.withLock { s in
            guard !s.crashed else { return }
            s.names.append(PendingName(operation: .removedDirectory(path), directories: [Self.parent(path)]))
        }
    }

    /// After a completed fsync of `directory`: the name changes in it survive a power cut.
    func syncedDirectory(_ directory: String) {
        let directory = Self.normalized(directory)
        state.withLock { s in
            guard !s.crashed else { return }
            for i in s.names.indices { s.names[i].directories.remove(directory) }
            s.names.removeAll { $0.directories.isEmpty }
        }
    }

    // MARK: The power cut

    /// Puts the files back to what a power cut at the crash point leaves: every unsynced write
    /// undone (or, with `keepPrefixes`, all but a random prefix of each file's), then every
    /// unsynced name change undone, newest first. Call it after the database is closed. Returns
    /// how many writes and name changes it undid. The simulator is then disarmed and empty.
    @discardableResult
    public func powerCut<R: RandomNumberGenerator>(keepPrefixes: Bool, using random: inout R) -> (writes: Int, names: Int) {
        var files: [FileState] = []
        var names: [PendingName] = []
        state.withLock { s in
            files = Array(s.files.values)
            names = s.names
            s = State()
        }
        var undoneWrites = 0
        for file in files {
            let keep = keepPrefixes ? Int.random(in: 0...file.undo.count, using: &random) : 0
            for undo in file.undo[keep...].reversed() {
                _ = ftruncate(file.fd, off_t(undo.sizeBefore))
                if !undo.bytes.isEmpty {
                    _ = undo.bytes.withUnsafeBytes { pwrite(file.fd, $0.baseAddress!, $0.count, off_t(undo.offset)) }
                }
                undoneWrites += 1
            }
            close(file.fd)
        }
        for pending in names.reversed() {
            switch pending.operation {
            case .created(let path):
                unlink(path)
            case .renamed(let from, let to, let stash):
                rename(to, from)
                if let stash { rename(stash, to) }
            case .removed(let path, let stash):
                rename(stash, path)
            case .madeDirectory(let path):
                Self.removeTree(path)
            case .removedDirectory(let path):
                mkdir(path, 0o755)
            }
        }
        return (undoneWrites, names.count)
    }

    /// Forgets everything recorded and disarms (a clean shutdown needs no power cut).
    public func reset() {
        state.withLock { s in
            for file in s.files.values { close(file.fd) }
            s = State()
        }
    }

    private static func removeTree(_ path: String) {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            if let dir = opendir(path) {
                var names: [String] = []
                while let entry = readdir(dir) {
                    let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
                    if name != "." && name != ".." { names.append(name) }
                }
                closedir(dir)
                for name in names { removeTree(path + "/" + name) }
            }
            rmdir(path)
        } else {
            unlink(path)
        }
    }
}
