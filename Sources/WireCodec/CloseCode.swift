// SPDX-License-Identifier: Apache-2.0

/// A WebSocket close status code (RFC 6455 §7.4) and Doorman's own application codes.
///
/// | range | meaning | client should |
/// |---|---|---|
/// | 1000-1015 | RFC 6455 / IANA codes | 1001, 1011, 1013: reconnect with backoff |
/// | 4000-4099 | Doorman, terminal (key revoked, expired, ...) | stop; show why (as Pusher's 4000s) |
/// | 4100-4199 | Doorman, transient (slow consumer, rate limit, overload) | reconnect after backing off |
/// | 4200-4299 | Doorman, reconnect now (e.g. rights changed under a rotation) | reconnect at once |
public struct CloseCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let normal = CloseCode(rawValue: 1000)
    public static let goingAway = CloseCode(rawValue: 1001)
    public static let protocolError = CloseCode(rawValue: 1002)
    public static let unsupportedData = CloseCode(rawValue: 1003)
    /// Never sent on the wire: "no status code was present".
    public static let noStatus = CloseCode(rawValue: 1005)
    public static let invalidPayload = CloseCode(rawValue: 1007)
    public static let policyViolation = CloseCode(rawValue: 1008)
    public static let messageTooBig = CloseCode(rawValue: 1009)
    public static let internalError = CloseCode(rawValue: 1011)
    /// Doorman: the peer did not read fast enough and its write queue passed the high-water mark.
    public static let slowConsumer = CloseCode(rawValue: 4100)

    /// Whether a peer may send this code in a close frame (RFC 6455 §7.4.1, §7.4.2).
    public var isValidOnWire: Bool {
        switch rawValue {
        case 1000...1003, 1007...1011: return true   // 1004-1006 and 1015 are reserved; 1012-1014 unassigned by RFC 6455
        case 3000...4999: return true
        default: return false
        }
    }

    public var description: String { String(rawValue) }
}

extension CloseCode {
    /// Maps a codec error to the close code the connection must send (RFC 6455 §7.4.1).
    public init(_ error: WireError) {
        switch error {
        case .frameTooLarge, .messageTooLarge, .tooManyFragments: self = .messageTooBig   // 1009
        case .invalidUTF8: self = .invalidPayload                                          // 1007
        default: self = .protocolError                                                     // 1002
        }
    }
}

/// The body of a close frame: an optional code and a UTF-8 reason.
public struct ClosePayload: Equatable, Sendable {
    public var code: CloseCode?
    public var reason: String

    public init(code: CloseCode?, reason: String = "") {
        self.code = code
        self.reason = reason
    }

    /// Decodes and validates a close frame's payload.
    /// - Throws: `.invalidClosePayload` for a 1-byte body, `.invalidCloseCode`, `.invalidUTF8`.
    public init(decoding payload: [UInt8]) throws(WireError) {
        if payload.isEmpty { self.init(code: nil); return }
        // RFC 6455 §5.5.1: if there is a body, the first two bytes are the code.
        guard payload.count >= 2 else { throw .invalidClosePayload }
        let code = CloseCode(rawValue: UInt16(payload[0]) << 8 | UInt16(payload[1]))
        guard code.isValidOnWire else { throw .invalidCloseCode(code.rawValue) }
        var validator = UTF8Validator()
        guard validator.validate(payload[2...]), validator.isComplete else { throw .invalidUTF8 }
        self.init(code: code, reason: String(decoding: payload[2...], as: UTF8.self))
    }

    /// The close frame body: code then reason, the reason cut at a character boundary to fit
    /// the 125-byte control frame limit (RFC 6455 §5.5).
    public var encoded: [UInt8] {
        guard let code else { return [] }
        var out: [UInt8] = [UInt8(code.rawValue >> 8), UInt8(code.rawValue & 0xff)]
        var budget = 123
        for scalar in reason.unicodeScalars {
            let bytes = Array(String(scalar).utf8)
            guard bytes.count <= budget else { break }
            out += bytes
            budget -= bytes.count
        }
        return out
    }
}
