// SPDX-License-Identifier: Apache-2.0
import Testing
import WireCodec

private func parseResponse(_ text: String) throws(HTTPHeadError) -> HTTPResponseHead {
    var outcome: Result<HTTPResponseHead, HTTPHeadError> = .failure(.malformedRequestLine)
    Array(text.utf8).withUnsafeBytes { raw in
        do throws(HTTPHeadError) { outcome = .success(try HTTPHeadParser.parseResponse(raw)) } catch { outcome = .failure(error) }
    }
    return try outcome.get()
}

@Suite struct HTTPResponseHeadTests {
    @Test func parsesStatusAndHeaders() throws {
        let head = try parseResponse("HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n")
        #expect(head.status == 201)
        #expect(head.minorVersion == 1)
        #expect(head.value("content-type") == "application/json")
        #expect(try head.bodyFraming(requestMethod: "POST") == .length(12))
        #expect(head.keepAlive)
    }

    @Test func emptyReasonPhraseIsAccepted() throws {
        #expect(try parseResponse("HTTP/1.1 204\r\n\r\n").status == 204)
    }

    @Test(arguments: ["HTTP/1.1 2x0 OK\r\n\r\n", "HTTP/1.1  200 OK\r\n\r\n", "HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n", "ICY 200 OK\r\n\r\n",
                      "HTTP/1.1 099 Low\r\n\r\n"])
    func rejectsMalformedHeads(_ text: String) {
        #expect(throws: HTTPHeadError.self) { try parseResponse(text) }
    }

    @Test func http2StatusLineIsUnsupported() {
        #expect(throws: HTTPHeadError.unsupportedVersion) { try parseResponse("HTTP/2 200\r\n\r\n") }
    }

    @Test func framingFollowsRFC9112() throws {
        #expect(try parseResponse("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 5\r\n\r\n").bodyFraming(requestMethod: "GET") == .chunked)
        #expect(try parseResponse("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n").bodyFraming(requestMethod: "GET") == .untilClose)
        #expect(try parseResponse("HTTP/1.1 200 OK\r\n\r\n").bodyFraming(requestMethod: "GET") == .untilClose)
        #expect(try parseResponse("HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n").bodyFraming(requestMethod: "HEAD") == .length(0))
        #expect(try parseResponse("HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n").bodyFraming(requestMethod: "GET") == .length(0))
        #expect(try parseResponse("HTTP/1.1 200 OK\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n").bodyFraming(requestMethod: "GET") == .length(7))
        #expect(throws: HTTPHeadError.self) { try parseResponse("HTTP/1.1 200 OK\r\nContent-Length: 7\r\nContent-Length: 8\r\n\r\n").bodyFraming(requestMethod: "GET") }
        #expect(throws: HTTPHeadError.self) { try parseResponse("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n").bodyFraming(requestMethod: "GET") }
    }

    @Test func keepAliveByVersionAndConnectionHeader() throws {
        #expect(!(try parseResponse("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n").keepAlive))
        #expect(!(try parseResponse("HTTP/1.0 200 OK\r\n\r\n").keepAlive))
        #expect(try parseResponse("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\n\r\n").keepAlive)
    }

    @Test func streamedHeadCarriesFramingHeaders() {
        var out: [UInt8] = []
        HTTPResponse(status: 200, headers: [HTTPHeader("X-A", "1")]).encodeHead(into: &out, keepAlive: true, framing: .chunked)
        #expect(String(decoding: out, as: UTF8.self) == "HTTP/1.1 200 OK\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\n\r\n")
        out = []
        HTTPResponse(status: 502).encodeHead(into: &out, keepAlive: true, framing: .untilClose)
        #expect(String(decoding: out, as: UTF8.self) == "HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\n\r\n")
    }
}

@Suite struct ChunkedDecoderTests {
    /// Decodes `input` fed in pieces of `step` bytes; returns the body and the bytes used.
    private func decode(_ input: String, step: Int) throws(ChunkedDecoder.Failure) -> (String, Int, Bool) {
        var decoder = ChunkedDecoder()
        var out: [UInt8] = []
        let bytes = Array(input.utf8)
        var used = 0
        var offset = 0
        while offset < bytes.count, !decoder.isDone {
            let piece = Array(bytes[offset..<min(bytes.count, offset + step)])
            var n = 0
            var failure: ChunkedDecoder.Failure?
            piece.withUnsafeBytes { raw in
                do throws(ChunkedDecoder.Failure) { n = try decoder.decode(raw, into: &out) } catch { failure = error }
            }
            if let failure { throw failure }
            used += n
            offset += piece.count
        }
        return (String(decoding: out, as: UTF8.self), used, decoder.isDone)
    }

    @Test(arguments: [1, 2, 3, 7, 1000])
    func decodesInAnySplit(_ step: Int) throws {
        let wire = "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nTrailer: x\r\n\r\nNEXT"
        let (body, used, done) = try decode(wire, step: step)
        #expect(body == "hello, world")
        #expect(done)
        #expect(used == wire.utf8.count - 4)   // "NEXT" belongs to what follows
    }

    @Test func upperCaseHexSizes() throws {
        let (body, _, done) = try decode("A\r\n0123456789\r\n0\r\n\r\n", step: 4)
        #expect(body == "0123456789" && done)
    }

    @Test(arguments: ["x\r\n", "5\r\nhelloX\r\n", "\r\n", "5\nhello\r\n", "FFFFFFFFFFFFFFFF\r\n"])
    func rejectsMalformedInput(_ wire: String) {
        #expect(throws: ChunkedDecoder.Failure.self) { try decode(wire, step: 3) }
    }
}
