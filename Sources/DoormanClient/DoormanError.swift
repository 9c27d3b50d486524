// SPDX-License-Identifier: Apache-2.0

/// Why a request failed: the server's typed `error` answer, or a client-side condition
/// (timeout, connection lost, stopped). Every request method throws only this.
///
///     do { let answer = try await client.call("pms:checkIn", body: ["room": 101]) }
///     catch { if error.code == .rateLimited { try await Task.sleep(for: error.retryAfter ?? .seconds(1)) } }
public struct DoormanError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The machine-readable code: the server's `error` field, or one of the client's own.
    public var code: Code
    /// Human-readable text (the server's `message`, or the client's explanation).
    public var message: String
    /// How long to wait before trying again (the server's `retryAfterMs`), when it said.
    public var retryAfter: Duration?
    /// The server's finer `reason` (e.g. `not_permitted_for_user`), when it gave one.
    public var reason: String?
    /// The rule that denied a call (`!pms:checkOut*`), when one did.
    public var rule: String?
    /// The upstream's HTTP status for `upstream_status`.
    public var status: Int?
    /// The upstream's body for `upstream_status`.
    public var body: JSONValue?
    /// Why the client stopped, for `.stopped`.
    public var stop: StopReason?

    public init(code: Code, message: String, retryAfter: Duration? = nil, reason: String? = nil, rule: String? = nil,
                status: Int? = nil, body: JSONValue? = nil, stop: StopReason? = nil) {
        self.code = code
        self.message = message
        self.retryAfter = retryAfter
        self.reason = reason
        self.rule = rule
        self.status = status
        self.body = body
        self.stop = stop
    }

    public var description: String {
        var text = "\(code.rawValue): \(message)"
        if let retryAfter { text += " (retry after \(retryAfter))" }
        return text
    }

    /// An error code. The server's codes are open-ended, so this is a string with named constants.
    public struct Code: RawRepresentable, Hashable, Sendable, ExpressibleByStringLiteral {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public init(stringLiteral value: String) { self.rawValue = value }

        // The server's (README "The session protocol", "Calls to upstream services").
        public static let forbidden: Code = "forbidden"
        public static let rateLimited: Code = "rate_limited"
        public static let tooManyCalls: Code = "too_many_calls"
        public static let invalidRequest: Code = "invalid_request"
        public static let unknownService: Code = "unknown_service"
        public static let upstreamStatus: Code = "upstream_status"
        public static let upstreamUnavailable: Code = "upstream_unavailable"
        public static let upstreamTimeout: Code = "upstream_timeout"
        public static let upstreamError: Code = "upstream_error"
        public static let overloaded: Code = "overloaded"
        public static let responseTooLarge: Code = "response_too_large"

        // The client's own.
        /// No answer within the request's timeout (the request may still have run).
        public static let timeout: Code = "timeout"
        /// The connection dropped before the answer came (the request may still have run).
        public static let connectionLost: Code = "connection_lost"
        /// The client has stopped for good (`stop` says why) or was closed.
        public static let stopped: Code = "stopped"
        /// The calling task was cancelled.
        public static let cancelled: Code = "cancelled"
        /// The URL is not a usable `ws://` URL.
        public static let invalidURL: Code = "invalid_url"
        /// The server's answer was not valid protocol.
        public static let invalidResponse: Code = "invalid_response"
    }
}

extension DoormanError {
    static func timeout(_ what: String) -> DoormanError { DoormanError(code: .timeout, message: "no answer to \(what) in time") }
    static let connectionLost = DoormanError(code: .connectionLost, message: "the connection dropped before the answer")
    static let cancelled = DoormanError(code: .cancelled, message: "the task was cancelled")

    static func stopped(_ reason: StopReason) -> DoormanError {
        DoormanError(code: .stopped, message: reason.message, stop: reason)
    }

    /// The error in a server `error` message.
    init(answer: [String: JSONValue]) {
        self.init(
            code: Code(rawValue: answer["error"]?.stringValue ?? "unknown_error"),
            message: answer["message"]?.stringValue ?? "",
            retryAfter: answer["retryAfterMs"]?.doubleValue.map { .milliseconds($0) },
            reason: answer["reason"]?.stringValue,
            rule: answer["rule"]?.stringValue,
            status: answer["status"]?.intValue,
            body: answer["body"])
    }
}
