/// A home page and the scratch a read works in: one per reading thread, reused read after read,
/// so a read allocates nothing once its buffers have grown to size.
///
/// Not shareable between threads (it is the reader's own buffer); pass it `inout` to
/// `TimelineStore.home(of:limit:before:into:)`.
public struct TimelinePage: Sendable {
    /// The page: newest first, at most the limit asked for.
    public internal(set) var items = ContiguousArray<TimelineItem>()
    /// Originals already shown on this page through a retweet (an original appears once).
    var seenOriginals = ContiguousArray<UInt64>()
    /// Read-time merge streams (celebrities, and every followee below a ring's floor).
    var streams = ContiguousArray<SourceStream>()
    var streamCount = 0
    var authors = ContiguousArray<UInt32>()

    public init() {}

    /// The cursor for the next page: the id of the last item, or nil when the page is empty.
    public var nextBefore: UInt64? { items.last?.id }

    mutating func reset() {
        items.removeAll(keepingCapacity: true)
        seenOriginals.removeAll(keepingCapacity: true)
        streamCount = 0
    }

    /// Adds a stream of `author`'s items below `before`, reusing an earlier stream's buffer.
    mutating func addStream(author: UInt32, before: UInt64) {
        if streamCount == streams.count { streams.append(SourceStream()) }
        streams[streamCount].reset(author: author, before: before)
        streamCount += 1
    }
}

/// One author's items during a read, newest first, fetched in batches below `nextBefore`.
struct SourceStream: Sendable {
    var author: UInt32 = 0
    var items = ContiguousArray<TimelineItem>()
    var position = 0
    /// The source has nothing below the last item fetched.
    var finished = false
    var nextBefore: UInt64 = 0

    mutating func reset(author: UInt32, before: UInt64) {
        self.author = author
        items.removeAll(keepingCapacity: true)
        position = 0
        finished = before == 0
        nextBefore = before
    }

    /// The id of the current item, 0 when none is buffered.
    var currentId: UInt64 { position < items.count ? items[position].id : 0 }
}
