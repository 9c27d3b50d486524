// SPDX-License-Identifier: Apache-2.0
import Testing
import WebSocketServer
import WireCodec

/// The engine over real sockets on 127.0.0.1, through the echo application.
@Suite struct ConnectionTests {
    @Test func upgradesAndEchoesTextAndBinary() throws {
        let server = try TestServer()
        let client = try TestClient(port: server.port)
        let head = try #require(client.upgrade(path: "/anything"))
        #expect(head.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"))
        #expect(head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"))
        client.sendFrame(.text, Array("héllo".utf8))
        #expect(client.readFrame() == .text("héllo"))
        let bytes = (0..<70_000).map { UInt8(truncatingIfNeeded: $0) }
        client.sendFrame(.binary, bytes)
        #expect(client.readFrame() == .binary(bytes))
    }

    @Test func treatsBytesPipelinedAfterTheRequestAsFrames() throws {
        let server = try TestServer()
        let client = try TestClient(port: server.port)
        let head = client.upgrade(extra: TestClient.frame(.text, Array("early".utf8)))
        #expect(head?.hasPrefix("HTTP/1.1 101") == true)
        #expect(client.readFrame() == .text("early"))
    }

    @Test func reassemblesFragmentsWithControlFramesBetween() throws {
        let server = try TestServer()
        let client = try TestClient(port: server.port)
        _ = client.upgrade()
        client.sendFrame(.text, Array("frag".utf8), fin: false)
        client.sendFrame(.ping, Array("p".utf8))
        client.sendFrame(.continuation, Array("ment".utf8), fin: false)
        client.sendFrame(.continuation, [], fin: true)
        #expect(client.readFrame() == WebSocketFrame(opcode: .pong, payload: Array("p".utf8)))
        #expect(client.readFrame() == .text("fragment"))
    }

    @Test func answersCloseWithTheSameCodeAndEndsTheStream() throws {
        let server = try TestServer()
        let client = try TestClient(port: server.port)
        _ = client.upgrade()
        client.sendFrame(.close, [0x03, 0xE8] + Array("bye".utf8))
        #expect(client.readCloseCode() == 1000)
        #expect(client.awaitsEndOfStream())
        #expect(server.eventually { server.server.activeConnections == 0 })
    }

    @Test(arguments: [
        // (frame bytes, expected close code)
        ([0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f] as [UInt8], 1002 as UInt16),   // unmasked client frame
        (TestClient.frame(.text, [0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xff]), 1007 as UInt16),   // invalid UTF-8
        (TestClient.frame(.binary, [UInt8](repeating: 1, count: 2000)), 1009 as UInt16),   // over max-frame-bytes (1024 here)
        ([0x83, 0x80, 1, 2, 3, 4] as [UInt8], 1002 as UInt16),                            // reserved opcode
        (TestClient.frame(.close, [0x03, 0xED]), 1002 as UInt16),              // close code 1005 may not be sent
    ])
    func closesWithTheRightCodeOnBadInput(frame: [UInt8], code: UInt16) throws {
        let server = try TestServer { $0.frames = FrameLimits(maxFrameBytes: 1024, maxMessageBytes: 4096, maxFragments: 8) }
        let client = try TestClient(port: server.port)
        _ = client.upgrade()
        client.send(frame)
        #expect(client.readCloseCode() == code)
        #expect(client.awaitsEndOfStream())
    }

    @Test func failsFastOnInvalidUTF8BeforeTheMessageEnds() throws {
        let server = try TestServer()
        let client = try TestClient(port: server.port)
        _ = client.upgrade()
        client.sendFrame(.text, Array("ok".utf8), fin: false)
        client.sendFrame(.continuation, [0xed, 0xa0, 0x80], fin: false)   // a surrogate: never valid
        // The final fragment is never sent: the close must come anyway.
        #expect(client.readCloseCode() == 1007)
    }

    @Test func pingsAnIdlePeerAndDropsItWhenNoAnswerComes() throws {
        let server = try TestServer {
            $0.idleTimeout = 0.3
            $0.pongTimeout = 0.3
        }
        let client = try TestClient(port: server.port)
        _ = client.upgrade()
        let ping = client.readFrame()
        #expect(ping?.opcode == .ping)
        // We never answer: the server must drop us.
        #expect(client.awaitsEndOfStream())
    }

    @Test func keepsAPeerThatAnswersPings() throws {
        let server = try TestServer {
            $0.idleTimeout = 0.2
            $0.pongTimeout = 0.5
        }
        let client = try TestClient(port: server.port)
        _ = client.upgrade()
        for _ in 0..<3 {
            #expect(client.readFrame()?.opcode == .ping)
            client.sendFrame(.pong, [])
        }
        client.sendFrame(.text, Array("still here".utf8))
        var frame = client.readFrame()
        while frame?.opcode == .ping { frame = client.readFrame() }
        #expect(frame == .text("still here"))
    }

    @Test func drainSendsGoingAwayToEverySession() throws {
        let holder = try TestServer()
        let server = holder.server
        let clients = try (0..<10).map { _ in try TestClient(port: server.port) }
        for c in clients { #expect(c.upgrade()?.hasPrefix("HTTP/1.1 101") == true) }
        #expect(holder.eventually { server.activeConnections == 10 })
        // Answer the close frames while shutdown waits for them.
        let done = AsyncFlag()
        Thread.detach {
            server.shutdown(drainTimeout: 5)
            done.set()
        }
        for c in clients {
            #expect(c.readCloseCode() == 1001)
            c.sendFrame(.close, [0x03, 0xE9])
            #expect(c.awaitsEndOfStream())
        }
        #expect(holder.eventually { done.isSet })
    }
}

extension ConnectionTests {
    @Test func closesAMessageOfAHundredThousandEmptyFragmentsWith1009() throws {
        let server = try TestServer()
        let client = try TestClient(port: server.port)
        _ = client.upgrade()
        var burst = TestClient.frame(.text, [], fin: false)
        let empty = TestClient.frame(.continuation, [], fin: false)
        for _ in 0..<100_000 { burst += empty }
        client.send(burst)
        #expect(client.readCloseCode() == 1009)
    }
}
