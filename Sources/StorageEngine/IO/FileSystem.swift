import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The engine's file layer: one API over two backends.
///
/// - `ioUring`: batches of independent reads or writes go through an io_uring (liburing), one
///   `io_uring_submit_and_wait` per batch; a lone op or a write linked to its fdatasync is a
///   direct syscall (see `perform`: the ring would only add a worker thread's round trip).
/// - `posix`: pread, pwrite, fdatasync, one syscall each, in order.
///
/// `.automatic` honours `SOCIALDB_IO=posix|io_uring`, else tries io_uring and falls back to
/// POSIX when the ring cannot be set up (ENOSYS on old kernels, EPERM under seccomp or
/// `io_uring_disabled`); `fallbackReason` says why. Both backends pass the same test suite.
///
/// Every syscall is checked against the `FaultInjector` first, when there is one, so tests can
/// fail any operation on either backend. Directory operations (open, rename, remove, mkdir,
/// directory fsync) are plain syscalls on both backends; they are rare and never batched.
///
/// Thread safety: a `FileSystem` and its `File`s may be used from any thread. Each batch runs on
/// a ring of its own from a pool (see `URingPool`), so one thread's fdatasync never holds up
/// another's write; POSIX calls need no lock.
public final class FileSystem: Sendable {
    public enum Backend: String, Sendable {
        case ioUring = "io_uring"
        case posix
    }

    public enum BackendChoice: Sendable {
        case automatic, ioUring, posix
    }

    public let backend: Backend
    /// Why io_uring is not used, when `.automatic` fell back to POSIX.
    public let fallbackReason: String?
    public let faults: FaultInjector?
    let ring: URingPool?

    /// - Throws: only when `.ioUring` is demanded and cannot be set up.
    public init(backend choice: BackendChoice = .automatic, faults: FaultInjector? = nil, ringEntries: Int = 256) throws(IOError) {
        self.faults = faults
        var choice = choice
        if choice == .automatic, let env = getenv("SOCIALDB_IO") {
            switch String(cString: env) {
            case "posix": choice = .posix
            case "io_uring", "iouring", "uring": choice = .ioUring
            default: break
            }
        }
        switch choice {
        case .posix:
            ring = nil
            backend = .posix
            fallbackReason = nil
        case .ioUring:
            ring = try URingPool(entries: ringEntries)
            backend = .ioUring
            fallbackReason = nil
        case .automatic:
            do {
                ring = try URingPool(entries: ringEntries)
                backend = .ioUring
                fallbackReason = nil
            } catch {
                ring = nil
                backend = .posix
                fallbackReason = "io_uring unavailable: \(error.reason)"
            }
        }
    }

    /// Whether io_uring can be set up on this host (for tests that skip where it cannot).
    public static func ioUringAvailable() -> Bool {
        (try? URing(entries: 4)) != nil
    }

    // MARK: Files and directories

    public struct OpenOptions: Sendable {
        public var create = false
        public var truncate = false
        public var exclusive = false
        public var readOnly = false
        /// O_DIRECT: buffers, offsets and lengths must be aligned (see `AlignedBuffer`).
        public var direct = false
        public var permissions: mode_t = 0o644

        public init(create: Bool = false, truncate: Bool = false, exclusive: Bool = false, readOnly: Bool = false, direct: Bool = false) {
            self.create = create
            self.truncate = truncate
            self.exclusive = exclusive
            self.readOnly = readOnly
            self.direct = direct
        }

        public static let readWrite = OpenOptions()
        public static let readOnlyAccess = OpenOptions(readOnly: true)
        public static let createNew = OpenOptions(create: true, exclusive: true)
        public static let createOrOpen = OpenOptions(create: true)
    }

    #if arch(x86_64)
    static let oDirect: Int32 = 0o40000
    #else
    static let oDirect: Int32 = 0o200000
    #endif

