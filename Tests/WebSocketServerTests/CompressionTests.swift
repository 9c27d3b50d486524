// SPDX-License-Identifier: Apache-2.0
import Glibc
import Testing
import WebSocketServer
import WireCodec
import WireDeflate

/// permessage-deflate (RFC 7692) end to end: negotiation in the 101, compressed messages both
/// ways, and the limits, over real sockets on 127.0.0.1 through the echo application.
@Suite struct CompressionTests {
    static let bothNoTakeover = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

    /// The value of `name` in a response head, or nil when the header is absent.
    static func header(_ name: String, in head: String) -> String? {
        for line in head.split(separator: "\r\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == name.lowercased() { return String(parts[1].trimmingOWS) }
        }
        return nil
    }

    /// A masked client frame, with RSV1 when `compressed`.
    static func frame(_ opcode: WebSocketOpcode, _ payload: [UInt8], fin: Bool = true, compressed: Bool) -> [UInt8] {
        FrameEncoder.encode(WebSocketFrame(fin: fin, rsv1: compressed, opcode: opcode, payload: payload),
                            maskKey: UInt32.random(in: 1...UInt32.max))
    }

    /// A client that upgraded with `offers` and got a 101; the response head is returned too.
    static func connect(_ server: TestServer, offers: [String]) throws -> (TestClient, String) {
        let client = try TestClient(port: server.port)
        client.allowRSV1()   // lets us see (and check) RSV1 on whatever the server sends
        let head = try #require(client.upgrade(headers: offers.map { "Sec-WebSocket-Extensions: " + $0 }))
        #expect(head.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"))
        return (client, head)
    }

    /// What both ends agreed on for a plain offer against the default server policy.
    static let agreed = DeflateParameters(serverNoContextTakeover: true, clientNoContextTakeover: true)

    // MARK: - Negotiation

    @Test(arguments: [
        // (offer lines, the 101's Sec-WebSocket-Extensions or nil for none)
        (["permessage-deflate"], bothNoTakeover as String?),
        (["permessage-deflate; client_max_window_bits"], bothNoTakeover),
        (["permessage-deflate; server_max_window_bits=10"], bothNoTakeover + "; server_max_window_bits=10"),
        (["permessage-deflate; server_max_window_bits=8"], nil),            // zlib cannot deflate with 8
        (["permessage-deflate; mystery_parameter"], nil),                   // unknown parameter
        (["permessage-deflate; server_no_context_takeover=1"], nil),        // a value where none is allowed
        (["x-webkit-deflate-frame"], nil),                                  // not an extension we know
        // A second valid offer after an invalid first one, in one line and on two lines.
        (["permessage-deflate; server_max_window_bits=8, permessage-deflate"], bothNoTakeover),
        (["permessage-deflate; mystery_parameter", "permessage-deflate; client_max_window_bits"], bothNoTakeover),
    ])
    func negotiatesTheFirstOfferItCanHonour(offers: [String], answer: String?) throws {
        let server = try TestServer { $0.compression = true }
        let (client, head) = try Self.connect(server, offers: offers)
        #expect(Self.header("Sec-WebSocket-Extensions", in: head) == answer)
        // Either way the session works; without the extension big messages come back plain.
        let text = String(repeating: "compress me ", count: 100)
        if answer == nil {
            client.sendFrame(.text, Array(text.utf8))
            #expect(client.readFrame() == .text(text))
        } else {
            let deflater = MessageDeflater(parameters: Self.agreed, role: .client)
            client.send(Self.frame(.text, try deflater.compress(Array(text.utf8)), compressed: true))
            let echo = try #require(client.readFrame())
            #expect(echo.rsv1)
            let bits = answer!.contains("server_max_window_bits=10") ? 10 : 15
            let inflater = MessageInflater(windowBits: bits, contextTakeover: false, maxMessageBytes: 1 << 20)
            #expect(try inflater.inflateMessage([echo.payload]) == Array(text.utf8))
        }
    }

    @Test func answersNoExtensionWhenCompressionIsOff() throws {
        let server = try TestServer()   // compression defaults to off
        let (client, head) = try Self.connect(server, offers: ["permessage-deflate; client_max_window_bits"])
        #expect(Self.header("Sec-WebSocket-Extensions", in: head) == nil)
        let text = String(repeating: "plain please ", count: 100)
        client.sendFrame(.text, Array(text.utf8))
        let echo = client.readFrame()
        #expect(echo == .text(text))
        #expect(echo?.rsv1 == false)
    }

