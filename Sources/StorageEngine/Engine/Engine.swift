#if canImport(Glibc)
import Glibc
#endif

/// The knobs of an engine, with the names the shell, the server and the API share.
public struct EngineOptions: Sendable {
    public var sync: LogSyncPolicy = .always
    public var timelineCapacity: Int = 800
    public var celebrityThreshold: Int = 10_000
    public var cacheSizeBytes: Int = 64 << 20
    /// How the LSM tree stores new table blocks (`LSMOptions.compression`): zstd by default,
    /// `.none` to turn it off.
    public var compression: LSMCompression = .default
    /// Key prefixes whose blocks stay uncompressed (`LSMOptions.uncompressedKeyPrefixes`): by
    /// default the tweet records (`KeySpace.tweets`), which page hydration reads point by point;
    /// a block cache miss on a compressed block costs the whole block's decompression.
    public var uncompressedKeyPrefixes: [UInt8] = [KeySpace.tweets.rawValue]
    public var ioBackend: FileSystem.BackendChoice = .automatic
    public var logSegmentSizeBytes: Int = 64 << 20
    /// Fault injection for tests: every syscall of the engine's file layer asks it first.
    public var faults: FaultInjector?

    public init() {}
}

public enum EngineError: Error, CustomStringConvertible {
    case locked(String)
    case log(LogError)
    case io(IOError)
    case lsm(LSMError)
    case graph(GraphError)

    public var description: String {
        switch self {
        case .locked(let path): "database \(path) is open in another process"
        case .log(let e): e.description
        case .io(let e): e.description
        case .lsm(let e): e.description
        case .graph(let e): e.description
        }
    }
}

/// One data directory and every structure in it. The one object the `Social` layer opens.
///
/// Layout of the data directory (see Docs/FORMATS.md):
///
///     LOCK        held with flock while open, so two processes never share a directory
///     log/        the durable event log (segments and CHECKPOINTS)
///     lsm/        the LSM tree: tweets, users and the other keyed records
///     graph/      the follow graph: compressed bases (its overlay lives in the log)
///
/// Thread safety: every member may be used from any thread.
public final class Engine: Sendable {
    public let directory: String
    public let options: EngineOptions
    public let fileSystem: FileSystem
    public let log: Log
    public let logRecovery: LogRecoveryReport
    /// The tweet store (and the other keyed records).
    public let tree: LSMTree
    /// The follow graph, on dense user numbers.
    public let graph: GraphStore
    private let lockFile: File

    public static func open(at directory: String, options: EngineOptions = EngineOptions()) throws(EngineError) -> Engine {
        let fileSystem: FileSystem
        do { fileSystem = try FileSystem(backend: options.ioBackend, faults: options.faults) } catch { throw .io(error) }
        let lockFile: File
        do {
            try fileSystem.makeDirectory(directory)
            lockFile = try fileSystem.open(directory + "/LOCK", .createOrOpen)
        } catch {
            throw .io(error)
        }
        // A child this process is spawning holds copies of its descriptors (the lock's among
        // them) from the fork until its exec closes them (O_CLOEXEC), so a database this process
        // just closed can look locked for a moment: try for up to 250 ms before answering that
        // another process has it open.
        var attempts = 0
        while flock(lockFile.fd, LOCK_EX | LOCK_NB) != 0 {
            attempts += 1
            if errno != EWOULDBLOCK || attempts > 50 {
                lockFile.close()
                throw .locked(directory)
            }
            usleep(5_000)
        }
        var logOptions = LogOptions(sync: options.sync)
        logOptions.segmentSizeBytes = options.logSegmentSizeBytes
        let log: Log
        let report: LogRecoveryReport
        do {
            (log, report) = try Log.open(directory: directory + "/log", fileSystem: fileSystem, options: logOptions)
        } catch {
            lockFile.close()
            throw .log(error)
        }
        // The graph opens before the tree: its log checkpoint must be registered before the
        // tree's open may move its own and let the log remove segments.
        let graph: GraphStore
        do {
            graph = try GraphStore.open(directory: directory + "/graph", fileSystem: fileSystem, log: log)
        } catch {
            try? log.close()
            lockFile.close()
            throw .graph(error)
        }
        var treeOptions = LSMOptions()
        // Tables are read through mappings (the block cache serves only unmapped reads), so the
        // cache budget goes to the record cache as well: tweets, users and counters read again.
        treeOptions.blockCacheBytes = options.cacheSizeBytes
        treeOptions.recordCacheBytes = options.cacheSizeBytes
        treeOptions.compression = options.compression
        treeOptions.uncompressedKeyPrefixes = options.uncompressedKeyPrefixes
        let tree: LSMTree
        do {
            tree = try LSMTree.open(directory: directory + "/lsm", fileSystem: fileSystem, log: log, options: treeOptions)
        } catch {
            graph.close()
            try? log.close()
            lockFile.close()
            throw .lsm(error)
        }
        return Engine(directory: directory, options: options, fileSystem: fileSystem, log: log, logRecovery: report, tree: tree,
                      graph: graph, lockFile: lockFile)
    }

    private init(directory: String, options: EngineOptions, fileSystem: FileSystem, log: Log, logRecovery: LogRecoveryReport,
                 tree: LSMTree, graph: GraphStore, lockFile: File) {
        self.directory = directory
        self.options = options
        self.fileSystem = fileSystem
        self.log = log
        self.logRecovery = logRecovery
        self.tree = tree
        self.graph = graph
        self.lockFile = lockFile
    }

    /// Makes everything durable and releases the directory. The graph's overlay is folded into a
    /// new base first when it holds changes, so the next open replays little of the log.
    public func close() throws(EngineError) {
        defer { lockFile.close() }
        var first: EngineError?
        if graph.statistics().overlayEntries > 0 {
            do { try graph.merge() } catch { first = .graph(error) }
        }
        graph.close()
        do { try tree.close() } catch { if first == nil { first = .lsm(error) } }
        do { try log.close() } catch { if first == nil { first = .log(error) } }
        if let first { throw first }
    }
}
