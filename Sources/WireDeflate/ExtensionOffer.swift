// SPDX-License-Identifier: Apache-2.0

/// One element of a `Sec-WebSocket-Extensions` list: an extension name and its parameters.
///
/// RFC 6455 §9.1:
///
///     Sec-WebSocket-Extensions = extension-list
///     extension-list = 1#extension
///     extension = extension-token *( ";" extension-param )
///     extension-token = registered-token
///     registered-token = token
///     extension-param = token [ "=" (token | quoted-string) ]
///         ;When using the quoted-string syntax variant, the value
///         ;after quoted-string unescaping MUST conform to the
///         ;'token' ABNF.
///
/// with optional whitespace around `,`, `;` and `=` (RFC 9110 §5.6.1 list rule). Names are
/// compared case-insensitively, so they are stored lowercased; values are kept as sent, quotes
/// removed.
public struct ExtensionOffer: Equatable, Sendable {
    /// `name` or `name=value`; `value` is nil for a bare name.
    public struct Parameter: Equatable, Sendable {
        public var name: String
        public var value: String?

        public init(_ name: String, _ value: String? = nil) {
            self.name = name
            self.value = value
        }
    }

    public var name: String
    public var parameters: [Parameter]

    public init(name: String, parameters: [Parameter] = []) {
        self.name = name
        self.parameters = parameters
    }

    /// The offers in `headerValues`, in order. Each value may hold a list (`a, b; x=1`) or one
    /// element (as `WebSocketUpgrade.extensions` hands them over). An element that breaks the
    /// grammar is left out: a server declines what it cannot read (RFC 7692 §5.1), and the
    /// elements after it are still read.
    public static func parse(_ headerValues: [String]) -> [ExtensionOffer] {
        var offers: [ExtensionOffer] = []
        for value in headerValues {
            var reader = Reader(Array(value.utf8))
            while let element = reader.nextElement() {
                if let offer = element { offers.append(offer) }
            }
        }
        return offers
    }
}

/// A cursor over one header value.
private struct Reader {
    let bytes: [UInt8]
    var index = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var peek: UInt8? { index < bytes.count ? bytes[index] : nil }

    /// The next list element: `.some(nil)` for a malformed one, `nil` at the end.
    mutating func nextElement() -> ExtensionOffer?? {
        while true {
            skipWhitespace()
            guard let byte = peek else { return nil }
            if byte == UInt8(ascii: ",") { index += 1; continue }   // empty elements are allowed
            break
        }
        if let offer = element(), peek == nil || peek == UInt8(ascii: ",") { return .some(offer) }
        skipPastElement()
        return .some(nil)
    }

    private mutating func element() -> ExtensionOffer? {
        guard let name = token() else { return nil }
        var offer = ExtensionOffer(name: name.lowercasedASCII)
        while true {
            skipWhitespace()
            guard peek == UInt8(ascii: ";") else { return offer }
            index += 1
            skipWhitespace()
            guard let parameter = token() else { return nil }
            skipWhitespace()
            var value: String?
            if peek == UInt8(ascii: "=") {
                index += 1
                skipWhitespace()
                guard let v = peek == UInt8(ascii: "\"") ? quotedToken() : token() else { return nil }
                value = v
            }
            offer.parameters.append(.init(parameter.lowercasedASCII, value))
        }
    }

    /// RFC 9110 §5.6.2: token = 1*tchar.
    private mutating func token() -> String? {
        let start = index
        while let byte = peek, byte.isTokenCharacter { index += 1 }
        return index > start ? String(decoding: bytes[start..<index], as: UTF8.self) : nil
    }

    /// RFC 9110 §5.6.4 quoted-string whose unescaped content is a token (RFC 6455 §9.1).
    private mutating func quotedToken() -> String? {
        index += 1   // opening quote
        var content: [UInt8] = []
        while let byte = peek {
            index += 1
            switch byte {
            case UInt8(ascii: "\""):
                guard !content.isEmpty, content.allSatisfy(\.isTokenCharacter) else { return nil }
                return String(decoding: content, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard let escaped = peek else { return nil }
                index += 1
                content.append(escaped)
            default:
                content.append(byte)
            }
        }
        return nil   // unterminated
    }

    private mutating func skipWhitespace() {
        while let byte = peek, byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") { index += 1 }
    }

    /// Skips to just after the next `,` outside a quoted string (or to the end).
    private mutating func skipPastElement() {
        var quoted = false
        while let byte = peek {
            index += 1
            if quoted {
                if byte == UInt8(ascii: "\\") { index += 1 } else if byte == UInt8(ascii: "\"") { quoted = false }
            } else if byte == UInt8(ascii: "\"") {
                quoted = true
            } else if byte == UInt8(ascii: ",") {
                return
            }
        }
    }
}

extension UInt8 {
    /// RFC 9110 §5.6.2 tchar: "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
    /// "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA.
    fileprivate var isTokenCharacter: Bool {
        switch self {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
             UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
             UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }
}

extension String {
    fileprivate var lowercasedASCII: String {
        String(decoding: utf8.map { (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0) ? $0 + 32 : $0 }, as: UTF8.self)
    }
}
