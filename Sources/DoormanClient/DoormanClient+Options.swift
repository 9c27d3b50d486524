// SPDX-License-Identifier: Apache-2.0

extension DoormanClient {
    /// Timeouts, reconnect and keepalive settings. The defaults suit a device that stays
    /// connected for weeks.
    public struct Options: Sendable {
        /// Wait for an answer to subscribe, unsubscribe, publish and ping (default 10 s),
        /// including any wait for a session while the client reconnects.
        public var requestTimeout: Duration = .seconds(10)
        /// Wait for an answer to `call` unless the call names its own (default 30 s).
        public var callTimeout: Duration = .seconds(30)
        /// TCP connect, handshake and the welcome message, per attempt (default 10 s).
        public var connectTimeout: Duration = .seconds(10)
        /// Waits between failed attempts: exponential, full jitter (default 0.5 s doubling to 30 s).
        public var backoff = Backoff()
        /// Longest random pause before reconnecting after 1001 (server restart or drain), so a
        /// fleet spreads out (default 1 s).
        public var restartPause: Duration = .seconds(1)
        /// A session that lasted this long resets the backoff to its first step (default 30 s).
        public var stableSession: Duration = .seconds(30)
        /// Ping the server after this much silence (default 25 s; the server pings after 30 s).
        public var pingInterval: Duration = .seconds(25)
        /// Drop the connection (and reconnect) when nothing answers a ping this long (default 10 s).
        public var pongTimeout: Duration = .seconds(10)
        /// Largest message accepted from the server, in bytes (default 1 MiB).
        public var maxMessageBytes = 1 << 20
        /// Extra handshake headers (e.g. `User-Agent`). The key always goes in `X-API-Key`.
        public var headers: [String: String] = [:]
        /// Events kept for a slow reader of `events`; the oldest are dropped past this (default 1,000).
        public var eventBuffer = 1000
        /// For `wss://`: a PEM file of the certificates to trust (e.g. a self-signed gateway's own);
        /// nil trusts the system's store. The certificate must name the URL's host either way.
        public var trustedCertificatesFile: String?

        public init() {}
    }
}
