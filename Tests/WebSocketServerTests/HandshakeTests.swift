// SPDX-License-Identifier: Apache-2.0
import Testing
import WebSocketServer
import WireCodec

/// Handshake rejections and plain HTTP over real sockets.
@Suite struct HandshakeTests {
    @Test func servesHealthzAndKeepsTheConnectionAlive() throws {
        let server = try TestServer(echo: false)
        let client = try TestClient(port: server.port)
        client.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
        let first = try #require(client.readResponse())
        #expect(first.head.hasPrefix("HTTP/1.1 200 OK"))
        #expect(first.body.contains(#""status":"ok""#))
        let second = try #require(client.readResponse())
        #expect(second.head.hasPrefix("HTTP/1.1 404"))
    }

    @Test func gatewayModeRefusesUpgradesWithoutAKey() throws {
        let gateway = try AdminAPITests.TestGateway()
        let client = try TestClient(port: gateway.port)
        let response = try #require({ () -> (head: String, body: String)? in
            client.send("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
            return client.readResponse()
        }())
        #expect(response.head.hasPrefix("HTTP/1.1 401"))
        #expect(response.body.contains("missing_key"))
        let other = try TestClient(port: gateway.port)
        #expect(other.upgrade(path: "/elsewhere")?.hasPrefix("HTTP/1.1 404") == true)
    }

    @Test(arguments: [
        ("Sec-WebSocket-Version: 8", "HTTP/1.1 426", "Sec-WebSocket-Version: 13"),
        ("Sec-WebSocket-Key: c2hvcnQ=", "HTTP/1.1 400", "invalid_key"),
        ("Host: second", "HTTP/1.1 400", "duplicate_host"),
    ])
    func rejectsBadHandshakes(replace: String, status: String, mentions: String) throws {
        let server = try TestServer()
        let client = try TestClient(port: server.port)
        var request = "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        let name = replace.split(separator: ":")[0]
        if name != "Sec-WebSocket-Key" { request += "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" }
        if name != "Sec-WebSocket-Version" { request += "Sec-WebSocket-Version: 13\r\n" }
        request += replace + "\r\n\r\n"
        client.send(request)
        let response = try #require(client.readResponse())
        #expect(response.head.hasPrefix(status))
        #expect(response.head.contains(mentions) || response.body.contains(mentions))
        #expect(client.awaitsEndOfStream())
    }

    @Test func rejectsAOneMebibyteHeader() throws {
        let server = try TestServer()
        let client = try TestClient(port: server.port)
        client.send("GET /ws HTTP/1.1\r\nX-Big: " + String(repeating: "a", count: 1 << 20) + "\r\n\r\n")
        let head = try #require(client.readResponseHead())
        #expect(head.hasPrefix("HTTP/1.1 431"))
    }

    @Test func rejectsTenThousandHeaders() throws {
        let server = try TestServer { $0.head = HTTPHeadLimits(maxHeaderBytes: 1 << 20, maxHeaderCount: 64) }
        let client = try TestClient(port: server.port)
        var request = "GET /ws HTTP/1.1\r\n"
        for i in 0..<10_000 { request += "X-\(i): v\r\n" }
        client.send(request + "\r\n")
        let head = try #require(client.readResponseHead())
        #expect(head.hasPrefix("HTTP/1.1 431"))
    }

    @Test func timesOutASlowlorisClient() throws {
        let server = try TestServer { $0.handshakeTimeout = 0.5 }
        let client = try TestClient(port: server.port)
        client.send("GET /ws HTTP/1.1\r\nHost: x\r\n")
        client.send("X-A: 1\r\n")   // ...and never finishes
        let head = try #require(client.readResponseHead())
        #expect(head.hasPrefix("HTTP/1.1 408"))
        #expect(client.awaitsEndOfStream())
    }

    @Test func refusesConnectionsOverTheCap() throws {
        let server = try TestServer { $0.maxConnections = 3; $0.maxUnfinishedPerAddress = 10 }
        let held = try (0..<3).map { _ in try TestClient(port: server.port) }
        for c in held { #expect(c.upgrade()?.hasPrefix("HTTP/1.1 101") == true) }
        let extra = try TestClient(port: server.port)
        let refusal = try #require(extra.readResponse())
        #expect(refusal.head.hasPrefix("HTTP/1.1 503"))
        #expect(refusal.body == #"{"error":"too_many_connections"}"#)   // the whole body, as its Content-Length says
    }

    @Test func refusesUnfinishedConnectionsPastThePerAddressCapAtAccept() throws {
        let server = try TestServer { $0.maxConnections = 300 }   // the default cap: 1 %, 3 per address
        let held = try (0..<3).map { _ in try TestClient(port: server.port) }
        #expect(server.eventually { server.server.activeConnections == 3 })
        let extra = try TestClient(port: server.port)
        let head = try #require(extra.readResponseHead())
        #expect(head.hasPrefix("HTTP/1.1 429"))
        #expect(server.server.unfinishedHandshakeRefusals == 1)
        // A finished head no longer counts: the next connection from the address is served.
        #expect(held[0].upgrade()?.hasPrefix("HTTP/1.1 101") == true)
        let next = try TestClient(port: server.port)
        #expect(next.upgrade()?.hasPrefix("HTTP/1.1 101") == true)
    }

    @Test func aKeptAliveConnectionCountsAgainstTheCapWhileItWaitsForItsNextRequest() throws {
        let server = try TestServer { $0.maxConnections = 200 }   // 2 per address
        let first = try TestClient(port: server.port)
        first.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(first.readResponse()?.head.hasPrefix("HTTP/1.1 200") == true)   // kept alive: counts again
        let second = try TestClient(port: server.port)
        #expect(server.eventually { server.server.activeConnections == 2 })
        // The idle kept-alive connection and the silent one fill the cap: a third is refused at accept.
        let third = try TestClient(port: server.port)
        #expect(third.readResponseHead()?.hasPrefix("HTTP/1.1 429") == true)
        // An upgrade is no longer unfinished: the kept-alive connection upgrades and frees a place.
        #expect(first.upgrade()?.hasPrefix("HTTP/1.1 101") == true)
        let fourth = try TestClient(port: server.port)
        #expect(fourth.upgrade()?.hasPrefix("HTTP/1.1 101") == true)
        _ = second
    }

    @Test func neverWritesCRorLFFromAHeaderValue() {
        var out: [UInt8] = []
        HTTPResponse(status: 200, headers: [HTTPHeader("X-Evil", "a\r\nSet-Cookie: b"), HTTPHeader("X-Ok", "c")]).encode(into: &out)
        let text = String(decoding: out, as: UTF8.self)
        #expect(!text.contains("Set-Cookie"))
        #expect(text.contains("X-Ok: c\r\n"))
    }
}
