import Social
import StorageEngine
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A fresh directory under $TMPDIR (or /tmp), removed when the test is done with it.
final class TemporaryDirectory {
    let path: String

    init(_ label: String = "social") {
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

/// 2026-01-01T00:00:00Z: with a clock fixed there, ids are the same in every run (the
/// generator counts the sequence up within the one millisecond, then moves on by one).
let fixedClockMilliseconds: UInt64 = 1_767_225_600_000

func testOptions() -> SocialOptions {
    var options = SocialOptions()
    options.wallClockMilliseconds = { fixedClockMilliseconds }
    options.engine.ioBackend = .posix
    return options
}

/// Opens a database in a fresh directory; the directory lives as long as the returned object.
final class TestDatabase {
    let directory = TemporaryDirectory()
    var db: SocialDB
    let options: SocialOptions

    init(options: SocialOptions = testOptions()) throws {
        self.options = options
        db = try SocialDB.open(at: directory.path, options: options)
    }

    func reopen() throws {
        try db.close()
        db = try SocialDB.open(at: directory.path, options: options)
    }

    deinit { try? db.close() }

    /// The log's next LSN: unchanged across a call means the call wrote nothing.
    var nextLSN: UInt64 { db.engine.log.nextSequenceNumber }

    /// Expects `body` to throw `expected`'s case (message ignored) and to change nothing.
    func expectRejected(_ code: String, sourceLocation: SourceLocation = #_sourceLocation,
                        _ body: () throws -> Void) {
        let before = nextLSN
        do {
            try body()
            Issue.record("expected \(code), got success", sourceLocation: sourceLocation)
        } catch let error as SocialError {
            #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("expected a SocialError, got \(error)", sourceLocation: sourceLocation)
        }
        #expect(nextLSN == before, "a rejected call wrote to the log", sourceLocation: sourceLocation)
    }
}
