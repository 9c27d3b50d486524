// SPDX-License-Identifier: Apache-2.0
public import WebSocketServer
import GatewayCore
import WireCodec

/// The whole configuration of one gateway process, built once at start-up (defaults, then
/// `DOORMAN_*` environment, then flags) and never changed.
public struct GatewayConfig: Sendable, Equatable {
    /// Engine limits and timeouts.
    public var server = ServerConfiguration()
    /// Path on which WebSocket sessions are upgraded.
    public var path = "/ws"
    /// Development mode: echo every message on any path, no authentication. Testing only.
    public var echo = false
    /// The store: a SQLite file path or `sqlite:` URL (one node), or a
    /// `postgres://user@host:port/db` URL (PostgreSQL, for many nodes).
    public var database = "doorman.db"
    /// Expiry policy for new and edited keys.
    public var keyPolicy = KeyPolicy()
    /// On first start, use this admin key instead of generating one (unattended installs).
    public var bootstrapKey: String?
    /// Threads for blocking work (store calls).
    public var poolThreads = 2
    /// Live-session limits and timings.
    public var sessions = SessionPolicy()
    /// PEM certificate chain (leaf first) and private key of the TLS listener; both or neither.
    public var tlsCertificate: String?
    public var tlsKey: String?
    /// Upstream services that calls go to, by service name.
    public var upstreams: [UpstreamService] = []
    /// Timeouts and limits of calls to upstreams.
    public var calls = CallPolicy()
    /// This node's name in a cluster (default `hostname:port`); unique per node.
    public var nodeName: String?
    /// Seconds a cluster node may miss the change feed before it refuses handshakes (and, past
    /// twice this, ends its sessions).
    public var feedBound: Double = 10
    /// Client networks (CIDR blocks or addresses) that may reach the admin API (`/v1/*` but
    /// `/v1/publish`) and the admin page; none = any.
    public var adminNetworks: [String] = []
    /// `/metrics` answers only a key that may `admin:metrics.read` (a full admin may).
    public var metricsRequireKey = false

    public init() {}

