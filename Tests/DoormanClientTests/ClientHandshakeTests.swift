// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
import WireCodec
@testable import DoormanClient

@Suite struct ClientHandshakeTests {
    /// RFC 6455 §1.3: the sample nonce and its accept value.
    let handshake = ClientHandshake(nonce: Array(Base64.decode("dGhlIHNhbXBsZSBub25jZQ==")!))

    func head(_ text: String) throws -> HTTPResponseHead {
        let bytes = Array(text.utf8)
        return try bytes.withUnsafeBytes { raw throws(HTTPHeadError) in try HTTPHeadParser.parseResponse(raw) }
    }

    @Test func writesTheUpgradeRequestWithTheKeyHeader() throws {
        let target = try ConnectionTarget(url: URL(string: "ws://127.0.0.1:8080/ws?x=1")!)
        let request = String(decoding: handshake.request(target, key: "dmk_abc", headers: [("User-Agent", "kiosk/1"), ("X-API-Key", "other")]),
                             as: UTF8.self)
        #expect(request.hasPrefix("GET /ws?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"))
        #expect(request.contains("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"))
        #expect(request.contains("Sec-WebSocket-Version: 13\r\n"))
        #expect(request.contains("X-API-Key: dmk_abc\r\n"))
        #expect(!request.contains("other"))
        #expect(request.contains("User-Agent: kiosk/1\r\n"))
        #expect(request.hasSuffix("\r\n\r\n"))
    }

    @Test func refusesHeaderInjection() throws {
        let target = try ConnectionTarget(url: URL(string: "ws://h/ws")!)
        let request = String(decoding: handshake.request(target, key: "k", headers: [("X-A", "a\r\nX-Evil: 1")]), as: UTF8.self)
        #expect(!request.contains("X-Evil"))
    }

    @Test func acceptsTheRFCAnswer() throws {
        let answer = try head("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
        #expect(handshake.problem(with: answer) == nil)
    }

    @Test func rejectsAWrongAcceptOrAnUnofferedExtension() throws {
        let wrong = try head("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n")
        #expect(handshake.problem(with: wrong) == "wrong Sec-WebSocket-Accept")
        let deflate = try head("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n")
        #expect(handshake.problem(with: deflate) != nil)
    }

    @Test func readsTheReasonOfARefusal() {
        #expect(ClientHandshake.refusalReason(body: Array(#"{"error":"revoked_key"}"#.utf8)) == "revoked_key")
        #expect(ClientHandshake.refusalReason(body: Array("<html>".utf8)) == nil)
    }

    @Test func parsesTargets() throws {
        let v6 = try ConnectionTarget(url: URL(string: "ws://[::1]:9000/ws")!)
        #expect(v6.host == "::1" && v6.port == 9000 && v6.hostHeader == "[::1]:9000" && v6.requestTarget == "/ws")
        let plain = try ConnectionTarget(url: URL(string: "ws://gw.example")!)
        #expect(plain.port == 80 && plain.requestTarget == "/" && plain.hostHeader == "gw.example")
        #expect(throws: DoormanError.self) { try ConnectionTarget(url: URL(string: "http://gw.example/ws")!) }
    }

    @Test func decodesServerErrors() {
        let error = DoormanError(answer: ["type": "error", "id": 4, "error": "rate_limited", "message": "too many calls", "retryAfterMs": 1500])
        #expect(error.code == .rateLimited && error.retryAfter == .milliseconds(1500) && error.message == "too many calls")
    }

    @Test func roundTripsJSON() {
        let value: JSONValue = ["room": 101, "ok": true, "names": ["a", nil], "ratio": 0.5]
        #expect(JSONValue(parsing: value.jsonText) == value)
        #expect(JSONValue(parsing: #"{"n":3}"#)?["n"]?.intValue == 3)
        #expect(value.jsonText.contains(#""room":101"#))
    }
}
