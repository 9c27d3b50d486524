// SPDX-License-Identifier: Apache-2.0

import Testing
import WireCodec

/// Parses a complete head with `HTTPHeadParser.parse`.
func parseHead(_ text: String, limits: HTTPHeadLimits = HTTPHeadLimits()) throws(HTTPHeadError) -> HTTPRequestHead {
    try parseHead(Array(text.utf8), limits: limits)
}

func parseHead(_ bytes: [UInt8], limits: HTTPHeadLimits = HTTPHeadLimits()) throws(HTTPHeadError) -> HTTPRequestHead {
    var outcome: Result<HTTPRequestHead, HTTPHeadError> = .failure(.malformedRequestLine)
    bytes.withUnsafeBytes { raw in
        do throws(HTTPHeadError) {
            outcome = .success(try HTTPHeadParser.parse(raw, limits: limits))
        } catch {
            outcome = .failure(error)
        }
    }
    return try outcome.get()
}

/// What an `HTTPHeadReader` made of a stream fed in `chunks`.
struct ReaderRun {
    /// The head, and the stream offset just past it.
    var head: HTTPRequestHead?
    var end: Int?
    var error: HTTPHeadError?
    /// Index of the chunk that completed or failed the head.
    var lastChunk: Int?
    /// The most the reader ever held between calls.
    var maxBuffered = 0
}

func readHead<C: Collection>(_ chunks: [C], limits: HTTPHeadLimits = HTTPHeadLimits()) -> ReaderRun where C.Element == UInt8 {
    var reader = HTTPHeadReader(limits: limits)
    var run = ReaderRun()
    var offset = 0
    for (index, chunk) in chunks.enumerated() {
        let bytes = Array(chunk)
        var result: Result<(head: HTTPRequestHead, consumed: Int)?, HTTPHeadError> = .success(nil)
        bytes.withUnsafeBytes { raw in
            do throws(HTTPHeadError) {
                result = .success(try reader.feed(raw))
            } catch {
                result = .failure(error)
            }
        }
        run.maxBuffered = max(run.maxBuffered, reader.bufferedCount)
        switch result {
        case .success(nil):
            offset += bytes.count
        case .success(let done?):
            run.head = done.head
            run.end = offset + done.consumed
            run.lastChunk = index
            return run
        case .failure(let error):
            run.error = error
            run.lastChunk = index
            return run
        }
    }
    return run
}

/// RFC 6455 §1.3's opening handshake.
let rfcRequest = """
    GET /chat HTTP/1.1\r
    Host: server.example.com\r
    Upgrade: websocket\r
    Connection: Upgrade\r
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r
    Origin: http://example.com\r
    Sec-WebSocket-Protocol: chat, superchat\r
    Sec-WebSocket-Version: 13\r
    \r

    """