    /// Checks values that would make the server misbehave; names the offending setting.
    public func validate() throws(ConfigError) {
        let s = server
        func require(_ ok: Bool, _ key: String, _ why: String) throws(ConfigError) {
            if !ok { throw ConfigError(key: key, message: why) }
        }
        try require((0...65535).contains(s.port), "port", "must be 0-65535")
        try require(s.loops >= 0 && s.loops <= 256, "loops", "must be 0 (one per CPU) to 256")
        try require(path.hasPrefix("/"), "path", "must start with /")
        try require(!AdminAPI.owns(path[...]) && !AdminPage.owns(path[...]) && !GatewayApplication.probes.contains(path[...]),
                    "path", "must not be under /v1 or /admin, nor a probe (/healthz, /readyz, /metrics)")
        try require(s.head.maxHeaderBytes >= 256, "max-header-bytes", "must be at least 256")
        try require(s.head.maxHeaderCount >= 8, "max-headers", "must be at least 8")
        try require(s.frames.maxFrameBytes >= 125, "max-frame-bytes", "must be at least 125")
        try require(s.frames.maxMessageBytes >= s.frames.maxFrameBytes, "max-message-bytes", "must be at least max-frame-bytes")
        try require(s.frames.maxFragments >= 1, "max-fragments", "must be at least 1")
        try require(s.maxConnections >= 1, "max-connections", "must be at least 1")
        try require(s.maxUnfinishedPerAddress >= 0, "max-unfinished-per-address", "must be 0 (1 % of max-connections) or more")
        try require(s.maxWriteQueueBytes >= 1024, "max-write-queue-bytes", "must be at least 1024")
        try require(s.maxBodyBytes >= 0, "max-body-bytes", "must not be negative")
        try require(s.handshakeTimeout > 0, "handshake-timeout", "must be > 0 seconds")
        try require(s.idleTimeout >= 0, "idle-timeout", "must be >= 0 seconds (0 = never ping)")
        try require(s.pongTimeout > 0, "pong-timeout", "must be > 0 seconds")
        try require(s.closeTimeout > 0, "close-timeout", "must be > 0 seconds")
        try require(s.drainTimeout >= 0, "drain-timeout", "must be >= 0 seconds")
        try require((tlsCertificate == nil) == (tlsKey == nil), tlsCertificate == nil ? "tls-cert" : "tls-key", "--tls-cert and --tls-key go together")
        try require(s.tlsPort.map { (0...65535).contains($0) && ($0 == 0 || $0 != s.port) } ?? true, "tls-port", "must be 0-65535 and differ from port")
        try require(s.adminPort.map { (0...65535).contains($0) && ($0 == 0 || ($0 != s.port && $0 != s.tlsPort)) } ?? true,
                    "admin-port", "must be 0-65535 and differ from port and tls-port")
        try require(s.compressionThreshold >= 0, "compression-threshold", "must be >= 0 bytes")
        try require(!database.isEmpty, "db", "must name a SQLite file or a postgres:// URL")
        try require(keyPolicy.maxLifetime.map { $0 > 0 } ?? true, "max-key-lifetime", "must be > 0 seconds")
        try require((1...64).contains(poolThreads), "pool-threads", "must be 1 to 64")
        try require(feedBound >= 1 && feedBound <= 3600, "feed-bound", "must be 1 to 3600 seconds")
        try require(sessions.reversibleRetry >= 0.1 && sessions.reversibleRetry <= 3600, "reversible-retry", "must be 0.1 to 3600 seconds")
        try require(nodeName.map { n in !n.isEmpty && n.count <= 100 && n.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "._:-".unicodeScalars.contains($0)) } } ?? true,
                    "node-name", "1 to 100 of A-Z, a-z, 0-9, '.', '_', ':' and '-'")
        let p = sessions
        try require(p.expiryWarning >= 0, "expiry-warning", "must be >= 0 seconds")
        try require(p.messagesPerSecond >= 0 && p.messageBurst >= 1, "messages-per-second", "rate >= 0 and burst >= 1")
        try require(p.maxSessionsPerKey >= 0, "max-sessions-per-key", "must be >= 0")
        try require(p.handshakesPerSecond >= 0 && p.handshakeBurst >= 1, "handshakes-per-second", "rate >= 0 and burst >= 1")
        try require(p.publishesPerSecond >= 0 && p.publishBurst >= 1, "publishes-per-second", "rate >= 0 and burst >= 1")
        try require(p.callsPerSecond >= 0 && p.callBurst >= 1, "calls-per-second", "rate >= 0 and burst >= 1")
        try require(p.keyHandshakesPerSecond >= 0 && p.keyHandshakeBurst >= 1, "key-handshakes-per-second", "rate >= 0 and burst >= 1")
        let c = calls
        try require(c.connectTimeout > 0 && c.connectTimeout <= 600, "upstream-connect-timeout", "must be > 0 and at most 600 seconds")
        try require(c.callTimeout > 0 && c.callTimeout <= 3600, "call-timeout", "must be > 0 and at most 3600 seconds")
        try require(c.maxConnections >= 1, "upstream-max-connections", "must be at least 1")
        try require(c.maxQueued >= 0, "upstream-max-queued", "must be >= 0")
        try require(c.maxCallsPerSession >= 1, "max-calls-per-session", "must be at least 1")
        try require(c.circuitFailures >= 1 && c.circuitCooldown >= 0 && c.circuitCooldown <= 3600, "circuit-failures", "at least 1 failure, cooldown 0 to 3600 seconds")
        try require(Set(upstreams.map(\.name)).count == upstreams.count, "upstream", "each service name once")
        do {
            _ = try NetworkAllowlist(p.allowedNetworks)
        } catch {
            throw ConfigError(key: "allowed-network", message: "\(error.entry) is not an address or CIDR block")
        }
        do {
            _ = try NetworkAllowlist(adminNetworks)
        } catch {
            throw ConfigError(key: "admin-network", message: "\(error.entry) is not an address or CIDR block")
        }
        if let bootstrapKey {
            try require((try? APIKeySecret(parsing: bootstrapKey)) != nil, "DOORMAN_BOOTSTRAP_KEY", "is not a Doorman key (dmk_…, checksum)")
        }
    }
}

/// A configuration value that cannot be used.
public struct ConfigError: Error, CustomStringConvertible, Sendable {
    public var key: String
    public var message: String

    public init(key: String, message: String) {
        self.key = key
        self.message = message
    }

    public var description: String { "invalid setting \(key): \(message)" }
}
