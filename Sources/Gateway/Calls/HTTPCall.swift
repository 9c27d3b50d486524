// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatewayCore
import Transport
import WebSocketServer
import WireCodec

/// `/{service}/{api_name}` over plain HTTP: the same checks and signed identity as a session's
/// call, the answer streamed back as it arrives. When the client reads slower than the upstream
/// sends, reading from the upstream pauses (nothing is buffered without bound). Loop thread only.
final class HTTPCall: UpstreamResponder {
    private weak var connection: Connection?
    private let reply: HTTPReply
    private let metrics: GatewayMetrics
    private let started = monotonicNanoseconds()
    var exchange: UpstreamExchange?
    private var begun = false
    /// Queued bytes past which the upstream is not read until the client catches up.
    static let highWater = 256 * 1024

    /// Given back when the call ends, however it ends (this object goes with its exchange).
    private let release: () -> Void

    init(connection: Connection, reply: HTTPReply, metrics: GatewayMetrics, release: @escaping () -> Void) {
        self.connection = connection
        self.reply = reply
        self.metrics = metrics
        self.release = release
    }

    deinit { release() }

    func upstreamHead(_ head: HTTPResponseHead, contentLength: Int?) {
        guard let connection else { exchange?.cancel(); return }
        metrics.call("answered")
        metrics.callDuration.observe(Double(monotonicNanoseconds() &- started) / 1e9)
        // End-to-end headers only (RFC 9110 §7.6.1): not hop-by-hop, nor those the upstream's Connection names.
        let named = HTTPHeader.namedHopByHop(head.values("connection"))
        var headers = head.headers.filter { $0.isEndToEnd(extraHopByHop: named) && $0.name != "set-cookie" }
        headers.append(HTTPHeader("Via", "1.1 doorman"))
        begun = true
        connection.holdWrites()   // the head goes out with the first piece of body
        guard connection.beginReply(HTTPResponse(status: head.status, headers: headers), contentLength: contentLength) else {
            connection.releaseWrites()
            exchange?.cancel()
            return
        }
    }

    func upstreamBody(_ bytes: UnsafeRawBufferPointer) {
        guard let connection, connection.isAwaitingReply else { exchange?.cancel(); return }
        connection.writeReplyBody(bytes)
        if connection.queuedBytes > Self.highWater, let exchange {
            exchange.pause()
            connection.onReplyDrained = { [weak exchange] in exchange?.resume() }   // resume() counts as progress
        }
    }

    func upstreamEnd() {
        exchange = nil
        connection?.endReply()
        connection?.releaseWrites()
    }

    func upstreamReadDone() {
        connection?.releaseWrites()
    }

    func upstreamFailed(_ failure: UpstreamFailure) {
        exchange = nil
        guard begun else {
            metrics.call(failure.code)
            return reply.send(Self.errorResponse(failure))
        }
        connection?.abortReply()   // the client sees the body cut short, as the upstream's was
    }

    static func errorResponse(_ failure: UpstreamFailure) -> HTTPResponse {
        let status: Int
        switch failure {
        case .unavailable, .overloaded: status = 503
        case .timeout: status = 504
        case .badResponse: status = 502
        }
        var response = HTTPResponse(status: status, headers: [HTTPHeader("Content-Type", "application/json")],
                                    body: JSONText.object([("error", .string(failure.code)), ("message", .string(failure.message))]).bytes)
        if let after = failure.retryAfter { response.headers.append(RetryAfter.header(after)) }
        return response
    }
}
