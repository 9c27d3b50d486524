// SPDX-License-Identifier: Apache-2.0

/// What the server says just before it ends a session (then the close frame with `code`).
///
///     ← {"type":"notice","reason":"key_revoked","code":4001,"reconnect":false,"message":"This device's key was revoked."}
public struct Notice: Sendable, Equatable {
    public var reason: String
    public var code: Int?
    /// Whether the server allows a reconnect with this key.
    public var reconnect: Bool
    /// Text a device can show its user.
    public var message: String
    /// When to try again (a suspend, a disabled user, a kick), in milliseconds.
    public var retryAfterMs: Int?

    init(_ m: [String: JSONValue]) {
        reason = m["reason"]?.stringValue ?? ""
        code = m["code"]?.intValue
        reconnect = m["reconnect"]?.boolValue ?? true
        message = m["message"]?.stringValue ?? ""
        retryAfterMs = m["retryAfterMs"]?.intValue
    }
}
