// SPDX-License-Identifier: Apache-2.0

import Testing
import WireCodec

/// A request head built from header lines, through the real parser.
private func request(_ lines: [String], requestLine: String = "GET /chat HTTP/1.1") throws -> HTTPRequestHead {
    try parseHead(([requestLine] + lines).map { $0 + "\r\n" }.joined() + "\r\n")
}

/// The RFC 6455 §1.3 headers, minus those named in `dropping`, plus `adding`.
private func rfcLines(dropping: [String] = [], adding: [String] = []) -> [String] {
    let lines = [
        "Host: server.example.com", "Upgrade: websocket", "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Origin: http://example.com",
        "Sec-WebSocket-Protocol: chat, superchat", "Sec-WebSocket-Version: 13",
    ]
    return lines.filter { line in !dropping.contains { line.lowercased().hasPrefix($0.lowercased() + ":") } } + adding
}

private func rejection(_ head: HTTPRequestHead) -> HandshakeRejection? {
    if case .failure(let rejection) = WebSocketHandshake.validate(head) { return rejection }
    return nil
}

private func upgrade(_ head: HTTPRequestHead) -> WebSocketUpgrade? {
    if case .success(let upgrade) = WebSocketHandshake.validate(head) { return upgrade }
    return nil
}

private func encoded(_ response: HTTPResponse, keepAlive: Bool = true) -> String {
    var out: [UInt8] = []
    response.encode(into: &out, keepAlive: keepAlive)
    return String(decoding: out, as: UTF8.self)
}

@Suite struct WebSocketHandshakeTests {
    // MARK: RFC 6455 §1.3

    @Test func computesTheRFCAcceptKey() {
        #expect(WebSocketHandshake.acceptValue(for: "dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    }

    @Test func acceptsTheRFCRequest() throws {
        let head = try parseHead(rfcRequest)
        #expect(WebSocketHandshake.isUpgradeRequest(head))
        let result = try #require(upgrade(head))
        #expect(result.key == "dGhlIHNhbXBsZSBub25jZQ==")
        #expect(result.accept == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        #expect(result.protocols == ["chat", "superchat"])
        #expect(result.extensions == [])
        #expect(result.origin == "http://example.com")
    }

    @Test func writesTheRFCResponse() {
        var out: [UInt8] = []
        WebSocketHandshake.appendResponse(accept: "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", protocol: "chat", to: &out)
        #expect(
            String(decoding: out, as: UTF8.self)
                == "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n\r\n")
    }

