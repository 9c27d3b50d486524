// SPDX-License-Identifier: Apache-2.0
public import WireCodec

/// Why the server ends a live session: a notice message names it, then a close frame carries its
/// code. Code ranges tell clients what to do (as Pusher's do):
///
/// | code | reason | client should |
/// |---|---|---|
/// | 4001 | key revoked | stop for good |
/// | 4002 | key suspended | stop; an administrator may resume it |
/// | 4003 | key expired | stop |
/// | 4004 | key rotated (this secret is no longer valid) | stop; get the new secret |
/// | 4005 | user disabled | stop |
/// | 4006 | key deleted | stop |
/// | 4007 | session killed by an administrator | stop |
/// | 4129 | rate limited (message flood) | reconnect after backing off |
/// | 4200 | this node lost the cluster's change feed and can no longer vouch for the key | reconnect now (to another node) |
public enum SessionEndReason: String, Sendable, CaseIterable, Codable {
    case keyRevoked = "key_revoked"
    case keySuspended = "key_suspended"
    case keyExpired = "key_expired"
    case keyRotated = "key_rotated"
    case userDisabled = "user_disabled"
    case keyDeleted = "key_deleted"
    case killed = "killed_by_administrator"
    case rateLimited = "rate_limited"
    case feedLost = "cluster_feed_lost"

    public var closeCode: CloseCode {
        switch self {
        case .keyRevoked: return CloseCode(rawValue: 4001)
        case .keySuspended: return CloseCode(rawValue: 4002)
        case .keyExpired: return CloseCode(rawValue: 4003)
        case .keyRotated: return CloseCode(rawValue: 4004)
        case .userDisabled: return CloseCode(rawValue: 4005)
        case .keyDeleted: return CloseCode(rawValue: 4006)
        case .killed: return CloseCode(rawValue: 4007)
        case .rateLimited: return CloseCode(rawValue: 4129)
        case .feedLost: return CloseCode(rawValue: 4200)
        }
    }

    /// What a device can show its user.
    public var message: String {
        switch self {
        case .keyRevoked: return "This device's key was revoked."
        case .keySuspended: return "This device's key is suspended."
        case .keyExpired: return "This device's key has expired."
        case .keyRotated: return "This device's key was replaced; it needs the new key."
        case .userDisabled: return "The account this device acts for is disabled."
        case .keyDeleted: return "This device's key was deleted."
        case .killed: return "An administrator ended this session."
        case .rateLimited: return "Too many messages; reconnect later."
        case .feedLost: return "This server lost contact with the cluster; reconnect."
        }
    }

    /// False for the 4000-4099 range: the client must not reconnect with the same key.
    public var mayReconnect: Bool { closeCode.rawValue >= 4100 }
}