    // MARK: - Messages

    @Test func echoesACompressedTextMessageCompressedAboveTheThresholdAndPlainBelowIt() throws {
        let server = try TestServer { $0.compression = true }
        let (client, head) = try Self.connect(server, offers: ["permessage-deflate"])
        #expect(Self.header("Sec-WebSocket-Extensions", in: head) == Self.bothNoTakeover)
        let deflater = MessageDeflater(parameters: Self.agreed, role: .client)
        let inflater = MessageInflater(parameters: Self.agreed, role: .client, maxMessageBytes: 1 << 20)

        let long = Array(String(repeating: "{\"channel\":\"prices\",\"price\":42.5} ", count: 40).utf8)
        let compressed = try deflater.compress(long)
        #expect(compressed.count < long.count / 4)
        client.send(Self.frame(.text, compressed, compressed: true))
        let echo = try #require(client.readFrame())
        #expect(echo.opcode == .text)
        #expect(echo.rsv1)
        #expect(echo.payload.count < long.count)
        #expect(try inflater.inflateMessage([echo.payload]) == long)

        // Below the 64-byte threshold the echo goes out plain (RSV1 clear), however it came in.
        let short = Array("héllo, short".utf8)
        client.send(Self.frame(.text, try deflater.compress(short), compressed: true))
        let shortEcho = try #require(client.readFrame())
        #expect(!shortEcho.rsv1)
        #expect(shortEcho == .text("héllo, short"))
        client.sendFrame(.text, short)
        #expect(client.readFrame() == .text("héllo, short"))

        // Exactly at the threshold: compressed.
        let atThreshold = [UInt8](repeating: UInt8(ascii: "a"), count: 64)
        client.sendFrame(.text, atThreshold)
        let thresholdEcho = try #require(client.readFrame())
        #expect(thresholdEcho.rsv1)
        #expect(try inflater.inflateMessage([thresholdEcho.payload]) == atThreshold)
    }

    @Test func honoursAConfiguredThreshold() throws {
        let server = try TestServer {
            $0.compression = true
            $0.compressionThreshold = 1000
        }
        let (client, _) = try Self.connect(server, offers: ["permessage-deflate"])
        let text = String(repeating: "x", count: 999)
        client.sendFrame(.text, Array(text.utf8))
        let below = try #require(client.readFrame())
        #expect(!below.rsv1)
        #expect(below == .text(text))
        client.sendFrame(.text, Array((text + "y").utf8))
        let at = try #require(client.readFrame())
        #expect(at.rsv1)
        let inflater = MessageInflater(parameters: Self.agreed, role: .client, maxMessageBytes: 1 << 20)
        #expect(try inflater.inflateMessage([at.payload]) == Array((text + "y").utf8))
    }

    @Test func reassemblesACompressedMessageSentInThreeFragments() throws {
        let server = try TestServer { $0.compression = true }
        let (client, _) = try Self.connect(server, offers: ["permessage-deflate"])
        let deflater = MessageDeflater(parameters: Self.agreed, role: .client)
        let inflater = MessageInflater(parameters: Self.agreed, role: .client, maxMessageBytes: 1 << 20)
        let text = Array((0..<2000).map { "line \($0) of the fragmented message\n" }.joined().utf8)
        let compressed = try deflater.compress(text)
        let third = compressed.count / 3
        // RFC 7692 §6.1: RSV1 on the first frame only.
        client.send(Self.frame(.text, Array(compressed[..<third]), fin: false, compressed: true))
        client.sendFrame(.ping, Array("between".utf8))
        client.send(Self.frame(.continuation, Array(compressed[third..<(2 * third)]), fin: false, compressed: false))
        client.send(Self.frame(.continuation, Array(compressed[(2 * third)...]), fin: true, compressed: false))
        #expect(client.readFrame() == WebSocketFrame(opcode: .pong, payload: Array("between".utf8)))
        let echo = try #require(client.readFrame())
        #expect(echo.opcode == .text)
        #expect(echo.rsv1)
        #expect(try inflater.inflateMessage([echo.payload]) == text)
    }