    public func open(_ path: String, _ options: OpenOptions = .readWrite) throws(IOError) -> File {
        try inject(.open, path)
        let crash = faults?.crash
        let existed = crash != nil && options.create && exists(path)
        var flags: Int32 = O_CLOEXEC | (options.readOnly ? O_RDONLY : O_RDWR)
        if options.create { flags |= O_CREAT }
        if options.truncate { flags |= O_TRUNC }
        if options.exclusive { flags |= O_EXCL }
        if options.direct { flags |= Self.oDirect }
        var fd: Int32
        repeat { fd = Glibc.open(path, flags, options.permissions) } while fd < 0 && errno == EINTR
        if fd < 0 { throw IOError(errno: errno, operation: .open, path: path) }
        if let crash, options.create && !existed { crash.created(path) }
        let file = File(fd: fd, path: path, fileSystem: self)
        do {
            file.setAppendOffset(try file.size())
        } catch {
            file.close()
            throw error
        }
        return file
    }

    public func rename(_ from: String, to: String) throws(IOError) {
        try inject(.rename, from)
        faults?.crash?.willRename(from, to: to)
        if Glibc.rename(from, to) != 0 { throw IOError(errno: errno, operation: .rename, path: from) }
    }

    public func remove(_ path: String) throws(IOError) {
        try inject(.remove, path)
        faults?.crash?.willRemove(path)
        if unlink(path) != 0 { throw IOError(errno: errno, operation: .remove, path: path) }
    }

    /// Removes a directory and everything under it. Missing is not an error.
    public func removeTree(_ path: String) throws(IOError) {
        guard exists(path) else { return }
        if isDirectory(path) {
            for name in try listDirectory(path) { try removeTree(path + "/" + name) }
            try inject(.remove, path)
            faults?.crash?.willRemoveDirectory(path)
            if rmdir(path) != 0 { throw IOError(errno: errno, operation: .remove, path: path) }
        } else {
            try remove(path)
        }
    }

    /// fsyncs a directory, so the names created, renamed or removed in it are durable.
    public func syncDirectory(_ path: String) throws(IOError) {
        try inject(.syncDirectory, path)
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 { throw IOError(errno: errno, operation: .syncDirectory, path: path) }
        defer { Glibc.close(fd) }
        if fsync(fd) != 0 { throw IOError(errno: errno, operation: .syncDirectory, path: path) }
        faults?.crash?.syncedDirectory(path)
    }

    /// Creates a directory (and its parents, with `intermediates`). Existing is not an error.
    /// A directory it creates is durable when it returns: the parent is fsynced, so a power cut
    /// cannot take the new directory (and every file later synced in it) away.
    public func makeDirectory(_ path: String, intermediates: Bool = true) throws(IOError) {
        if isDirectory(path) { return }
        let slash = path.lastIndex(of: "/")
        if intermediates, let slash, slash != path.startIndex {
            try makeDirectory(String(path[..<slash]), intermediates: true)
        }
        try inject(.makeDirectory, path)
        if mkdir(path, 0o755) != 0 {
            if errno != EEXIST { throw IOError(errno: errno, operation: .makeDirectory, path: path) }
            return
        }
        faults?.crash?.madeDirectory(path)
        let parent = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        try syncDirectory(parent)
    }

