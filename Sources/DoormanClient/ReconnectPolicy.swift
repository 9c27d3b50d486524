// SPDX-License-Identifier: Apache-2.0

/// What the client does after a session or a connection attempt ends.
public enum ReconnectAction: Sendable, Equatable {
    /// Never again with this key: show why.
    case stop
    /// Reconnect at once (4200-4299).
    case reconnectNow
    /// Reconnect promptly, after a short random pause so a fleet does not stampede (1001: the
    /// server is restarting or draining; another node or the restarted one will take us).
    case reconnectSoon
    /// Exponential backoff with jitter, waiting at least `atLeast` (a `Retry-After`).
    case backOff(atLeast: Duration?)
    /// The server said when to come back (a suspend, a disabled user, a kick): wait that, plus a
    /// random part of up to as much again, then try again — and again while it says so.
    case retryAfter(Duration)
}

/// The close-code and handshake-status table (README "Close codes"). Code *ranges* decide, as
/// Pusher's and centrifuge's do, so a code the client does not know still gets the right action.
///
/// | the server said | action |
/// |---|---|
/// | close 4000-4099 (revoked 4001, expired 4003, rotated 4004, deleted 4006, unknown key 4008) | stop |
/// | close 4100-4199 with the notice's `retryAfterMs` (suspended 4102, user disabled 4105, kicked 4107) | retry after it |
/// | close 4100-4199 (slow consumer 4100, message flood 4129) | back off |
/// | close 4200-4299 | reconnect now |
/// | close 1001 (server shutting down), 1012 (service restart) | reconnect soon |
/// | any other close, no close frame, a network error | back off |
/// | handshake 401 `suspended_key` or `user_disabled` | retry after `Retry-After` (30 s without one) |
/// | handshake 401 (revoked, expired, unknown key), 403 | stop |
/// | handshake 429, 503 | back off, at least `Retry-After` |
/// | any other refusal | back off |
public enum ReconnectPolicy {
    /// After a session ended with a close frame carrying `code` (nil: none, or no close frame).
    /// - Parameter retryAfterMs: the notice's hint (a suspend, a disabled user, a kick).
    public static func action(closeCode code: Int?, retryAfterMs: Int? = nil) -> ReconnectAction {
        guard let code else { return .backOff(atLeast: nil) }
        switch code {
        case 4000...4099: return .stop
        case 4100...4199:
            if let retryAfterMs, retryAfterMs > 0 { return .retryAfter(min(.milliseconds(retryAfterMs), longestRetry)) }
            return .backOff(atLeast: nil)
        case 4200...4299: return .reconnectNow
        case 1001, 1012: return .reconnectSoon
        default: return .backOff(atLeast: nil)
        }
    }

    /// After the server refused the handshake with HTTP `status`.
    /// - Parameters:
    ///   - retryAfter: the `Retry-After` header, if any.
    ///   - refusal: the body's `error`, if any.
    public static func action(handshakeStatus status: Int, retryAfter: Duration?, refusal: String? = nil) -> ReconnectAction {
        switch status {
        // An administrator may resume the key or enable the user: wait as told and try again.
        case 401 where refusal == "suspended_key" || refusal == "user_disabled":
            return .retryAfter(min(retryAfter.flatMap { $0 > .zero ? $0 : nil } ?? .seconds(30), longestRetry))
        // RFC 9110 §15.5.2, §15.5.4: the key (or this device) is not allowed; retrying cannot help.
        case 401, 403: return .stop
        default: return .backOff(atLeast: retryAfter)
        }
    }

    /// The longest wait a server's hint may ask for; longer hints are cut to it.
    public static let longestRetry: Duration = .seconds(3600)

    /// `Retry-After` in delay-seconds form (RFC 9110 §10.2.3); an HTTP date is ignored.
    public static func retryAfter(header value: String?) -> Duration? {
        guard let value, let seconds = Int(value.trimmingBlanks), seconds >= 0 else { return nil }
        return .seconds(seconds)
    }
}

extension String {
    /// Without leading and trailing spaces and tabs (HTTP's optional whitespace).
    var trimmingBlanks: String {
        let blank: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        return String(String(drop(while: blank).reversed()).drop(while: blank).reversed())
    }
}