    @Test func echoesCompressedBinary() throws {
        let server = try TestServer { $0.compression = true }
        let (client, _) = try Self.connect(server, offers: ["permessage-deflate; client_max_window_bits"])
        let deflater = MessageDeflater(parameters: Self.agreed, role: .client)
        let inflater = MessageInflater(parameters: Self.agreed, role: .client, maxMessageBytes: 1 << 20)
        // Compressible but not trivial, and not valid UTF-8 (binary is never checked).
        let bytes = (0..<200_000).map { UInt8(truncatingIfNeeded: ($0 / 7) &* 13) | 0x80 }
        for _ in 0..<3 {   // the loop's shared streams serve one message after another
            client.send(Self.frame(.binary, try deflater.compress(bytes), compressed: true))
            let echo = try #require(client.readFrame())
            #expect(echo.opcode == .binary)
            #expect(echo.rsv1)
            #expect(try inflater.inflateMessage([echo.payload]) == bytes)
        }
        // An empty compressed message (RFC 7692 §7.2.3.6: a single 0x00) comes back empty.
        client.send(Self.frame(.binary, [0x00], compressed: true))
        #expect(client.readFrame() == .binary([]))
    }

    @Test func keepsTheWindowBetweenMessagesWithContextTakeover() throws {
        let server = try TestServer {
            $0.compression = true
            $0.compressionContextTakeover = true
        }
        let (client, head) = try Self.connect(server, offers: ["permessage-deflate"])
        // Nobody ruled takeover out, so the answer names no parameter.
        #expect(Self.header("Sec-WebSocket-Extensions", in: head) == "permessage-deflate")
        let parameters = DeflateParameters()
        let deflater = MessageDeflater(parameters: parameters, role: .client)
        #expect(deflater.contextTakeover)
        let inflater = MessageInflater(parameters: parameters, role: .client, maxMessageBytes: 1 << 20)
        // Text that does not repeat within a message, but every message repeats the last one.
        var random = SplitMix(seed: 7)
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ,.:".utf8)
        let base = (0..<1500).map { _ in alphabet[random.next(upTo: alphabet.count) - 1] }
        var sizes: [(sent: Int, received: Int)] = []
        for i in 0..<4 {
            let text = base + Array(" #\(i)".utf8)
            let compressed = try deflater.compress(text)
            client.send(Self.frame(.text, compressed, compressed: true))
            let echo = try #require(client.readFrame())
            #expect(echo.rsv1)
            #expect(try inflater.inflateMessage([echo.payload]) == text)
            sizes.append((compressed.count, echo.payload.count))
        }
        // The server's replies refer back too: later ones are far smaller than the first.
        #expect(sizes[1].sent < sizes[0].sent / 2)
        #expect(sizes[3].received < sizes[0].received / 2)
    }

    @Test func takesOverOnlyTheDirectionTheClientAllows() throws {
        let server = try TestServer {
            $0.compression = true
            $0.compressionContextTakeover = true
        }
        // The client keeps its own window but asks the server to reset.
        let (client, head) = try Self.connect(server, offers: ["permessage-deflate; server_no_context_takeover"])
        #expect(Self.header("Sec-WebSocket-Extensions", in: head) == "permessage-deflate; server_no_context_takeover")
        let parameters = DeflateParameters(serverNoContextTakeover: true)
        let deflater = MessageDeflater(parameters: parameters, role: .client)
        let inflater = MessageInflater(parameters: parameters, role: .client, maxMessageBytes: 1 << 20)
        let text = Array(String(repeating: "takeover one way ", count: 20).utf8)
        for _ in 0..<3 {
            client.send(Self.frame(.text, try deflater.compress(text), compressed: true))
            let echo = try #require(client.readFrame())
            #expect(echo.rsv1)
            #expect(try inflater.inflateMessage([echo.payload]) == text)
        }
    }

    // MARK: - Limits and errors

