#if canImport(Glibc)
import Glibc
#endif

/// The I/O operations of the file layer. Fault rules name them, and errors say which one failed.
public enum IOOperation: String, Sendable, CaseIterable {
    case open, close, read, write, fsync, fdatasync, fallocate, truncate, stat
    case rename, remove, makeDirectory, syncDirectory, listDirectory
    /// A read-only mapping of a whole file (`FileSystem.mapReadOnly`).
    case mmap
}

/// An operating-system error from the file layer: the errno, what was being done, and to what.
public struct IOError: Error, Equatable, Sendable, CustomStringConvertible {
    public let errno: Int32
    public let operation: IOOperation
    public let path: String

    public init(errno: Int32, operation: IOOperation, path: String) {
        self.errno = errno
        self.operation = operation
        self.path = path
    }

    /// The errno's symbolic meaning, as strerror gives it.
    public var reason: String {
        guard let message = strerror(errno) else { return "errno \(errno)" }
        return String(cString: message)
    }

    public var description: String { "\(operation.rawValue) \(path): \(reason) (errno \(errno))" }

    public var isNoSpace: Bool { errno == ENOSPC }

    /// Whether the error says the system is short of a resource (memory, address space,
    /// mappable pages: ENOMEM, EAGAIN, ENODEV) rather than that the call was wrong (a bad or
    /// closed descriptor, bad arguments, no permission). A caller with another way to do the
    /// same work may fall back on the first kind, never on the second.
    public var isResourceShortage: Bool { errno == ENOMEM || errno == EAGAIN || errno == ENODEV }
}
