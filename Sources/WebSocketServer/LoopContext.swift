// SPDX-License-Identifier: Apache-2.0
import CLinux
import Glibc
import Logging
import Synchronization
import Transport
import WireCodec
import WireDeflate

/// What every loop of a server shares: configuration, application, counters. Immutable but for
/// the atomics.
final class ServerShared: Sendable {
    let configuration: ServerConfiguration
    let application: any ServerApplication
    /// The TLS listener's certificates (replaceable on reload); nil without TLS.
    let tls: TLSContextBox?
    /// permessage-deflate policy; nil when compression is off.
    let deflate: DeflateConfiguration?
    let logger: Logger
    let activeConnections = Atomic<Int>(0)
    /// Connections closed because their write queue passed the high-water mark.
    let slowConsumerCloses = Atomic<Int>(0)
    let nextConnectionID = Atomic<UInt64>(1)
    /// Connections per client address (IPv6: per /64) that are reading a request (head or body)
    /// rather than holding an upgraded session or a request with the application, and
    /// how many were refused for passing `unfinishedCap` (any loop: accept counts, the
    /// connection's loop uncounts).
    private let unfinished = CappedCounts<PeerAddress>()
    let unfinishedRefusals = Atomic<Int>(0)
    let unfinishedCap: Int
    // Nanosecond copies of the configured seconds.
    let handshakeTimeout: UInt64
    let idleTimeout: UInt64
    let pongTimeout: UInt64
    let closeTimeout: UInt64

    init(configuration: ServerConfiguration, application: any ServerApplication, tls: TLSContextBox?, logger: Logger) {
        self.configuration = configuration
        self.application = application
        self.tls = tls
        deflate = configuration.compression
            ? DeflateConfiguration(contextTakeover: configuration.compressionContextTakeover, minimumSize: configuration.compressionThreshold)
            : nil
        self.logger = logger
        handshakeTimeout = configuration.handshakeTimeout.nanoseconds
        idleTimeout = configuration.idleTimeout.nanoseconds
        pongTimeout = configuration.pongTimeout.nanoseconds
        closeTimeout = configuration.closeTimeout.nanoseconds
        unfinishedCap = configuration.unfinishedPerAddressCap
    }

    /// Counts a new connection from `peer` as unfinished; false, counting nothing, when the
    /// address already holds its cap (the caller refuses the connection).
    func admitUnfinished(_ peer: PeerAddress) -> Bool { unfinished.reserve(peer.limitKey, limit: unfinishedCap) }

    /// One of `peer`'s unfinished connections has its request with the application (or its
    /// upgrade), or went away.
    func releaseUnfinished(_ peer: PeerAddress) { unfinished.release(peer.limitKey) }
}

/// One loop's share of a server: its connections and its read buffer.
///
/// `@unchecked Sendable` only so that `loop.execute` jobs can carry it to its own loop: every
/// member is touched on `loop`'s thread alone (checked with `assertInLoop`).
final class LoopContext: @unchecked Sendable {
    let loop: EventLoop
    let shared: ServerShared
    /// One read buffer per loop, shared by all its connections (bytes are parsed before the next read).
    let readBuffer: UnsafeMutableRawBufferPointer
    /// Where TLS connections decrypt to (never the read buffer, which holds the ciphertext).
    let tlsScratch: UnsafeMutableRawBufferPointer
    private(set) var connections: [Connection] = []
    private(set) var draining = false
    /// Connections waiting for an HTTP reply, by id.
    var awaitingReply: [UInt64: Connection] = [:]
    /// zlib streams shared by this loop's connections that agreed on no context takeover: each
    /// message starts and ends with an empty window, so one stream serves them all in turn.
    private var inflater: MessageInflater?
    private var deflaters: [Int: MessageDeflater] = [:]
    /// Loop 0 only: the listeners' handlers.
    var acceptors: [Acceptor] = []

