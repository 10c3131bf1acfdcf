/// A home page and the scratch a read works in: one per reading thread, reused read after read,
/// so a read allocates nothing once its buffers have grown to size.
///
/// Not shareable between threads (it is the reader's own buffer); pass it `inout` to
/// `TimelineStore.home(of:limit:before:into:)`.
public struct TimelinePage: Sendable {
    /// The page: newest first, at most the limit asked for.
    public var items: ContiguousArray<TimelineItem> {
        @inlinable get { itemStorage }
    }
    /// `items`, which the store's inlinable read path fills.
    @usableFromInline var itemStorage = ContiguousArray<TimelineItem>()
    /// Originals already shown on this page through a retweet (an original appears once).
    @usableFromInline var seenOriginals = ContiguousArray<UInt64>()
    /// Read-time merge streams (celebrities, and every followee below a ring's floor).
    @usableFromInline var streams = ContiguousArray<SourceStream>()
    @usableFromInline var streamCount = 0
    @usableFromInline var authors = ContiguousArray<UInt32>()

    public init() {}

    /// The cursor for the next page: the id of the last item, or nil when the page is empty.
    public var nextBefore: UInt64? { itemStorage.last?.id }

    @inlinable
    mutating func reset() {
        itemStorage.removeAll(keepingCapacity: true)
        seenOriginals.removeAll(keepingCapacity: true)
        streamCount = 0
    }

    /// Adds a stream of `author`'s items below `before`, reusing an earlier stream's buffer.
    @inlinable
    mutating func addStream(author: UInt32, before: UInt64) {
        if streamCount == streams.count { streams.append(SourceStream()) }
        streams[streamCount].reset(author: author, before: before)
        streamCount += 1
    }
}

/// One author's items during a read, newest first, fetched in batches below `nextBefore`.
@usableFromInline
struct SourceStream: Sendable {
    @usableFromInline var author: UInt32 = 0
    @usableFromInline var items = ContiguousArray<TimelineItem>()
    @usableFromInline var position = 0
    /// The source has nothing below the last item fetched.
    @usableFromInline var finished = false
    @usableFromInline var nextBefore: UInt64 = 0

    @inlinable init() {}

    @inlinable
    mutating func reset(author: UInt32, before: UInt64) {
        self.author = author
        items.removeAll(keepingCapacity: true)
        position = 0
        finished = before == 0
        nextBefore = before
    }

    /// The id of the current item, 0 when none is buffered.
    @inlinable var currentId: UInt64 { position < items.count ? items[position].id : 0 }
}
