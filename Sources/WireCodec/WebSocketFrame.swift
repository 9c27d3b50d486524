// SPDX-License-Identifier: Apache-2.0

/// RFC 6455 §5.2 opcodes.
public enum WebSocketOpcode: UInt8, Sendable {
    case continuation = 0x0
    case text = 0x1
    case binary = 0x2
    case close = 0x8
    case ping = 0x9
    case pong = 0xA

    /// Control frames have the high bit of the opcode set (RFC 6455 §5.5).
    public var isControl: Bool { rawValue & 0x8 != 0 }
}

/// One decoded frame, payload already unmasked.
public struct WebSocketFrame: Equatable, Sendable {
    public var fin: Bool
    /// RSV1: "compressed" once permessage-deflate is negotiated (RFC 7692 §6).
    public var rsv1: Bool
    public var opcode: WebSocketOpcode
    public var payload: [UInt8]

    public init(fin: Bool = true, rsv1: Bool = false, opcode: WebSocketOpcode, payload: [UInt8] = []) {
        self.fin = fin
        self.rsv1 = rsv1
        self.opcode = opcode
        self.payload = payload
    }

    public static func text(_ s: String) -> WebSocketFrame { .init(opcode: .text, payload: Array(s.utf8)) }
    public static func binary(_ b: [UInt8]) -> WebSocketFrame { .init(opcode: .binary, payload: b) }
}

/// Which end of the connection the codec speaks for: servers require masked input (RFC 6455 §5.1).
public enum WebSocketRole: Sendable {
    case server
    case client
}

/// Limits enforced while parsing, before any payload byte is stored.
public struct FrameLimits: Sendable, Equatable {
    /// Largest single frame payload, in bytes.
    public var maxFrameBytes: Int
    /// Largest message (sum of its frames' payloads), in bytes.
    public var maxMessageBytes: Int
    /// Most frames in one message, empty frames included.
    public var maxFragments: Int

    public init(maxFrameBytes: Int = 1 << 20, maxMessageBytes: Int = 1 << 20, maxFragments: Int = 1024) {
        self.maxFrameBytes = maxFrameBytes
        self.maxMessageBytes = maxMessageBytes
        self.maxFragments = maxFragments
    }
}

/// Applies (or removes: the operation is its own inverse) a 4-byte masking key (RFC 6455 §5.3).
/// - Parameters:
///   - bytes: the payload bytes to transform in place.
///   - key: the masking key, first wire byte in the lowest byte.
///   - offset: how many payload bytes of this frame came before `bytes`.
@inlinable
public func applyMask(_ bytes: UnsafeMutableRawBufferPointer, key: UInt32, offset: Int) {
    let count = bytes.count
    guard count > 0, let base = bytes.baseAddress else { return }
    // Rotate the key so that byte 0 of `bytes` lines up with key byte (offset % 4).
    let shift = UInt32((offset & 3) * 8)
    let rotated = shift == 0 ? key : (key >> shift) | (key << (32 - shift))
    let wide = UInt64(rotated) | UInt64(rotated) << 32
    var i = 0
    // Performance: 8 bytes per step; unaligned loads/stores are fine on every Swift Linux target.
    while i + 8 <= count {
        let word = base.loadUnaligned(fromByteOffset: i, as: UInt64.self)
        base.storeBytes(of: word ^ wide, toByteOffset: i, as: UInt64.self)
        i += 8
    }
    var k = rotated
    while i < count {
        let b = base.load(fromByteOffset: i, as: UInt8.self)
        base.storeBytes(of: b ^ UInt8(truncatingIfNeeded: k), toByteOffset: i, as: UInt8.self)
        k = (k >> 8) | (k << 24)
        i += 1
    }
}
