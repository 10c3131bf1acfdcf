import StorageEngine

/// The embedded database: the one object an app opens.
///
/// Today it owns the engine (the durable log and the file layer); the social operations (users,
/// tweets, timelines, follows, search, notifications, trends) arrive with their structures.
public final class SocialDB: Sendable {
    public let engine: Engine

    public typealias Options = EngineOptions

    /// Opens (creating if needed) the database in `path`.
    public static func open(at path: String, options: Options = Options()) throws(EngineError) -> SocialDB {
        SocialDB(engine: try Engine.open(at: path, options: options))
    }

    private init(engine: Engine) { self.engine = engine }

    /// Makes every acknowledged write durable and releases the directory.
    public func close() throws(EngineError) { try engine.close() }
}
