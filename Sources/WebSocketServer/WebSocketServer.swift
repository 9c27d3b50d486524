// SPDX-License-Identifier: Apache-2.0
import CLinux
import Glibc
public import Logging
public import Transport
import Synchronization
import WireCodec

/// The engine: a plain listener (and a TLS one, and an admin one, when configured), acceptors on
/// loop 0 handing sockets round-robin to every loop, and the loops' connections.
///
///     listen fd ──accept4──▶ Acceptor (loop 0) ──round-robin──▶ loop k: LoopContext.adopt(fd, listener:)
///     TLS fd    ──accept4──▶ Acceptor (loop 0) ──┘              (loop.execute for k ≠ 0)
///     admin fd  ──accept4──▶ Acceptor (loop 0) ──┘
public final class WebSocketServer: Sendable {
    let shared: ServerShared
    let group: LoopGroup
    let contexts: [LoopContext]
    private let listenFDs: [Int32]
    private let stopped = Atomic<Bool>(false)
    /// The port actually bound (useful with port 0).
    public let port: Int
    /// The TLS listener's port actually bound, when TLS is configured.
    public let tlsPort: Int?
    /// The admin listener's port actually bound, when one is configured.
    public let adminPort: Int?

    /// Binds the listeners and starts the loops.
    /// - Parameter tls: certificates for the TLS listener on `configuration.tlsPort` (both or neither).
    /// - Throws: `SystemError` if an address cannot be bound.
    public init(
        configuration: ServerConfiguration, application: any ServerApplication, tls: TLSContextBox? = nil, logger: Logger
    ) throws(SystemError) {
        shared = ServerShared(configuration: configuration, application: application, tls: tls, logger: logger)
        var wanted: [(host: String, port: Int, listener: Listener)] = [(configuration.host, configuration.port, .main)]
        if tls != nil, let port = configuration.tlsPort { wanted.append((configuration.host, port, .tls)) }
        if let port = configuration.adminPort { wanted.append((configuration.adminHost ?? configuration.host, port, .admin)) }
        var listeners: [(Int32, Listener)] = []
        var ports: [Listener: Int] = [:]
        for (host, port, listener) in wanted {
            do {
                let (fd, bound) = try Socket.listen(host: host, port: port)
                listeners.append((fd, listener))
                ports[listener] = bound
            } catch {
                for (fd, _) in listeners { Socket.close(fd) }
                throw error
            }
        }
        self.port = ports[.main]!
        tlsPort = ports[.tls]
        adminPort = ports[.admin]
        listenFDs = listeners.map(\.0)
        let acceptorSpecs = listeners
        do {
            group = try LoopGroup(count: configuration.loops)
        } catch {
            for (fd, _) in listeners { Socket.close(fd) }
            throw error
        }
        let shared = shared
        contexts = group.loops.map { LoopContext(loop: $0, shared: shared) }
        for context in contexts {
            context.loop.execute { context.loop.onTick = { context.tick() } }
        }
        let contexts = contexts
        let first = contexts[0]
        first.loop.execute {
            for (fd, listener) in acceptorSpecs {
                let acceptor = Acceptor(fd: fd, listener: listener, contexts: contexts, shared: shared)
                do {
                    try first.loop.register(fd, events: EventLoop.readable, handler: acceptor)
                    first.acceptors.append(acceptor)
                } catch {
                    shared.logger.critical("cannot watch listener", metadata: ["error": "\(error)"])
                }
            }
        }
    }

    /// Open connections (HTTP and WebSocket) across all loops.
    public var activeConnections: Int { shared.activeConnections.load(ordering: .relaxed) }

    /// Connections closed for not reading (write queue over the limit), since start.
    public var slowConsumerCloses: Int { shared.slowConsumerCloses.load(ordering: .relaxed) }
    /// Connections refused at accept: their address held its cap of unfinished handshakes.
    public var unfinishedHandshakeRefusals: Int { shared.unfinishedRefusals.load(ordering: .relaxed) }

    /// True once shutdown has begun.
    public var isDraining: Bool { stopped.load(ordering: .relaxed) }

    /// Number of event loops.
    public var loopCount: Int { contexts.count }

    /// The event loops, in index order.
    public var loops: [EventLoop] { group.loops }

    /// Stops accepting, sends 1001 to every session, waits up to `drainTimeout` seconds for them
    /// to close, then stops the loops. Blocks the calling thread (not a loop thread). Only the
    /// first call does anything.
    public func shutdown(drainTimeout: Double? = nil) {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let first = contexts[0]
        let fds = listenFDs
        first.loop.execute {
            for fd in fds {
                first.loop.deregister(fd)
                Socket.close(fd)
            }
            first.acceptors = []
        }
        for context in contexts { context.loop.execute { context.beginDrain() } }
        let limit = monotonicNanoseconds() + (drainTimeout ?? shared.configuration.drainTimeout).nanoseconds
        while activeConnections > 0, monotonicNanoseconds() < limit {
            usleep(5_000)
        }
        for context in contexts { context.loop.execute { context.closeAll() } }
        group.shutdown()
    }
}

