import Social
import StorageEngine

#if canImport(Glibc)
import Glibc
#endif

/// Runs commands against one open database and renders their responses.
final class Shell {
    let db: SocialDB
    /// Responses are rendered as JSON (`--json`, a server connection in `FORMAT json`). Pages of
    /// tweets are then served from the tweets' cached JSON (`Response.json`, no human form).
    var json: Bool
    /// Draw progress bars (on standard error) for long commands: set on a terminal only.
    let showsProgress: Bool
    /// QUIT was answered (or the server ends the session): the caller stops reading commands.
    var quitRequested = false
    /// `\timing on`: the caller prints each command's elapsed time after its response.
    var timing = false
    /// In `socialdb serve`: writes must act as the account that AUTH opened (see
    /// `authorize`). The embedded shell leaves it off: whoever has the directory may do anything.
    var enforcesAccounts = false
    /// The account AUTH opened on this shell (a connection of the server), if any.
    var account: Account?

    init(db: SocialDB, json: Bool, showsProgress: Bool = false) {
        self.db = db
        self.json = json
        self.showsProgress = showsProgress
    }

    /// Executes one input line. Returns nil for lines the language ignores (blank, `--` comments).
    func execute(_ line: String) -> Response? {
        let trimmed = line.drop { $0 == " " || $0 == "\t" }
        if trimmed.isEmpty || trimmed.hasPrefix("--") { return nil }
        if trimmed.hasPrefix("\\") { return metaCommand(String(trimmed)) }
        let words: [Tokenizer.Word]
        switch Tokenizer.split(line) {
        case .success(let w): words = w
        case .failure(.unterminatedQuote): return .error(.syntax, "unterminated quote: a \" opens a string that does not close on this line")
        case .failure(.badEscape(let c)): return .error(.syntax, "unknown escape \\\(c) in a quoted string (use \\\", \\\\ or \\n)")
        }
        guard let first = words.first else { return nil }
        if first.quoted {
            return .error(.syntax, "the command word must not be quoted (\"\(first.text)\"); quotes are for arguments")
        }
        guard let info = commandInfo(first.text) else {
            if let near = nearestVerb(to: first.text) {
                return .error(.syntax, "unknown command \(first.text); did you mean \(near)? (HELP lists the commands)")
            }
            return .error(.syntax, "unknown command \(first.text) (HELP lists the commands)")
        }
        let arguments = Array(words.dropFirst())
        switch info.verb {
        case "HELP": return help(arguments)
        case "QUIT":
            guard arguments.isEmpty else { return .error(.syntax, "QUIT takes no arguments") }
            quitRequested = true
            return .ok(fields: [], human: "bye")
        case "STATS":
            guard arguments.isEmpty else { return .error(.syntax, "STATS takes no arguments") }
            return stats()
        default:
            do {
                try authorize(info.verb, arguments)
                return try social(info.verb, arguments)
            } catch {
                return .error(ErrorCode(rawValue: error.code) ?? .io, error.message)
            }
        }
    }

    /// Whether `line` is a backslash command of the shell itself (not timed, not sent anywhere).
    static func isMetaCommand(_ line: String) -> Bool {
        line.drop { $0 == " " || $0 == "\t" }.hasPrefix("\\")
    }

    /// `\timing [on|off]` (alone it toggles, as in psql).
    private func metaCommand(_ line: String) -> Response {
        let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard words[0].lowercased() == "\\timing" else {
            return .error(.syntax, "unknown shell command \(words[0]) (the one there is: \\timing [on|off])")
        }
        switch words.dropFirst().map({ $0.lowercased() }) {
        case []: timing.toggle()
        case ["on"]: timing = true
        case ["off"]: timing = false
        default: return .error(.syntax, "\\timing takes on or off, not '\(words.dropFirst().joined(separator: " "))'")
        }
        return .ok(fields: [("timing", .bool(timing))], human: timing ? "Timing is on." : "Timing is off.")
    }

