// SPDX-License-Identifier: Apache-2.0
public import Foundation
public import WireCodec

/// Why the server ends a live session (or refuses a browser's key after the upgrade): a notice
/// message names it, then a close frame carries its code. Code ranges tell clients what to do (as
/// Pusher's do): 4000-4099 stop for good, 4100-4199 back off and come back, 4200-4299 reconnect now.
///
/// | code | reason | client should |
/// |---|---|---|
/// | 4001 | key revoked | stop for good |
/// | 4003 | key expired | stop |
/// | 4004 | key rotated (this secret is no longer valid) | stop; get the new secret |
/// | 4006 | key deleted | stop |
/// | 4008 | key unknown (a refused handshake only) | stop |
/// | 4102 | key suspended | retry after the notice's `retryAfterMs` plus as much again in jitter; back by itself after a resume |
/// | 4105 | user disabled | the same (an enable brings it back) |
/// | 4107 | session ended by an administrator | the same |
/// | 4129 | rate limited (message flood) | reconnect after backing off |
/// | 4200 | this node lost the cluster's change feed and can no longer vouch for the key | reconnect now (to another node) |
public enum SessionEndReason: String, Sendable, CaseIterable, Codable {
    case keyRevoked = "key_revoked"
    case keySuspended = "key_suspended"
    case keyExpired = "key_expired"
    case keyRotated = "key_rotated"
    case userDisabled = "user_disabled"
    case keyDeleted = "key_deleted"
    case keyUnknown = "unknown_key"
    case killed = "killed_by_administrator"
    case rateLimited = "rate_limited"
    case feedLost = "cluster_feed_lost"

    public var closeCode: CloseCode {
        switch self {
        case .keyRevoked: return CloseCode(rawValue: 4001)
        case .keyExpired: return CloseCode(rawValue: 4003)
        case .keyRotated: return CloseCode(rawValue: 4004)
        case .keyDeleted: return CloseCode(rawValue: 4006)
        case .keyUnknown: return CloseCode(rawValue: 4008)
        case .keySuspended: return CloseCode(rawValue: 4102)
        case .userDisabled: return CloseCode(rawValue: 4105)
        case .killed: return CloseCode(rawValue: 4107)
        case .rateLimited: return CloseCode(rawValue: 4129)
        case .feedLost: return CloseCode(rawValue: 4200)
        }
    }

    /// What a device can show its user.
    public var message: String {
        switch self {
        case .keyRevoked: return "This device's key was revoked."
        case .keySuspended: return "This device's key is suspended; it will reconnect once an administrator resumes it."
        case .keyExpired: return "This device's key has expired."
        case .keyRotated: return "This device's key was replaced; it needs the new key."
        case .userDisabled: return "The account this device acts for is disabled; it will reconnect once it is enabled."
        case .keyDeleted: return "This device's key was deleted."
        case .keyUnknown: return "This device's key is not known to the server."
        case .killed: return "An administrator ended this session; the device will reconnect."
        case .rateLimited: return "Too many messages; reconnect later."
        case .feedLost: return "This server lost contact with the cluster; reconnect."
        }
    }

    /// False for the 4000-4099 range: the client must not reconnect with the same key.
    public var mayReconnect: Bool { closeCode.rawValue >= 4100 }

    /// Ends an administrator may undo (resume, enable) or that say nothing about the key (a kick):
    /// the device retries slowly, after the server's `retryAfterMs` hint, and comes back by itself.
    public var isReversible: Bool { self == .keySuspended || self == .userDisabled || self == .killed }

    /// Why `key` (of `user`) may not be used now, or nil. The one place the order is decided:
    /// final ends before reversible ones, so a key that expired while suspended says expired (stop),
    /// never suspended (retry for ever). Handshakes, HTTP calls and live sessions all ask here.
    public static func refusing(_ key: APIKey, of user: User, at now: Date) -> SessionEndReason? {
        switch key.status(at: now) {
        case .revoked: return .keyRevoked
        case .expired: return .keyExpired
        case .suspended: return .keySuspended
        case .active: return user.state == .disabled ? .userDisabled : nil
        }
    }

    /// The `error` of the HTTP refusal a client with its key in a header gets for this reason (401).
    public var handshakeRefusal: String {
        switch self {
        case .keyRevoked: return "revoked_key"
        case .keySuspended: return "suspended_key"
        case .keyExpired: return "expired_key"
        case .keyUnknown: return "unknown_key"
        case .userDisabled: return "user_disabled"
        default: return rawValue
        }
    }
}
