// SPDX-License-Identifier: Apache-2.0
// The fuzz build (scripts/fuzz.sh) compiles WireCodec and WireDeflate into one module.
#if canImport(WireCodec)
public import WireCodec
#endif
import CZlib

/// Inflates permessage-deflate messages (RFC 7692 §7.2.2) with a hard limit on each message's
/// inflated size, so a decompression bomb costs at most the limit.
///
///     frame payloads ─► inflate(_:isFinal: false) ─┐
///                                                  ├─► zlib, in steps of ≤ 32 KiB ─► output
///     last payload  ──► inflate(_:isFinal: true) ──┘   (≤ maxMessageBytes per message)
///                       + 00 00 ff ff (§7.2.2), then
///                       reset (no takeover) or keep the window (takeover)
///
/// Two ways to hold one:
/// - **One per loop**, shared by every connection whose agreed parameters contain
///   `client_no_context_takeover`: call `inflateMessage(_:)` with all of a message's payloads at
///   once. Each call starts and ends with an empty window, so connections never see each other's
///   data, and between calls the inflater holds nothing but its (reusable) zlib state.
/// - **One per connection** when the peer keeps its context: feed payloads as frames arrive with
///   `inflate(_:isFinal:appendingTo:)`; the window survives from one message to the next
///   (§7.2.2: "the server MUST decompress each new message using the LZ77 sliding window used to
///   process the last compressed message").
///
/// zlib state is allocated on the first message: 7,160 bytes plus a 2^windowBits window
/// (39,928 bytes at 15 bits; see `ZStream` for the table). `releaseIfIdle()` frees it when no
/// window needs to survive. Not `Sendable`: an inflater belongs to one loop thread.
public final class MessageInflater {
    /// Whether the window carries over between messages (RFC 7692 §7.2.2).
    public let contextTakeover: Bool
    /// The window size zlib inflates with (9...15).
    public let windowBits: Int
    /// The most inflated bytes one message may produce; more is `DeflateError.messageTooLarge`.
    public var maxMessageBytes: Int

    /// Output grows from `minimumStep` bytes per zlib call, doubling up to `maximumStep`, so a
    /// 5-byte message does not get a 32 KiB buffer and a large one needs few calls.
    static let minimumStep = 256
    static let maximumStep = 32 * 1024

    private var zstream: ZStream?
    /// Inflated bytes of the message in progress.
    private var produced = 0
    private var inMessage = false
    /// Whether the message in progress has had a payload byte yet.
    private var sawInput = false
    /// A block with BFINAL set ended the DEFLATE stream inside this message (§7.2.3.4); the rest
    /// of the message's bytes (at most an empty stored block, by §7.2.1) are ignored.
    private var streamEnded = false
    /// With takeover: whether the window may hold data a later message refers to.
    private var windowHoldsData = false

    /// - Parameters:
    ///   - windowBits: the peer's agreed maximum window (8...15). zlib 1.2.9+ deflates raw data
    ///     with at least 9 bits even when asked for 8, so 8 is inflated with 9: a larger window
    ///     than the peer's is always safe.
    ///   - contextTakeover: keep the window between messages.
    ///   - maxMessageBytes: the inflated size limit of one message.
    public init(windowBits: Int = 15, contextTakeover: Bool, maxMessageBytes: Int) {
        precondition((8...15).contains(windowBits), "windowBits \(windowBits) outside 8...15")
        precondition(maxMessageBytes >= 0, "negative maxMessageBytes")
        self.windowBits = max(windowBits, 9)
        self.contextTakeover = contextTakeover
        self.maxMessageBytes = maxMessageBytes
    }

    /// The inflater for the messages the peer of `role` sends, as agreed in `parameters`: a server
    /// inflates with the client's window and takeover, a client with the server's.
    public convenience init(parameters: DeflateParameters, role: WebSocketRole = .server, maxMessageBytes: Int) {
        switch role {
        case .server:
            self.init(windowBits: parameters.clientMaxWindowBits,
                      contextTakeover: !parameters.clientNoContextTakeover, maxMessageBytes: maxMessageBytes)
        case .client:
            self.init(windowBits: parameters.serverMaxWindowBits,
                      contextTakeover: !parameters.serverNoContextTakeover, maxMessageBytes: maxMessageBytes)
        }
    }

    /// Whether a message has been started by `inflate(_:isFinal:appendingTo:)` and not finished.
    public var isMidMessage: Bool { inMessage }

