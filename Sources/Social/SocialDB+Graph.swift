import StorageEngine

extension SocialDB {
    // MARK: Follows

    /// `follower` follows `followee`. Idempotent; following oneself is `invalid`. Returns whether
    /// anything changed. One durable graph record (0x0100) when it did; the followee's recent
    /// tweets are in the follower's home timeline when it returns.
    @discardableResult
    public func follow(_ follower: String, _ followee: String) throws(SocialError) -> Bool {
        try answering { () throws(SocialError) -> Bool in
            try admitWrite(follower, .follow)
            let (a, b) = try pair(follower, followee, verb: "follow")
            return try setEdge(a, b, present: true)
        }
    }

    /// `follower` stops following `followee`. Idempotent. One graph record (0x0101) when it changed.
    @discardableResult
    public func unfollow(_ follower: String, _ followee: String) throws(SocialError) -> Bool {
        try answering { () throws(SocialError) -> Bool in
            try admitWrite(follower)
            let (a, b) = try pair(follower, followee, verb: "unfollow")
            return try setEdge(a, b, present: false)
        }
    }

    /// One graph record, queued for the derived structures like an LSM batch (`writing`).
    private func setEdge(_ a: UserRecord, _ b: UserRecord, present: Bool) throws(SocialError) -> Bool {
        try writing { () throws(SocialError) -> Bool in
            // The follow notification goes first (reads skip it while the edge is absent); the
            // unfollow's removal after the graph record. Nothing is written for a no-op.
            guard graph.follows(a.number, b.number) != present else { return false }
            if present { try notifyFollow(follower: a.id, followee: b.id) }
            let lsn: UInt64?
            do throws(GraphError) { lsn = try graph.setEdge(a.number, b.number, present: present, waitForAcknowledgement: false) } catch { throw SocialError(error) }
            guard let lsn else { return false }
            let event: SocialEvent = present ? .followed(follower: a.number, followee: b.number) : .unfollowed(follower: a.number, followee: b.number)
            consumers.enqueue([event], lsn: lsn)
            if !present {
                var changes = ChangeSet()
                try unnotifyFollow(follower: a.id, followee: b.id, into: &changes)
                try changes.commit(to: self)
            }
            return true
        }
    }

    /// Whether `a` follows `b`.
    public func follows(_ a: String, _ b: String) throws(SocialError) -> Bool {
        try answering { () throws(SocialError) -> Bool in
            graph.follows(try userRecord(handle: a).number, try userRecord(handle: b).number)
        }
    }

    private func pair(_ follower: String, _ followee: String, verb: String) throws(SocialError) -> (UserRecord, UserRecord) {
        let a = try userRecord(handle: follower)
        let b = try userRecord(handle: followee)
        guard a.id != b.id else { throw .invalid("@\(a.handle) cannot \(verb) themselves") }
        return (a, b)
    }

    /// A page of `handle`'s followers, oldest account first (the graph's order of user numbers).
    /// `after` is the previous page's `nextCursor` (a user id).
    public func followers(handle: String, limit: Int = SocialDB.pageLimitDefault, after: UInt64? = nil) throws(SocialError) -> Page<User> {
        try graphPage(handle: handle, limit: limit, after: after, followers: true)
    }

    /// A page of the users `handle` follows, oldest account first.
    public func following(handle: String, limit: Int = SocialDB.pageLimitDefault, after: UInt64? = nil) throws(SocialError) -> Page<User> {
        try graphPage(handle: handle, limit: limit, after: after, followers: false)
    }

    private func graphPage(handle: String, limit: Int, after: UInt64?, followers: Bool) throws(SocialError) -> Page<User> {
        try answering { () throws(SocialError) -> Page<User> in
            try Self.checkLimit(limit)
            let user = try userRecord(handle: handle)
            var afterNumber: UInt32?
            if let after {
                guard let cursor = try userRecord(id: after) else { throw .invalid("the cursor \(after) is not a user id from a previous page") }
                afterNumber = cursor.number
            }
            // One more than asked tells whether there is a next page, so the last page has no cursor.
            var numbers = followers
                ? graph.followers(of: user.number, after: afterNumber, limit: limit + 1)
                : graph.following(of: user.number, after: afterNumber, limit: limit + 1)
            let more = numbers.count > limit
            if more { numbers.removeLast() }
            var users: [User] = []
            users.reserveCapacity(numbers.count)
            for number in numbers {
                guard let record = try userRecord(number: number) else { continue }
                users.append(try makeUser(record))
            }
            let last = more ? try numbers.last.flatMap { (n) throws(SocialError) in try userRecord(number: n)?.id } : nil
            return Page(items: users, nextCursor: last)
        }
    }

