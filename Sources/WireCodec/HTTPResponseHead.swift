// SPDX-License-Identifier: Apache-2.0

/// An HTTP/1.x response's status line and headers (names lowercased), as a client reads them.
public struct HTTPResponseHead: Equatable, Sendable {
    public var status: Int
    public var minorVersion: Int
    public var headers: [HTTPHeader]

    public init(status: Int, minorVersion: Int = 1, headers: [HTTPHeader]) {
        self.status = status
        self.minorVersion = minorVersion
        self.headers = headers
    }

    public func values(_ name: String) -> [String] { headers.filter { $0.name == name }.map(\.value) }
    public func value(_ name: String) -> String? { headers.first { $0.name == name }?.value }

    /// Whether a comma-separated header holds `token` (case-insensitive).
    public func hasToken(_ token: String, in name: String) -> Bool {
        values(name).contains { $0.split(separator: ",").contains { $0.trimmingOWS.lowercased() == token } }
    }

    /// How the body that follows is delimited (RFC 9112 §6.3), for a response to a request of
    /// `method`. Throws on a length that cannot be trusted.
    public func bodyFraming(requestMethod method: String) throws(HTTPHeadError) -> HTTPResponse.BodyFraming {
        if method == "HEAD" || status == 204 || status == 304 || (100..<200).contains(status) { return .length(0) }
        let encodings = values("transfer-encoding")
        if !encodings.isEmpty {
            // Chunked must be the final encoding; anything else is read until close (§6.3 ¶4).
            let last = encodings.last!.split(separator: ",").last.map { $0.trimmingOWS.lowercased() }
            return last == "chunked" ? .chunked : .untilClose
        }
        let lengths = values("content-length")
        guard !lengths.isEmpty else { return .untilClose }
        // Several equal values are one length (§6.3 ¶5); anything else is an error.
        let parsed = Set(lengths.flatMap { $0.split(separator: ",").map { Int($0.trimmingOWS) } })
        guard parsed.count == 1, let only = parsed.first, let length = only, length >= 0 else { throw .malformedHeader }
        return .length(length)
    }

    /// Whether the connection may carry another request after this response.
    public var keepAlive: Bool {
        minorVersion >= 1 ? !hasToken("close", in: "connection") : hasToken("keep-alive", in: "connection")
    }
}

extension HTTPHeadParser {
    /// Parses a complete response head (`bytes` ends with the blank line).
    public static func parseResponse(_ bytes: UnsafeRawBufferPointer, limits: HTTPHeadLimits = HTTPHeadLimits()) throws(HTTPHeadError) -> HTTPResponseHead {
        guard case (.response(var head), let headers) = try parseLines(bytes, limits: limits, response: true) else { throw .malformedRequestLine }
        head.headers = headers
        return head
    }

    /// `HTTP/1.x SP 3DIGIT SP reason-phrase` (the reason may be empty).
    static func parseStatusLine(_ line: UnsafeRawBufferPointer) throws(HTTPHeadError) -> HTTPResponseHead {
        guard line.count >= 12, line.starts(with: Array("HTTP/1.".utf8)), line[8] == 0x20 else {
            if line.starts(with: Array("HTTP/".utf8)) { throw .unsupportedVersion }
            throw .malformedRequestLine
        }
        let minor = line[7]
        guard minor == UInt8(ascii: "0") || minor == UInt8(ascii: "1") else { throw .unsupportedVersion }
        var status = 0
        for b in line[9..<12] {
            guard b >= 0x30 && b <= 0x39 else { throw .malformedRequestLine }
            status = status * 10 + Int(b - 0x30)
        }
        guard status >= 100, line.count == 12 || line[12] == 0x20 else { throw .malformedRequestLine }
        return HTTPResponseHead(status: status, minorVersion: Int(minor - 0x30), headers: [])
    }
}
