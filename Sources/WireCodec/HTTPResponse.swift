// SPDX-License-Identifier: Apache-2.0

/// An HTTP/1.1 response.
public struct HTTPResponse: Equatable, Sendable {
    public var status: Int
    /// Names keep their case here (they go on the wire as written).
    public var headers: [HTTPHeader]
    public var body: [UInt8]

    public init(status: Int, headers: [HTTPHeader] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A JSON response with `Content-Type: application/json`.
    public static func json(status: Int, _ body: String) -> HTTPResponse {
        HTTPResponse(status: status, headers: [HTTPHeader("Content-Type", "application/json")], body: Array(body.utf8))
    }

    /// Appends the response. A header whose name or value holds CR, LF or NUL is dropped, so no
    /// value can split the response (response splitting). Status 101 gets no Content-Length.
    /// - Parameter headOnly: answer to HEAD: the headers a GET would get, no body (RFC 9110 §9.3.2).
    public func encode(into out: inout [UInt8], keepAlive: Bool = true, headOnly: Bool = false) {
        appendStatusAndHeaders(to: &out)
        if status != 101 && status != 204 && status != 304 {
            out.append(contentsOf: "Content-Length: \(body.count)\r\n".utf8)
            if !keepAlive { out.append(contentsOf: "Connection: close\r\n".utf8) }
        }
        out.append(contentsOf: "\r\n".utf8)
        if !headOnly { out.append(contentsOf: body) }
    }

    /// The status line and the safe headers.
    private func appendStatusAndHeaders(to out: inout [UInt8]) {
        out.append(contentsOf: "HTTP/1.1 \(status) \(Self.reasonPhrase(status))\r\n".utf8)
        for header in headers where header.isSafe {
            out.append(contentsOf: header.name.utf8)
            out.append(contentsOf: ": ".utf8)
            out.append(contentsOf: header.value.utf8)
            out.append(contentsOf: "\r\n".utf8)
        }
    }

    /// How a streamed body is delimited on the wire.
    public enum BodyFraming: Equatable, Sendable {
        case length(Int)
        case chunked
        /// The connection's end ends the body (an HTTP/1.0 client with no length known).
        case untilClose
    }

    /// Appends the status line and headers only, for a body that follows in pieces. `headers`
    /// must not carry Content-Length or Transfer-Encoding: `framing` decides them.
    public func encodeHead(into out: inout [UInt8], keepAlive: Bool, framing: BodyFraming) {
        appendStatusAndHeaders(to: &out)
        switch framing {
        case .length where status == 204 || status == 304 || status < 200: break   // RFC 9110 §8.6: no length here
        case .length(let n): out.append(contentsOf: "Content-Length: \(n)\r\n".utf8)
        case .chunked: out.append(contentsOf: "Transfer-Encoding: chunked\r\n".utf8)
        case .untilClose: break
        }
        if !keepAlive || framing == .untilClose { out.append(contentsOf: "Connection: close\r\n".utf8) }
        out.append(contentsOf: "\r\n".utf8)
    }

    public static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 101: return "Switching Protocols"
        case 200: return "OK"
        case 204: return "No Content"
        case 301: return "Moved Permanently"
        case 302: return "Found"
        case 304: return "Not Modified"
        case 307: return "Temporary Redirect"
        case 308: return "Permanent Redirect"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 408: return "Request Timeout"
        case 411: return "Length Required"
        case 413: return "Content Too Large"
        case 426: return "Upgrade Required"
        case 429: return "Too Many Requests"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 502: return "Bad Gateway"
        case 503: return "Service Unavailable"
        case 504: return "Gateway Timeout"
        case 505: return "HTTP Version Not Supported"
        default: return "Status"
        }
    }
}

extension HTTPHeader {
    /// No CR, LF or NUL anywhere: safe to write as one header line.
    var isSafe: Bool {
        !name.isEmpty && !name.utf8.contains { $0 == 0x0d || $0 == 0x0a || $0 == 0 || $0 == UInt8(ascii: ":") }
            && !value.utf8.contains { $0 == 0x0d || $0 == 0x0a || $0 == 0 }
    }
}
