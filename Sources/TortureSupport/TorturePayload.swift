/// The payload crash tests write for a tag (thread << 32 | counter): a pure function of the tag,
/// so the test can rebuild what the killed child wrote and compare it byte for byte.
/// Shared by `socialdb-torture` and the tests so the two can never disagree.
public func torturePayload(tag: UInt64) -> [UInt8] {
    var state = tag &* 0x9E37_79B9_7F4A_7C15 &+ 1
    let length = Int(tag % 509) + 1
    var bytes = [UInt8](repeating: 0, count: length)
    for i in 0..<length {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        bytes[i] = UInt8(truncatingIfNeeded: state)
    }
    return bytes
}
