// SPDX-License-Identifier: Apache-2.0

/// What one parse step produced.
public enum ParseResult: Equatable, Sendable {
    /// Every byte offered was consumed; no frame is complete yet.
    case needMoreData
    case frame(WebSocketFrame)
}

/// An incremental RFC 6455 frame parser that also enforces the message-level rules a frame
/// stream must obey: continuation order, message and fragment limits, and UTF-8 of text, which it
/// checks as payload bytes arrive so an invalid message fails on its first bad byte.
///
///      0                   1                   2                   3
///      0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
///     +-+-+-+-+-------+-+-------------+-------------------------------+
///     |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
///     |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
///     |N|V|V|V|       |S|             |   (if payload len==126/127)   |
///     | |1|2|3|       |K|             |                               |
///     +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
///     |     Extended payload length continued, if payload len == 127  |
///     + - - - - - - - - - - - - - - - +-------------------------------+
///     |                               | Masking-key, if MASK set to 1 |
///     +-------------------------------+-------------------------------+
///     | Masking-key (continued)       |          Payload Data         |
///     +-------------------------------- - - - - - - - - - - - - - - - +
///
/// No I/O, no allocation beyond the payload being assembled, typed throws only.
public struct FrameParser: Sendable {
    public var limits: FrameLimits
    public let role: WebSocketRole
    /// RSV bits an extension has claimed (0x4 = RSV1, for permessage-deflate).
    public var allowedReservedBits: UInt8 = 0

    // Header bytes gathered across reads (at most 14).
    private var head: (UInt64, UInt64) = (0, 0)
    private var headCount = 0
    private var inPayload = false

    // The frame in progress.
    private var fin = false
    private var rsv1 = false
    private var opcode = WebSocketOpcode.continuation
    private var masked = false
    private var maskKey: UInt32 = 0
    private var length = 0
    private var received = 0
    private var payload: [UInt8] = []
    private var validating = false

    // The message in progress.
    private var inMessage = false
    private var messageIsText = false
    private var messageCompressed = false
    private var messageBytes = 0
    private var fragments = 0
    private var utf8 = UTF8Validator()

    public init(role: WebSocketRole = .server, limits: FrameLimits = FrameLimits()) {
        self.role = role
        self.limits = limits
    }

    /// True while a fragmented message is open or a frame is half-read.
    public var isMidMessage: Bool { inMessage || inPayload || headCount > 0 }

    /// Consumes bytes from `cursor` until one frame is complete or the bytes run out.
    /// - Throws: `WireError` on the first byte that breaks RFC 6455 or a limit.
    public mutating func parse(_ cursor: inout ByteCursor) throws(WireError) -> ParseResult {
        if !inPayload {
            guard try readHeader(&cursor) else { return .needMoreData }
            if length == 0 { return .frame(try finishFrame()) }
        }
        let take = min(length - received, cursor.remaining)
        if take > 0 {
            let start = payload.count
            payload.append(contentsOf: UnsafeRawBufferPointer(rebasing: cursor.bytes[cursor.index..<cursor.index + take]))
            cursor.index += take
            let (isMasked, key, offset, check) = (masked, maskKey, received, validating)
            var validator = utf8
            let ok: Bool = payload.withUnsafeMutableBytes { all in
                let chunk = UnsafeMutableRawBufferPointer(rebasing: all[start..<start + take])
                if isMasked { applyMask(chunk, key: key, offset: offset) }
                // RFC 6455 §8.1: fail fast on invalid UTF-8, even in the middle of a frame.
                return !check || validator.validate(UnsafeRawBufferPointer(chunk))
            }
            utf8 = validator
            guard ok else { throw .invalidUTF8 }
            received += take
        }
        return received == length ? .frame(try finishFrame()) : .needMoreData
    }

    // MARK: - Header