    /// A progress line on standard error, redrawn in place; nothing unless `showsProgress`.
    func importProgress(_ progress: SocialDB.ImportProgress) {
        guard showsProgress else { return }
        let width = 30
        let filled = progress.total > 0 ? min(width, progress.done * width / progress.total) : 0
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        printErrorPartial("\r\(progress.phase.padding(12)) [\(bar)] \(progress.done)/\(progress.total)   ")
    }

    func finishProgress() {
        if showsProgress { printErrorPartial("\r" + String(repeating: " ", count: 70) + "\r") }
    }

    private func help(_ arguments: [Tokenizer.Word]) -> Response {
        if let word = arguments.first {
            guard arguments.count == 1 else { return .error(.syntax, "HELP takes at most one command name") }
            guard let info = commandInfo(word.text) else {
                return .error(.notFound, "no command named \(word.text) (HELP lists the commands)")
            }
            let note = info.implemented ? "" : "\n  (not available in this version yet)"
            return .ok(fields: [("command", .string(info.verb)), ("usage", .string(info.usage)), ("summary", .string(info.summary)),
                                ("available", .bool(info.implemented))],
                       human: "\(info.usage)\n  \(info.summary)\(note)")
        }
        var lines = ["Commands (verbs are case-insensitive; \"...\" quotes a string):"]
        let width = commandTable.map(\.verb.count).max() ?? 0
        for info in commandTable {
            let pad = String(repeating: " ", count: width - info.verb.count)
            lines.append("  \(info.verb)\(pad)  \(info.summary)\(info.implemented ? "" : " (not yet)")")
        }
        lines.append("HELP <command> shows its usage.")
        let entries = commandTable.map { JSONValue.object([("command", .string($0.verb)), ("summary", .string($0.summary)), ("available", .bool($0.implemented))]) }
        return .ok(fields: [("commands", .array(entries))], human: lines.joined(separator: "\n"))
    }