    @Test func writesExtensionsAndNoProtocolWhenNoneIsChosen() {
        var out: [UInt8] = [0x2a]   // appends, never overwrites
        WebSocketHandshake.appendResponse(accept: "x", extensions: "permessage-deflate; client_no_context_takeover", to: &out)
        #expect(
            String(decoding: out, as: UTF8.self)
                == "*HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Accept: x\r\nSec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover\r\n\r\n")
    }

    // MARK: Rejections

    @Test(arguments: ["POST", "HEAD", "PUT", "get"])
    func rejectsOtherMethodsWith405(_ method: String) throws {
        let head = try request(rfcLines(), requestLine: "\(method) /chat HTTP/1.1")
        #expect(rejection(head) == HandshakeRejection(status: 405, reason: "method_not_allowed", headers: [HTTPHeader("Allow", "GET")]))
    }

    @Test func rejectsHTTP10() throws {
        let head = try request(rfcLines(), requestLine: "GET /chat HTTP/1.0")
        #expect(rejection(head) == HandshakeRejection(status: 400, reason: "http_1_1_required"))
    }

    @Test func rejectsMissingOrEmptyHost() throws {
        #expect(try rejection(request(rfcLines(dropping: ["Host"]))) == HandshakeRejection(status: 400, reason: "missing_host"))
        #expect(try rejection(request(rfcLines(dropping: ["Host"], adding: ["Host:"]))) == HandshakeRejection(status: 400, reason: "missing_host"))
    }

    @Test(arguments: [
        ("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "duplicate_sec_websocket_key"),
        ("Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==", "duplicate_sec_websocket_key"),
        ("Host: other.example.com", "duplicate_host"),
        ("Upgrade: websocket", "duplicate_upgrade"),
        ("Sec-WebSocket-Version: 13", "duplicate_sec_websocket_version"),
        ("Origin: http://evil.example", "duplicate_origin"),
    ])
    func rejectsDuplicateSingletonHeaders(_ extra: String, _ reason: String) throws {
        #expect(try rejection(request(rfcLines(adding: [extra]))) == HandshakeRejection(status: 400, reason: reason))
    }

    @Test(arguments: [
        ("Connection: keep-alive, Upgrade", "Upgrade: WebSocket"),
        ("Connection: Upgrade, keep-alive", "Upgrade: websocket"),
        ("Connection: UPGRADE", "Upgrade: WEBSOCKET"),
        ("Connection: keep-alive ,\tupgrade ", "Upgrade: h2c, websocket"),
    ])
    func readsUpgradeAndConnectionAsCaseInsensitiveTokenLists(_ connection: String, _ upgradeLine: String) throws {
        let head = try request(rfcLines(dropping: ["Connection", "Upgrade"], adding: [connection, upgradeLine]))
        #expect(upgrade(head)?.accept == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    }

    @Test func readsConnectionTokensAcrossSeveralLines() throws {
        let head = try request(rfcLines(dropping: ["Connection"], adding: ["Connection: keep-alive", "Connection: Upgrade"]))
        #expect(upgrade(head) != nil)
    }

    @Test(arguments: [
        (["Upgrade"], [String](), "missing_upgrade"),
        (["Upgrade"], ["Upgrade: websocketx"], "missing_upgrade"),
        (["Upgrade"], ["Upgrade: web socket"], "missing_upgrade"),
        (["Connection"], [String](), "missing_connection_upgrade"),
        (["Connection"], ["Connection: keep-alive"], "missing_connection_upgrade"),
        (["Connection"], ["Connection: upgrade-please"], "missing_connection_upgrade"),
    ])
    func rejectsMissingUpgradeTokens(_ dropping: [String], _ adding: [String], _ reason: String) throws {
        #expect(try rejection(request(rfcLines(dropping: dropping, adding: adding))) == HandshakeRejection(status: 400, reason: reason))
    }

    @Test(arguments: ["8", "12", "14", "13, 8", ""])
    func rejectsOtherVersionsWith426NamingThirteen(_ version: String) throws {
        let head = try request(rfcLines(dropping: ["Sec-WebSocket-Version"], adding: ["Sec-WebSocket-Version: \(version)"]))
        let expected = HandshakeRejection(
            status: 426, reason: "unsupported_version", headers: [HTTPHeader("Sec-WebSocket-Version", "13")])
        #expect(rejection(head) == expected)
        #expect(
            encoded(expected.response, keepAlive: false)
                == "HTTP/1.1 426 Upgrade Required\r\nContent-Type: application/json\r\nSec-WebSocket-Version: 13\r\n"
                + "Content-Length: 31\r\nConnection: close\r\n\r\n{\"error\":\"unsupported_version\"}")
    }

    @Test func rejectsAMissingVersionWith426() throws {
        let head = try request(rfcLines(dropping: ["Sec-WebSocket-Version"]))
        #expect(rejection(head)?.status == 426)
        #expect(rejection(head)?.headers == [HTTPHeader("Sec-WebSocket-Version", "13")])
    }

    @Test(arguments: [
        "dGhlIHNhbXBsZQ==",              // "the sample": 10 bytes
        "dGhlIHNhbXBsZSBub25jZSE=",      // 17 bytes
        "dGhlIHNhbXBsZSBub25jZQ",        // unpadded
        "dGhlIHNhbXBsZSBub25jZR==",      // non-zero padding bits
        "dGhlIHNhbXBsZSBub25jZQ==dGhl",  // trailing data
        "!GhlIHNhbXBsZSBub25jZQ==",      // not base64
        "",
    ])
    func rejectsAKeyThatIsNotSixteenBytesOfBase64(_ key: String) throws {
        let head = try request(rfcLines(dropping: ["Sec-WebSocket-Key"], adding: ["Sec-WebSocket-Key: \(key)"]))
        #expect(rejection(head) == HandshakeRejection(status: 400, reason: "invalid_key"))
    }

    @Test func rejectsAMissingKey() throws {
        #expect(try rejection(request(rfcLines(dropping: ["Sec-WebSocket-Key"]))) == HandshakeRejection(status: 400, reason: "invalid_key"))
    }

    @Test(arguments: ["Content-Length: 5", "Transfer-Encoding: chunked"])
    func rejectsARequestWithABody(_ line: String) throws {
        #expect(try rejection(request(rfcLines(adding: [line]))) == HandshakeRejection(status: 400, reason: "unexpected_body"))
        #expect(try upgrade(request(rfcLines(adding: ["Content-Length: 0"]))) != nil)
    }

    // MARK: Lists

    @Test func collectsProtocolsAndExtensionsInOrderAcrossLines() throws {
        let head = try request(rfcLines(
            dropping: ["Sec-WebSocket-Protocol"],
            adding: [
                "Sec-WebSocket-Protocol: a, b,,c ,", "Sec-WebSocket-Protocol: \td", "Sec-WebSocket-Protocol:",
                "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits, x-foo",
            ]))
        let result = upgrade(head)
        #expect(result?.protocols == ["a", "b", "c", "d"])
        #expect(result?.extensions == ["permessage-deflate; client_max_window_bits", "x-foo"])
    }

    @Test func reportsNoProtocolsAndNoOriginWhenAbsent() throws {
        let result = try upgrade(request(rfcLines(dropping: ["Sec-WebSocket-Protocol", "Origin"])))
        #expect(result?.protocols == [])
        #expect(result?.origin == nil)
    }

    // MARK: Request-head strictness, end to end

    @Test(arguments: [
        "GET /chat HTTP/1.1\r\nHost: a\r\n x\r\n\r\n",         // obs-fold
        "GET /chat HTTP/1.1\r\nHost : a\r\n\r\n",              // space before the colon
        "GET /chat HTTP/1.1\r\nHost: a\nUpgrade: x\r\n\r\n",    // bare LF
        "GET /chat HTTP/1.1\r\nHost: a\u{0}b\r\n\r\n",          // NUL in a value
    ])
    func neverReachesValidationWithAMalformedHead(_ text: String) {
        #expect(throws: HTTPHeadError.malformedHeader) { try parseHead(text) }
    }

    // MARK: Response splitting

    @Test func dropsResponseHeadersThatCouldSplitTheResponse() {
        let response = HTTPResponse(status: 200, headers: [
            HTTPHeader("X-Ok", "1"),
            HTTPHeader("X-Split", "a\r\nSet-Cookie: session=stolen"),
            HTTPHeader("X-LF", "a\nb"),
            HTTPHeader("X-CR", "a\rb"),
            HTTPHeader("X-NUL", "a\u{0}b"),
            HTTPHeader("X-Bad\r\nName", "v"),
            HTTPHeader("X-Colon:Name", "v"),
            HTTPHeader("X-Also-Ok", "tab\tand spaces"),
        ], body: Array("hi".utf8))
        #expect(encoded(response) == "HTTP/1.1 200 OK\r\nX-Ok: 1\r\nX-Also-Ok: tab\tand spaces\r\nContent-Length: 2\r\n\r\nhi")
    }

    @Test func dropsASplittingProtocolFromThe101() {
        var out: [UInt8] = []
        WebSocketHandshake.appendResponse(accept: "k", protocol: "chat\r\nX-Injected: 1", to: &out)
        #expect(
            String(decoding: out, as: UTF8.self)
                == "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: k\r\n\r\n")
    }

    @Test(arguments: [(101, false), (204, false), (304, false), (200, true), (404, true)])
    func writesContentLengthOnlyWhereABodyMayFollow(_ status: Int, _ hasLength: Bool) {
        #expect(encoded(HTTPResponse(status: status)).contains("Content-Length: 0\r\n") == hasLength)
    }

    @Test func writesJSONRejections() {
        let response = HandshakeRejection(status: 405, reason: "method_not_allowed", headers: [HTTPHeader("Allow", "GET")]).response
        #expect(
            encoded(response, keepAlive: false)
                == "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: application/json\r\nAllow: GET\r\n"
                + "Content-Length: 30\r\nConnection: close\r\n\r\n{\"error\":\"method_not_allowed\"}")
    }
}
