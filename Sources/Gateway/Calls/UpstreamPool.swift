// SPDX-License-Identifier: Apache-2.0
import Logging
import Transport
import WireCodec

/// Connections from one loop to one upstream: reused while kept alive, at most
/// `maxConnections`, calls beyond that wait in a bounded queue. Never blocks the loop: connects
/// are non-blocking with a timeout, and the upstream's circuit breaker fails calls at once while
/// it is down. Loop-thread only.
final class UpstreamPool {
    let service: UpstreamService
    let loop: EventLoop
    let policy: CallPolicy
    let breaker: CircuitBreaker
    let logger: Logger
    /// This loop's share of the upstream's connection limit.
    let maxConnections: Int
    private var idle: [UpstreamConnection] = []
    private var connections = 0
    private var queue: [UpstreamExchange] = []
    private var queueStart = 0
    /// Where connections of this pool read into (they take turns on one thread).
    let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)

    init(service: UpstreamService, loop: EventLoop, policy: CallPolicy, breaker: CircuitBreaker, loops: Int, logger: Logger) {
        self.service = service
        self.loop = loop
        self.policy = policy
        self.breaker = breaker
        self.logger = logger
        // The node's limit split over the loops (at least one connection per loop).
        maxConnections = max(1, policy.maxConnections / max(1, loops))
    }

    deinit { readBuffer.deallocate() }

    /// Open connections (connecting, busy or idle) and calls waiting, for metrics and tests.
    var openConnections: Int { connections }
    var waiting: Int { queue.count - queueStart }

    /// Starts `exchange`: on an idle connection, a new one, or in the queue.
    func start(_ exchange: UpstreamExchange) {
        if let wait = breaker.admit() {
            return report(exchange, .unavailable(retryAfter: wait))
        }
        exchange.admitted = true
        exchange.pool = self
        exchange.timer = loop.schedule(at: loop.now &+ UInt64(policy.callTimeout * 1e9)) { [weak self, weak exchange] in
            guard let self, let exchange, !exchange.isFinished else { return }
            self.timedOut(exchange)
        }
        if let connection = takeIdle() { return connection.begin(exchange) }
        if connections < maxConnections {
            guard let connection = open() else { return failed(exchange, .unavailable(retryAfter: nil), countsAgainstUpstream: true) }
            return connection.begin(exchange)
        }
        if waiting >= policy.maxQueued {
            // Calls that went away while waiting still sit in the queue: count only live ones.
            queue = queue[queueStart...].filter { !$0.isFinished }
            queueStart = 0
        }
        guard waiting < policy.maxQueued else {
            breaker.abandoned()
            exchange.admitted = false
            loop.cancel(exchange.timer)
            return report(exchange, .overloaded)
        }
        queue.append(exchange)
    }

    private func takeIdle() -> UpstreamConnection? {
        let oldest = loop.now &- UInt64(policy.idleTimeout * 1e9)
        let recent = loop.now &- 1_000_000_000
        while let connection = idle.popLast() {
            // The upstream may have closed it meanwhile, or it sat too long: never send on it.
            // (Its close would wake the loop and drop it; the peek covers a close racing this
            // call, and only for connections idle over a second: upstreams do not time out sooner.)
            if connection.idleSince < oldest || (connection.idleSince < recent && Socket.idleIsUnusable(connection.fd)) {
                connection.close()
                continue
            }
            return connection
        }
        return nil
    }

    private func open() -> UpstreamConnection? {
        do {
            let fd = try Socket.connect(host: service.address, port: service.port)
            let connection = UpstreamConnection(fd: fd, pool: self)
            do {
                try connection.register(on: loop, connectTimeout: policy.connectTimeout)
            } catch {
                Socket.close(fd)
                return nil
            }
            connections += 1
            return connection
        } catch {
            logger.warning("cannot connect to upstream", metadata: ["upstream": "\(service.name)", "error": "\(error)"])
            return nil
        }
    }

    // MARK: - From connections

    /// A connection is free: give it the next waiting call, or keep it idle.
    func release(_ connection: UpstreamConnection) {
        while queueStart < queue.count {
            let next = queue[queueStart]
            queueStart += 1
            compactQueue()
            if !next.isFinished { return connection.begin(next) }
        }
        idle.append(connection)
    }

    /// A connection closed: a waiting call may open a new one.
    func closed(_ connection: UpstreamConnection) {
        connections -= 1
        idle.removeAll { $0 === connection }
        while queueStart < queue.count, connections < maxConnections {
            let next = queue[queueStart]
            queueStart += 1
            compactQueue()
            guard !next.isFinished else { continue }
            guard let fresh = open() else { failed(next, .unavailable(retryAfter: nil), countsAgainstUpstream: true); continue }
            fresh.begin(next)
        }
    }

    private func compactQueue() {
        if queueStart == queue.count { queue.removeAll(keepingCapacity: true); queueStart = 0 }
        else if queueStart > 1024, queueStart * 2 > queue.count { queue.removeFirst(queueStart); queueStart = 0 }
    }

    /// The head arrived: the upstream answered (5xx gateway errors still count as its failure).
    func answered(_ exchange: UpstreamExchange, status: Int) {
        if exchange.admitted {
            exchange.admitted = false
            if status == 502 || status == 503 || status == 504 { breaker.failed() } else { breaker.succeeded() }
        }
        if !exchange.timeoutCoversBody {
            // From here a streamed answer times out only when it stalls.
            loop.cancel(exchange.timer)
            exchange.lastProgress = loop.now
            watchProgress(exchange)
        }
    }

    /// Fails a streamed exchange that made no progress (upstream bytes or client reads) for a whole call timeout.
    private func watchProgress(_ exchange: UpstreamExchange) {
        let limit = UInt64(policy.callTimeout * 1e9)
        exchange.timer = loop.schedule(at: exchange.lastProgress &+ limit) { [weak self, weak exchange] in
            guard let self, let exchange, !exchange.isFinished else { return }
            if self.loop.now &- exchange.lastProgress >= limit { return self.timedOut(exchange) }
            self.watchProgress(exchange)
        }
    }

    func finished(_ exchange: UpstreamExchange) {
        loop.cancel(exchange.timer)
    }

    func failed(_ exchange: UpstreamExchange, _ failure: UpstreamFailure, countsAgainstUpstream: Bool) {
        if exchange.admitted {
            exchange.admitted = false
            if countsAgainstUpstream { breaker.failed() } else { breaker.abandoned() }
        }
        loop.cancel(exchange.timer)
        report(exchange, failure)
    }

    func abandoned(_ exchange: UpstreamExchange) {
        if exchange.admitted {
            exchange.admitted = false
            breaker.abandoned()
        }
        loop.cancel(exchange.timer)
    }

    private func timedOut(_ exchange: UpstreamExchange) {
        if exchange.admitted {
            exchange.admitted = false
            // Only a call the upstream had in hand speaks against it; one that waited here for a
            // connection says nothing about the upstream.
            if exchange.connection != nil { breaker.failed() } else { breaker.abandoned() }
        }
        if let connection = exchange.connection {
            exchange.connection = nil
            connection.cancelled(exchange)   // closes it: an answer may still be on its way
        }
        report(exchange, .timeout)
    }

    private func report(_ exchange: UpstreamExchange, _ failure: UpstreamFailure) {
        exchange.finish()?.upstreamFailed(failure)
    }
}
