// SPDX-License-Identifier: Apache-2.0

// libFuzzer entry for `HTTPHeadReader` + `WebSocketHandshake.validate` + `HTTPResponse`. Built by
// scripts/fuzz.sh:
//   swiftc -sanitize=fuzzer,address -parse-as-library -O Sources/WireCodec/*.swift Tests/Fuzz/Handshake.swift
//
// Input layout:  [config] [request bytes ...]
//   config bits 0-5: chunk size - 1 (the request arrives in reads of 1...64 bytes)
//
// Checks, each a crash when it fails:
//   1. the reader never holds more than maxHeaderBytes, and chunked and whole reads agree on the head,
//      where it ends, and the error;
//   2. a valid upgrade's accept key is the RFC 6455 §4.2.2 value, 28 base64 characters;
//   3. every response we would send (101, rejection, or one echoing fuzzed header lines) has its blank
//      line exactly before the body, and no CR, LF or NUL inside a header line.

/// Limits small enough that the fuzzer reaches them.
private let limits = HTTPHeadLimits(maxHeaderBytes: 2048, maxHeaderCount: 32)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHandshake(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let chunkSize = Int(data[0] & 0x3f) + 1
    let bytes = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))

    let chunked = read(bytes.chunks(of: chunkSize))
    let whole = read([bytes[...]])
    check(chunked.head == whole.head && chunked.end == whole.end, "chunking changed the head")
    check(chunked.error == whole.error, "chunking changed the error")

    if let head = chunked.head {
        switch WebSocketHandshake.validate(head) {
        case .success(let upgrade):
            check(upgrade.accept == WebSocketHandshake.acceptValue(for: upgrade.key), "wrong accept key")
            check(upgrade.accept.utf8.count == 28, "accept key is not 20 bytes of base64")
            var out: [UInt8] = []
            WebSocketHandshake.appendResponse(
                accept: upgrade.accept, protocol: upgrade.protocols.first,
                extensions: upgrade.extensions.isEmpty ? nil : upgrade.extensions.joined(separator: ", "), to: &out)
            checkResponse(out, bodyCount: 0)
        case .failure(let rejection):
            checkEncoding(rejection.response)
        }
        // Echo every request header back, as a careless handler might.
        checkEncoding(HTTPResponse(status: 200, headers: head.headers, body: Array(bytes.prefix(16))))
    } else if let error = chunked.error {
        checkEncoding(HandshakeRejection(error).response)
    }

    // Raw fuzz bytes as header names and values (the parser never produces CR or LF; this does).
    let pieces = bytes.split(separator: 0x7c, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
    var headers: [HTTPHeader] = []
    var i = 0
    while i + 1 < pieces.count {
        headers.append(HTTPHeader(pieces[i], pieces[i + 1]))
        i += 2
    }
    checkEncoding(HTTPResponse(status: Int(data[0]) + 100, headers: headers, body: bytes))
    return 0
}

/// What a reader made of the stream: the head and the stream offset just past it, or the error.
private func read(_ chunks: [ArraySlice<UInt8>]) -> (head: HTTPRequestHead?, end: Int?, error: HTTPHeadError?) {
    var reader = HTTPHeadReader(limits: limits)
    var offset = 0
    for chunk in chunks {
        var result: Result<(head: HTTPRequestHead, consumed: Int)?, HTTPHeadError> = .success(nil)
        Array(chunk).withUnsafeBytes { raw in
            do throws(HTTPHeadError) {
                result = .success(try reader.feed(raw))
            } catch {
                result = .failure(error)
            }
        }
        check(reader.bufferedCount <= limits.maxHeaderBytes, "reader buffered past its limit")
        switch result {
        case .success(nil):
            offset += chunk.count
        case .success(let done?):
            check(done.consumed >= 0 && done.consumed <= chunk.count, "consumed out of range")
            check(offset + done.consumed <= limits.maxHeaderBytes, "head longer than the limit")
            return (done.head, offset + done.consumed, nil)
        case .failure(let error):
            return (nil, nil, error)
        }
    }
    return (nil, nil, nil)
}

private func checkEncoding(_ response: HTTPResponse) {
    var out: [UInt8] = []
    response.encode(into: &out, keepAlive: response.status % 2 == 0)
    checkResponse(out, bodyCount: response.body.count)
}

/// The head ends exactly where the body starts, and inside it CR and LF only appear as CRLF line
/// ends, with no NUL: no header value can have added a line or ended the head early.
private func checkResponse(_ out: [UInt8], bodyCount: Int) {
    let end = out.withUnsafeBytes { HTTPHeadParser.findEnd($0) }
    check(end == out.count - bodyCount, "response head ends in the wrong place (response splitting)")
    let head = out[..<(out.count - bodyCount)]
    var i = head.startIndex
    while i < head.endIndex {
        let b = head[i]
        check(b != 0, "NUL in a response head")
        if b == 0x0d { check(i + 1 < head.endIndex && head[i + 1] == 0x0a, "bare CR in a response head") }
        if b == 0x0a { check(i > head.startIndex && head[i - 1] == 0x0d, "bare LF in a response head") }
        i += 1
    }
    // Every line after the status line is `name: value`.
    let lines = head.split(separator: 0x0a).map { $0.dropLast() }   // drop each line's CR
    for line in lines.dropFirst() where !line.isEmpty {
        check(line.contains(UInt8(ascii: ":")), "header line without a colon")
    }
}

/// `precondition` that names the broken property in -O builds too (there `precondition` traps
/// without its message, and a fuzz report without the message is hard to read).
private func check(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fatalError(message()) }
}

extension Array {
    /// Consecutive slices of at most `size` elements.
    fileprivate func chunks(of size: Int) -> [ArraySlice<Element>] {
        stride(from: 0, to: count, by: size).map { self[$0..<Swift.min($0 + size, count)] }
    }
}