    @Test(arguments: [
        // (compressed bytes, server maxMessageBytes, fragments)
        (48 * 1024, 64 * 1024, 1),
        (1 << 20, 2 << 20, 1),
        (1 << 20, 2 << 20, 256),
    ])
    func closesADecompressionBombWith1009(bombBytes: Int, maxMessageBytes: Int, fragments: Int) throws {
        // The frame limits count compressed bytes: the bomb fits them, so only inflating can fail.
        let server = try TestServer {
            $0.compression = true
            $0.frames = FrameLimits(maxFrameBytes: 2 << 20, maxMessageBytes: maxMessageBytes, maxFragments: 1024)
        }
        let (client, _) = try Self.connect(server, offers: ["permessage-deflate"])
        let bomb = DeflateBomb.make(compressedBytes: bombBytes)
        #expect(bomb.count <= maxMessageBytes)
        #expect(DeflateBomb.inflatedSize(compressedBytes: bomb.count) > 50 * maxMessageBytes)
        let size = (bomb.count + fragments - 1) / fragments
        for (i, start) in stride(from: 0, to: bomb.count, by: size).enumerated() {
            let end = min(start + size, bomb.count)
            client.send(Self.frame(i == 0 ? .binary : .continuation, Array(bomb[start..<end]), fin: end == bomb.count, compressed: i == 0))
        }
        #expect(client.readCloseCode() == 1009)
        #expect(client.awaitsEndOfStream())
        // The server waits for our end of stream after a failure (or its close timeout): give it.
        _ = Glibc.shutdown(client.fd, Int32(SHUT_WR))
        #expect(server.eventually { server.server.activeConnections == 0 })
    }

    @Test func acceptsAMessageThatInflatesToExactlyTheLimitAndClosesOneByteMoreWith1009() throws {
        let limit = 64 * 1024
        let server = try TestServer {
            $0.compression = true
            $0.frames = FrameLimits(maxFrameBytes: limit, maxMessageBytes: limit, maxFragments: 16)
        }
        let (client, _) = try Self.connect(server, offers: ["permessage-deflate"])
        let deflater = MessageDeflater(parameters: Self.agreed, role: .client)
        let inflater = MessageInflater(parameters: Self.agreed, role: .client, maxMessageBytes: 1 << 20)
        let exact = [UInt8](repeating: UInt8(ascii: "e"), count: limit)
        client.send(Self.frame(.text, try deflater.compress(exact), compressed: true))
        let echo = try #require(client.readFrame())
        #expect(echo.rsv1)
        #expect(try inflater.inflateMessage([echo.payload]) == exact)
        client.send(Self.frame(.text, try deflater.compress(exact + [UInt8(ascii: "!")]), compressed: true))
        #expect(client.readCloseCode() == 1009)
    }

    @Test func theBombIsARealBomb() throws {
        // The generator's output inflates as claimed (checked with the client's own inflater).
        let small = DeflateBomb.make(compressedBytes: 1300)
        let inflater = MessageInflater(windowBits: 15, contextTakeover: false, maxMessageBytes: 1 << 22)
        let inflated = try inflater.inflateMessage([small])
        #expect(inflated.count == DeflateBomb.inflatedSize(compressedBytes: small.count))
        #expect(inflated.allSatisfy { $0 == 0 })
        let big = DeflateBomb.make(compressedBytes: 1 << 20)
        let limited = MessageInflater(windowBits: 15, contextTakeover: false, maxMessageBytes: 2 << 20)
        #expect(throws: DeflateError.messageTooLarge) { try limited.inflateMessage([big]) }
    }

    @Test(arguments: [
        // (payload of a compressed text frame, expected close code)
        ([0xff, 0xff, 0xff, 0xff] as [UInt8], 1007 as UInt16),                        // reserved block type 3
        ([0x00, 0x05, 0x00, 0x00, 0x00, 0x41] as [UInt8], 1007 as UInt16),            // stored block, LEN and NLEN disagree
        (MessageDeflater(contextTakeover: false).compressOrEmpty([0xce, 0xba, 0xff, 0xfe]), 1007 as UInt16),   // inflates to invalid UTF-8
        (MessageDeflater(contextTakeover: false).compressOrEmpty(Array("ok".utf8) + [0xe2, 0x82]), 1007 as UInt16), // ends inside a character
    ])
    func closesWithTheRightCodeOnBadCompressedText(payload: [UInt8], code: UInt16) throws {
        let server = try TestServer { $0.compression = true }
        let (client, _) = try Self.connect(server, offers: ["permessage-deflate"])
        client.send(Self.frame(.text, payload, compressed: true))
        #expect(client.readCloseCode() == code)
        #expect(client.awaitsEndOfStream())
    }

