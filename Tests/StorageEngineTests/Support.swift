import StorageEngine
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A fresh directory under $TMPDIR (or /tmp), removed when the test is done with it.
final class TemporaryDirectory {
    let path: String

    init(_ label: String = "test") {
        let base = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        var template = Array("\(base)/socialdb-\(label)-XXXXXX".utf8CString)
        let result = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(result != nil, "mkdtemp failed")
        path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    deinit {
        try? FileSystem(backend: .posix).removeTree(path)
    }
}

/// The backends a file-layer test runs on: POSIX always, io_uring where the host has it.
enum Backends {
    static let ioUringAvailable = FileSystem.ioUringAvailable()

    static var all: [FileSystem.BackendChoice] {
        if !ioUringAvailable {
            print("note: io_uring is not available on this host; io_uring cases are skipped")
        }
        return ioUringAvailable ? [.posix, .ioUring] : [.posix]
    }
}

/// A small seeded generator (xorshift64*), so a failing randomized test prints a seed to rerun.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }

    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }
}

/// A seed from SOCIALDB_SEED, or a new one; tests print it so a failure can be replayed.
func testSeed() -> UInt64 {
    if let env = getenv("SOCIALDB_SEED"), let seed = UInt64(String(cString: env)) { return seed }
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return UInt64(ts.tv_nsec) ^ UInt64(ts.tv_sec) << 20
}

func environmentInt(_ name: String, default value: Int) -> Int {
    guard let raw = getenv(name), let parsed = Int(String(cString: raw)) else { return value }
    return parsed
}

func readWholeFile(_ path: String) -> [UInt8] {
    let fs = try! FileSystem(backend: .posix)
    let file = try! fs.open(path, .readOnlyAccess)
    defer { file.close() }
    var bytes = [UInt8](repeating: 0, count: Int(try! file.size()))
    bytes.withUnsafeMutableBytes { _ = try! file.read(into: $0, at: 0) }
    return bytes
}

func writeWholeFile(_ path: String, _ bytes: [UInt8]) {
    let fs = try! FileSystem(backend: .posix)
    let file = try! fs.open(path, FileSystem.OpenOptions(create: true, truncate: true))
    defer { file.close() }
    try! file.write(bytes, at: 0)
}

/// The size of the file at `path`, 0 when it does not exist.
func fileSize(_ path: String) -> Int {
    var info = stat()
    return stat(path, &info) == 0 ? Int(info.st_size) : 0
}

/// Waits until the file at `path` is longer than `size` bytes (a crash-test child acknowledged
/// something since), the child is gone (`alive` false) or `limitSeconds` pass. A kill moment
/// drawn from the child's start alone assumes it starts fast: under a sanitizer on a loaded
/// machine its start alone can outlast the whole window, and every round would kill it before
/// its first acknowledgement (so the round tests nothing).
func waitForGrowth(of path: String, beyond size: Int, alive: () -> Bool, limitSeconds: Int = 120) {
    var start = timespec()
    clock_gettime(CLOCK_MONOTONIC, &start)
    while fileSize(path) <= size && alive() {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        if now.tv_sec - start.tv_sec > limitSeconds { return }
        usleep(2_000)
    }
}