/// The listener a connection came in on.
public enum Listener: Sendable, Hashable {
    /// The plain port.
    case main
    /// The TLS port.
    case tls
    /// The separate admin port (plain HTTP).
    case admin
}

/// Accepts on loop 0 and deals sockets out to the loops.
final class Acceptor: IOHandler {
    private let fd: Int32
    /// Which listener this is (TLS speaks TLS).
    private let listener: Listener
    private var secure: Bool { listener == .tls }
    private let contexts: [LoopContext]
    private let shared: ServerShared
    private var next = 0
    /// Held open so that at EMFILE we can close it, accept, and shed the connection.
    private var reserveFD: Int32 = open("/dev/null", O_RDONLY | O_CLOEXEC)
    private var lastFDWarning: UInt64 = 0

    init(fd: Int32, listener: Listener, contexts: [LoopContext], shared: ServerShared) {
        self.fd = fd
        self.listener = listener
        self.contexts = contexts
        self.shared = shared
    }

    deinit { if reserveFD >= 0 { Glibc.close(reserveFD) } }

    /// Answers refused at accept, encoded once.
    private static let tooManyConnections = refusal(503, #"{"error":"too_many_connections"}"#)
    private static let tooManyUnfinished = refusal(429, #"{"error":"too_many_unfinished_requests"}"#)

    private static func refusal(_ status: Int, _ body: String) -> [UInt8] {
        var response = HTTPResponse.json(status: status, body)
        response.headers.append(HTTPHeader("Retry-After", "1"))
        var bytes: [UInt8] = []
        response.encode(into: &bytes, keepAlive: false)
        return bytes
    }

    /// Sends `answer` (best effort: one send that never waits), then closes.
    private static func refuse(_ fd: Int32, _ answer: [UInt8]?) {
        if let answer { _ = answer.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } }
        Socket.close(fd)
    }

    func handleIO(_ events: UInt32) {
        // Bounded per wake-up so one listener cannot starve loop 0's connections.
        for _ in 0..<256 {
            let accepted: Int32
            let peer: PeerAddress
            do {
                switch try Socket.accept(fd) {
                case .wouldBlock: return
                case .processed(let (newFD, address)): (accepted, peer) = (newFD, address)
                }
            } catch {
                switch error.errno {
                case EMFILE, ENFILE:
                    shedAtFileLimit()
                    return
                case ECONNABORTED, EPROTO, ENETDOWN, ENOPROTOOPT, EHOSTDOWN, ENONET, EHOSTUNREACH, EOPNOTSUPP, ENETUNREACH:
                    continue   // the peer gave up before we accepted; accept(2) lists these as retryable
                default:
                    shared.logger.error("accept failed", metadata: ["error": "\(error)"])
                    return
                }
            }
            let count = shared.activeConnections.add(1, ordering: .relaxed).newValue
            if count > shared.configuration.maxConnections {
                Self.refuse(accepted, Self.tooManyConnections)   // over the cap
                shared.activeConnections.subtract(1, ordering: .relaxed)
                continue
            }
            // Before anything is read: one address may hold only so many connections that are still
            // reading a request (slowloris, half-open TLS floods from one host).
            guard shared.admitUnfinished(peer) else {
                shared.unfinishedRefusals.add(1, ordering: .relaxed)
                Self.refuse(accepted, secure ? nil : Self.tooManyUnfinished)   // TLS: nothing plain to say
                shared.activeConnections.subtract(1, ordering: .relaxed)
                continue
            }
            let context = contexts[next]
            next = (next + 1) % contexts.count
            let listener = listener
            if context.loop.isInLoop {
                context.adopt(accepted, peer: peer, listener: listener)
            } else {
                context.loop.execute { context.adopt(accepted, peer: peer, listener: listener) }
            }
        }
    }

    /// At the descriptor limit a pending connection keeps the listener readable forever: free the
    /// reserve descriptor, accept and close the connection, take the reserve back (no busy loop).
    private func shedAtFileLimit() {
        let now = monotonicNanoseconds()
        if now - lastFDWarning > 5_000_000_000 {
            lastFDWarning = now
            shared.logger.warning("out of file descriptors; shedding new connections", metadata: ["connections": "\(shared.activeConnections.load(ordering: .relaxed))"])
        }
        if reserveFD >= 0 { Glibc.close(reserveFD) }
        let shed = doorman_accept(fd)
        if shed >= 0 { Glibc.close(shed) }
        reserveFD = open("/dev/null", O_RDONLY | O_CLOEXEC)
    }
}
