/// A tweet as the store keeps it: compact, versioned, and encoded without Foundation.
///
/// Encoding (little-endian): version u8 (1), flags u8 (bit 0 reply, 1 retweet, 2 quote, 3 has
/// media), id u64, author u64, time ms u64, then reply-to u64 if a reply, retweet-of u64 if a
/// retweet, quote-of u64 if a quote; then varint text length and the UTF-8 text; then four lists
/// each as a varint count: mentions (varint user ids), hashtags (varint length + UTF-8), URLs
/// (varint length + UTF-8), media references (varint ids).
public struct TweetRecord: Sendable, Equatable {
    public var id: UInt64
    public var author: UInt64
    /// Milliseconds since the Unix epoch.
    public var time: UInt64
    public var text: String
    public var replyTo: UInt64?
    public var retweetOf: UInt64?
    public var quoteOf: UInt64?
    public var mentions: [UInt64]
    public var hashtags: [String]
    public var urls: [String]
    public var media: [UInt64]

    public init(id: UInt64, author: UInt64, time: UInt64, text: String, replyTo: UInt64? = nil, retweetOf: UInt64? = nil,
                quoteOf: UInt64? = nil, mentions: [UInt64] = [], hashtags: [String] = [], urls: [String] = [], media: [UInt64] = []) {
        self.id = id
        self.author = author
        self.time = time
        self.text = text
        self.replyTo = replyTo
        self.retweetOf = retweetOf
        self.quoteOf = quoteOf
        self.mentions = mentions
        self.hashtags = hashtags
        self.urls = urls
        self.media = media
    }

    static let version: UInt8 = 1

