// SPDX-License-Identifier: Apache-2.0
import COpenSSL

/// The identity Doorman vouches for on a forwarded call, and the HMAC-SHA-256 that lets an
/// upstream trust it. Version 2 signs, one per line (`\n`), in this order:
///
///     v2
///     <method>                 POST
///     <target>                 /checkIn?x=1   (the path and query as sent to the upstream)
///     <upstream>               X-Doorman-Upstream (the upstream's name in Doorman's configuration)
///     <timestamp>              X-Doorman-Timestamp (Unix seconds)
///     <request id>             X-Doorman-Request-Id (random; an upstream refuses one seen before)
///     <user>                   X-Doorman-User
///     <key>                    X-Doorman-Key (the key's id, never its secret)
///     <scopes>                 X-Doorman-Scopes (a JSON array, ASCII: the patterns the session may use in full)
///     <properties>             X-Doorman-Properties (a JSON array, ASCII)
///     <property>               X-Doorman-Property (the property the call is on; empty if none)
///     <sha256(body) hex>
///
/// and sends `X-Doorman-Signature: v2=<hex>`. Every `X-Doorman-*` header Doorman sends is in it
/// (`headers` lists them; nothing else may add one). An upstream recomputes it from what it
/// received — with its own name as the upstream, so a call signed for another upstream sharing
/// its secret fails — compares in constant time, refuses a timestamp more than `maxSkew` seconds
/// away and a request id it has already seen within that window (a replay).
public struct UpstreamSignature: Equatable, Sendable {
    public var method: String
    public var target: String
    public var upstream: String
    public var timestamp: Int
    public var requestID: String
    public var user: String
    public var key: String
    public var scopes: String
    public var properties: String
    public var property: String

    public static let version = "v2"
    /// Seconds a signed request stays acceptable (both ways, for clock differences).
    public static let maxSkew = 300

    public init(method: String, target: String, upstream: String, timestamp: Int, requestID: String, user: String, key: String,
                scopes: [String], properties: [String], property: String?) {
        self.init(method: method, target: target, upstream: upstream, timestamp: timestamp, requestID: requestID, user: user, key: key,
                  scopesHeader: Self.asciiJSON(scopes), propertiesHeader: Self.asciiJSON(properties), property: property ?? "")
    }

    /// From header values as received (an upstream's view); `upstream` is the verifier's own name.
    public init(method: String, target: String, upstream: String, timestamp: Int, requestID: String, user: String, key: String,
                scopesHeader: String, propertiesHeader: String, property: String) {
        self.method = method
        self.target = target
        self.upstream = upstream
        self.timestamp = timestamp
        self.requestID = requestID
        self.user = user
        self.key = key
        self.scopes = scopesHeader
        self.properties = propertiesHeader
        self.property = property
    }

    /// The identity headers, in signing order: every `X-Doorman-*` header a call carries but the
    /// signature itself.
    public var headers: [(name: String, value: String)] {
        [("X-Doorman-Upstream", upstream), ("X-Doorman-Timestamp", String(timestamp)), ("X-Doorman-Request-Id", requestID),
         ("X-Doorman-User", user), ("X-Doorman-Key", key), ("X-Doorman-Scopes", scopes),
         ("X-Doorman-Properties", properties), ("X-Doorman-Property", property)]
    }

    /// The lines the HMAC covers, but the body's digest.
    private var lines: [String] {
        [Self.version, method, target] + headers.map(\.value)
    }

    /// The text the HMAC covers.
    public func canonical(bodyDigest: String) -> String {
        (lines + [bodyDigest]).joined(separator: "\n")
    }

    /// `v2=<hex>` for `body` under `secret`.
    public func sign(body: [UInt8], secret: [UInt8]) -> String {
        Self.version + "=" + Self.hex(Self.hmac(Array(canonical(bodyDigest: Self.hex(Self.sha256(body))).utf8), secret: secret))
    }

    /// The same, under a key whose HMAC schedule is prepared once (the gateway's side, per call).
    public func sign(body: [UInt8], key: UpstreamSigningKey) -> String {
        var text: [UInt8] = []
        text.reserveCapacity(256)
        for part in lines {
            text += part.utf8
            text.append(0x0a)
        }
        text += Self.hex(Self.sha256(body)).utf8
        return Self.version + "=" + Self.hex(key.mac(text))
    }

    /// Checks a received signature: right HMAC (constant-time compare) and a timestamp within `maxSkew` of `now`.
    /// Replays are the caller's to catch (remember request ids for `maxSkew` seconds).
    public func verify(_ header: String, body: [UInt8], secret: [UInt8], now: Int) -> Bool {
        guard abs(now - timestamp) <= Self.maxSkew else { return false }
        let expected = Array(sign(body: body, secret: secret).utf8)
        let given = Array(header.utf8)
        guard expected.count == given.count else { return false }
        return expected.withUnsafeBytes { a in given.withUnsafeBytes { b in CRYPTO_memcmp(a.baseAddress, b.baseAddress, a.count) == 0 } }
    }

    // MARK: - Pieces

    public static func sha256(_ bytes: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        _ = bytes.withUnsafeBufferPointer { i in out.withUnsafeMutableBufferPointer { o in doorman_sha256(i.baseAddress, i.count, o.baseAddress) } }
        return out
    }

    public static func hmac(_ data: [UInt8], secret: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 32
        _ = secret.withUnsafeBytes { k in
            data.withUnsafeBufferPointer { d in
                out.withUnsafeMutableBufferPointer { o in
                    HMAC(EVP_sha256(), k.baseAddress, Int32(k.count), d.baseAddress, d.count, o.baseAddress, &length)
                }
            }
        }
        return out
    }

    public static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 0xf)]) }
        return String(decoding: out, as: UTF8.self)
    }

    /// A JSON array of strings with everything outside printable ASCII escaped (`\uXXXX`), so it
    /// is a safe header value whatever the names hold.
    public static func asciiJSON(_ strings: [String]) -> String {
        var out = "["
        for (n, s) in strings.enumerated() {
            if n > 0 { out += "," }
            out += "\""
            for unit in s.utf16 {
                switch unit {
                case 0x22: out += "\\\""
                case 0x5c: out += "\\\\"
                case 0x20..<0x7f: out.unicodeScalars.append(Unicode.Scalar(UInt8(unit)))
                default:
                    let h = String(unit, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
                }
            }
            out += "\""
        }
        return out + "]"
    }
}

/// An upstream's HMAC-SHA-256 key with its schedule computed once; each message copies it.
/// Shared by every loop: copying only reads it.
public final class UpstreamSigningKey: @unchecked Sendable {
    private let context: OpaquePointer

    public init?(secret: [UInt8]) {
        guard let made = secret.withUnsafeBytes({ doorman_hmac_sha256_new($0.baseAddress, $0.count) }) else { return nil }
        context = made
    }

    deinit { EVP_MAC_CTX_free(context) }

    /// HMAC-SHA-256 of `data`.
    public func mac(_ data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        let ok = data.withUnsafeBytes { d in out.withUnsafeMutableBytes { o in doorman_hmac_sha256(context, d.baseAddress, d.count, o.baseAddress) } }
        precondition(ok == 1, "HMAC-SHA-256 failed")
        return out
    }
}