let rfcRequestHead = HTTPRequestHead(
    method: "GET", target: "/chat", minorVersion: 1,
    headers: [
        HTTPHeader("host", "server.example.com"),
        HTTPHeader("upgrade", "websocket"),
        HTTPHeader("connection", "Upgrade"),
        HTTPHeader("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        HTTPHeader("origin", "http://example.com"),
        HTTPHeader("sec-websocket-protocol", "chat, superchat"),
        HTTPHeader("sec-websocket-version", "13"),
    ])

@Suite struct HTTPHeadParserTests {
    // MARK: Valid heads

    @Test func parsesTheRFCRequest() throws {
        #expect(Array(rfcRequest.utf8).suffix(4) == [0x0d, 0x0a, 0x0d, 0x0a])
        #expect(try parseHead(rfcRequest) == rfcRequestHead)
    }

    @Test func readsTheRFCRequestWholeByteByByteAndAtEverySplit() {
        // The head, then the first bytes of a frame that must be left alone.
        let head = Array(rfcRequest.utf8)
        let stream = head + [0x81, 0x85, 0x37, 0xfa]
        for (way, chunks) in chunkings(stream, cuts: Array(0...stream.count)) {
            let run = readHead(chunks)
            #expect(run.error == nil, "\(way)")
            #expect(run.head == rfcRequestHead, "\(way)")
            #expect(run.end == head.count, "\(way)")
            #expect(run.maxBuffered < head.count, "\(way)")
        }
    }

    @Test func findsTheEndOfTheHead() {
        let bytes = Array("GET / HTTP/1.1\r\nA: b\r\n\r\nrest".utf8)
        #expect(bytes.withUnsafeBytes { HTTPHeadParser.findEnd($0) } == 24)
        #expect(bytes.withUnsafeBytes { HTTPHeadParser.findEnd($0, from: 20) } == 24)
        #expect(bytes.withUnsafeBytes { HTTPHeadParser.findEnd(UnsafeRawBufferPointer(rebasing: $0[..<23])) } == nil)
        // Every alignment of the terminator, for the 4-byte stride.
        for pad in 0..<8 {
            let padded = Array(repeating: UInt8(ascii: "x"), count: pad) + [0x0d, 0x0a, 0x0d, 0x0a]
            #expect(padded.withUnsafeBytes { HTTPHeadParser.findEnd($0) } == pad + 4, "pad \(pad)")
        }
        #expect(Array("a\r\n\r\r\n\r\n".utf8).withUnsafeBytes { HTTPHeadParser.findEnd($0) } == 8)
    }

    @Test func trimsOptionalWhitespaceAndKeepsInnerSpaces() throws {
        let head = try parseHead("GET /a?b=c HTTP/1.1\r\nX-One:   spaced  value \t\r\nX-Empty:\r\nX-Tab:\tv\r\nX-Obs: caf\u{e9}\r\n\r\n")
        #expect(head.values("x-one") == ["spaced  value"])
        #expect(head.value("x-empty") == "")
        #expect(head.value("x-tab") == "v")
        #expect(head.value("x-obs") == "café")
        #expect(head.path == "/a")
        #expect(head.target == "/a?b=c")
    }

    @Test func lowercasesHeaderNamesOnly() throws {
        let head = try parseHead("GET / HTTP/1.1\r\nX-MiXeD: VaLuE\r\n\r\n")
        #expect(head.headers == [HTTPHeader("x-mixed", "VaLuE")])
    }

    @Test func parsesHTTP10() throws {
        #expect(try parseHead("GET / HTTP/1.0\r\n\r\n") == HTTPRequestHead(method: "GET", target: "/", minorVersion: 0, headers: []))
    }

    // MARK: Strictness (RFC 9112)

    @Test(arguments: [
        ("obs-fold with a space", "GET / HTTP/1.1\r\nX-A: one\r\n two\r\n\r\n"),
        ("obs-fold with a tab", "GET / HTTP/1.1\r\nX-A: one\r\n\ttwo\r\n\r\n"),
        ("obs-fold with a colon", "GET / HTTP/1.1\r\nX-A: one\r\n X-B: two\r\n\r\n"),
        ("space before the colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n"),
        ("tab before the colon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"),
        ("bare LF ending a header", "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n"),
        ("bare CR inside a value", "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n"),
        ("NUL inside a value", "GET / HTTP/1.1\r\nHost: a\u{0}b\r\n\r\n"),
        ("DEL inside a value", "GET / HTTP/1.1\r\nHost: a\u{7f}b\r\n\r\n"),
        ("control character inside a value", "GET / HTTP/1.1\r\nHost: a\u{1}b\r\n\r\n"),
        ("NUL inside a name", "GET / HTTP/1.1\r\nHo\u{0}st: a\r\n\r\n"),
        ("empty name", "GET / HTTP/1.1\r\n: a\r\n\r\n"),
        ("no colon", "GET / HTTP/1.1\r\nHost a\r\n\r\n"),
        ("separator in a name", "GET / HTTP/1.1\r\nHo(st: a\r\n\r\n"),
    ])
    func rejectsMalformedHeader(_ name: String, _ text: String) {
        #expect(throws: HTTPHeadError.malformedHeader, "\(name)") { try parseHead(text) }
        // The reader gives the same answer however the bytes arrive.
        let bytes = Array(text.utf8)
        #expect(readHead([bytes]).error == .malformedHeader, "\(name), whole")
        #expect(readHead(bytes.map { [$0] }).error == .malformedHeader, "\(name), byte by byte")
    }

    @Test(arguments: [
        ("bare LF after the request line", "GET / HTTP/1.1\nHost: a\r\n\r\n"),
        ("no version", "GET /\r\n\r\n"),
        ("no target", "GET HTTP/1.1\r\n\r\n"),
        ("two spaces", "GET  / HTTP/1.1\r\n\r\n"),
        ("leading space", " GET / HTTP/1.1\r\n\r\n"),
        ("lowercase protocol", "GET / http/1.1\r\n\r\n"),
        ("separator in the method", "G(T / HTTP/1.1\r\n\r\n"),
        ("control character in the target", "GET /\u{1} HTTP/1.1\r\n\r\n"),
        ("empty request line", "\r\n\r\n"),
    ])
    func rejectsMalformedRequestLine(_ name: String, _ text: String) {
        #expect(throws: HTTPHeadError.malformedRequestLine, "\(name)") { try parseHead(text) }
    }

    @Test(arguments: ["HTTP/2.0", "HTTP/1.2", "HTTP/1.x", "HTTP/1.10", "HTTP/0.9"])
    func rejectsUnsupportedVersion(_ version: String) {
        #expect(throws: HTTPHeadError.unsupportedVersion) { try parseHead("GET / \(version)\r\n\r\n") }
    }

    // MARK: Limits

    /// A head with `count` short headers.
    static func manyHeaders(_ count: Int) -> String {
        "GET / HTTP/1.1\r\n" + (0..<count).map { "X-\($0): v\r\n" }.joined() + "\r\n"
    }

    @Test func acceptsExactlyTheHeaderCountLimit() throws {
        #expect(try parseHead(Self.manyHeaders(64)).headers.count == 64)
        #expect(throws: HTTPHeadError.tooManyHeaders) { try parseHead(Self.manyHeaders(65)) }
    }

    @Test func rejectsTenThousandHeaders() throws {
        let text = Self.manyHeaders(10_000)
        let limits = HTTPHeadLimits(maxHeaderBytes: 2 << 20, maxHeaderCount: 64)
        #expect(text.utf8.count < limits.maxHeaderBytes)
        #expect(throws: HTTPHeadError.tooManyHeaders) { try parseHead(text, limits: limits) }
        let bytes = Array(text.utf8)
        let run = readHead(stride(from: 0, to: bytes.count, by: 4096).map { bytes[$0..<min($0 + 4096, bytes.count)] }, limits: limits)
        #expect(run.error == .tooManyHeaders)
        // Raise the count limit and the same head parses.
        let raised = HTTPHeadLimits(maxHeaderBytes: 2 << 20, maxHeaderCount: 10_000)
        #expect(try parseHead(text, limits: raised).headers.count == 10_000)
    }

    @Test func rejectsOneMebibyteHeaderWithoutBufferingIt() {
        let limits = HTTPHeadLimits()   // 8 KiB
        let huge = Array("GET / HTTP/1.1\r\nX-Big: ".utf8) + Array(repeating: UInt8(ascii: "a"), count: 1 << 20) + Array("\r\n\r\n".utf8)
        // 3000-byte reads: the third crosses the limit, so a reader that appended it whole would hold 9000.
        let chunks = stride(from: 0, to: huge.count, by: 3000).map { huge[$0..<min($0 + 3000, huge.count)] }
        let run = readHead(chunks, limits: limits)
        #expect(run.error == .headerTooLarge)
        #expect(run.maxBuffered <= limits.maxHeaderBytes)
        // Refused on the read that reached the limit, not after reading the whole megabyte.
        #expect(run.lastChunk == 2)
        // Byte by byte: still never more than the limit held.
        let slow = readHead(huge.prefix(3 * limits.maxHeaderBytes).map { [$0] }, limits: limits)
        #expect(slow.error == .headerTooLarge)
        #expect(slow.maxBuffered <= limits.maxHeaderBytes)
        #expect(slow.lastChunk == limits.maxHeaderBytes - 1)
        // In one read: refused without buffering anything.
        var reader = HTTPHeadReader(limits: limits)
        #expect(throws: HTTPHeadError.headerTooLarge) { try huge.withUnsafeBytes { raw in _ = try reader.feed(raw) } }
        #expect(reader.bufferedCount == 0)
    }

    /// A valid head of exactly `size` bytes.
    static func head(ofSize size: Int) -> [UInt8] {
        let start = Array("GET / HTTP/1.1\r\nHost: a\r\nX-Pad: ".utf8)
        let end = Array("\r\n\r\n".utf8)
        return start + Array(repeating: UInt8(ascii: "p"), count: size - start.count - end.count) + end
    }

    @Test(arguments: [1, 7, 1000, 8192])
    func acceptsAHeadOfExactlyMaxHeaderBytes(_ chunkSize: Int) throws {
        let limits = HTTPHeadLimits(maxHeaderBytes: 8192)
        let exact = Self.head(ofSize: 8192)
        #expect(exact.count == 8192)
        #expect(try parseHead(exact, limits: limits).value("x-pad")?.utf8.count == 8192 - 36)
        let chunks = stride(from: 0, to: exact.count, by: chunkSize).map { exact[$0..<min($0 + chunkSize, exact.count)] }
        let run = readHead(chunks, limits: limits)
        #expect(run.error == nil)
        #expect(run.end == 8192)
        #expect(run.maxBuffered <= 8192)
        // One byte more is too much.
        let over = Self.head(ofSize: 8193)
        #expect(throws: HTTPHeadError.headerTooLarge) { try parseHead(over, limits: limits) }
        let overChunks = stride(from: 0, to: over.count, by: chunkSize).map { over[$0..<min($0 + chunkSize, over.count)] }
        let overRun = readHead(overChunks, limits: limits)
        #expect(overRun.error == .headerTooLarge)
        #expect(overRun.maxBuffered <= 8192)
    }

    @Test func startsOverAfterAHead() {
        // Two requests in a row through one reader (keep-alive plain HTTP).
        var reader = HTTPHeadReader()
        let first = Array("GET /one HTTP/1.1\r\n\r\nGET /t".utf8)
        let second = Array("wo HTTP/1.1\r\n\r\n".utf8)
        var targets: [String] = []
        var consumed: [Int] = []
        for bytes in [Array(first[..<21]), Array(first[21...]), second] {
            do {
                if let done = try bytes.withUnsafeBytes({ raw in try reader.feed(raw) }) {
                    targets.append(done.head.target)
                    consumed.append(done.consumed)
                }
            } catch {
                Issue.record("unexpected \(error)")
            }
        }
        #expect(targets == ["/one", "/two"])
        #expect(consumed == [21, second.count])
        #expect(reader.bufferedCount == 0)
    }

    // MARK: Errors and helpers

    @Test(arguments: [
        (HTTPHeadError.headerTooLarge, 431, "header_too_large"), (.tooManyHeaders, 431, "too_many_headers"),
        (.malformedRequestLine, 400, "malformed_request_line"), (.malformedHeader, 400, "malformed_header"),
        (.unsupportedVersion, 505, "unsupported_http_version"),
    ])
    func mapsErrorsToStatus(_ error: HTTPHeadError, _ status: Int, _ reason: String) {
        #expect(error.status == status)
        #expect(error.reason == reason)
        #expect(HandshakeRejection(error) == HandshakeRejection(status: status, reason: reason))
    }

    @Test func readsTokenListsAndKeepAlive() throws {
        let head = try parseHead("GET / HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\nConnection: x\r\n\r\n")
        #expect(head.hasToken("upgrade", in: "connection"))
        #expect(head.hasToken("x", in: "connection"))
        #expect(!head.hasToken("keep", in: "connection"))
        #expect(head.count("connection") == 2)
        #expect(head.keepAlive)
        #expect(try !parseHead("GET / HTTP/1.1\r\nConnection: Close\r\n\r\n").keepAlive)
        #expect(try !parseHead("GET / HTTP/1.0\r\n\r\n").keepAlive)
        #expect(try parseHead("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keepAlive)
    }
}
