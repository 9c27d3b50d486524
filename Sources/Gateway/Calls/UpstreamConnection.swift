// SPDX-License-Identifier: Apache-2.0
import Glibc
import Transport
import WireCodec

/// One keep-alive HTTP/1.1 connection to an upstream, on one loop, carrying one exchange at a time.
///
///     connecting ──connected──▶ busy (write request, read head, read body) ──complete, keep-alive──▶ idle ─▶ busy …
///         └──refused / connect timeout──▶ closed          └──error, EOF, cancel, no keep-alive──▶ closed
final class UpstreamConnection: IOHandler {
    enum State { case connecting, busy, idle, closed }

    private(set) var state = State.connecting
    let fd: Int32
    private var generation: UInt32 = 0
    private unowned let pool: UpstreamPool
    private var exchange: UpstreamExchange?
    private var out: [UInt8] = []
    private var outStart = 0
    private var watchingWrite = true
    private var registeredEvents = EventLoop.writable | EventLoop.hangup
    private var head: [UInt8] = []
    private var framing: HTTPResponse.BodyFraming?
    private var remaining = 0
    private var chunked = ChunkedDecoder()
    private var keepAlive = false
    private var receivedAny = false
    private var connectTimer: UInt64 = 0
    /// When it went idle (loop time), for the idle timeout.
    private(set) var idleSince: UInt64 = 0
    /// Exchanges carried; a reused connection that dies before answering may just have been
    /// closed by the upstream while idle.
    private(set) var uses = 0

    private static let maxHeadBytes = 16 * 1024
    private static let headLimits = HTTPHeadLimits(maxHeaderBytes: maxHeadBytes, maxHeaderCount: 128)

    init(fd: Int32, pool: UpstreamPool) {
        self.fd = fd
        self.pool = pool
    }

    func register(on loop: EventLoop, connectTimeout: Double) throws(SystemError) {
        generation = try loop.register(fd, events: EventLoop.writable | EventLoop.hangup, handler: self)
        connectTimer = loop.schedule(at: loop.now &+ UInt64(connectTimeout * 1e9)) { [weak self] in
            guard let self, self.state == .connecting else { return }
            self.fail(.unavailable(retryAfter: nil), countsAgainstUpstream: true)
        }
    }

    /// Takes `exchange`: sends it now if connected, else once the connection is made.
    func begin(_ exchange: UpstreamExchange) {
        self.exchange = exchange
        exchange.connection = self
        uses += 1
        out = exchange.request
        outStart = 0
        head = []
        framing = nil
        chunked = ChunkedDecoder()
        receivedAny = false
        if state == .idle {
            state = .busy
            writeRequest()
        }
    }

    // MARK: - Events

    func handleIO(_ events: UInt32) {
        switch state {
        case .connecting:
            let err = Socket.pendingError(fd)
            guard err == 0 else { return fail(.unavailable(retryAfter: nil), countsAgainstUpstream: true) }
            pool.loop.cancel(connectTimer)
            guard exchange != nil else { return close() }
            state = .busy
            writeRequest()
        case .idle:
            // An idle connection only hears its upstream closing it.
            close()
        case .busy:
            if events & EventLoop.writable != 0 { writeRequest() }
            if state == .busy, events & (EventLoop.readable | EventLoop.hangup) != 0, !(exchange?.isPaused ?? false) { readNow() }
            else if state == .busy, events & EventLoop.failure != 0, exchange?.isPaused == true {
                // Gone while its caller is slow: take what it sent (maybe the whole answer) first.
                readNow(evenIfPaused: true)
                if state == .busy { fail(.badResponse("connection reset"), countsAgainstUpstream: true) }
            }
        case .closed:
            break
        }
    }

    private func writeRequest() {
        switch Socket.drain(&out, from: &outStart, to: fd) {   // the borrow of `out` ends here
        case .failed:
            // A kept-alive connection the upstream had already closed says nothing against it.
            fail(.badResponse("connection reset"), countsAgainstUpstream: uses == 1)
        case .blocked:
            watch(write: true)
        case .drained:
            out = []
            watch(write: false)
        }
    }

    private func watch(write: Bool) {
        guard watchingWrite != write else { return }
        watchingWrite = write
        updateInterest()
    }

    func updateInterest() {
        guard state != .closed else { return }
        let paused = exchange?.isPaused ?? false
        let events = (paused ? 0 : EventLoop.readable | EventLoop.hangup) | (watchingWrite ? EventLoop.writable : 0)
        guard events != registeredEvents else { return }
        registeredEvents = events
        pool.loop.modify(fd, generation: generation, events: events)
    }

    /// Reads what has arrived (until the kernel has no more, the exchange pauses or ends).
    func readNow(evenIfPaused: Bool = false) {
        let buffer = pool.readBuffer
        while state == .busy, let exchange, evenIfPaused || !exchange.isPaused {
            let result: IOResult<Int>
            do { result = try Socket.read(fd, into: buffer) } catch {
                return fail(.badResponse("connection reset"), countsAgainstUpstream: true)
            }
            switch result {
            case .wouldBlock: return
            case .processed(0): return endOfStream()
            case .processed(let n):
                receivedAny = true
                let responder = exchange.responder
                exchange.lastProgress = pool.loop.now
                consume(UnsafeRawBufferPointer(rebasing: buffer[..<n]))
                if !exchange.isFinished { responder?.upstreamReadDone() }
                if n < buffer.count { return }   // a short read: nothing more is waiting
            }
        }
    }

