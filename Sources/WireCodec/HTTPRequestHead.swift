// SPDX-License-Identifier: Apache-2.0

/// One header line; the name is stored lowercased.
public struct HTTPHeader: Equatable, Sendable {
    public var name: String
    public var value: String

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// A parsed HTTP/1.1 request line and header block (RFC 9112 §3, §5).
public struct HTTPRequestHead: Equatable, Sendable {
    public var method: String
    public var target: String
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    public var minorVersion: Int
    public var headers: [HTTPHeader]

    public init(method: String, target: String, minorVersion: Int = 1, headers: [HTTPHeader]) {
        self.method = method
        self.target = target
        self.minorVersion = minorVersion
        self.headers = headers
    }

    /// The target without its query string.
    public var path: Substring {
        target.firstIndex(of: "?").map { target[..<$0] } ?? target[...]
    }

    /// Every value of a header (name given in lowercase), in order.
    public func values(_ name: String) -> [String] {
        headers.compactMap { $0.name == name ? $0.value : nil }
    }

    /// The first value of a header (name given in lowercase).
    public func value(_ name: String) -> String? {
        headers.first { $0.name == name }?.value
    }

    /// How often a header appears.
    public func count(_ name: String) -> Int {
        headers.reduce(0) { $0 + ($1.name == name ? 1 : 0) }
    }

    /// True when a comma-separated header list (all its lines) holds `token`, case-insensitively.
    public func hasToken(_ token: String, in name: String) -> Bool {
        values(name).contains { line in
            line.split(separator: ",").contains { $0.trimmingOWS.lowercased() == token }
        }
    }

    /// Whether the connection stays open after the response (RFC 9112 §9.3).
    public var keepAlive: Bool {
        if hasToken("close", in: "connection") { return false }
        return minorVersion >= 1 || hasToken("keep-alive", in: "connection")
    }
}

extension Substring {
    /// Without leading and trailing spaces and tabs (RFC 9110 §5.6.3 OWS).
    public var trimmingOWS: Substring {
        var s = self
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return s
    }
}

/// Why a request head was refused; each maps to one HTTP status.
public enum HTTPHeadError: Error, Equatable, Sendable {
    case headerTooLarge
    case tooManyHeaders
    case malformedRequestLine
    case malformedHeader
    case unsupportedVersion

    public var status: Int {
        switch self {
        case .headerTooLarge, .tooManyHeaders: return 431
        case .unsupportedVersion: return 505
        case .malformedRequestLine, .malformedHeader: return 400
        }
    }

    public var reason: String {
        switch self {
        case .headerTooLarge: return "header_too_large"
        case .tooManyHeaders: return "too_many_headers"
        case .malformedRequestLine: return "malformed_request_line"
        case .malformedHeader: return "malformed_header"
        case .unsupportedVersion: return "unsupported_http_version"
        }
    }
}

/// Limits on a request head.
public struct HTTPHeadLimits: Sendable, Equatable {
    /// Request line plus headers plus the blank line, in bytes.
    public var maxHeaderBytes: Int
    /// Header lines.
    public var maxHeaderCount: Int

    public init(maxHeaderBytes: Int = 8192, maxHeaderCount: Int = 64) {
        self.maxHeaderBytes = maxHeaderBytes
        self.maxHeaderCount = maxHeaderCount
    }
}
