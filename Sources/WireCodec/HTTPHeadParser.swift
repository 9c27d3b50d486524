// SPDX-License-Identifier: Apache-2.0

/// Parses an HTTP/1.1 request head. Strict: CRLF line ends, no obs-fold, no whitespace before a
/// header's colon, no control characters in values (RFC 9112 §2.2, §5.1, §5.2).
public enum HTTPHeadParser {
    /// The index just past the `\r\n\r\n` that ends the head, searching from `from`.
    public static func findEnd(_ bytes: UnsafeRawBufferPointer, from: Int = 0) -> Int? {
        var i = max(from, 0)
        let n = bytes.count
        while i + 3 < n {
            // Performance: step by 4 where the byte cannot be part of the terminator.
            let b = bytes[i + 3]
            if b != 0x0a && b != 0x0d { i += 4; continue }
            if bytes[i] == 0x0d, bytes[i + 1] == 0x0a, bytes[i + 2] == 0x0d, bytes[i + 3] == 0x0a { return i + 4 }
            i += 1
        }
        return nil
    }

    /// Parses a complete head (`bytes` ends with the blank line).
    public static func parse(_ bytes: UnsafeRawBufferPointer, limits: HTTPHeadLimits = HTTPHeadLimits()) throws(HTTPHeadError) -> HTTPRequestHead {
        guard case (.request(var head), let headers) = try parseLines(bytes, limits: limits, response: false) else { throw .malformedRequestLine }
        head.headers = headers
        return head
    }

    /// A head's first line, parsed as a request's or a response's.
    enum StartLine {
        case request(HTTPRequestHead)
        case response(HTTPResponseHead)
    }

    /// Splits a complete head into lines: the start line (parsed first, so its error comes
    /// first), then the headers, within `limits`.
    static func parseLines(_ bytes: UnsafeRawBufferPointer, limits: HTTPHeadLimits, response: Bool) throws(HTTPHeadError) -> (StartLine, [HTTPHeader]) {
        guard bytes.count <= limits.maxHeaderBytes else { throw .headerTooLarge }
        var lineStart = 0
        var start: StartLine?
        var headers: [HTTPHeader] = []
        var i = 0
        let n = bytes.count
        while i + 1 < n {
            guard bytes[i] == 0x0d || bytes[i] == 0x0a else { i += 1; continue }
            // RFC 9112 §2.2: a bare CR or LF is not a line end here.
            guard bytes[i] == 0x0d, bytes[i + 1] == 0x0a else {
                throw start == nil ? .malformedRequestLine : .malformedHeader
            }
            let line = UnsafeRawBufferPointer(rebasing: bytes[lineStart..<i])
            i += 2
            lineStart = i
            if start == nil {
                start = response ? .response(try parseStatusLine(line)) : .request(try parseRequestLine(line))
            } else if line.isEmpty {
                return (start!, headers)
            } else {
                guard headers.count < limits.maxHeaderCount else { throw .tooManyHeaders }
                headers.append(try parseHeader(line))
            }
        }
        throw start == nil ? .malformedRequestLine : .malformedHeader
    }

    private static func parseRequestLine(_ line: UnsafeRawBufferPointer) throws(HTTPHeadError) -> HTTPRequestHead {
        // method SP request-target SP HTTP-version
        guard let sp1 = line.firstIndex(of: 0x20), sp1 > 0 else { throw .malformedRequestLine }
        let rest = line[(sp1 + 1)...]
        guard let sp2 = rest.firstIndex(of: 0x20), sp2 > sp1 + 1 else { throw .malformedRequestLine }
        let method = line[..<sp1]
        let target = line[(sp1 + 1)..<sp2]
        let version = line[(sp2 + 1)...]
        guard method.allSatisfy(isTokenByte) else { throw .malformedRequestLine }
        guard target.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else { throw .malformedRequestLine }
        guard version.count == 8, version.starts(with: Array("HTTP/1.".utf8)) else {
            if version.starts(with: Array("HTTP/".utf8)) { throw .unsupportedVersion }
            throw .malformedRequestLine
        }
        let minor = version[version.endIndex - 1]
        guard minor == UInt8(ascii: "0") || minor == UInt8(ascii: "1") else { throw .unsupportedVersion }
        return HTTPRequestHead(
            method: String(decoding: method, as: UTF8.self),
            target: String(decoding: target, as: UTF8.self),
            minorVersion: Int(minor - UInt8(ascii: "0")),
            headers: [])
    }

    static func parseHeader(_ line: UnsafeRawBufferPointer) throws(HTTPHeadError) -> HTTPHeader {
        // field-name ":" OWS field-value OWS; no obs-fold, no space before the colon.
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > 0 else { throw .malformedHeader }
        var name = [UInt8]()
        name.reserveCapacity(colon)
        for b in line[..<colon] {
            guard isTokenByte(b) else { throw .malformedHeader }
            name.append(b >= 0x41 && b <= 0x5a ? b | 0x20 : b)
        }
        var start = colon + 1
        var end = line.count
        while start < end, line[start] == 0x20 || line[start] == 0x09 { start += 1 }
        while end > start, line[end - 1] == 0x20 || line[end - 1] == 0x09 { end -= 1 }
        let value = line[start..<end]
        // VCHAR, SP, HTAB and obs-text only: never CR, LF or NUL.
        guard value.allSatisfy({ $0 >= 0x20 && $0 != 0x7f || $0 == 0x09 }) else { throw .malformedHeader }
        return HTTPHeader(String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self))
    }

    /// RFC 9110 §5.6.2 tchar.
    @inline(__always)
    static func isTokenByte(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"),
            UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "_"),
            UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }
}

/// Gathers a request head across reads, within `limits.maxHeaderBytes`.
public struct HTTPHeadReader: Sendable {
    public var limits: HTTPHeadLimits
    private var buffer: [UInt8] = []

    public init(limits: HTTPHeadLimits = HTTPHeadLimits()) {
        self.limits = limits
    }

    /// Bytes held while waiting for the rest of the head.
    public var bufferedCount: Int { buffer.count }

    /// Feeds bytes. Returns the head and how many of `bytes` it used once the head is complete;
    /// the rest belong to what follows (a body, or WebSocket frames).
    public mutating func feed(_ bytes: UnsafeRawBufferPointer) throws(HTTPHeadError) -> (head: HTTPRequestHead, consumed: Int)? {
        if buffer.isEmpty {
            // Fast path: the whole head came in one read; parse in place.
            if let end = HTTPHeadParser.findEnd(bytes) {
                return (try HTTPHeadParser.parse(UnsafeRawBufferPointer(rebasing: bytes[..<end]), limits: limits), end)
            }
            guard bytes.count < limits.maxHeaderBytes else { throw .headerTooLarge }
            buffer = Array(bytes)
            return nil
        }
        let old = buffer.count
        let take = min(bytes.count, limits.maxHeaderBytes - old)
        buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[..<take]))
        let found = buffer.withUnsafeBytes { HTTPHeadParser.findEnd($0, from: old - 3) }
        guard let end = found else {
            if buffer.count >= limits.maxHeaderBytes { throw .headerTooLarge }
            return nil
        }
        var result: Result<HTTPRequestHead, HTTPHeadError> = .failure(.malformedRequestLine)
        buffer.withUnsafeBytes { raw in
            do throws(HTTPHeadError) {
                result = .success(try HTTPHeadParser.parse(UnsafeRawBufferPointer(rebasing: raw[..<end]), limits: limits))
            } catch {
                result = .failure(error)
            }
        }
        buffer = []
        return (try result.get(), end - old)
    }
}