    /// Gathers and validates a frame header; returns false if more bytes are needed.
    private mutating func readHeader(_ cursor: inout ByteCursor) throws(WireError) -> Bool {
        // Fast path: the whole header is in this read.
        if headCount == 0, cursor.remaining >= 2 {
            let need = Self.headerLength(cursor.bytes[cursor.index + 1])
            if cursor.remaining >= need {
                let start = cursor.index
                cursor.index += need
                try decodeHeader(UnsafeRawBufferPointer(rebasing: cursor.bytes[start..<start + need]))
                return true
            }
        }
        // Slow path: copy into `head` until we have it all.
        var store = head
        var count = headCount
        let need: Int? = withUnsafeMutableBytes(of: &store) { raw in
            func gather(upTo n: Int) {
                while count < n, !cursor.isAtEnd {
                    raw[count] = cursor.bytes[cursor.index]
                    count += 1
                    cursor.index += 1
                }
            }
            gather(upTo: 2)
            guard count >= 2 else { return nil }
            let need = Self.headerLength(raw[1])
            gather(upTo: need)
            return count == need ? need : nil
        }
        head = store
        headCount = count
        guard let need else { return false }
        headCount = 0
        var failure: WireError?
        withUnsafeBytes(of: store) { raw in
            do throws(WireError) {
                try decodeHeader(UnsafeRawBufferPointer(rebasing: raw[0..<need]))
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
        return true
    }

    /// Header size implied by the second byte: 2, plus 2 or 8 length bytes, plus 4 mask bytes.
    private static func headerLength(_ second: UInt8) -> Int {
        let len7 = second & 0x7f
        return 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (second & 0x80 != 0 ? 4 : 0)
    }

    private mutating func decodeHeader(_ h: UnsafeRawBufferPointer) throws(WireError) {
        let b0 = h[0]
        let b1 = h[1]
        let rsv = (b0 >> 4) & 0x7
        // RFC 6455 §5.2: reserved bits must be 0 unless an extension negotiated them.
        guard rsv & ~allowedReservedBits == 0 else { throw .reservedBitsSet }
        guard let op = WebSocketOpcode(rawValue: b0 & 0x0f) else { throw .unknownOpcode(b0 & 0x0f) }
        let isMasked = b1 & 0x80 != 0
        // RFC 6455 §5.1: clients mask, servers do not.
        guard isMasked == (role == .server) else { throw .maskingViolation }

        var len = Int(b1 & 0x7f)
        var at = 2
        if len == 126 {
            len = Int(h[2]) << 8 | Int(h[3])
            at = 4
        } else if len == 127 {
            // RFC 6455 §5.2: the most significant bit of a 64-bit length must be 0.
            guard h[2] & 0x80 == 0 else { throw .lengthTopBitSet }
            var v: UInt64 = 0
            for i in 2..<10 { v = v << 8 | UInt64(h[i]) }
            guard v <= UInt64(Int.max) else { throw .lengthTopBitSet }
            len = Int(v)
            at = 10
        }
        let isFin = b0 & 0x80 != 0
        let isRSV1 = rsv & 0x4 != 0

        if op.isControl {
            // RFC 6455 §5.5: control frames ≤ 125 bytes, never fragmented.
            guard isFin else { throw .fragmentedControlFrame }
            guard len <= 125 else { throw .controlFrameTooLarge }
            // RFC 7692 §6.1: RSV1 only on the first frame of a data message.
            guard !isRSV1 else { throw .reservedBitsSet }
            validating = false
        } else {
            guard len <= limits.maxFrameBytes else { throw .frameTooLarge }
            if op == .continuation {
                // RFC 6455 §5.4: a continuation needs an open message.
                guard inMessage else { throw .unexpectedContinuation }
                guard !isRSV1 else { throw .reservedBitsSet }
            } else {
                guard !inMessage else { throw .expectedContinuation }
                messageIsText = op == .text
                messageCompressed = isRSV1
                messageBytes = 0
                fragments = 0
                utf8 = UTF8Validator()
            }
            fragments += 1
            guard fragments <= limits.maxFragments else { throw .tooManyFragments }
            messageBytes += len
            guard messageBytes <= limits.maxMessageBytes else { throw .messageTooLarge }
            inMessage = !isFin
            // Compressed text is validated after inflating, by the extension.
            validating = messageIsText && !messageCompressed
        }

        if isMasked {
            maskKey = UInt32(littleEndian: h.loadUnaligned(fromByteOffset: at, as: UInt32.self))
        }
        fin = isFin
        rsv1 = isRSV1
        opcode = op
        masked = isMasked
        length = len
        received = 0
        inPayload = true
        if len > 0 { payload.reserveCapacity(min(len, 1 << 16)) }
    }

    // MARK: - Completion

    private mutating func finishFrame() throws(WireError) -> WebSocketFrame {
        inPayload = false
        var frame = WebSocketFrame(fin: fin, rsv1: rsv1, opcode: opcode, payload: [])
        swap(&frame.payload, &payload)
        if opcode == .close {
            _ = try ClosePayload(decoding: frame.payload)
        } else if validating, fin, !utf8.isComplete {
            // The message ended inside a character.
            throw .invalidUTF8
        }
        return frame
    }
}

extension FrameParser {
    /// Feeds whole chunks and collects every frame (tests, fuzzing, the client-mode codec).
    public mutating func feed<C: Collection>(_ chunks: [C]) throws(WireError) -> [WebSocketFrame]
    where C.Element == UInt8 {
        var frames: [WebSocketFrame] = []
        for chunk in chunks {
            let bytes = Array(chunk)
            var failure: WireError?
            bytes.withUnsafeBytes { raw in
                var cursor = ByteCursor(raw)
                do throws(WireError) {
                    while !cursor.isAtEnd {
                        if case .frame(let f) = try parse(&cursor) { frames.append(f) }
                    }
                } catch {
                    failure = error
                }
            }
            if let failure { throw failure }
        }
        return frames
    }

    /// Feeds one buffer.
    public mutating func feed(_ bytes: [UInt8]) throws(WireError) -> [WebSocketFrame] {
        try feed([bytes])
    }
}
