// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatewayCore
import Logging
import Synchronization
import Transport
import WireCodec

/// Calls from keys to upstream services: the configured upstreams, their circuit breakers, and
/// the signed request every call becomes. Per-loop connection pools live in each loop's hub.
final class CallService: Sendable {
    let upstreams: [String: UpstreamService]
    let policy: CallPolicy
    let breakers: [String: CircuitBreaker]
    /// Each upstream's HMAC key, its schedule prepared once.
    let signingKeys: [String: UpstreamSigningKey]
    let logger: Logger
    let loops: Int

    init(upstreams: [UpstreamService], policy: CallPolicy, loops: Int, logger: Logger) {
        self.upstreams = Dictionary(upstreams.map { ($0.name, $0) }, uniquingKeysWith: { _, last in last })
        self.policy = policy
        self.loops = loops
        self.logger = logger
        signingKeys = Dictionary(upstreams.compactMap { u in UpstreamSigningKey(secret: u.secret).map { (u.name, $0) } },
                                 uniquingKeysWith: { _, last in last })
        breakers = Dictionary(upstreams.map { ($0.name, CircuitBreaker(threshold: policy.circuitFailures, cooldownSeconds: policy.circuitCooldown)) },
                              uniquingKeysWith: { _, last in last })
    }

    /// The pool for `service` on `hub`'s loop (made on first use). Loop thread only.
    func pool(_ service: UpstreamService, on hub: SessionHub) -> UpstreamPool {
        if let pool = hub.upstreamPools[service.name] { return pool }
        let pool = UpstreamPool(service: service, loop: hub.loop, policy: policy, breaker: breakers[service.name]!, loops: loops, logger: logger)
        hub.upstreamPools[service.name] = pool
        return pool
    }

    /// Who is calling, as the upstream will see it.
    struct Caller {
        var userID: String
        var keyID: String
        var scopes: [String]
        var properties: [String]
        var property: String?
    }

    /// The request bytes for a call: method and target on the upstream, Host, the caller's
    /// headers to pass on (already stripped of hop-by-hop and key headers), the identity headers
    /// and their signature, and the body.
    /// - Parameter headers: from a parsed request or our own (no CR, LF or NUL: the parser refuses them).
    func request(to service: UpstreamService, method: String, api: String, query: Substring?, headers: [HTTPHeader],
                 body: [UInt8], caller: Caller, requestID: String, now: Date = Date()) -> [UInt8] {
        var target = service.basePath + "/" + api
        if let query, !query.isEmpty { target += "?" + query }
        let signature = UpstreamSignature(method: method, target: target, upstream: service.name, timestamp: Int(now.timeIntervalSince1970),
                                          requestID: requestID, user: caller.userID, key: caller.keyID,
                                          scopes: caller.scopes, properties: caller.properties, property: caller.property.map(Self.headerSafe))
        var out: [UInt8] = []
        out.reserveCapacity(512 + body.count)
        out += "\(method) \(target) HTTP/1.1\r\nHost: \(service.hostHeader)\r\n".utf8
        for header in headers {
            out += header.name.utf8; out += ": ".utf8; out += header.value.utf8; out += "\r\n".utf8
        }
        let identity = signature.headers + [
            ("X-Doorman-Signature", signingKeys[service.name].map { signature.sign(body: body, key: $0) } ?? signature.sign(body: body, secret: service.secret)),
        ]
        for (name, value) in identity where HTTPHeader(name, value).isSafeToForward {
            out += name.utf8; out += ": ".utf8; out += value.utf8; out += "\r\n".utf8
        }
        if !body.isEmpty || method == "POST" || method == "PUT" || method == "PATCH" {
            out += "Content-Length: \(body.count)\r\n".utf8
        }
        out += "\r\n".utf8
        out += body
        return out
    }

}

extension HTTPHeader {
    /// Headers a proxy must not pass on (RFC 9110 §7.6.1), plus what only Doorman may say.
    static let notForwarded: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer",
        "transfer-encoding", "upgrade", "host", "content-length", "expect",
        // Where the call came from is Doorman's to say (a client could claim any address).
        "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded", "x-real-ip",
        // The caller's key never reaches an upstream; the identity headers are Doorman's alone.
        "authorization", "x-api-key", "user-api-key", "cookie",
    ]

    /// No CR/LF/NUL, not hop-by-hop, not a key, not an `X-Doorman-` header from outside.
    var isSafeToForward: Bool {
        guard !name.isEmpty, !name.utf8.contains(where: { $0 < 0x21 || $0 == 0x7f || $0 == UInt8(ascii: ":") }),
              !value.utf8.contains(where: { $0 == 0x0d || $0 == 0x0a || $0 == 0 }) else { return false }
        return true
    }

    /// Whether a header from a client (or an upstream's answer) may be passed along, given the
    /// names its `Connection` header lists. Names are lowercase, as the parsers give them. `_` counts
    /// as `-`: CGI, WSGI, PHP and proxies that allow underscores read `X_Doorman_User` and
    /// `X-Doorman-User` as the same header, so neither spelling of ours gets through.
    func isEndToEnd(extraHopByHop: Set<String>) -> Bool {
        let name = self.name.utf8.contains(UInt8(ascii: "_")) ? self.name.replacingOccurrences(of: "_", with: "-") : self.name
        return !Self.notForwarded.contains(name) && (extraHopByHop.isEmpty || !extraHopByHop.contains(name)) && !name.hasPrefix("x-doorman-")
    }

    /// The header names a `Connection` header lists as hop-by-hop, beyond the usual ones.
    static func namedHopByHop(_ values: [String]) -> Set<String> {
        var names: Set<String> = []
        for value in values {
            for token in value.split(separator: ",") {
                let name = token.trimmingOWS.lowercased()
                if name != "close" && name != "keep-alive" && !name.isEmpty { names.insert(name) }
            }
        }
        return names
    }
}

extension CallService {
    /// A property as it travels in `X-Doorman-Property`: percent-encoded outside printable ASCII
    /// (and `%` itself), so the signed value survives servers that read headers as Latin-1.
    static func headerSafe(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            if byte > 0x20 && byte < 0x7f && byte != UInt8(ascii: "%") {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                out += "%" + String(byte >> 4, radix: 16, uppercase: true) + String(byte & 0xf, radix: 16, uppercase: true)
            }
        }
        return out
    }
}