    public func encode(into out: inout [UInt8]) {
        var flags: UInt8 = 0
        if replyTo != nil { flags |= 1 }
        if retweetOf != nil { flags |= 2 }
        if quoteOf != nil { flags |= 4 }
        if !media.isEmpty { flags |= 8 }
        out.append(Self.version)
        out.append(flags)
        out.appendLE(id)
        out.appendLE(author)
        out.appendLE(time)
        if let replyTo { out.appendLE(replyTo) }
        if let retweetOf { out.appendLE(retweetOf) }
        if let quoteOf { out.appendLE(quoteOf) }
        var text = text
        text.withUTF8 { u in
            Varint.append(UInt64(u.count), to: &out)
            out.append(contentsOf: u)
        }
        Varint.append(UInt64(mentions.count), to: &out)
        for m in mentions { Varint.append(m, to: &out) }
        for list in [hashtags, urls] {
            Varint.append(UInt64(list.count), to: &out)
            for var s in list {
                s.withUTF8 { u in
                    Varint.append(UInt64(u.count), to: &out)
                    out.append(contentsOf: u)
                }
            }
        }
        Varint.append(UInt64(media.count), to: &out)
        for m in media { Varint.append(m, to: &out) }
    }

    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(32 + text.utf8.count)
        encode(into: &out)
        return out
    }

    /// Decodes a record; throws `.corrupt` on anything malformed (never guesses).
    public static func decode(_ raw: UnsafeRawBufferPointer) throws(LSMError) -> TweetRecord {
        var r = Reader(raw: raw)
        guard let version = r.byte(), version == Self.version else { throw .corrupt(file: "tweet record", detail: "unknown version") }
        guard let flags = r.byte(), let id = r.u64(), let author = r.u64(), let time = r.u64() else { throw r.error }
        var t = TweetRecord(id: id, author: author, time: time, text: "")
        if flags & 1 != 0 { guard let v = r.u64() else { throw r.error }; t.replyTo = v }
        if flags & 2 != 0 { guard let v = r.u64() else { throw r.error }; t.retweetOf = v }
        if flags & 4 != 0 { guard let v = r.u64() else { throw r.error }; t.quoteOf = v }
        guard let text = r.string() else { throw r.error }
        t.text = text
        guard let nm = r.varint(), nm <= raw.count else { throw r.error }
        for _ in 0..<nm { guard let m = r.varint() else { throw r.error }; t.mentions.append(UInt64(m)) }
        guard let nh = r.varint(), nh <= raw.count else { throw r.error }
        for _ in 0..<nh { guard let s = r.string() else { throw r.error }; t.hashtags.append(s) }
        guard let nu = r.varint(), nu <= raw.count else { throw r.error }
        for _ in 0..<nu { guard let s = r.string() else { throw r.error }; t.urls.append(s) }
        guard let nmedia = r.varint(), nmedia <= raw.count else { throw r.error }
        for _ in 0..<nmedia { guard let m = r.varint() else { throw r.error }; t.media.append(UInt64(m)) }
        guard r.offset == raw.count else { throw .corrupt(file: "tweet record", detail: "trailing bytes") }
        return t
    }

    /// The fixed part of a record: what a timeline needs (kind and references), read without
    /// making the text's and lists' strings. The rest is not checked here (blocks carry checksums;
    /// `decode` checks it all).
    public struct Header: Sendable, Equatable {
        public var id: UInt64
        public var author: UInt64
        public var time: UInt64
        public var replyTo: UInt64?
        public var retweetOf: UInt64?
        public var quoteOf: UInt64?

        public init(id: UInt64, author: UInt64, time: UInt64, replyTo: UInt64? = nil, retweetOf: UInt64? = nil, quoteOf: UInt64? = nil) {
            self.id = id
            self.author = author
            self.time = time
            self.replyTo = replyTo
            self.retweetOf = retweetOf
            self.quoteOf = quoteOf
        }
    }

    public static func decodeHeader(_ raw: UnsafeRawBufferPointer) throws(LSMError) -> Header {
        var r = Reader(raw: raw)
        guard let version = r.byte(), version == Self.version else { throw .corrupt(file: "tweet record", detail: "unknown version") }
        guard let flags = r.byte(), let id = r.u64(), let author = r.u64(), let time = r.u64() else { throw r.error }
        var h = Header(id: id, author: author, time: time)
        if flags & 1 != 0 { guard let v = r.u64() else { throw r.error }; h.replyTo = v }
        if flags & 2 != 0 { guard let v = r.u64() else { throw r.error }; h.retweetOf = v }
        if flags & 4 != 0 { guard let v = r.u64() else { throw r.error }; h.quoteOf = v }
        return h
    }

    public static func decodeHeader(_ bytes: [UInt8]) throws(LSMError) -> Header {
        let r: Result<Header, LSMError> = bytes.withUnsafeBytes { raw in
            do throws(LSMError) { return .success(try decodeHeader(raw)) } catch { return .failure(error) }
        }
        return try r.get()
    }

    public static func decode(_ bytes: [UInt8]) throws(LSMError) -> TweetRecord {
        let r: Result<TweetRecord, LSMError> = bytes.withUnsafeBytes { raw in
            do throws(LSMError) { return .success(try decode(raw)) } catch { return .failure(error) }
        }
        return try r.get()
    }

    private struct Reader {
        let raw: UnsafeRawBufferPointer
        var offset = 0
        var error: LSMError { .corrupt(file: "tweet record", detail: "truncated or malformed at byte \(offset)") }

        mutating func byte() -> UInt8? {
            guard offset < raw.count else { return nil }
            defer { offset += 1 }
            return raw[offset]
        }

        mutating func u64() -> UInt64? {
            guard offset + 8 <= raw.count else { return nil }
            defer { offset += 8 }
            return raw.loadLE(UInt64.self, at: offset)
        }

        mutating func varint() -> Int? {
            var i = offset
            var result: UInt64 = 0
            var shift: UInt64 = 0
            while i < raw.count && shift < 64 {
                let b = raw[i]
                i += 1
                result |= UInt64(b & 0x7F) << shift
                if b < 0x80 {
                    offset = i
                    return result <= UInt64(Int.max) ? Int(result) : nil
                }
                shift += 7
            }
            return nil
        }

        mutating func string() -> String? {
            guard let n = varint(), n <= raw.count - offset else { return nil }
            let bytes = UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + n)])
            offset += n
            // Strict UTF-8: invalid bytes are corruption, not replacement characters.
            guard let s = bytes.strictUTF8String() else { return nil }
            return s
        }
    }
}