    init(loop: EventLoop, shared: ServerShared, readBufferBytes: Int = 256 * 1024) {
        self.loop = loop
        self.shared = shared
        readBuffer = .allocate(byteCount: readBufferBytes, alignment: 16)
        tlsScratch = .allocate(byteCount: TLSSession.recommendedScratchBytes, alignment: 16)
    }

    deinit {
        readBuffer.deallocate()
        tlsScratch.deallocate()
    }

    /// Takes over an accepted socket from `listener` (TLS speaks TLS).
    func adopt(_ fd: Int32, peer: PeerAddress = .unknown, listener: Listener = .main) {
        loop.assertInLoop()
        if draining {
            Socket.close(fd)
            shared.activeConnections.subtract(1, ordering: .relaxed)
            shared.releaseUnfinished(peer)
            return
        }
        Socket.setNoDelay(fd)
        var tls: TLSSession?
        if listener == .tls, let certificates = shared.tls {
            do {
                tls = try TLSSession(context: certificates.current)
            } catch {
                shared.logger.error("cannot start TLS", metadata: ["error": "\(error)"])
                Socket.close(fd)
                shared.activeConnections.subtract(1, ordering: .relaxed)
                shared.releaseUnfinished(peer)
                return
            }
        }
        let id = shared.nextConnectionID.add(1, ordering: .relaxed).oldValue
        let connection = Connection(fd: fd, id: id, context: self, peer: peer, tls: tls, listener: listener)
        do {
            connection.generation = try loop.register(fd, events: EventLoop.readable | EventLoop.hangup, handler: connection)
        } catch {
            shared.logger.error("cannot watch socket", metadata: ["error": "\(error)"])
            Socket.close(fd)
            shared.activeConnections.subtract(1, ordering: .relaxed)
            shared.releaseUnfinished(peer)
            return
        }
        connection.slot = connections.count
        connections.append(connection)
    }

    func remove(_ connection: Connection) {
        awaitingReply.removeValue(forKey: connection.id)
        let slot = connection.slot
        guard slot < connections.count, connections[slot] === connection else { return }
        let last = connections.removeLast()
        if slot < connections.count {
            connections[slot] = last
            last.slot = slot
        }
        shared.activeConnections.subtract(1, ordering: .relaxed)
    }

    /// The loop's inflater for messages compressed without context takeover (a 15-bit window
    /// inflates any smaller one).
    func sharedInflater(maxMessageBytes: Int) -> MessageInflater {
        if let inflater { return inflater }
        let made = MessageInflater(windowBits: 15, contextTakeover: false, maxMessageBytes: maxMessageBytes)
        inflater = made
        return made
    }

    /// The loop's deflater for a window size, for connections without server context takeover.
    func sharedDeflater(windowBits: Int) -> MessageDeflater {
        if let deflater = deflaters[windowBits] { return deflater }
        let configuration = shared.deflate ?? DeflateConfiguration()
        let made = MessageDeflater(windowBits: windowBits, memLevel: configuration.memLevel, level: configuration.compressionLevel, contextTakeover: false)
        deflaters[windowBits] = made
        return made
    }

    /// Hands a deferred HTTP response to its connection, if it still waits.
    func deliver(_ response: HTTPResponse, to id: UInt64) {
        loop.assertInLoop()
        awaitingReply.removeValue(forKey: id)?.deliverReply(response)
    }

    /// The per-loop sweep: deadlines and idle pings.
    func tick() {
        let now = loop.now
        // Backwards, because closing swaps the last connection into the closed one's slot.
        var i = connections.count - 1
        while i >= 0 {
            if i < connections.count { connections[i].tick(now) }
            i -= 1
        }
    }

    /// Shutdown: refuse new connections and ask every session to close.
    func beginDrain() {
        draining = true
        var i = connections.count - 1
        while i >= 0 {
            if i < connections.count { connections[i].drain() }
            i -= 1
        }
    }

    /// Final shutdown: drop whatever is left.
    func closeAll() {
        while let last = connections.last { last.closeNow() }
    }
}