    // MARK: Import

    /// What `importFollows` is doing, for a progress bar.
    public struct ImportProgress: Sendable {
        public var phase: String
        public var done: Int
        public var total: Int
    }

    /// Loads an edge list (SNAP, Network Repository or Matrix Market text: `follower followee`
    /// per line) through the graph's bulk path. Each number N in the file is the user with handle
    /// `u<N>`: the existing one if that handle is registered, else a new user created on the way
    /// (display name `u<N>`). Bad lines are skipped and counted. `symmetric` adds every edge both
    /// ways (undirected friendship graphs).
    ///
    /// Not atomic as a whole: users are created in batches, then the edges go in as one new graph
    /// base. Rerunning an interrupted import is safe (users are found again, duplicate edges
    /// dropped).
    public func importFollows(path: String, symmetric: Bool = false,
                              progress: ((ImportProgress) -> Void)? = nil) throws(SocialError) -> FollowImportReport {
        try answering { () throws(SocialError) -> FollowImportReport in
            let parsed: EdgeListParser.Result
            do throws(IOError) {
                parsed = try EdgeListParser(symmetric: symmetric).parse(path: path, fileSystem: engine.fileSystem) { p in
                    progress?(ImportProgress(phase: "reading", done: p.done, total: p.total))
                }
            } catch {
                if error.errno == 2 { throw .notFound("no file \(path)") }
                throw .io("reading \(path): \(error)")
            }
            var report = FollowImportReport()
            report.lines = parsed.lines
            report.commentLines = parsed.commentLines
            report.badLines = parsed.badLines
            report.badLineSamples = parsed.badLineSamples
            report.edgesRead = parsed.edges.count
            var edges = parsed.edges
            var distinct: [UInt32] = []
            distinct.reserveCapacity(edges.count / 4)
            for e in edges {
                distinct.append(UInt32(truncatingIfNeeded: e >> 32))
                distinct.append(UInt32(truncatingIfNeeded: e))
            }
            distinct.sort()
            var unique: [UInt32] = []
            unique.reserveCapacity(distinct.count)
            for n in distinct where unique.last != n { unique.append(n) }
            distinct = []

            var numberOf: [UInt32: UInt32] = [:]
            numberOf.reserveCapacity(unique.count)
            try writing { () throws(SocialError) in
                var next: UInt64
                next = try value(SocialKeys.nextUserNumber)?.u64 ?? 0
                var changes = ChangeSet()
                var pending = 0
                for (index, n) in unique.enumerated() {
                    let handle = "u\(n)"
                    let existing: UInt64?
                    existing = try value(SocialKeys.handle(handle))?.u64
                    if let existing, let record = try userRecord(id: existing) {
                        numberOf[n] = record.number
                        report.usersReused += 1
                    } else {
                        let record = try addUser(handle: handle, name: handle, to: &changes, nextNumber: next)
                        next += 1
                        numberOf[n] = record.number
                        report.usersCreated += 1
                        pending += 1
                    }
                    // Four entries a user: a batch of 900 users stays within one write batch.
                    if pending == 900 {
                        try changes.commit(to: self)
                        changes = ChangeSet()
                        pending = 0
                        progress?(ImportProgress(phase: "users", done: index + 1, total: unique.count))
                    }
                }
                if pending > 0 { try changes.commit(to: self) }
            }
            for i in edges.indices {
                let e = edges[i]
                edges[i] = UInt64(numberOf[UInt32(truncatingIfNeeded: e >> 32)]!) << 32 | UInt64(numberOf[UInt32(truncatingIfNeeded: e)]!)
            }
            numberOf = [:]
            // Whose follower count may change: user search ranks by it.
            var followees = [Bool](repeating: false, count: Int(try userCount()))
            for e in edges { followees[Int(UInt32(truncatingIfNeeded: e))] = true }
            do throws(GraphError) {
                try graph.bulkLoad(&edges) { p in
                    progress?(ImportProgress(phase: "\(p.phase)", done: p.done, total: p.total))
                }
            } catch { throw SocialError(error) }
            report.graphEdges = graph.statistics().edges
            // The bulk-loaded edges are not in the log: user search takes the new follower counts,
            // and the timelines start over from the graph (checkpointing both).
            try writing { () throws(SocialError) in
                try consumers.exclusively { () throws(SocialError) in
                    for (number, changed) in followees.enumerated() where changed { try consumers.refreshUser(number: UInt32(number)) }
                    try consumers.resetTimelines()
                }
            }
            return report
        }
    }
}
