// SPDX-License-Identifier: Apache-2.0

/// Everything that can be wrong with bytes arriving on an open WebSocket.
///
/// The codec throws these with typed throws; the connection maps each one to a close code in one
/// place (`CloseCode.init(_:)`).
public enum WireError: Error, Equatable, Sendable {
    /// RFC 6455 §5.2: RSV1-3 must be 0 unless an extension defines them.
    case reservedBitsSet
    /// RFC 6455 §5.2: opcodes 3-7 and 0xB-0xF are reserved.
    case unknownOpcode(UInt8)
    /// RFC 6455 §5.1: a client must mask every frame; a server must not.
    case maskingViolation
    /// RFC 6455 §5.5: control frames carry at most 125 bytes.
    case controlFrameTooLarge
    /// RFC 6455 §5.5: control frames must not be fragmented.
    case fragmentedControlFrame
    /// RFC 6455 §5.2: the most significant bit of a 64-bit length must be 0.
    case lengthTopBitSet
    /// A frame longer than the configured frame limit.
    case frameTooLarge
    /// A message longer than the configured message limit.
    case messageTooLarge
    /// A message in more frames than the configured fragment limit (empty frames count).
    case tooManyFragments
    /// RFC 6455 §5.4: a continuation frame with no message to continue.
    case unexpectedContinuation
    /// RFC 6455 §5.4: a new data frame while a fragmented message is still open.
    case expectedContinuation
    /// RFC 6455 §8.1: text (and close reasons) must be valid UTF-8.
    case invalidUTF8
    /// RFC 6455 §7.4: the close code is not one an endpoint may send.
    case invalidCloseCode(UInt16)
    /// RFC 6455 §5.5.1: a close payload of exactly one byte.
    case invalidClosePayload
}