    private func consume(_ input: UnsafeRawBufferPointer) {
        var i = 0
        while i < input.count, state == .busy, let exchange {
            guard let framing else {
                // Still reading the head.
                let before = head.count
                head.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[i...]))
                guard let end = head.withUnsafeBytes({ HTTPHeadParser.findEnd($0, from: max(0, before - 3)) }) else {
                    if head.count > Self.maxHeadBytes { fail(.badResponse("response head too large"), countsAgainstUpstream: true) }
                    return
                }
                i += end - before
                let parsed: HTTPResponseHead
                let bodyFraming: HTTPResponse.BodyFraming
                do {
                    parsed = try head.withUnsafeBytes { raw throws(HTTPHeadError) in
                        try HTTPHeadParser.parseResponse(UnsafeRawBufferPointer(rebasing: raw[..<end]), limits: Self.headLimits)
                    }
                    bodyFraming = try parsed.bodyFraming(requestMethod: exchange.method)
                } catch {
                    return fail(.badResponse("malformed response head"), countsAgainstUpstream: true)
                }
                head = []
                if (100..<200).contains(parsed.status) { continue }   // 100 Continue and friends: the real answer follows
                keepAlive = parsed.keepAlive && bodyFraming != .untilClose
                self.framing = bodyFraming
                if case .length(let n) = bodyFraming { remaining = n }
                pool.answered(exchange, status: parsed.status)
                var length: Int? = nil
                if case .length(let n) = bodyFraming { length = n }
                // A HEAD answer has no body but tells the length a GET would have: pass that on.
                if exchange.method == "HEAD" { length = parsed.value("content-length").flatMap { Int($0[...].trimmingOWS) } ?? length }
                exchange.responder?.upstreamHead(parsed, contentLength: length)
                if case .length(0) = bodyFraming {
                    if i < input.count { keepAlive = false }   // bytes after a bodiless answer: out of step
                    return complete()
                }
                continue
            }
            let rest = UnsafeRawBufferPointer(rebasing: input[i...])
            switch framing {
            case .length:
                let take = min(remaining, rest.count)
                exchange.responder?.upstreamBody(UnsafeRawBufferPointer(rebasing: rest[..<take]))
                remaining -= take
                i += take
                if remaining == 0 {
                    if i < input.count { keepAlive = false }   // bytes after the answer: out of step
                    return complete()
                }
            case .chunked:
                var decoded: [UInt8] = []
                let used: Int
                do { used = try chunked.decode(rest, into: &decoded) } catch {
                    return fail(.badResponse("malformed chunked body"), countsAgainstUpstream: true)
                }
                i += used
                if !decoded.isEmpty { decoded.withUnsafeBytes { exchange.responder?.upstreamBody($0) } }
                if chunked.isDone {
                    if i < input.count { keepAlive = false }
                    return complete()
                }
            case .untilClose:
                exchange.responder?.upstreamBody(rest)
                i = input.count
            }
        }
    }

    private func endOfStream() {
        if framing == .untilClose { keepAlive = false; return complete() }
        let why = framing == nil && !receivedAny && uses > 1 ? "the upstream closed a kept-alive connection" : "the upstream closed the connection mid-answer"
        fail(.badResponse(why), countsAgainstUpstream: framing != nil || uses == 1)
    }

    private func complete() {
        guard let exchange else { return }
        // Answered before the whole request went out (a 413 or 401 after the head): the rest of the
        // body would be read as the next request. Never reuse it.
        if outStart < out.count { keepAlive = false }
        self.exchange = nil
        pool.finished(exchange)
        exchange.connection = nil
        let responder = exchange.finish()
        if keepAlive, state == .busy {
            becomeIdle()
            pool.release(self)
        } else {
            close()
        }
        responder?.upstreamEnd()
    }

    private func becomeIdle() {
        state = .idle
        idleSince = pool.loop.now
        watchingWrite = false
        updateInterest()
    }

    /// Fails the exchange in hand (if any) and closes.
    private func fail(_ failure: UpstreamFailure, countsAgainstUpstream: Bool) {
        let exchange = self.exchange
        self.exchange = nil
        close()
        guard let exchange else { return }
        exchange.connection = nil
        pool.failed(exchange, failure, countsAgainstUpstream: countsAgainstUpstream)
    }

    /// The exchange's caller went away mid-way: this connection is out of step; drop it.
    func cancelled(_ exchange: UpstreamExchange) {
        guard self.exchange === exchange else { return }
        self.exchange = nil
        exchange.connection = nil
        pool.abandoned(exchange)
        close()
    }

    func close() {
        guard state != .closed else { return }
        state = .closed
        pool.loop.cancel(connectTimer)
        pool.loop.deregister(fd)
        Socket.close(fd)
        out = []
        head = []
        pool.closed(self)
    }
}
