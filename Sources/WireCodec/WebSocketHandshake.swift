// SPDX-License-Identifier: Apache-2.0

/// A refused request: an HTTP status plus a machine-readable reason, sent as a JSON body.
public struct HandshakeRejection: Error, Equatable, Sendable {
    public var status: Int
    /// snake_case reason, e.g. `unsupported_version`.
    public var reason: String
    public var headers: [HTTPHeader]

    public init(status: Int, reason: String, headers: [HTTPHeader] = []) {
        self.status = status
        self.reason = reason
        self.headers = headers
    }

    public init(_ error: HTTPHeadError) {
        self.init(status: error.status, reason: error.reason)
    }

    /// The response for this rejection; the connection closes after it.
    public var response: HTTPResponse {
        var r = HTTPResponse.json(status: status, #"{"error":"\#(reason)"}"#)
        r.headers += headers
        return r
    }
}

/// A valid RFC 6455 opening handshake, ready to be answered.
public struct WebSocketUpgrade: Equatable, Sendable {
    public var key: String
    /// `Sec-WebSocket-Accept` for `key`.
    public var accept: String
    /// Offered subprotocols, in the client's order.
    public var protocols: [String]
    /// Offered extensions, as raw `Sec-WebSocket-Extensions` list items.
    public var extensions: [String]
    public var origin: String?
}

/// RFC 6455 §4.2.1 validation of the client's opening handshake, §4.2.2 the server's answer.
public enum WebSocketHandshake {
    /// RFC 6455 §1.3.
    public static let guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    /// True when the request asks for a WebSocket (an `Upgrade` list holding `websocket`).
    public static func isUpgradeRequest(_ head: HTTPRequestHead) -> Bool {
        head.hasToken("websocket", in: "upgrade")
    }

    /// `base64(SHA-1(key + GUID))`.
    public static func acceptValue(for key: String) -> String {
        Base64.encode(SHA1.hash(Array((key + guid).utf8)))
    }

    /// Checks every MUST of RFC 6455 §4.2.1.
    public static func validate(_ head: HTTPRequestHead) -> Result<WebSocketUpgrade, HandshakeRejection> {
        // 1. GET, HTTP/1.1 or higher.
        guard head.method == "GET" else {
            return .failure(.init(status: 405, reason: "method_not_allowed", headers: [HTTPHeader("Allow", "GET")]))
        }
        guard head.minorVersion >= 1 else { return .failure(.init(status: 400, reason: "http_1_1_required")) }
        // Headers that may appear once; two copies are ambiguous, so refuse them.
        for name in ["host", "upgrade", "sec-websocket-key", "sec-websocket-version", "origin"] where head.count(name) > 1 {
            return .failure(.init(status: 400, reason: "duplicate_\(name.replacingDashes)"))
        }
        // 2. Host.
        guard let host = head.value("host"), !host.isEmpty else { return .failure(.init(status: 400, reason: "missing_host")) }
        // 3, 4. Upgrade: websocket; Connection: Upgrade (token lists, case-insensitive).
        guard isUpgradeRequest(head) else { return .failure(.init(status: 400, reason: "missing_upgrade")) }
        guard head.hasToken("upgrade", in: "connection") else {
            return .failure(.init(status: 400, reason: "missing_connection_upgrade"))
        }
        // A body on a GET upgrade would be read as frames: refuse it.
        if head.count("transfer-encoding") > 0 || (head.value("content-length").map { $0 != "0" } ?? false) {
            return .failure(.init(status: 400, reason: "unexpected_body"))
        }
        // 6. Version 13, else 426 naming the one we speak (§4.4).
        guard head.value("sec-websocket-version")?.trimmingOWSString == "13" else {
            return .failure(.init(status: 426, reason: "unsupported_version", headers: [HTTPHeader("Sec-WebSocket-Version", "13")]))
        }
        // 5. A base64 nonce of 16 bytes.
        guard let key = head.value("sec-websocket-key"), let nonce = Base64.decode(key), nonce.count == 16 else {
            return .failure(.init(status: 400, reason: "invalid_key"))
        }
        let protocols = head.values("sec-websocket-protocol").flatMap { line in
            line.split(separator: ",").map { String($0.trimmingOWS) }.filter { !$0.isEmpty }
        }
        let extensions = head.values("sec-websocket-extensions").flatMap { line in
            line.split(separator: ",").map { String($0.trimmingOWS) }.filter { !$0.isEmpty }
        }
        return .success(WebSocketUpgrade(
            key: key, accept: acceptValue(for: key), protocols: protocols, extensions: extensions,
            origin: head.value("origin")))
    }

    /// The 101 answer (RFC 6455 §4.2.2), appended to `out`.
    /// - Parameters:
    ///   - protocol: the selected subprotocol, one the client offered.
    ///   - extensions: the accepted extension line.
    public static func appendResponse(
        accept: String, protocol selected: String? = nil, extensions: String? = nil, to out: inout [UInt8]
    ) {
        var response = HTTPResponse(status: 101, headers: [
            HTTPHeader("Upgrade", "websocket"),
            HTTPHeader("Connection", "Upgrade"),
            HTTPHeader("Sec-WebSocket-Accept", accept),
        ])
        if let selected { response.headers.append(HTTPHeader("Sec-WebSocket-Protocol", selected)) }
        if let extensions { response.headers.append(HTTPHeader("Sec-WebSocket-Extensions", extensions)) }
        response.encode(into: &out)
    }
}

extension String {
    var trimmingOWSString: String { String(self[...].trimmingOWS) }
    var replacingDashes: String { String(map { $0 == "-" ? "_" : $0 }) }
}