    private func stats() -> Response {
        let engine = db.engine
        let social = try? db.statistics()
        let users = social?.users ?? 0
        let graph = engine.graph.statistics()
        let log = engine.log.statistics
        let tree = engine.tree.statistics
        let io = engine.fileSystem.backend.rawValue
        let fields: [(String, JSONValue)] = [
            ("data_directory", .string(engine.directory)),
            ("io_backend", .string(io)),
            ("sync", .string(log.syncPolicy.description)),
            ("log", .object([
                ("segments", .int(log.segments)),
                ("next_lsn", .string(String(log.nextLSN))),
                ("durable_lsn", .string(String(log.durableLSN))),
                ("writes", .int(Int(log.writes))),
                ("fdatasyncs", .int(Int(log.fdatasyncs))),
            ])),
            ("recovery", .string(engine.logRecovery.description)),
            ("lsm", .object([
                ("tables_per_level", .array(tree.tablesPerLevel.map { .int($0) })),
                ("table_bytes", .int(Int(tree.tableBytes))),
                ("memtable_bytes", .int(tree.memtableBytes)),
                ("flushes", .int(tree.flushes)),
                ("compactions", .int(tree.compactions)),
                ("trivial_moves", .int(tree.trivialMoves)),
                ("write_amplification", .double(tree.writeAmplification)),
                ("space_amplification", .double(tree.spaceAmplification)),
                ("blocks_written", .int(Int(tree.blocksWritten.blocks))),
                ("blocks_compressed", .int(Int(tree.blocksWritten.compressedBlocks))),
                ("block_bytes_built", .int(Int(tree.blocksWritten.rawBytes))),
                ("block_bytes_stored", .int(Int(tree.blocksWritten.storedBytes))),
                ("cache_bytes", .int(tree.cacheBytes)),
                ("cache_hits", .int(Int(tree.cacheHits))),
                ("cache_misses", .int(Int(tree.cacheMisses))),
                ("cache_hit_rate", .double(tree.cacheHitRate)),
                ("record_cache_bytes", .int(tree.recordCacheBytes)),
                ("record_cache_entries", .int(tree.recordCacheEntries)),
                ("record_cache_hits", .int(Int(tree.recordCacheHits))),
                ("record_cache_misses", .int(Int(tree.recordCacheMisses))),
                ("mmap_fallbacks", .int(tree.mmapFallbacks)),
            ])),
            ("users", .int(users)),
            ("graph", .object([
                ("users", .int(graph.users)),
                ("edges", .int(graph.edges)),
                ("base_edges", .int(graph.baseEdges)),
                ("base_generation", .int(Int(graph.baseGeneration))),
                ("base_bytes", .int(graph.baseFileBytes)),
                ("bits_per_edge", .double(graph.following.bitsPerEdge)),
                ("overlay_entries", .int(graph.overlayEntries)),
                ("overlay_bytes", .int(graph.overlayBytes)),
            ])),
        ]
        var extra: [(String, JSONValue)] = []
        var extraHuman = ""
        if let social {
            let t = social.timelines
            let q = social.search
            extra = [
                ("timelines", .object([
                    ("rings", .int(t.rings)),
                    ("entries", .int(t.entries)),
                    ("ring_bytes", .int(t.ringBytes)),
                    ("pushes", .int(t.pushes)),
                    ("celebrity_posts", .int(t.celebrityPosts)),
                    ("merges_at_read", .int(t.mergesAtRead)),
                    ("rebuilds", .int(t.rebuilds)),
                    ("tombstones", .int(t.tombstones)),
                    ("compacted_entries", .int(t.compactedEntries)),
                    ("inactive_rings_dropped", .int(t.inactiveRingsDropped)),
                    ("checkpoint_bytes", .int(t.checkpointBytes)),
                    ("author_cache_authors", .int(social.authorCache.authors)),
                    ("author_cache_items", .int(social.authorCache.items)),
                    ("author_cache_hits", .int(social.authorCache.hits)),
                    ("author_cache_misses", .int(social.authorCache.misses)),
                    ("tweet_cache_entries", .int(social.tweetCache.entries)),
                    ("tweet_cache_bytes", .int(social.tweetCache.bytes)),
                    ("tweet_cache_hits", .int(social.tweetCache.hits)),
                    ("tweet_cache_misses", .int(social.tweetCache.misses)),
                    ("counts_cache_entries", .int(social.countsCache.entries)),
                    ("counts_cache_hits", .int(social.countsCache.hits)),
                    ("counts_cache_misses", .int(social.countsCache.misses)),
                    ("encoded_cache_entries", .int(social.encodedCache.entries)),
                    ("encoded_cache_bytes", .int(social.encodedCache.bytes)),
                    ("encoded_cache_hits", .int(social.encodedCache.hits)),
                    ("encoded_cache_misses", .int(social.encodedCache.misses)),
                ])),
                ("search", .object([
                    ("documents", .int(q.activeDocuments + q.frozenDocuments)),
                    ("frozen_segments", .int(q.frozenSegments)),
                    ("frozen_terms", .int(q.frozenTerms)),
                    ("postings", .int(q.activePostings + q.frozenPostings)),
                    ("frozen_bytes", .int(q.frozenFileBytes)),
                    ("bytes_per_posting", .double(q.frozenPostings > 0 ? Double(q.frozenPostingsBytes) / Double(q.frozenPostings) : 0)),
                    ("tombstones", .int(q.tombstones)),
                    ("applied_lsn", .string(String(q.appliedLSN >> 12))),
                ])),
                ("periodic_checkpoints", .int(social.periodicCheckpoints)),
                ("apply_pending", .int(social.pendingApplies)),
                ("apply_combined", .int(social.combinedApplies)),
                ("apply_drains", .int(social.applyDrains)),
            ]
            extraHuman += "\ntimelines       \(t.rings) rings, \(t.entries) entries, \(t.ringBytes) bytes; \(t.pushes) pushes, "
                + "\(t.celebrityPosts) celebrity posts, \(t.mergesAtRead) merges at read, \(t.rebuilds) rebuilds"
            let a = social.authorCache
            extraHuman += "\nauthor cache    \(a.authors) authors, \(a.items) items for rebuilds; \(a.hits) hits, \(a.misses) misses, "
                + "\(a.evictions) evicted"
            let v = social.tweetCache, c = social.countsCache
            extraHuman += "\ntweet cache     \(v.entries) tweets hydrated in \(v.bytes) bytes (\(v.hits) hits, \(v.misses) misses), "
                + "\(c.entries) tweets' counts (\(c.hits) hits, \(c.misses) misses)"
            let e = social.encodedCache
            extraHuman += "\nencoded cache   \(e.entries) tweets' encoded parts in \(e.bytes) bytes (\(e.hits) hits, \(e.misses) misses)"
            extraHuman += "\ndeletes         \(t.tombstones) tombstones filtered, \(t.compactedEntries) entries compacted; "
                + "\(t.inactiveRingsDropped) inactive users' rings dropped"
            extraHuman += "\nsearch          \(q.activeDocuments + q.frozenDocuments) tweets, \(q.activePostings + q.frozenPostings) postings, "
                + "\(q.frozenSegments) frozen segments (\(q.frozenFileBytes) bytes), \(q.tombstones) tombstones"
            extraHuman += "\ncheckpoints     \(social.periodicCheckpoints) periodic since open"
            extraHuman += "\napply pipeline  \(social.pendingApplies) records waiting, \(social.combinedApplies) applied by another writer, "
                + "\(social.applyDrains) drains"
        }
        let allFields = fields + extra
        var human = """
        data directory  \(engine.directory)
        I/O backend     \(io)\(engine.fileSystem.fallbackReason.map { " (\($0))" } ?? "")
        sync            \(log.syncPolicy)
        log             \(log.segments) segments, next LSN \(log.nextLSN), durable LSN \(log.durableLSN)
        log I/O         \(log.writes) writes, \(log.fdatasyncs) fdatasyncs
        """
        human += "\nrecovery        \(engine.logRecovery)"
        human += "\nLSM tables      \(tree.tablesPerLevel) per level, \(tree.tableBytes) bytes; memtable \(tree.memtableBytes) bytes"
        human += "\nLSM work        \(tree.flushes) flushes, \(tree.compactions) compactions, \(tree.trivialMoves) moves"
        human += "\nLSM amplification  write \(formatRatio(tree.writeAmplification)), space \(formatRatio(tree.spaceAmplification))"
        human += "\nLSM blocks      \(tree.blocksWritten.blocks) written since open, \(tree.blocksWritten.compressedBlocks) compressed; "
            + "\(tree.blocksWritten.storedBytes) of \(tree.blocksWritten.rawBytes) bytes stored (\(formatRatio(tree.compressionRatio * 100))%)"
        human += "\nblock cache     \(tree.cacheBytes) bytes, \(tree.cacheHits) hits, \(tree.cacheMisses) misses (\(formatRatio(tree.cacheHitRate * 100))%)"
        let recordLookups = tree.recordCacheHits + tree.recordCacheMisses
        human += "\nrecord cache    \(tree.recordCacheBytes) bytes, \(tree.recordCacheEntries) records, \(tree.recordCacheHits) hits, "
            + "\(tree.recordCacheMisses) misses (\(formatRatio(recordLookups == 0 ? 0 : Double(tree.recordCacheHits) * 100 / Double(recordLookups)))%)"
        if let reason = tree.lastMmapFallback {
            human += "\nwarning         \(tree.mmapFallbacks) table(s) not mapped, read with the block cache (last: \(reason))"
        }
        human += "\nusers           \(users)"
        human += "\ngraph           \(graph.edges) edges (\(graph.baseEdges) in base generation \(graph.baseGeneration), \(graph.baseFileBytes) bytes, "
            + "\(formatRatio(graph.following.bitsPerEdge)) bits/edge); overlay \(graph.overlayEntries) changes, \(graph.overlayBytes) bytes"
        human += extraHuman
        return .ok(fields: allFields, human: human)
    }
}

extension String {
    func padding(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}

private func formatRatio(_ x: Double) -> String {
    let hundredths = Int((x * 100).rounded())
    let fraction = hundredths % 100
    return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)"
}
