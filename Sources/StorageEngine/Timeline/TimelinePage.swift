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
        // Only when not empty: each is a uniqueness check and an out-of-line call even when
        // there is nothing to remove, and most pages show no retweet.
        if !itemStorage.isEmpty { itemStorage.removeAll(keepingCapacity: true) }
        if !seenOriginals.isEmpty { seenOriginals.removeAll(keepingCapacity: true) }
        streamCount = 0
    }

    /// Adds a stream of `author`'s items below `before`, reusing an earlier stream's buffer.
    @inlinable
    mutating func addStream(author: UInt32, before: UInt64) {
        if streamCount == streams.count { streams.append(SourceStream()) }
        streams[streamCount].reset(author: author, before: before)
        streamCount += 1
    }

    /// Adds a stream of celebrity `author`'s items below `before` that starts in the author's
    /// cache, read in place (the caller holds the store's read lock for the whole read).
    @inlinable
    mutating func addStream(author: UInt32, before: UInt64, cache: UnsafeBufferPointer<TimelineItem>, complete: Bool) {
        if streamCount == streams.count { streams.append(SourceStream()) }
        streams[streamCount].reset(author: author, before: before, cache: cache, complete: complete)
        streamCount += 1
    }
}

/// One author's items during a read, newest first: for a celebrity, first its cache (read in
/// place, from `cacheNext` down), then batches fetched from the source below `nextBefore`.
///
/// `@unchecked Sendable`: `cache` points into a celebrity cache of the store, valid only while
/// the read lock the read holds is held; a stream is set up and used within one read, and
/// `TimelinePage.reset` forgets it before the next (a stale pointer is never dereferenced).
@usableFromInline
struct SourceStream: @unchecked Sendable {
    @usableFromInline var author: UInt32 = 0
    /// The author's celebrity cache, oldest first (empty when the stream has none).
    @usableFromInline var cache = UnsafeBufferPointer<TimelineItem>(start: nil, count: 0)
    /// The index in `cache` of the next item to yield; -1 once the cache part is done.
    @usableFromInline var cacheNext = -1
    /// Items fetched from the source, newest first.
    @usableFromInline var items = ContiguousArray<TimelineItem>()
    @usableFromInline var position = 0
    /// The source has nothing below the last item fetched.
    @usableFromInline var finished = false
    @usableFromInline var nextBefore: UInt64 = 0

    @inlinable init() {}

    @inlinable
    mutating func reset(author: UInt32, before: UInt64) {
        self.author = author
        cache = UnsafeBufferPointer(start: nil, count: 0)
        cacheNext = -1
        items.removeAll(keepingCapacity: true)
        position = 0
        finished = before == 0
        nextBefore = before
    }

    /// A stream whose newest items are `cache` (the author's newest, oldest first; `complete`
    /// when it holds everything the source has): the items below `before` in it first, then,
    /// unless complete, the source's items older than the cache's oldest.
    @inlinable
    mutating func reset(author: UInt32, before: UInt64, cache: UnsafeBufferPointer<TimelineItem>, complete: Bool) {
        reset(author: author, before: before)
        guard before != 0 else { return }
        self.cache = cache
        cacheNext = cache.partitioningIndex { $0.id >= before } - 1
        if complete {
            finished = true
        } else if let oldest = cache.first {
            nextBefore = min(before, oldest.id)
        }
    }

    /// Whether the stream must fetch from the source before it has a current item.
    @inlinable var needsRefill: Bool { cacheNext < 0 && position == items.count && !finished }

    /// The id of the current item, 0 when none is buffered.
    @inlinable var currentId: UInt64 {
        if cacheNext >= 0 { return cache[cacheNext].id }
        return position < items.count ? items[position].id : 0
    }

    /// The current item and a step to the next (there must be one: `currentId` not 0).
    @inlinable
    mutating func take() -> TimelineItem {
        if cacheNext >= 0 {
            let item = cache[cacheNext]
            cacheNext &-= 1
            return item
        }
        let item = items[position]
        position &+= 1
        return item
    }
}
