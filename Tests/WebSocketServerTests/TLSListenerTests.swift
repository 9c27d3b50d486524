// SPDX-License-Identifier: Apache-2.0
import COpenSSL
import Foundation
import Testing
import Transport
import WebSocketServer
import WireCodec
import WireDeflate

/// The TLS listener beside the plain one, over real sockets on 127.0.0.1, through the echo
/// application.
@Suite struct TLSListenerTests {
    /// Upgrades, echoes a 100 KiB text and a binary message, and closes with 1000.
    private func exerciseSession(_ client: TestClient) throws {
        let head = try #require(client.upgrade(path: "/anything"))
        #expect(head.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"))
        #expect(head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"))
        let text = String(repeating: "héllo wörld ", count: 100 * 1024 / 14)
        client.sendFrame(.text, Array(text.utf8))
        #expect(client.readFrame() == .text(text))
        let bytes = (0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        client.sendFrame(.binary, bytes)
        #expect(client.readFrame() == .binary(bytes))
        client.sendFrame(.close, [0x03, 0xE8])
        #expect(client.readCloseCode() == 1000)
        #expect(client.awaitsEndOfStream())
    }

    /// One echo round trip on an open session.
    private func echoes(_ client: TestClient, _ text: String) -> Bool {
        client.sendFrame(.text, Array(text.utf8))
        return client.readFrame() == .text(text)
    }

    @Test func servesWebSocketsOnThePlainAndTheTLSListenerSideBySide() throws {
        let server = try TestServer(tls: try TestCertificates.shared.box())
        #expect(server.tlsPort > 0)
        #expect(server.tlsPort != server.port)

        let secure = try TestClient(port: server.tlsPort)
        try #require(secure.startTLS() == nil)
        #expect(secure.tlsVersion == "TLSv1.3")
        #expect(secure.peerSubject == "/CN=first.test")
        try exerciseSession(secure)

        let plain = try TestClient(port: server.port)
        try exerciseSession(plain)

        #expect(server.eventually { server.server.activeConnections == 0 })
    }

    @Test func servesTLS12Too() throws {
        let server = try TestServer(tls: try TestCertificates.shared.box())
        let client = try TestClient(port: server.tlsPort)
        try #require(client.startTLS(versions: TLS1_2_VERSION...TLS1_2_VERSION) == nil)
        #expect(client.tlsVersion == "TLSv1.2")
        try exerciseSession(client)
    }

    @Test func echoesAMessageLargerThanTheSocketBuffersOverTLS() throws {
        let server = try TestServer(tls: try TestCertificates.shared.box())
        let client = try TestClient(port: server.tlsPort)
        try #require(client.startTLS() == nil)
        #expect(client.upgrade()?.hasPrefix("HTTP/1.1 101") == true)
        // Just under the default 1 MiB message limit and write queue: the reply cannot leave in
        // one write, so the server queues ciphertext and waits for EPOLLOUT.
        var random = SplitMix(seed: 99)
        let bytes = (0..<1_000_000).map { _ in UInt8(truncatingIfNeeded: random.next(upTo: 256)) }
        client.sendFrame(.binary, bytes)
        #expect(client.readFrame() == .binary(bytes))
        #expect(echoes(client, "and then a small one"))
    }

    @Test func answersCloseNotifyAndClosesTheConnection() throws {
        let server = try TestServer(tls: try TestCertificates.shared.box())
        let client = try TestClient(port: server.tlsPort)
        try #require(client.startTLS() == nil)
        #expect(client.upgrade()?.hasPrefix("HTTP/1.1 101") == true)
        #expect(echoes(client, "hello"))
        client.sendCloseNotify()
        #expect(client.awaitsEndOfStream())
        #expect(server.eventually { server.server.activeConnections == 0 })
    }

    @Test func echoesCompressedMessagesOverTLS() throws {
        let server = try TestServer(tls: try TestCertificates.shared.box()) { $0.compression = true }
        let client = try TestClient(port: server.tlsPort)
        try #require(client.startTLS() == nil)
        client.allowRSV1()
        let head = try #require(client.upgrade(headers: ["Sec-WebSocket-Extensions: permessage-deflate"]))
        #expect(CompressionTests.header("Sec-WebSocket-Extensions", in: head) == CompressionTests.bothNoTakeover)
        let deflater = MessageDeflater(parameters: CompressionTests.agreed, role: .client)
        let inflater = MessageInflater(parameters: CompressionTests.agreed, role: .client, maxMessageBytes: 1 << 20)
        let text = Array(String(repeating: "secure and small ", count: 500).utf8)
        client.send(CompressionTests.frame(.text, try deflater.compress(text), compressed: true))
        let echo = try #require(client.readFrame())
        #expect(echo.rsv1)
        #expect(try inflater.inflateMessage([echo.payload]) == text)
    }

    @Test func answersHealthzOverTLS() throws {
        let server = try TestServer(tls: try TestCertificates.shared.box())
        let client = try TestClient(port: server.tlsPort)
        try #require(client.startTLS() == nil)
        client.send("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        let response = try #require(client.readResponse())
        #expect(response.head.hasPrefix("HTTP/1.1 200"))
        #expect(response.body.contains(#""status":"ok""#))
        // Keep-alive: a second request on the same TLS connection.
        client.send("GET /nowhere HTTP/1.1\r\nHost: localhost\r\n\r\n")
        #expect(client.readResponse()?.head.hasPrefix("HTTP/1.1 404") == true)
    }

    @Test func refusesAClientOfferingOnlyTLS11AndClosesTheConnection() throws {
        let server = try TestServer(tls: try TestCertificates.shared.box())
        let client = try TestClient(port: server.tlsPort)
        let failure = client.startTLS(versions: TLS1_1_VERSION...TLS1_1_VERSION, cipherList: "DEFAULT:@SECLEVEL=0")
        // The server's protocol_version alert is what ended the client's handshake.
        #expect(failure?.contains("protocol version") == true, "\(failure ?? "no failure")")
        #expect(client.ssl == nil)
        // The server sent its alert and let go: end of stream on the raw socket.
        #expect(client.awaitsEndOfStream())
        #expect(server.eventually { server.server.activeConnections == 0 })
    }

    @Test func shedsGarbageAndHalfHandshakesAtTheDeadlineWithoutHurtingALiveSession() throws {
        let server = try TestServer(tls: try TestCertificates.shared.box()) {
            $0.handshakeTimeout = 0.5
            $0.maxConnections = 5000
            $0.maxUnfinishedPerAddress = 5000   // shed by the deadline, not refused at accept
        }
        let good = try TestClient(port: server.tlsPort)
        try #require(good.startTLS() == nil)
        #expect(good.upgrade()?.hasPrefix("HTTP/1.1 101") == true)

        let hello = recordedClientHello()
        try #require(hello.count > 100 && hello[0] == 0x16)   // a handshake record
        let halfHello = Array(hello.prefix(hello.count / 2))
        // A record header that claims 512 bytes, and only 20 of them.
        let shortRecord: [UInt8] = [0x16, 0x03, 0x01, 0x02, 0x00] + [UInt8](repeating: 0x01, count: 20)
        var random = SplitMix(seed: 0x5eed)
        var attackers: [TestClient] = []
        for round in 0..<500 {
            let garbage = try TestClient(port: server.tlsPort)
            garbage.send((0..<random.next(upTo: 400)).map { _ in UInt8(truncatingIfNeeded: random.next(upTo: 256)) })
            attackers.append(garbage)
            let half = try TestClient(port: server.tlsPort)
            half.send(round.isMultiple(of: 2) ? halfHello : shortRecord)
            attackers.append(half)
            if round.isMultiple(of: 50) { #expect(echoes(good, "during the flood \(round)")) }
        }
        // Every attacker is dropped (at once for garbage TLS rejects, at the deadline for the
        // rest); only the good session is left, and it still works.
        #expect(server.eventually(15) { server.server.activeConnections == 1 })
        #expect(echoes(good, "after the flood"))
        var ended = 0
        for attacker in attackers where attacker.awaitsEndOfStream() { ended += 1 }
        #expect(ended == attackers.count)
        #expect(echoes(good, "still here"))
    }

    @Test func reloadedCertificateServesNewConnectionsWhileOldSessionsContinue() throws {
        let files = try TestCertificates.shared.scratchCopy()
        let box = try TLSContextBox(certificateChainFile: files.cert, privateKeyFile: files.key)
        let server = try TestServer(tls: box)

        let before = try TestClient(port: server.tlsPort)
        try #require(before.startTLS() == nil)
        #expect(before.peerSubject == "/CN=first.test")
        #expect(before.upgrade()?.hasPrefix("HTTP/1.1 101") == true)
        #expect(echoes(before, "before the reload"))

        // Rewrite the files in place with the second certificate, then reload.
        let fm = FileManager.default
        try fm.removeItem(atPath: files.cert)
        try fm.removeItem(atPath: files.key)
        try fm.copyItem(atPath: TestCertificates.shared.secondCert, toPath: files.cert)
        try fm.copyItem(atPath: TestCertificates.shared.secondKey, toPath: files.key)
        let fresh = try box.reload()
        #expect(fresh.subject == "/CN=second.test")

        let after = try TestClient(port: server.tlsPort)
        try #require(after.startTLS() == nil)
        #expect(after.peerSubject == "/CN=second.test")
        #expect(after.upgrade()?.hasPrefix("HTTP/1.1 101") == true)
        #expect(echoes(after, "after the reload"))

        // The session opened before keeps its context and its keys.
        #expect(echoes(before, "still on the first certificate"))
        #expect(before.peerSubject == "/CN=first.test")
        before.sendFrame(.close, [0x03, 0xE8])
        #expect(before.readCloseCode() == 1000)
        #expect(before.awaitsEndOfStream())
    }

    @Test func aFailedReloadKeepsServingTheOldCertificate() throws {
        let files = try TestCertificates.shared.scratchCopy()
        let box = try TLSContextBox(certificateChainFile: files.cert, privateKeyFile: files.key)
        let server = try TestServer(tls: box)
        // A half-copied certificate: the second certificate with the first key does not match.
        try FileManager.default.removeItem(atPath: files.cert)
        try FileManager.default.copyItem(atPath: TestCertificates.shared.secondCert, toPath: files.cert)
        #expect(throws: TLSError.self) { try box.reload() }

        let client = try TestClient(port: server.tlsPort)
        try #require(client.startTLS() == nil)
        #expect(client.peerSubject == "/CN=first.test")
        #expect(client.upgrade()?.hasPrefix("HTTP/1.1 101") == true)
        #expect(echoes(client, "unchanged"))
    }
}

/// SplitMix64: reproducible "random" bytes and sizes.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next(upTo limit: Int) -> Int {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Int(z % UInt64(limit)) + 1
    }
}
