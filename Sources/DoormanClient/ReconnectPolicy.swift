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
}

/// The close-code and handshake-status table (README "Close codes"). Code *ranges* decide, as
/// Pusher's and centrifuge's do, so a code the client does not know still gets the right action.
///
/// | the server said | action |
/// |---|---|
/// | close 4000-4099 (revoked 4001, suspended, expired, rotated, user disabled, deleted, killed) | stop |
/// | close 4100-4199 (slow consumer 4100, message flood 4129) | back off |
/// | close 4200-4299 | reconnect now |
/// | close 1001 (server shutting down), 1012 (service restart) | reconnect soon |
/// | any other close, no close frame, a network error | back off |
/// | handshake 401 (revoked, suspended, expired, unknown key, user disabled), 403 | stop |
/// | handshake 429, 503 | back off, at least `Retry-After` |
/// | any other refusal | back off |
public enum ReconnectPolicy {
    /// After a session ended with a close frame carrying `code` (nil: none, or no close frame).
    public static func action(closeCode code: Int?) -> ReconnectAction {
        guard let code else { return .backOff(atLeast: nil) }
        switch code {
        case 4000...4099: return .stop
        case 4100...4199: return .backOff(atLeast: nil)
        case 4200...4299: return .reconnectNow
        case 1001, 1012: return .reconnectSoon
        default: return .backOff(atLeast: nil)
        }
    }

    /// After the server refused the handshake with HTTP `status`.
    /// - Parameters:
    ///   - retryAfter: the `Retry-After` header, if any.
    public static func action(handshakeStatus status: Int, retryAfter: Duration?) -> ReconnectAction {
        switch status {
        // RFC 9110 §15.5.2, §15.5.4: the key (or this device) is not allowed; retrying cannot help.
        case 401, 403: return .stop
        default: return .backOff(atLeast: retryAfter)
        }
    }

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
