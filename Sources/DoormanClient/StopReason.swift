// SPDX-License-Identifier: Apache-2.0

/// Why the client stopped for good. After a stop it never opens another connection.
///
/// | source | code | reason (examples) |
/// |---|---|---|
/// | `.closeFrame` | the close code, 4000-4099 | `key_revoked` (4001), `key_expired`, `key_rotated`, `key_deleted`, `unknown_key` |
/// | `.handshake` | the HTTP status, 401 or 403 | `revoked_key`, `expired_key`, `unknown_key`, `malformed_key`, `origin_not_allowed` |
/// | `.client` | 1000 | `closed_by_client` |
public struct StopReason: Sendable, Equatable, CustomStringConvertible {
    public enum Source: Sendable, Equatable {
        /// The server ended an open session with a 4000-4099 close code.
        case closeFrame
        /// The server refused the handshake (401, 403).
        case handshake
        /// The app called `close()`.
        case client
    }

    public var source: Source
    /// The close code (e.g. 4001) or the HTTP status (e.g. 401).
    public var code: Int
    /// Machine-readable: the notice's or close frame's reason, or the refusal's `error`.
    public var reason: String
    /// Text a device can show its user, e.g. "This device's key was revoked."
    public var message: String

    public init(source: Source, code: Int, reason: String, message: String) {
        self.source = source
        self.code = code
        self.reason = reason
        self.message = message
    }

    public var description: String { "\(code) \(reason): \(message)" }

    static let closedByClient = StopReason(source: .client, code: 1000, reason: "closed_by_client", message: "The app closed the connection.")

    /// Text for a refused handshake's reason (the body has only the code).
    static func message(forRefusal reason: String) -> String {
        switch reason {
        case "revoked_key": return "This device's key was revoked."
        case "suspended_key": return "This device's key is suspended."
        case "expired_key": return "This device's key has expired."
        case "user_disabled": return "The account this device acts for is disabled."
        case "unknown_key": return "The server does not know this device's key."
        case "malformed_key", "missing_key": return "This device has no valid key."
        case "origin_not_allowed", "address_not_allowed": return "The server does not accept connections from here."
        default: return "The server refused the connection (\(reason))."
        }
    }
}
