// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import CLinux
import Foundation
import Gateway
import Glibc
import Logging
import WebSocketServer
import WireCodec

/// `doorman serve`: run the gateway until SIGTERM or SIGINT.
struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the gateway.",
        discussion: """
            Listens for HTTP and WebSocket connections. SIGTERM or SIGINT sends every session a \
            close frame with code 1001 and exits once they are gone or --drain-timeout passes.
            """)

    @Option(help: "Address to listen on. [env: DOORMAN_HOST] (default: 127.0.0.1)")
    var host: String?
    @Option(help: "TCP port; 0 picks a free one. [env: DOORMAN_PORT] (default: 8080)")
    var port: Int?
    @Option(help: "Path on which WebSocket sessions are upgraded. [env: DOORMAN_PATH] (default: /ws)")
    var path: String?
    @Flag(help: "TESTING ONLY: echo every message on any path, without authentication. [env: DOORMAN_ECHO=1]")
    var echo = false
    @Option(help: "Event loops (threads); 0 = one per CPU. [env: DOORMAN_LOOPS] (default: 0)")
    var loops: Int?
    @Option(help: "Largest request head (request line + headers), bytes. [env: DOORMAN_MAX_HEADER_BYTES] (default: 8192)")
    var maxHeaderBytes: Int?
    @Option(help: "Most header lines in a request. [env: DOORMAN_MAX_HEADERS] (default: 64)")
    var maxHeaders: Int?
    @Option(help: "Largest WebSocket frame payload, bytes. [env: DOORMAN_MAX_FRAME_BYTES] (default: 1048576)")
    var maxFrameBytes: Int?
    @Option(help: "Largest WebSocket message, bytes. [env: DOORMAN_MAX_MESSAGE_BYTES] (default: 1048576)")
    var maxMessageBytes: Int?
    @Option(help: "Most frames in one message, empty ones included. [env: DOORMAN_MAX_FRAGMENTS] (default: 1024)")
    var maxFragments: Int?
    @Option(help: "Most open connections; more get 503. [env: DOORMAN_MAX_CONNECTIONS] (default: 10000)")
    var maxConnections: Int?
    @Option(help: "Bytes queued for a slow peer before it is closed with 4100. [env: DOORMAN_MAX_WRITE_QUEUE_BYTES] (default: 1048576)")
    var maxWriteQueueBytes: Int?
    @Option(help: "Largest HTTP request body, bytes. [env: DOORMAN_MAX_BODY_BYTES] (default: 1048576)")
    var maxBodyBytes: Int?
    @Option(help: "Seconds to send a complete request head. [env: DOORMAN_HANDSHAKE_TIMEOUT] (default: 10)")
    var handshakeTimeout: Double?
    @Option(help: "Seconds of silence before a session is pinged; 0 = never. [env: DOORMAN_IDLE_TIMEOUT] (default: 30)")
    var idleTimeout: Double?
    @Option(help: "Seconds to wait for an answer to a ping. [env: DOORMAN_PONG_TIMEOUT] (default: 10)")
    var pongTimeout: Double?
    @Option(help: "Seconds to wait for the peer's close after ours. [env: DOORMAN_CLOSE_TIMEOUT] (default: 5)")
    var closeTimeout: Double?
    @Option(help: "Seconds to wait for sessions to close on SIGTERM. [env: DOORMAN_DRAIN_TIMEOUT] (default: 10)")
    var drainTimeout: Double?
    @Option(help: "The store: a SQLite file path or sqlite: URL, or postgres://user@host:port/db for PostgreSQL. [env: DOORMAN_DB] (default: doorman.db)")
    var db: String?
    @Flag(help: "Every key must have an expiry. [env: DOORMAN_REQUIRE_KEY_EXPIRY=1]")
    var requireKeyExpiry = false
    @Option(help: "Longest key lifetime, in days. [env: DOORMAN_MAX_KEY_LIFETIME_DAYS] (default: no cap)")
    var maxKeyLifetimeDays: Double?
    @Option(help: "Threads for blocking store calls. [env: DOORMAN_POOL_THREADS] (default: 2)")
    var poolThreads: Int?
    @Option(help: "This node's name in a PostgreSQL cluster, unique per node. [env: DOORMAN_NODE_NAME] (default: hostname:port)")
    var nodeName: String?
    @Option(help: "Seconds a cluster node may miss the change feed before it refuses handshakes (503) and /readyz fails; past twice this it ends its sessions (4200). [env: DOORMAN_FEED_BOUND] (default: 10)")
    var feedBound: Double?
    @Option(help: "Seconds before a key expires at which its sessions are warned. [env: DOORMAN_EXPIRY_WARNING] (default: 300)")
    var expiryWarning: Double?
    @Option(help: "Messages per second a key may send on this node. [env: DOORMAN_MESSAGES_PER_SECOND] (default: 100)")
    var messagesPerSecond: Double?
    @Option(help: "Burst of messages allowed above that rate. [env: DOORMAN_MESSAGE_BURST] (default: 200)")
    var messageBurst: Double?
    @Option(help: "Live sessions per key (on every node of a cluster); 0 = no cap. [env: DOORMAN_MAX_SESSIONS_PER_KEY] (default: 0)")
    var maxSessionsPerKey: Int?
    @Option(help: "POST /v1/publish requests per second per key; 0 = no limit. [env: DOORMAN_PUBLISHES_PER_SECOND] (default: 100)")
    var publishesPerSecond: Double?
    @Option(help: "Burst of publishes allowed per key above that rate. [env: DOORMAN_PUBLISH_BURST] (default: 200)")
    var publishBurst: Double?
    @Option(help: "Connections per client address (IPv6: per /64) still reading a request or idle in keep-alive (TLS handshake included); more are refused at accept. 0 = 1 % of --max-connections. [env: DOORMAN_MAX_UNFINISHED_PER_ADDRESS] (default: 0)")
    var maxUnfinishedPerAddress: Int?
    @Option(help: "Handshakes per second per client address; 0 = no limit. [env: DOORMAN_HANDSHAKES_PER_SECOND] (default: 50)")
    var handshakesPerSecond: Double?
    @Option(help: "Burst of handshakes allowed per address. [env: DOORMAN_HANDSHAKE_BURST] (default: 100)")
    var handshakeBurst: Double?
    @Option(help: "An Origin browsers may connect from (repeatable; none = any). [env: DOORMAN_ALLOWED_ORIGINS, comma-separated]")
    var allowedOrigin: [String] = []
    @Option(help: "A client network (CIDR or address) allowed to open sessions (repeatable; none = any). [env: DOORMAN_ALLOWED_NETWORKS, comma-separated]")
    var allowedNetwork: [String] = []
    @Option(help: "A client network (CIDR or address) allowed to reach the admin API (/v1/*, not /v1/publish) and the admin page (repeatable; none = any). [env: DOORMAN_ADMIN_NETWORKS, comma-separated]")
    var adminNetwork: [String] = []
    @Option(help: "A separate plain-HTTP port for the admin API and page: they then answer only there (404 on the others), and it answers nothing else but /healthz, /readyz and /metrics. [env: DOORMAN_ADMIN_PORT]")
    var adminPort: Int?
    @Option(help: "Address of the admin port, e.g. 127.0.0.1 or a management network's. [env: DOORMAN_ADMIN_HOST] (default: --host)")
    var adminHost: String?
    @Flag(help: "/metrics answers only a key that may admin:metrics.read (Authorization: Bearer <key>). [env: DOORMAN_METRICS_REQUIRE_KEY=1]")
    var metricsRequireKey = false
    @Flag(help: "Also accept the key as ?key= in the URL (it leaks into logs and history). [env: DOORMAN_ALLOW_QUERY_KEY=1]")
    var allowQueryKey = false
    @Option(help: "PEM certificate chain (leaf first) for the TLS listener. [env: DOORMAN_TLS_CERT]")
    var tlsCert: String?
    @Option(help: "PEM private key of that certificate. [env: DOORMAN_TLS_KEY]")
    var tlsKey: String?
    @Option(help: "Port of the TLS (wss://, https://) listener, beside the plain one. [env: DOORMAN_TLS_PORT] (default: 8443)")
    var tlsPort: Int?
    @Flag(help: "Offer permessage-deflate compression (RFC 7692). [env: DOORMAN_COMPRESSION=1]")
    var compression = false
    @Option(help: "Messages shorter than this are sent uncompressed, bytes. [env: DOORMAN_COMPRESSION_THRESHOLD] (default: 64)")
    var compressionThreshold: Int?
    @Flag(help: "Keep compression context between messages (better ratio; zlib state per connection). [env: DOORMAN_COMPRESSION_CONTEXT_TAKEOVER=1]")
    var compressionContextTakeover = false
    @Option(help: "Calls per second a key may make on this node (WebSocket and HTTP); 0 = no limit. [env: DOORMAN_CALLS_PER_SECOND] (default: 50)")
    var callsPerSecond: Double?
    @Option(help: "Burst of calls allowed above that rate. [env: DOORMAN_CALL_BURST] (default: 100)")
    var callBurst: Double?
    @Option(help: "Handshakes per second per key; 0 = no limit. [env: DOORMAN_KEY_HANDSHAKES_PER_SECOND] (default: 0)")
    var keyHandshakesPerSecond: Double?
    @Option(help: "Burst of handshakes allowed per key. [env: DOORMAN_KEY_HANDSHAKE_BURST] (default: 20)")
    var keyHandshakeBurst: Double?
    @Option(help: "Seconds a device waits before trying again after a suspend, a disabled user or a kick (it adds up to as much again in jitter). [env: DOORMAN_REVERSIBLE_RETRY] (default: 30)")
    var reversibleRetry: Double?
    @Option(help: """
        An upstream service for calls, NAME=http://HOST:PORT[/BASE] (repeatable): NAME:api goes to POST /BASE/api.         Its signing secret comes from DOORMAN_UPSTREAM_SECRET_<NAME> or --upstream-secret-file. [env: DOORMAN_UPSTREAMS, comma-separated]
        """)
    var upstream: [String] = []
    @Option(help: "NAME=PATH: read the upstream's signing secret (at least 16 bytes) from a file (repeatable).")
    var upstreamSecretFile: [String] = []
    @Option(help: "Seconds to connect to an upstream. [env: DOORMAN_UPSTREAM_CONNECT_TIMEOUT] (default: 1)")
    var upstreamConnectTimeout: Double?
    @Option(help: "Seconds for an upstream to answer a call. [env: DOORMAN_CALL_TIMEOUT] (default: 10)")
    var callTimeout: Double?
    @Option(help: "Connections per upstream on this node. [env: DOORMAN_UPSTREAM_MAX_CONNECTIONS] (default: 64)")
    var upstreamMaxConnections: Int?
    @Option(help: "Calls in flight per WebSocket session. [env: DOORMAN_MAX_CALLS_PER_SESSION] (default: 16)")
    var maxCallsPerSession: Int?
    @Option(help: "Consecutive upstream failures that open its circuit. [env: DOORMAN_CIRCUIT_FAILURES] (default: 5)")
    var circuitFailures: Int?
    @Option(help: "Seconds an open circuit fails calls at once. [env: DOORMAN_CIRCUIT_COOLDOWN] (default: 5)")
    var circuitCooldown: Double?
    @Option(help: "trace, debug, info, notice, warning, error or critical. [env: DOORMAN_LOG_LEVEL] (default: info)")
    var logLevel: String?

    func run() throws {
        let environment = ProcessInfo.processInfo.environment
        let config: GatewayConfig
        let level: Logger.Level
        do {
            config = try makeConfig(environment)
            let name = logLevel ?? environment["DOORMAN_LOG_LEVEL"] ?? "info"
            guard let parsed = Logger.Level(rawValue: name) else { throw ConfigError(key: "log-level", message: "unknown level \(name)") }
            level = parsed
            try config.validate()
        } catch let error as ConfigError {
            throw ValidationError(error.description)
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "doorman")

        // Signals are taken by this thread alone (sigwait); the loops inherit the mask.
        doorman_block_signals()
        doorman_return_freed_memory()
        raiseFileLimit(logger)
        // The first start's admin key is printed the moment it exists, on its own line: the only
        // time a secret is ever printed, and before anything else can fail (a port taken).
        let gateway = try Gateway(config: config, logger: logger) { secret in
            let line = "admin key: \(secret)\n"
            _ = line.utf8CString.withUnsafeBufferPointer { Glibc.write(1, $0.baseAddress, $0.count - 1) }
        }
        logger.info("listening", metadata: [
            "address": "\(config.server.host):\(gateway.port)",
            "loops": "\(gateway.server.loopCount)",
            "mode": "\(config.echo ? "echo (testing only, no authentication)" : "gateway")",
            "path": "\(config.path)",
        ])
        // Scripts read the port from this line (useful with --port 0).
        var banner = "doorman listening on \(config.server.host):\(gateway.port)\n"
        if let tlsPort = gateway.server.tlsPort { banner += "doorman listening for TLS on \(config.server.host):\(tlsPort)\n" }
        if let adminPort = gateway.server.adminPort {
            banner += "doorman admin listening on \(config.server.adminHost ?? config.server.host):\(adminPort)\n"
        }
        _ = banner.utf8CString.withUnsafeBufferPointer { Glibc.write(1, $0.baseAddress, $0.count - 1) }
        while true {
            let signal = doorman_wait_signal()
            if signal == SIGHUP {
                // New TLS connections get the reloaded certificate; live sessions keep theirs.
                gateway.reloadCertificates()
                continue
            }
            logger.info("draining", metadata: ["signal": "\(signal)", "connections": "\(gateway.server.activeConnections)"])
            gateway.shutdown()
            logger.info("stopped")
            return
        }
    }

    /// Defaults, then environment, then flags.
    private func makeConfig(_ env: [String: String]) throws(ConfigError) -> GatewayConfig {
        var c = GatewayConfig()
        var s = c.server
        s.host = host ?? env["DOORMAN_HOST"] ?? s.host
        s.port = try pick(port, env, "DOORMAN_PORT", "port", s.port)
        c.path = path ?? env["DOORMAN_PATH"] ?? c.path
        c.echo = echo || ["1", "true", "yes"].contains(env["DOORMAN_ECHO"]?.lowercased() ?? "")
        s.loops = try pick(loops, env, "DOORMAN_LOOPS", "loops", s.loops)
        s.head.maxHeaderBytes = try pick(maxHeaderBytes, env, "DOORMAN_MAX_HEADER_BYTES", "max-header-bytes", s.head.maxHeaderBytes)
        s.head.maxHeaderCount = try pick(maxHeaders, env, "DOORMAN_MAX_HEADERS", "max-headers", s.head.maxHeaderCount)
        s.frames.maxFrameBytes = try pick(maxFrameBytes, env, "DOORMAN_MAX_FRAME_BYTES", "max-frame-bytes", s.frames.maxFrameBytes)
        s.frames.maxMessageBytes = try pick(maxMessageBytes, env, "DOORMAN_MAX_MESSAGE_BYTES", "max-message-bytes", s.frames.maxMessageBytes)
        s.frames.maxFragments = try pick(maxFragments, env, "DOORMAN_MAX_FRAGMENTS", "max-fragments", s.frames.maxFragments)
        s.maxConnections = try pick(maxConnections, env, "DOORMAN_MAX_CONNECTIONS", "max-connections", s.maxConnections)
        s.maxUnfinishedPerAddress = try pick(maxUnfinishedPerAddress, env, "DOORMAN_MAX_UNFINISHED_PER_ADDRESS", "max-unfinished-per-address", s.maxUnfinishedPerAddress)
        s.maxWriteQueueBytes = try pick(maxWriteQueueBytes, env, "DOORMAN_MAX_WRITE_QUEUE_BYTES", "max-write-queue-bytes", s.maxWriteQueueBytes)
        s.maxBodyBytes = try pick(maxBodyBytes, env, "DOORMAN_MAX_BODY_BYTES", "max-body-bytes", s.maxBodyBytes)
        s.handshakeTimeout = try pick(handshakeTimeout, env, "DOORMAN_HANDSHAKE_TIMEOUT", "handshake-timeout", s.handshakeTimeout)
        s.idleTimeout = try pick(idleTimeout, env, "DOORMAN_IDLE_TIMEOUT", "idle-timeout", s.idleTimeout)
        s.pongTimeout = try pick(pongTimeout, env, "DOORMAN_PONG_TIMEOUT", "pong-timeout", s.pongTimeout)
        s.closeTimeout = try pick(closeTimeout, env, "DOORMAN_CLOSE_TIMEOUT", "close-timeout", s.closeTimeout)
        s.drainTimeout = try pick(drainTimeout, env, "DOORMAN_DRAIN_TIMEOUT", "drain-timeout", s.drainTimeout)
        c.tlsCertificate = tlsCert ?? env["DOORMAN_TLS_CERT"]
        c.tlsKey = tlsKey ?? env["DOORMAN_TLS_KEY"]
        if c.tlsCertificate != nil || c.tlsKey != nil {
            s.tlsPort = try pick(tlsPort, env, "DOORMAN_TLS_PORT", "tls-port", Int?.some(8443))
        }
        s.adminPort = try pick(adminPort, env, "DOORMAN_ADMIN_PORT", "admin-port", Int?.none)
        s.adminHost = (adminHost ?? env["DOORMAN_ADMIN_HOST"]).flatMap { $0.isEmpty ? nil : $0 }
        s.compression = compression || ["1", "true", "yes"].contains(env["DOORMAN_COMPRESSION"]?.lowercased() ?? "")
        s.compressionThreshold = try pick(compressionThreshold, env, "DOORMAN_COMPRESSION_THRESHOLD", "compression-threshold", s.compressionThreshold)
        s.compressionContextTakeover = compressionContextTakeover
            || ["1", "true", "yes"].contains(env["DOORMAN_COMPRESSION_CONTEXT_TAKEOVER"]?.lowercased() ?? "")
        c.server = s
        c.database = db ?? env["DOORMAN_DB"] ?? c.database
        c.keyPolicy.requireExpiry = requireKeyExpiry || ["1", "true", "yes"].contains(env["DOORMAN_REQUIRE_KEY_EXPIRY"]?.lowercased() ?? "")
        if let days = try pick(maxKeyLifetimeDays, env, "DOORMAN_MAX_KEY_LIFETIME_DAYS", "max-key-lifetime-days", Double?.none) {
            c.keyPolicy.maxLifetime = days * 86400
        }
        c.poolThreads = try pick(poolThreads, env, "DOORMAN_POOL_THREADS", "pool-threads", c.poolThreads)
        c.bootstrapKey = env["DOORMAN_BOOTSTRAP_KEY"]
        c.nodeName = nodeName ?? env["DOORMAN_NODE_NAME"]
        c.feedBound = try pick(feedBound, env, "DOORMAN_FEED_BOUND", "feed-bound", c.feedBound)
        c.adminNetworks = adminNetwork.isEmpty
            ? (env["DOORMAN_ADMIN_NETWORKS"]?.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } ?? [])
            : adminNetwork
        c.metricsRequireKey = metricsRequireKey || ["1", "true", "yes"].contains(env["DOORMAN_METRICS_REQUIRE_KEY"]?.lowercased() ?? "")
        var p = c.sessions
        p.expiryWarning = try pick(expiryWarning, env, "DOORMAN_EXPIRY_WARNING", "expiry-warning", p.expiryWarning)
        p.messagesPerSecond = try pick(messagesPerSecond, env, "DOORMAN_MESSAGES_PER_SECOND", "messages-per-second", p.messagesPerSecond)
        p.messageBurst = try pick(messageBurst, env, "DOORMAN_MESSAGE_BURST", "message-burst", p.messageBurst)
        p.maxSessionsPerKey = try pick(maxSessionsPerKey, env, "DOORMAN_MAX_SESSIONS_PER_KEY", "max-sessions-per-key", p.maxSessionsPerKey)
        p.handshakesPerSecond = try pick(handshakesPerSecond, env, "DOORMAN_HANDSHAKES_PER_SECOND", "handshakes-per-second", p.handshakesPerSecond)
        p.handshakeBurst = try pick(handshakeBurst, env, "DOORMAN_HANDSHAKE_BURST", "handshake-burst", p.handshakeBurst)
        p.publishesPerSecond = try pick(publishesPerSecond, env, "DOORMAN_PUBLISHES_PER_SECOND", "publishes-per-second", p.publishesPerSecond)
        p.publishBurst = try pick(publishBurst, env, "DOORMAN_PUBLISH_BURST", "publish-burst", p.publishBurst)
        p.allowedOrigins = allowedOrigin.isEmpty
            ? (env["DOORMAN_ALLOWED_ORIGINS"]?.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } ?? [])
            : allowedOrigin
        p.allowedNetworks = allowedNetwork.isEmpty
            ? (env["DOORMAN_ALLOWED_NETWORKS"]?.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } ?? [])
            : allowedNetwork
        p.allowQueryKey = allowQueryKey || ["1", "true", "yes"].contains(env["DOORMAN_ALLOW_QUERY_KEY"]?.lowercased() ?? "")
        p.callsPerSecond = try pick(callsPerSecond, env, "DOORMAN_CALLS_PER_SECOND", "calls-per-second", p.callsPerSecond)
        p.callBurst = try pick(callBurst, env, "DOORMAN_CALL_BURST", "call-burst", p.callBurst)
        p.keyHandshakesPerSecond = try pick(keyHandshakesPerSecond, env, "DOORMAN_KEY_HANDSHAKES_PER_SECOND", "key-handshakes-per-second", p.keyHandshakesPerSecond)
        p.keyHandshakeBurst = try pick(keyHandshakeBurst, env, "DOORMAN_KEY_HANDSHAKE_BURST", "key-handshake-burst", p.keyHandshakeBurst)
        p.reversibleRetry = try pick(reversibleRetry, env, "DOORMAN_REVERSIBLE_RETRY", "reversible-retry", p.reversibleRetry)
        c.sessions = p
        var calls = c.calls
        calls.connectTimeout = try pick(upstreamConnectTimeout, env, "DOORMAN_UPSTREAM_CONNECT_TIMEOUT", "upstream-connect-timeout", calls.connectTimeout)
        calls.callTimeout = try pick(callTimeout, env, "DOORMAN_CALL_TIMEOUT", "call-timeout", calls.callTimeout)
        calls.maxConnections = try pick(upstreamMaxConnections, env, "DOORMAN_UPSTREAM_MAX_CONNECTIONS", "upstream-max-connections", calls.maxConnections)
        calls.maxCallsPerSession = try pick(maxCallsPerSession, env, "DOORMAN_MAX_CALLS_PER_SESSION", "max-calls-per-session", calls.maxCallsPerSession)
        calls.circuitFailures = try pick(circuitFailures, env, "DOORMAN_CIRCUIT_FAILURES", "circuit-failures", calls.circuitFailures)
        calls.circuitCooldown = try pick(circuitCooldown, env, "DOORMAN_CIRCUIT_COOLDOWN", "circuit-cooldown", calls.circuitCooldown)
        c.calls = calls
        c.upstreams = try makeUpstreams(env)
        return c
    }

    /// `--upstream NAME=URL` entries with their secrets (a file, else the environment).
    private func makeUpstreams(_ env: [String: String]) throws(ConfigError) -> [UpstreamService] {
        let specs = upstream.isEmpty
            ? (env["DOORMAN_UPSTREAMS"]?.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } ?? [])
            : upstream
        var files: [String: String] = [:]
        for entry in upstreamSecretFile {
            guard let eq = entry.firstIndex(of: "=") else { throw ConfigError(key: "upstream-secret-file", message: "\(entry): expected NAME=PATH") }
            files[String(entry[..<eq])] = String(entry[entry.index(after: eq)...])
        }
        var services: [UpstreamService] = []
        for spec in specs where !spec.isEmpty {
            let name = String(spec.prefix { $0 != "=" })
            var secret: [UInt8] = []
            if let path = files[name] {
                guard let data = FileManager.default.contents(atPath: path) else {
                    throw ConfigError(key: "upstream-secret-file", message: "cannot read \(path)")
                }
                secret = Array(data)
                while let last = secret.last, last == 0x0a || last == 0x0d { secret.removeLast() }   // a trailing newline is not part of it
            } else if let text = env["DOORMAN_UPSTREAM_SECRET_" + name.uppercased().replacingOccurrences(of: "-", with: "_")] {
                secret = Array(text.utf8)
            }
            do {
                services.append(try UpstreamService.parse(spec, secret: secret))
            } catch {
                throw ConfigError(key: "upstream", message: error.description)
            }
        }
        return services
    }

    /// A setting: the flag if given, else the environment variable (parsed, or an error naming it), else `fallback`.
    private func pick<T: LosslessStringConvertible>(
        _ flag: T?, _ env: [String: String], _ variable: String, _ key: String, _ fallback: T?
    ) throws(ConfigError) -> T? {
        if let flag { return flag }
        guard let text = env[variable] else { return fallback }
        guard let value = T(text.trimmingCharacters(in: .whitespaces)) else {
            throw ConfigError(key: key, message: "\(variable)=\(text) is not a valid \(T.self)")
        }
        return value
    }

    private func pick<T: LosslessStringConvertible>(
        _ flag: T?, _ env: [String: String], _ variable: String, _ key: String, _ fallback: T
    ) throws(ConfigError) -> T {
        try pick(flag, env, variable, key, Optional(fallback)) ?? fallback
    }

    /// 10k+ connections need more descriptors than the usual soft limit of 1024.
    private func raiseFileLimit(_ logger: Logger) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        limit.rlim_cur = limit.rlim_max
        if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) != 0 {
            logger.warning("could not raise the open-file limit", metadata: ["limit": "\(limit.rlim_cur)"])
        }
    }
}