    /// Bytes held for zlib state right now (0 before the first message and after a release).
    public var allocatedBytes: Int { zstream?.allocatedBytes ?? 0 }

    /// Inflates one frame payload of the current message and appends the result to `output`.
    ///
    /// The limit counts every byte this message has produced, across calls. On error the message
    /// is dropped (and with it the takeover window); the caller closes the connection.
    /// - Parameters:
    ///   - fragment: the payload of one frame of a message whose first frame had RSV1 set.
    ///   - isFinal: the frame had FIN set; the message ends here (§7.2.2 tail appended).
    ///   - output: receives the inflated bytes; it may already hold earlier fragments' output.
    /// - Throws: `DeflateError.messageTooLarge` before any byte past the limit is stored,
    ///   `.invalidData`, `.outOfMemory`.
    public func inflate(_ fragment: UnsafeRawBufferPointer, isFinal: Bool, appendingTo output: inout [UInt8]) throws(DeflateError) {
        do throws(DeflateError) {
            inMessage = true
            sawInput = sawInput || !fragment.isEmpty
            try pump(fragment, into: &output)
            if isFinal { try finishMessage(into: &output) }
        } catch {
            abandonMessage()
            throw error
        }
    }

    /// `inflate(_:isFinal:appendingTo:)` for any byte collection (contiguous ones are not copied).
    public func inflate<Bytes: Collection<UInt8>>(_ fragment: Bytes, isFinal: Bool, appendingTo output: inout [UInt8]) throws(DeflateError) {
        var failure: DeflateError?
        func body(_ bytes: UnsafeRawBufferPointer) {
            do throws(DeflateError) {
                try inflate(bytes, isFinal: isFinal, appendingTo: &output)
            } catch {
                failure = error
            }
        }
        if fragment.withContiguousStorageIfAvailable({ body(UnsafeRawBufferPointer($0)) }) == nil {
            Array(fragment).withUnsafeBytes { body($0) }
        }
        if let failure { throw failure }
    }

    /// Inflates a complete message given as its frame payloads, in one atomic call: the form a
    /// loop-wide shared inflater uses (see the type's documentation).
    /// - Throws: as `inflate(_:isFinal:appendingTo:)`.
    public func inflateMessage<Bytes: Collection<UInt8>>(_ fragments: [Bytes]) throws(DeflateError) -> [UInt8] {
        precondition(!inMessage, "inflateMessage while a streamed message is open")
        var output: [UInt8] = []
        if fragments.isEmpty {
            try inflate(EmptyCollection<UInt8>(), isFinal: true, appendingTo: &output)
        }
        for (i, fragment) in fragments.enumerated() {
            try inflate(fragment, isFinal: i == fragments.count - 1, appendingTo: &output)
        }
        return output
    }

    /// Drops the message in progress (the connection closed mid-message, or an error). With
    /// takeover the window is lost too, so only a closing connection should need this.
    public func abandonMessage() {
        zstream?.reset()
        produced = 0
        inMessage = false
        sawInput = false
        streamEnded = false
        windowHoldsData = false
    }

    /// Frees the zlib state when nothing in it needs to survive: no message is open and, with
    /// takeover, no message has filled the window yet. The next message allocates afresh.
    /// - Returns: whether the memory was freed (or already was).
    @discardableResult
    public func releaseIfIdle() -> Bool {
        guard !inMessage, !(contextTakeover && windowHoldsData) else { return false }
        zstream = nil
        return true
    }

    // MARK: - zlib

    /// RFC 7692 §7.2.2: "Append 4 octets of 0x00 0x00 0xff 0xff to the tail end of the payload".
    private static let tail: [UInt8] = [0x00, 0x00, 0xff, 0xff]

    private func finishMessage(into output: inout [UInt8]) throws(DeflateError) {
        defer { (produced, inMessage, sawInput, streamEnded) = (0, false, false, false) }
        // A compressed message with no payload at all is not DEFLATE (§7.2.3.6 sends one 0x00
        // byte for an empty message), but nothing can hide in it: take it as empty and leave the
        // window alone.
        guard sawInput else { return }
        var failure: DeflateError?
        Self.tail.withUnsafeBytes { bytes in
            do throws(DeflateError) { try pump(bytes, into: &output) } catch { failure = error }
        }
        if let failure { throw failure }
        guard let z = zstream else { return }
        if streamEnded {
            if contextTakeover { carryWindowOver(z) } else { z.reset() }
        } else {
            // zlib sets data_type bit 7 when it stopped between blocks. Anywhere else means the
            // message did not end with the empty stored block §7.2.1 step 2 makes the sender add.
            guard z.stream.pointee.data_type & 128 != 0 else { throw .invalidData }
            if !contextTakeover { z.reset() }
        }
        windowHoldsData = contextTakeover
    }

