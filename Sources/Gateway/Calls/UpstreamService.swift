// SPDX-License-Identifier: Apache-2.0
import Foundation
public import Transport

/// An upstream HTTP service that calls named `<service>:<api_name>` go to:
/// `--upstream pms=http://10.0.0.5:8080/api` sends `pms:checkIn` to `POST /api/checkIn`.
public struct UpstreamService: Sendable, Equatable {
    /// The `<service>` part of call names.
    public var name: String
    /// An address literal (host names are resolved once, when the configuration is read).
    public var address: String
    public var port: Int
    /// The `Host` header sent (the name as configured).
    public var hostHeader: String
    /// Prefix of every forwarded path ("" or "/api").
    public var basePath: String
    /// The HMAC-SHA-256 secret shared with this upstream. Never logged.
    public var secret: [UInt8]

    public init(name: String, address: String, port: Int, hostHeader: String, basePath: String, secret: [UInt8]) {
        self.name = name
        self.address = address
        self.port = port
        self.hostHeader = hostHeader
        self.basePath = basePath
        self.secret = secret
    }

    /// Parses `NAME=http://HOST[:PORT][/BASE]`; `resolve` turns a host name into an address.
    public static func parse(_ spec: String, secret: [UInt8], resolve: (String) -> String? = Socket.resolve) throws(UpstreamConfigError) -> UpstreamService {
        guard let eq = spec.firstIndex(of: "=") else { throw UpstreamConfigError("\(spec): expected NAME=http://HOST:PORT[/BASE]") }
        let name = String(spec[..<eq])
        guard !name.isEmpty, name.utf8.allSatisfy({ $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || (0x30...0x39).contains($0) || (0x61...0x7a).contains($0) || (0x41...0x5a).contains($0) }) else {
            throw UpstreamConfigError("\(name): a service name is letters, digits, - and _")
        }
        guard name.lowercased() != "admin", name.lowercased() != "channel" else {
            throw UpstreamConfigError("\(name): reserved service name")
        }
        var rest = spec[spec.index(after: eq)...]
        guard rest.hasPrefix("http://") else {
            throw UpstreamConfigError("\(name): only http:// upstreams (on a private network; calls are signed, not encrypted)")
        }
        rest = rest.dropFirst(7)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = rest[..<slash]
        var basePath = String(rest[slash...])
        while basePath.hasSuffix("/") { basePath.removeLast() }
        var host = String(authority)
        var port = 80
        if authority.hasPrefix("["), let close = authority.firstIndex(of: "]") {
            host = String(authority[authority.index(after: authority.startIndex)..<close])
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") { guard let p = Int(after.dropFirst()) else { throw UpstreamConfigError("\(name): bad port") }; port = p }
        } else if let colon = authority.lastIndex(of: ":") {
            host = String(authority[..<colon])
            guard let p = Int(authority[authority.index(after: colon)...]) else { throw UpstreamConfigError("\(name): bad port") }
            port = p
        }
        guard (1...65535).contains(port), !host.isEmpty else { throw UpstreamConfigError("\(name): bad host or port") }
        guard let address = resolve(host) else { throw UpstreamConfigError("\(name): cannot resolve \(host)") }
        guard !secret.isEmpty else { throw UpstreamConfigError("\(name): no signing secret (set DOORMAN_UPSTREAM_SECRET_\(name.uppercased().replacingOccurrences(of: "-", with: "_")) or --upstream-secret-file \(name)=PATH)") }
        guard secret.count >= 16 else { throw UpstreamConfigError("\(name): the signing secret must be at least 16 bytes") }
        return UpstreamService(name: name, address: address, port: port, hostHeader: String(authority), basePath: basePath, secret: secret)
    }
}

public struct UpstreamConfigError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// How calls to upstreams behave.
public struct CallPolicy: Sendable, Equatable {
    /// Seconds to establish a TCP connection before the call fails as `upstream_unavailable`.
    public var connectTimeout: Double = 1
    /// Seconds from a call's arrival to its upstream's complete answer (WebSocket) or first byte
    /// of the answer (HTTP, which then streams): past it, `upstream_timeout`.
    public var callTimeout: Double = 10
    /// Connections to one upstream, per node.
    public var maxConnections = 64
    /// Calls waiting for a connection, per upstream and loop; more get `overloaded`.
    public var maxQueued = 1024
    /// Calls in flight per WebSocket session; more get `too_many_calls`.
    public var maxCallsPerSession = 16
    /// Consecutive failures (unreachable, timeout, 502/503/504) that open the circuit, and seconds it stays open.
    public var circuitFailures = 5
    public var circuitCooldown: Double = 5
    /// Seconds an idle keep-alive connection is kept.
    public var idleTimeout: Double = 30

    public init() {}
}