    @Test func failsInvalidDeflateDataInFragmentsWith1007() throws {
        let server = try TestServer { $0.compression = true }
        let (client, _) = try Self.connect(server, offers: ["permessage-deflate"])
        client.send(Self.frame(.binary, [0xff, 0xff], fin: false, compressed: true))
        client.send(Self.frame(.continuation, [0xff, 0xff], fin: true, compressed: false))
        #expect(client.readCloseCode() == 1007)
    }

    @Test(arguments: [true, false])
    func closesRSV1With1002WhenDeflateWasNotNegotiated(compressionOn: Bool) throws {
        let server = try TestServer { $0.compression = compressionOn }
        let (client, head) = try Self.connect(server, offers: [])
        #expect(Self.header("Sec-WebSocket-Extensions", in: head) == nil)
        let payload = MessageDeflater(contextTakeover: false).compressOrEmpty(Array(String(repeating: "z", count: 100).utf8))
        client.send(Self.frame(.text, payload, compressed: true))
        #expect(client.readCloseCode() == 1002)
        #expect(client.awaitsEndOfStream())
    }

    @Test func closesRSV1OnAContinuationFrameWith1002() throws {
        let server = try TestServer { $0.compression = true }
        let (client, _) = try Self.connect(server, offers: ["permessage-deflate"])
        let payload = MessageDeflater(contextTakeover: false).compressOrEmpty(Array(String(repeating: "z", count: 100).utf8))
        client.send(Self.frame(.text, Array(payload.prefix(3)), fin: false, compressed: true))
        client.send(Self.frame(.continuation, Array(payload.dropFirst(3)), fin: true, compressed: true))
        #expect(client.readCloseCode() == 1002)
    }
}

extension MessageDeflater {
    /// `compress(_:)` for test arguments, which cannot throw.
    func compressOrEmpty(_ bytes: [UInt8]) -> [UInt8] { (try? compress(bytes)) ?? [] }
}

/// A raw DEFLATE payload (RFC 1951) made by hand, cheaply, however large: one fixed-Huffman block
/// with a literal 0 followed by matches of length 258 at distance 1 (13 bits for 258 zero bytes),
/// its end-of-block code and the 3 header bits of the empty stored block that RFC 7692 §7.2.1
/// leaves at the end of a message (the receiver appends 00 00 ff ff).
enum DeflateBomb {
    /// About `compressedBytes` of payload.
    static func make(compressedBytes: Int) -> [UInt8] {
        var writer = BitWriter()
        writer.bits(0, count: 1)            // BFINAL = 0
        writer.bits(1, count: 2)            // BTYPE = 01, fixed Huffman
        writer.huffman(0x30, length: 8)     // literal 0: codes 0-143 are 00110000 + n
        for _ in 0..<matches(compressedBytes: compressedBytes) {
            writer.huffman(0xC5, length: 8) // length symbol 285 (= 258): 11000000 + (285 - 280)
            writer.huffman(0, length: 5)    // distance symbol 0 (= 1)
        }
        writer.huffman(0, length: 7)        // end of block, symbol 256
        writer.bits(0, count: 3)            // BFINAL = 0, BTYPE = 00 stored: LEN/NLEN come from the receiver
        return writer.finish()
    }

    /// How many matches fit in `compressedBytes` (3 + 8 header and literal bits, 10 trailing bits).
    static func matches(compressedBytes: Int) -> Int { max((compressedBytes * 8 - 21) / 13, 1) }

    /// What a payload of `compressedBytes` (as `make` built it) inflates to.
    static func inflatedSize(compressedBytes: Int) -> Int { 1 + 258 * matches(compressedBytes: compressedBytes) }

    /// DEFLATE's bit order: values least significant bit first, Huffman codes most significant first.
    struct BitWriter {
        private var bytes: [UInt8] = []
        private var current: UInt32 = 0
        private var used = 0

        mutating func bits(_ value: UInt32, count: Int) {
            for i in 0..<count { put((value >> UInt32(i)) & 1) }
        }

        mutating func huffman(_ code: UInt32, length: Int) {
            for i in stride(from: length - 1, through: 0, by: -1) { put((code >> UInt32(i)) & 1) }
        }

        private mutating func put(_ bit: UInt32) {
            current |= bit << UInt32(used)
            used += 1
            if used == 8 {
                bytes.append(UInt8(current))
                current = 0
                used = 0
            }
        }

        mutating func finish() -> [UInt8] {
            if used > 0 { bytes.append(UInt8(current)) }
            return bytes
        }
    }
}