    /// The names in a directory, without "." and "..", sorted.
    public func listDirectory(_ path: String) throws(IOError) -> [String] {
        try inject(.listDirectory, path)
        guard let dir = opendir(path) else { throw IOError(errno: errno, operation: .listDirectory, path: path) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// Replaces `path` with `bytes` so that a crash leaves either the old file or the new one:
    /// written under `temporary` (in writes of at most 1 GiB), fdatasynced, renamed over
    /// `path`, then `directory` fsynced. On failure the temporary file is removed.
    public func replaceAtomically(_ path: String, with bytes: UnsafeRawBufferPointer, temporary: String, directory: String) throws(IOError) {
        let file = try open(temporary, OpenOptions(create: true, truncate: true))
        do throws(IOError) {
            var offset = 0
            while offset < bytes.count {
                let chunk = min(bytes.count - offset, 1 << 30)
                try file.write(UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + chunk)]), at: UInt64(offset))
                offset += chunk
            }
            try file.dataSync()
            file.close()
        } catch {
            file.close()
            try? remove(temporary)
            throw error
        }
        try rename(temporary, to: path)
        try syncDirectory(directory)
    }

    public func replaceAtomically(_ path: String, with bytes: [UInt8], temporary: String, directory: String) throws(IOError) {
        let result: Result<Void, IOError> = bytes.withUnsafeBytes { raw in
            do throws(IOError) {
                try replaceAtomically(path, with: raw, temporary: temporary, directory: directory)
                return .success(())
            } catch { return .failure(error) }
        }
        try result.get()
    }

    /// Reads a whole file into a fresh 8-aligned buffer of exactly its size (the caller frees
    /// it with `deallocate()`), in reads of at most 1 GiB.
    public func readWholeFile(_ path: String) throws(IOError) -> UnsafeMutableRawBufferPointer {
        let file = try open(path, .readOnlyAccess)
        defer { file.close() }
        let size = Int(try file.size())
        let image = UnsafeMutableRawBufferPointer.allocate(byteCount: max(size, 1), alignment: 8)
        var offset = 0
        while offset < size {
            let chunk = min(size - offset, 1 << 30)
            do {
                try file.readExactly(into: UnsafeMutableRawBufferPointer(rebasing: image[offset..<(offset + chunk)]), at: UInt64(offset))
            } catch {
                image.deallocate()
                throw error
            }
            offset += chunk
        }
        return UnsafeMutableRawBufferPointer(rebasing: image[0..<size])
    }

    /// Maps the first `bytes` bytes of `file` read-only and shared (the caller unmaps them with
    /// `munmap`). Goes through the fault seam as `.mmap`, so tests can make it fail with any
    /// errno; the error names the file. `bytes` must be positive.
    public func mapReadOnly(_ file: File, bytes: Int) throws(IOError) -> UnsafeRawBufferPointer {
        precondition(bytes > 0, "an empty mapping")
        try inject(.mmap, file.path)
        guard !file.isClosed else { throw IOError(errno: EBADF, operation: .mmap, path: file.path) }
        let p = Glibc.mmap(nil, bytes, PROT_READ, MAP_SHARED, file.fd, 0)
        guard let p, p != MAP_FAILED else { throw IOError(errno: errno, operation: .mmap, path: file.path) }
        return UnsafeRawBufferPointer(start: p, count: bytes)
    }

    public func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    public func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    // MARK: Batches

    /// One read of a batch: fills `buffer` from `offset` of `file`. After the call `bytesRead`
    /// is the count read (less than the buffer only at end of file).
    public struct ReadRequest {
        public var file: File
        public var offset: UInt64
        public var buffer: UnsafeMutableRawBufferPointer
        public var bytesRead: Int = 0

        public init(file: File, offset: UInt64, buffer: UnsafeMutableRawBufferPointer) {
            self.file = file
            self.offset = offset
            self.buffer = buffer
        }
    }

    /// One write of a batch: all of `bytes` at `offset` of `file`.
    public struct WriteRequest {
        public var file: File
        public var offset: UInt64
        public var bytes: UnsafeRawBufferPointer

        public init(file: File, offset: UInt64, bytes: UnsafeRawBufferPointer) {
            self.file = file
            self.offset = offset
            self.bytes = bytes
        }
    }

    /// Reads many ranges at once: on io_uring, one submission for the whole batch (split only
    /// when it exceeds the ring). Throws the first error; the other reads may have completed.
    public func read(batch requests: inout [ReadRequest]) throws(IOError) {
        if requests.isEmpty { return }
        var ops = requests.map {
            IOOp(kind: .read, fd: $0.file.fd, address: $0.buffer.baseAddress, length: $0.buffer.count, offset: $0.offset)
        }
        let files = requests // paths are looked up only for faults and errors, not copied per call
        try ops.withUnsafeMutableBufferPointer { (buffer) throws(IOError) in
            perform(buffer) { files[$0].file.path }
            for i in buffer.indices {
                if buffer[i].result < 0 { throw IOError(errno: -buffer[i].result, operation: .read, path: files[i].file.path) }
                requests[i].bytesRead = Int(buffer[i].result)
            }
        }
    }

    /// Writes many ranges at once, each in full. Throws the first error.
    public func write(batch requests: [WriteRequest]) throws(IOError) {
        if requests.isEmpty { return }
        var ops = requests.map {
            IOOp(kind: .write, fd: $0.file.fd, address: UnsafeMutableRawPointer(mutating: $0.bytes.baseAddress), length: $0.bytes.count, offset: $0.offset)
        }
        try ops.withUnsafeMutableBufferPointer { (buffer) throws(IOError) in
            perform(buffer) { requests[$0].file.path }
            for i in buffer.indices where buffer[i].result < 0 {
                throw IOError(errno: -buffer[i].result, operation: .write, path: requests[i].file.path)
            }
        }
    }

    // MARK: The seam

    @inline(__always)
    func inject(_ operation: IOOperation, _ path: String) throws(IOError) {
        guard let faults else { return }
        if case .fail(let code)? = faults.check(operation, path: path) {
            throw IOError(errno: code, operation: operation, path: path)
        }
    }

    /// Runs ops on the backend. On return every op's `result` is final: reads the total read
    /// (short only at end of file), writes their full length, syncs 0, or `-errno`. A failed
    /// op cancels the op linked after it (-ECANCELED), as io_uring does.
    ///
    /// On io_uring, a batch that is one chain (a lone op, or a write linked to its fdatasync)
    /// runs as direct syscalls: its caller waits for each op in turn anyway, so the ring
    /// overlaps nothing, and the kernel completes a buffered write inline only when it can
    /// (else it hands it to a worker thread) and every fdatasync on a worker: two context
    /// switches per op that pwrite and fdatasync do not pay. Measured on the development
    /// machine (kernel 6.18, ext4): the social `dsb` mix used 29-32 us of CPU per operation with
    /// its log writes on the ring and 19-22 with them direct; one durable log appender's p50
    /// was 228-245 us on the ring and 165-192 us direct. Batches of independent ops (a
    /// multi-get's block reads, `read(batch:)`, `write(batch:)`) are one submission.
    func perform(_ ops: UnsafeMutableBufferPointer<IOOp>, path: (Int) -> String) {
        guard let ring, !Self.isOneChain(ops) else {
            performPOSIX(ops, path: path)
            return
        }
        // Fault injection happens before submission, per op: a failed op is not submitted, a
        // short write is submitted shorter.
        var requested: [Int] = []
        if let faults {
            requested = ops.map(\.length)
            for i in ops.indices {
                switch faults.check(Self.operation(ops[i].kind), path: path(i)) {
                case .fail(let code)?: ops[i].result = -code
                case .shortWrite(let maxBytes)? where ops[i].kind == .write: ops[i].length = min(ops[i].length, maxBytes)
                default: break
                }
                if let crash = faults.crash, ops[i].kind == .write, ops[i].result >= 0 {
                    crash.willChange(fd: ops[i].fd, path: path(i), offset: ops[i].offset, length: ops[i].length)
                }
            }
            for i in ops.indices where ops[i].result < 0 && ops[i].linkedToNext && i + 1 < ops.count {
                ops[i + 1].result = -ECANCELED
            }
        }
        if !ring.run(ops) {
            // The pool was retired after a failed submission (POSIX from now on), or no ring
            // could be set up for this batch.
            performPOSIX(ops, path: path)
            return
        }
        if let crash = faults?.crash {
            for i in ops.indices where (ops[i].kind == .fdatasync || ops[i].kind == .fsync) && ops[i].result == 0 {
                crash.synced(fd: ops[i].fd)
            }
        }
        // Finish short transfers with the POSIX path (rare on regular files), then any sync the
        // kernel cancelled because the write before it was short.
        for i in ops.indices {
            let full = requested.isEmpty ? ops[i].length : requested[i]
            let done = Int(ops[i].result)
            guard done >= 0, ops[i].kind == .read || ops[i].kind == .write, done < full else { continue }
            if ops[i].kind == .read && done == 0 { continue } // end of file
            var rest = IOOp(kind: ops[i].kind, fd: ops[i].fd, address: ops[i].address! + done, length: full - done, offset: ops[i].offset + UInt64(done))
            withUnsafeMutablePointer(to: &rest) { p in
                performPOSIX(UnsafeMutableBufferPointer(start: p, count: 1)) { _ in path(i) }
            }
            ops[i].result = rest.result < 0 ? rest.result : Int32(done) + rest.result
            if ops[i].linkedToNext && i + 1 < ops.count && ops[i + 1].result == -ECANCELED {
                if ops[i].result < 0 { continue }
                ops[i + 1].result = 0
                withUnsafeMutablePointer(to: &ops[i + 1]) { p in
                    performPOSIX(UnsafeMutableBufferPointer(start: p, count: 1)) { _ in path(i + 1) }
                }
            }
        }
    }

    static func operation(_ kind: IOOp.Kind) -> IOOperation {
        switch kind {
        case .read: .read
        case .write: .write
        case .fdatasync: .fdatasync
        case .fsync: .fsync
        }
    }

    /// Whether every op but the last is linked to the next (one op is a chain of one).
    @inline(__always)
    static func isOneChain(_ ops: UnsafeMutableBufferPointer<IOOp>) -> Bool {
        for i in 0..<max(0, ops.count - 1) where !ops[i].linkedToNext { return false }
        return true
    }

    private func performPOSIX(_ ops: UnsafeMutableBufferPointer<IOOp>, path: (Int) -> String) {
        var cancelNext = false
        for i in ops.indices {
            if cancelNext {
                ops[i].result = -ECANCELED
                cancelNext = ops[i].linkedToNext
                continue
            }
            if ops[i].result < 0 { cancelNext = ops[i].linkedToNext; continue }
            let op = ops[i]
            var total = 0
            var failure: Int32 = 0
            switch op.kind {
            case .read:
                while total < op.length {
                    if let faults, case .fail(let code)? = faults.check(.read, path: path(i)) { failure = code; break }
                    let n = pread(op.fd, op.address! + total, op.length - total, off_t(op.offset) + off_t(total))
                    if n < 0 { if errno == EINTR { continue }; failure = errno; break }
                    if n == 0 { break }
                    total += n
                }
            case .write:
                var zeroWrites = 0
                while total < op.length {
                    var length = op.length - total
                    if let faults {
                        switch faults.check(.write, path: path(i)) {
                        case .fail(let code)?: failure = code
                        case .shortWrite(let maxBytes)?: length = min(length, maxBytes)
                        case .delay?, nil: break
                        }
                        if failure != 0 { break }
                        faults.crash?.willChange(fd: op.fd, path: path(i), offset: op.offset + UInt64(total), length: length)
                    }
                    let n = pwrite(op.fd, op.address! + total, length, off_t(op.offset) + off_t(total))
                    if n < 0 { if errno == EINTR { continue }; failure = errno; break }
                    if n == 0 {
                        // A write that makes no progress twice is a device that takes nothing.
                        zeroWrites += 1
                        if zeroWrites > 1 { failure = EIO; break }
                    }
                    total += n
                }
            case .fdatasync, .fsync:
                if let faults, case .fail(let code)? = faults.check(Self.operation(op.kind), path: path(i)) {
                    failure = code
                } else {
                    var rc: Int32
                    repeat { rc = op.kind == .fsync ? fsync(op.fd) : fdatasync(op.fd) } while rc != 0 && errno == EINTR
                    if rc != 0 { failure = errno } else { faults?.crash?.synced(fd: op.fd) }
                }
            }
            ops[i].result = failure != 0 ? -failure : Int32(clamping: total)
            cancelNext = failure != 0 && op.linkedToNext
        }
    }
}
