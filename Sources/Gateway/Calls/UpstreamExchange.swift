// SPDX-License-Identifier: Apache-2.0
import Transport
import WireCodec

/// Why a call got no answer from its upstream. Each has a stable code for typed errors.
enum UpstreamFailure: Error, Equatable {
    /// Refused, unreachable, connect timeout, or the circuit is open: retry after the hint.
    case unavailable(retryAfter: Double?)
    /// No (complete) answer within the call timeout.
    case timeout
    /// Too many calls already waiting for this upstream on this node.
    case overloaded
    /// The upstream broke the protocol or the connection mid-answer.
    case badResponse(String)

    var code: String {
        switch self {
        case .unavailable: return "upstream_unavailable"
        case .timeout: return "upstream_timeout"
        case .overloaded: return "overloaded"
        case .badResponse: return "upstream_error"
        }
    }

    var message: String {
        switch self {
        case .unavailable: return "the upstream service is unavailable"
        case .timeout: return "the upstream service did not answer in time"
        case .overloaded: return "too many calls waiting for this upstream"
        case .badResponse(let why): return "bad answer from the upstream: \(why)"
        }
    }

    var retryAfter: Double? {
        switch self {
        case .unavailable(let after): return after
        case .overloaded: return 1
        default: return nil
        }
    }
}

/// Hears how one exchange goes, on the loop. After `upstreamEnd` or `upstreamFailed`, nothing more.
protocol UpstreamResponder: AnyObject {
    /// `contentLength` nil: the length is not known ahead (chunked or until close).
    func upstreamHead(_ head: HTTPResponseHead, contentLength: Int?)
    func upstreamBody(_ bytes: UnsafeRawBufferPointer)
    func upstreamEnd()
    func upstreamFailed(_ failure: UpstreamFailure)
    /// One read's worth of callbacks is over (a streamed reply can go out in one send).
    func upstreamReadDone()
}

extension UpstreamResponder {
    func upstreamReadDone() {}
}

/// One request to an upstream and the way back to whoever asked. Loop-thread only.
final class UpstreamExchange {
    /// The request's bytes; dropped once the exchange ends (a queued call that went away keeps nothing).
    private(set) var request: [UInt8]
    let method: String
    /// Whether the call timeout runs until the whole answer is in (WebSocket calls) or only until its head (streamed HTTP).
    let timeoutCoversBody: Bool
    /// Held strongly until the exchange ends (an HTTP call has no other owner); released then.
    private(set) var responder: (any UpstreamResponder)?
    weak var connection: UpstreamConnection?
    weak var pool: UpstreamPool?
    var timer: UInt64 = 0
    private(set) var isFinished = false
    /// The caller cannot take more body now (its client is slow).
    private(set) var isPaused = false
    /// The breaker let this call through and awaits its verdict.
    var admitted = false
    /// Loop time of the last progress of a streamed answer (bytes from the upstream or taken by the
    /// client): a streamed answer times out when it stalls, not when it is long.
    var lastProgress: UInt64 = 0

    init(request: [UInt8], method: String, timeoutCoversBody: Bool, responder: any UpstreamResponder) {
        self.request = request
        self.method = method
        self.timeoutCoversBody = timeoutCoversBody
        self.responder = responder
    }

    /// Marks the exchange done and returns its responder, once.
    func finish() -> (any UpstreamResponder)? {
        guard !isFinished else { return nil }
        isFinished = true
        request = []
        defer { responder = nil }
        return responder
    }

    /// The caller went away: no further callbacks; an unfinished connection is closed.
    func cancel() {
        guard !isFinished else { return }
        isFinished = true
        request = []
        responder = nil
        if let connection { connection.cancelled(self) } else { pool?.abandoned(self) }
    }

    func pause() {
        isPaused = true
        connection?.updateInterest()
    }

    func resume() {
        guard isPaused else { return }
        isPaused = false
        if let pool { lastProgress = pool.loop.now }
        connection?.updateInterest()
        connection?.readNow()
    }
}