    /// After a BFINAL block (§7.2.3.4) zlib has finished its stream and will take no more input.
    /// With takeover the next message may still refer to this one's data, so keep the window as a
    /// preset dictionary (raw inflate accepts one at any time).
    private func carryWindowOver(_ z: ZStream) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 1 << windowBits) { window in
            var length: UInt32 = 0
            inflateGetDictionary(z.stream, window.baseAddress, &length)
            z.reset()
            inflateSetDictionary(z.stream, window.baseAddress, length)
        }
    }

    /// Feeds `input` to zlib until it is consumed, appending output in growing steps, never past
    /// `maxMessageBytes` for the message.
    private func pump(_ input: UnsafeRawBufferPointer, into output: inout [UInt8]) throws(DeflateError) {
        guard !streamEnded, !input.isEmpty else { return }
        precondition(input.count <= Int(UInt32.max), "a payload over 4 GiB")
        if zstream == nil { zstream = try ZStream(inflateWindowBits: windowBits) }
        let s = zstream!.stream
        s.pointee.next_in = UnsafeMutablePointer(mutating: input.baseAddress!.assumingMemoryBound(to: UInt8.self))
        s.pointee.avail_in = UInt32(input.count)
        // Leave no pointers into the caller's buffers behind.
        defer {
            s.pointee.next_in = nil
            s.pointee.avail_in = 0
            s.pointee.next_out = nil
            s.pointee.avail_out = 0
        }
        var step = Self.minimumStep
        while true {
            let room = min(step, maxMessageBytes - produced)
            let rc: Int32
            if room == 0 {
                // At the limit: one more byte would be one too many. Ask for exactly one.
                var probe: UInt8 = 0
                rc = withUnsafeMutablePointer(to: &probe) { byte in
                    s.pointee.next_out = byte
                    s.pointee.avail_out = 1
                    return CZlib.inflate(s, Z_SYNC_FLUSH)
                }
                if s.pointee.avail_out == 0 { throw .messageTooLarge }
            } else {
                rc = Self.inflate(s, room: room, into: &output, messageStart: output.count - produced, limit: maxMessageBytes)
                produced += room - Int(s.pointee.avail_out)
            }
            switch rc {
            case Z_OK: break
            case Z_STREAM_END: streamEnded = true; return
            case Z_BUF_ERROR: return   // no progress possible without more input
            case Z_MEM_ERROR: throw .outOfMemory
            default: throw .invalidData   // Z_DATA_ERROR; Z_NEED_DICT cannot happen for raw DEFLATE
            }
            if s.pointee.avail_in == 0 && s.pointee.avail_out > 0 { return }
            step = min(step * 2, Self.maximumStep)
        }
    }

    /// One zlib call writing straight into `room` new bytes at the end of `output`; the unused
    /// ones are removed again. Capacity grows geometrically but never past the message's limit,
    /// so a bomb cannot make the array reserve more than `limit` bytes.
    private static func inflate(
        _ s: UnsafeMutablePointer<z_stream>, room: Int, into output: inout [UInt8], messageStart: Int, limit: Int
    ) -> Int32 {
        let start = output.count
        if output.capacity < start + room {
            output.reserveCapacity(min(max(start + room, output.capacity * 2), messageStart + limit))
        }
        output.append(contentsOf: zeros[..<room])
        let rc = output.withUnsafeMutableBufferPointer { buffer in
            s.pointee.next_out = buffer.baseAddress! + start
            s.pointee.avail_out = UInt32(room)
            return CZlib.inflate(s, Z_SYNC_FLUSH)
        }
        output.removeLast(Int(s.pointee.avail_out))
        return rc
    }
}

/// What `MessageInflater` appends before zlib overwrites it: a copy from here is a memcpy, where
/// `repeatElement` would go element by element in unoptimised builds.
private let zeros = [UInt8](repeating: 0, count: MessageInflater.maximumStep)
