// SPDX-License-Identifier: Apache-2.0
// The fuzz build (scripts/fuzz.sh) compiles WireCodec and WireDeflate into one module.
#if canImport(WireCodec)
public import WireCodec
#endif
import CZlib

/// Compresses whole messages for permessage-deflate (RFC 7692 §7.2.1).
///
///     message ─► deflate(Z_SYNC_FLUSH) ─► … 00 00 ff ff ─► strip the 4 octets ─► payload, RSV1 on
///                                                          (empty result: one 0x00, §7.2.3.6)
///
/// The caller sends the payload as one frame, or splits it into fragments with RSV1 on the first
/// only (RFC 7692 §6.1: RSV1 marks the message, never a continuation frame).
///
/// Without context takeover each message starts from an empty window, so one deflater per loop
/// serves every connection whose agreed parameters contain `server_no_context_takeover`, and a
/// fan-out message is compressed once and the same bytes go to every subscriber. With takeover
/// the deflater belongs to one connection and every message it compresses must be sent on it, in
/// order (the next message may refer back into this one).
///
/// zlib state is allocated on the first message: 268,096 bytes at windowBits 15 and memLevel 8,
/// 138,048 at memLevel 1 (see `ZStream` for the table). Not `Sendable`: one loop thread only.
public final class MessageDeflater {
    /// Whether the window carries over between messages.
    public let contextTakeover: Bool
    /// LZ77 window, 9...15 (zlib cannot deflate raw data with 8).
    public let windowBits: Int
    /// zlib memLevel 1...9: hash and pending-buffer size, 2 × 2^(memLevel+8) bytes.
    public let memLevel: Int
    /// zlib level 0...9 (0 stores, 1 fastest, 9 smallest).
    public let level: Int

    private var zstream: ZStream?
    private var windowHoldsData = false

    /// - Parameters:
    ///   - windowBits: the agreed window for the messages this side sends, 9...15.
    ///   - memLevel: zlib memLevel, 1...9.
    ///   - level: zlib compression level, 0...9.
    ///   - contextTakeover: keep the window from one message to the next.
    public init(windowBits: Int = 15, memLevel: Int = 8, level: Int = 6, contextTakeover: Bool) {
        precondition((9...15).contains(windowBits), "windowBits \(windowBits) outside 9...15")
        precondition((1...9).contains(memLevel), "memLevel \(memLevel) outside 1...9")
        precondition((0...9).contains(level), "level \(level) outside 0...9")
        self.windowBits = windowBits
        self.memLevel = memLevel
        self.level = level
        self.contextTakeover = contextTakeover
    }

    /// The deflater for the messages `role` sends, as agreed in `parameters`, with the memory and
    /// speed settings of `configuration`.
    public convenience init(
        parameters: DeflateParameters, role: WebSocketRole = .server, configuration: DeflateConfiguration = DeflateConfiguration()
    ) {
        switch role {
        case .server:
            self.init(windowBits: parameters.serverMaxWindowBits, memLevel: configuration.memLevel,
                      level: configuration.compressionLevel, contextTakeover: !parameters.serverNoContextTakeover)
        case .client:
            // zlib cannot deflate raw data with an 8-bit window; 9 is what zlib clients use instead.
            self.init(windowBits: max(parameters.clientMaxWindowBits, 9), memLevel: configuration.memLevel,
                      level: configuration.compressionLevel, contextTakeover: !parameters.clientNoContextTakeover)
        }
    }

    /// Bytes held for zlib state right now (0 before the first message and after a release).
    public var allocatedBytes: Int { zstream?.allocatedBytes ?? 0 }

    /// Compresses one whole message into the payload of a frame with RSV1 set.
    /// - Throws: `DeflateError.outOfMemory` when zlib cannot allocate its state.
    public func compress(_ message: UnsafeRawBufferPointer) throws(DeflateError) -> [UInt8] {
        precondition(message.count <= Int(UInt32.max), "a message over 4 GiB")
        // §7.2.3.6: an empty message is one empty stored block header, 0x00. zlib would emit
        // nothing at all for a second flush in a row, and the block changes no window.
        guard !message.isEmpty else { return [0x00] }
        if zstream == nil { zstream = try ZStream(deflateLevel: level, windowBits: windowBits, memLevel: memLevel) }
        let s = zstream!.stream
        s.pointee.next_in = UnsafeMutablePointer(mutating: message.baseAddress!.assumingMemoryBound(to: UInt8.self))
        s.pointee.avail_in = UInt32(message.count)
        defer {
            s.pointee.next_in = nil
            s.pointee.avail_in = 0
        }
        // deflateBound covers a finished stream; a sync flush adds at most an empty stored block
        // (5 bytes) and a partial byte, so the first call almost always suffices.
        var output = Self.deflate(s, room: Int(deflateBound(s, UInt(message.count))) + 16)
        while output.full {
            let more = Self.deflate(s, room: 4096)
            output.bytes += more.bytes
            output.full = more.full
        }
        var payload = output.bytes
        // RFC 7692 §7.2.1 step 3: remove the 0x00 0x00 0xff 0xff that the sync flush ends with.
        precondition(payload.count >= 5 && payload.suffix(4).elementsEqual([0x00, 0x00, 0xff, 0xff]),
                     "a sync flush must end with an empty stored block")
        payload.removeLast(4)
        if contextTakeover { windowHoldsData = true } else { zstream!.reset() }
        return payload
    }

    /// One `deflate(Z_SYNC_FLUSH)` call into a new array of `room` bytes (no zero-filling).
    /// - Returns: the bytes written, and whether they filled the room (then call again: zlib may
    ///   hold more).
    private static func deflate(_ s: UnsafeMutablePointer<z_stream>, room: Int) -> (bytes: [UInt8], full: Bool) {
        var rc: Int32 = Z_OK
        let bytes = [UInt8](unsafeUninitializedCapacity: room) { buffer, initialized in
            s.pointee.next_out = buffer.baseAddress
            s.pointee.avail_out = UInt32(room)
            rc = CZlib.deflate(s, Z_SYNC_FLUSH)
            initialized = room - Int(s.pointee.avail_out)
            s.pointee.next_out = nil
        }
        // Z_BUF_ERROR: the previous call had completed the flush exactly at the end of its
        // buffer, so there was nothing left to do. Anything else is a misuse of zlib on our side.
        precondition(rc == Z_OK || rc == Z_BUF_ERROR, "deflate failed: \(rc)")
        return (bytes, rc == Z_OK && bytes.count == room)
    }

    /// `compress(_:)` for any byte collection (contiguous ones are not copied).
    public func compress<Bytes: Collection<UInt8>>(_ message: Bytes) throws(DeflateError) -> [UInt8] {
        var result: Result<[UInt8], DeflateError> = .success([])
        let body = { (bytes: UnsafeRawBufferPointer) in
            do throws(DeflateError) {
                result = .success(try self.compress(bytes))
            } catch {
                result = .failure(error)
            }
        }
        if message.withContiguousStorageIfAvailable({ body(UnsafeRawBufferPointer($0)) }) == nil {
            Array(message).withUnsafeBytes(body)
        }
        return try result.get()
    }

    /// Frees the zlib state unless a takeover window holds data the peer's inflater will refer
    /// to. The next message allocates afresh.
    /// - Returns: whether the memory was freed (or already was).
    @discardableResult
    public func releaseIfIdle() -> Bool {
        guard !(contextTakeover && windowHoldsData) else { return false }
        zstream = nil
        return true
    }
}
