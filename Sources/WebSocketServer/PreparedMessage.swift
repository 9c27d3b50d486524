// SPDX-License-Identifier: Apache-2.0
import Synchronization
import WireCodec
import WireDeflate

/// A message encoded once for many connections (fan-out): the plain frame and, when the server
/// compresses and the message is worth it, the same message compressed once. Each connection
/// sends the form it negotiated, without encoding or compressing anything itself.
///
///     publish ─▶ PreparedMessage(text:) ─┬─ plain frame ─────────────▶ connections without deflate
///       (once, on the publisher's thread) └─ RSV1 frame (no takeover) ─▶ connections with deflate,
///                                                                      no server takeover, 15 bits
///
/// A connection that keeps its compression context (`--compression-context-takeover`) gets the
/// plain frame: its window must see every message it sends, in order. Uncompressed messages are
/// always allowed on a permessage-deflate connection (RFC 7692 §6).
public final class PreparedMessage: Sendable {
    /// The frame without compression.
    public let plain: [UInt8]
    /// The frame compressed with an empty 15-bit window (RSV1 set), or nil.
    let compressed: [UInt8]?

    /// One deflater for every publisher thread (no context takeover: each message starts empty),
    /// instead of a 268 KB zlib state made and freed per publish. Compressing one event takes
    /// microseconds, so publishers rarely wait on the lock.
    private static let deflater = Mutex(MessageDeflater(windowBits: 15, contextTakeover: false))

    /// Encodes `payload` (UTF-8 text) as a frame, and compresses it if `configuration` turns
    /// compression on and the payload reaches its threshold.
    public init(text payload: [UInt8], for configuration: ServerConfiguration) {
        var frame: [UInt8] = []
        payload.withUnsafeBytes { FrameEncoder.append(opcode: .text, payload: $0, to: &frame) }
        plain = frame
        guard configuration.compression, payload.count >= configuration.compressionThreshold else {
            compressed = nil
            return
        }
        let deflated = Self.deflater.withLock { try? $0.compress(payload) }
        guard let deflated, deflated.count + 4 < payload.count else {
            compressed = nil   // out of memory, or not smaller: the plain frame serves everyone
            return
        }
        var compressedFrame: [UInt8] = []
        deflated.withUnsafeBytes { FrameEncoder.append(opcode: .text, payload: $0, rsv1: true, to: &compressedFrame) }
        compressed = compressedFrame
    }
}
