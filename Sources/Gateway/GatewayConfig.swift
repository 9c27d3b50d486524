// SPDX-License-Identifier: Apache-2.0
public import WebSocketServer
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
        try require(s.head.maxHeaderBytes >= 256, "max-header-bytes", "must be at least 256")
        try require(s.head.maxHeaderCount >= 8, "max-headers", "must be at least 8")
        try require(s.frames.maxFrameBytes >= 125, "max-frame-bytes", "must be at least 125")
        try require(s.frames.maxMessageBytes >= s.frames.maxFrameBytes, "max-message-bytes", "must be at least max-frame-bytes")
        try require(s.frames.maxFragments >= 1, "max-fragments", "must be at least 1")
        try require(s.maxConnections >= 1, "max-connections", "must be at least 1")
        try require(s.maxWriteQueueBytes >= 1024, "max-write-queue-bytes", "must be at least 1024")
        try require(s.maxBodyBytes >= 0, "max-body-bytes", "must not be negative")
        try require(s.handshakeTimeout > 0, "handshake-timeout", "must be > 0 seconds")
        try require(s.idleTimeout >= 0, "idle-timeout", "must be >= 0 seconds (0 = never ping)")
        try require(s.pongTimeout > 0, "pong-timeout", "must be > 0 seconds")
        try require(s.closeTimeout > 0, "close-timeout", "must be > 0 seconds")
        try require(s.drainTimeout >= 0, "drain-timeout", "must be >= 0 seconds")
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
