// SPDX-License-Identifier: Apache-2.0
import Foundation
import Transport
import WireCodec

/// A session's call waiting for its upstream: gathers the answer (bounded by the largest
/// message a session may get) and turns it into the call's result or typed error. Loop thread only.
final class SessionCall: UpstreamResponder {
    let id: Any?
    private weak var session: GatewaySession?
    let started = monotonicNanoseconds()
    private let maxBytes: Int
    var exchange: UpstreamExchange?
    private var head: HTTPResponseHead?
    private var body: [UInt8] = []

    init(id: Any?, session: GatewaySession, maxBytes: Int) {
        self.id = id
        self.session = session
        self.maxBytes = max(0, maxBytes)
    }

    /// The call is on an upstream connection (not waiting for one).
    var isOnConnection: Bool { exchange?.connection != nil }

    func cancel() {
        exchange?.cancel()
        exchange = nil
    }

    func upstreamHead(_ head: HTTPResponseHead, contentLength: Int?) {
        self.head = head
        if let contentLength, contentLength > maxBytes { tooLarge() }
    }

    func upstreamBody(_ bytes: UnsafeRawBufferPointer) {
        guard body.count + bytes.count <= maxBytes else { return tooLarge() }
        body.append(contentsOf: bytes)
    }

    func upstreamEnd() {
        exchange = nil
        guard let head else { return upstreamFailed(.badResponse("no answer")) }
        var members: [(String, JSONText)] = [("status", .int(head.status))]
        members += Self.bodyMembers(body, contentType: head.value("content-type"))
        let message = (200..<300).contains(head.status)
            ? SessionMessage.result(id, members)
            : SessionMessage.error(id, "upstream_status", "the upstream answered \(head.status)", members)
        // The limit is on the message the session gets (escaping and base64 make it larger than the body).
        guard message.count <= maxBytes + 256 else { return tooLarge() }
        session?.callFinished(self, message, result: "answered")
    }

    func upstreamFailed(_ failure: UpstreamFailure) {
        exchange = nil
        var extra: [(String, JSONText)] = []
        if let after = failure.retryAfter { extra.append(("retryAfterMs", .int(RetryAfter.milliseconds(after)))) }
        session?.callFinished(self, SessionMessage.error(id, failure.code, failure.message, extra), result: failure.code)
    }

    private func tooLarge() {
        exchange?.cancel()
        exchange = nil
        session?.callFinished(self, SessionMessage.error(id, "response_too_large", "the upstream's answer is larger than a session message may be (\(maxBytes) bytes)"),
                              result: "response_too_large")
    }

    /// The answer's body as the client gets it: JSON as JSON, other text as a string, anything
    /// else in base64 (with `bodyEncoding`).
    static func bodyMembers(_ body: [UInt8], contentType: String?) -> [(String, JSONText)] {
        guard !body.isEmpty else { return [("body", .null)] }
        let type = contentType?.lowercased() ?? ""
        var utf8 = UTF8Validator()
        // JSON goes in as it came only if it is UTF-8 (JSONSerialization also takes UTF-16 and 32).
        if type.contains("json"), body.withUnsafeBytes({ utf8.validate($0) }), utf8.isComplete, !body.contains(0),
           (try? JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed])) != nil {
            return [("body", .raw(body))]
        }
        var validator = UTF8Validator()
        if (type.isEmpty || type.hasPrefix("text/") || type.contains("json") || type.contains("xml")),
           body.withUnsafeBytes({ validator.validate($0) }), validator.isComplete {
            return [("body", .string(String(decoding: body, as: UTF8.self)))]
        }
        return [("body", .string(Data(body).base64EncodedString())), ("bodyEncoding", .string("base64"))]
    }
}
