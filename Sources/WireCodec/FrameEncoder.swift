// SPDX-License-Identifier: Apache-2.0

/// Writes RFC 6455 frames. Servers send unmasked frames; clients pass a masking key.
public enum FrameEncoder {
    /// Bytes of header a frame of `payloadCount` bytes needs.
    @inlinable
    public static func headerLength(payloadCount: Int, masked: Bool) -> Int {
        (payloadCount < 126 ? 2 : payloadCount <= 0xffff ? 4 : 10) + (masked ? 4 : 0)
    }

    /// Appends one frame to `out`.
    /// - Parameters:
    ///   - maskKey: nil for a server; a random key for a client (RFC 6455 §5.3).
    @inlinable
    public static func append(
        opcode: WebSocketOpcode, payload: UnsafeRawBufferPointer, fin: Bool = true, rsv1: Bool = false,
        maskKey: UInt32? = nil, to out: inout [UInt8]
    ) {
        let n = payload.count
        out.reserveCapacity(out.count + headerLength(payloadCount: n, masked: maskKey != nil) + n)
        out.append((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | opcode.rawValue)
        let maskBit: UInt8 = maskKey == nil ? 0 : 0x80
        if n < 126 {
            out.append(maskBit | UInt8(n))
        } else if n <= 0xffff {
            out.append(maskBit | 126)
            out.append(UInt8(n >> 8))
            out.append(UInt8(n & 0xff))
        } else {
            out.append(maskBit | 127)
            for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: n >> shift)) }
        }
        if let maskKey {
            for shift in stride(from: 0, through: 24, by: 8) { out.append(UInt8(truncatingIfNeeded: maskKey >> UInt32(shift))) }
        }
        let start = out.count
        out.append(contentsOf: payload)
        if let maskKey, n > 0 {
            out.withUnsafeMutableBytes { all in
                applyMask(UnsafeMutableRawBufferPointer(rebasing: all[start..<start + n]), key: maskKey, offset: 0)
            }
        }
    }

    /// Appends one frame to `out`.
    public static func append(_ frame: WebSocketFrame, maskKey: UInt32? = nil, to out: inout [UInt8]) {
        frame.payload.withUnsafeBytes {
            append(opcode: frame.opcode, payload: $0, fin: frame.fin, rsv1: frame.rsv1, maskKey: maskKey, to: &out)
        }
    }

    /// One frame as a new array.
    public static func encode(_ frame: WebSocketFrame, maskKey: UInt32? = nil) -> [UInt8] {
        var out: [UInt8] = []
        append(frame, maskKey: maskKey, to: &out)
        return out
    }
}
