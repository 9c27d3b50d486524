// SPDX-License-Identifier: Apache-2.0
public import WireCodec

/// Limits and timeouts of the HTTP/WebSocket engine. Every field has a safe default.
public struct ServerConfiguration: Sendable, Equatable {
    /// Address to listen on.
    public var host = "127.0.0.1"
    /// TCP port; 0 lets the kernel choose (tests).
    public var port = 8080
    /// Event loops (threads); 0 = one per CPU this process may use.
    public var loops = 0
    /// Request-head limits: bytes (request line + headers) and header count.
    public var head = HTTPHeadLimits(maxHeaderBytes: 8192, maxHeaderCount: 64)
    /// Frame, message and fragment limits.
    public var frames = FrameLimits(maxFrameBytes: 1 << 20, maxMessageBytes: 1 << 20, maxFragments: 1024)
    /// Open connections per process (HTTP and WebSocket); past it new ones get 503 and are closed.
    public var maxConnections = 10_000
    /// Connections one client address (IPv6: one /64) may hold while they read a request — from
    /// accept (TLS handshake included) until head and body are in, and again while kept alive
    /// between requests; more are refused at accept, before anything is read (429, or a plain
    /// close on the TLS listener). 0 = 1 % of `maxConnections` (at least 1).
    public var maxUnfinishedPerAddress = 0
    /// The cap in force.
    public var unfinishedPerAddressCap: Int { maxUnfinishedPerAddress > 0 ? maxUnfinishedPerAddress : max(1, maxConnections / 100) }
    /// Bytes queued for one slow peer before it is closed with 4100 (slow consumer).
    public var maxWriteQueueBytes = 1 << 20
    /// Largest HTTP request body (admin and publish API), in bytes.
    public var maxBodyBytes = 1 << 20
    /// Seconds a client has to send a complete request head (slowloris defence); also the
    /// keep-alive idle time of plain HTTP connections.
    public var handshakeTimeout = 10.0
    /// Seconds of silence after which a session is pinged; 0 = never.
    public var idleTimeout = 30.0
    /// Seconds to wait for any data after a ping before dropping the peer.
    public var pongTimeout = 10.0
    /// Seconds to wait for the peer's close frame (and end of stream) after ours.
    public var closeTimeout = 5.0
    /// Seconds SIGTERM/SIGINT waits for sessions to close after sending them 1001.
    public var drainTimeout = 10.0
    /// Port of the TLS listener (beside the plain one), used when certificates are given; 0 lets
    /// the kernel choose (tests).
    public var tlsPort: Int? = nil
    /// Port of a separate plain-HTTP listener for the admin surface (nil: none). What it serves is
    /// the application's to decide (`Connection.listener`); 0 lets the kernel choose (tests).
    public var adminPort: Int? = nil
    /// Address of the admin listener (nil: `host`), e.g. loopback or a management network.
    public var adminHost: String? = nil
    /// Offer permessage-deflate (RFC 7692) to clients that ask for it.
    public var compression = false
    /// Messages shorter than this many bytes are sent uncompressed.
    public var compressionThreshold = 64
    /// Keep the compression context between messages (better ratio for similar messages, but
    /// every connection then holds its own zlib state: see README). Off: the server asks both
    /// sides to reset per message and shares one zlib stream per loop.
    public var compressionContextTakeover = false

    public init() {}
}

extension Double {
    /// Seconds to nanoseconds, for loop deadlines.
    var nanoseconds: UInt64 { self <= 0 ? 0 : UInt64(self * 1_000_000_000) }
}
