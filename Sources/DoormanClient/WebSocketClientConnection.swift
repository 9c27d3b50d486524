// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import WireCodec

/// What a connection reports, in order, on `WebSocketClientConnection.events`. After
/// `.refused`, `.closed` or `.failed` nothing more comes and the stream finishes.
enum ConnectionEvent: Sendable, Equatable {
    /// The server accepted the handshake (101); frames follow.
    case opened
    /// The server answered the handshake with something other than 101.
    case refused(status: Int, retryAfter: Duration?, body: [UInt8])
    /// One complete text message.
    case text(String)
    /// The server sent a close frame (code nil: it had none).
    case closed(code: Int?, reason: String)
    case failed(TransportError)
}

/// One WebSocket connection, client side, on a thread of its own: WireCodec's pure codec
/// (client role: masked frames out, unmasked frames in) over a non-blocking POSIX socket.
///
///     actor (any thread)                         connection thread
///     ───────────────────                        ──────────────────────────────────────
///     send(text:) ─┐                             connect → handshake → loop:
///     close()     ─┼─▶ outbox (lock) + wake pipe ──▶ poll(socket, wake pipe, keepalive deadline)
///     abort()     ─┘                                  write outbox │ read → FrameParser
///     events ◀────────────────────────────────────────────────────── .opened/.text/.closed/.failed
///
/// Blocking calls (getaddrinfo, connect, poll) never run on Swift's cooperative pool.
final class WebSocketClientConnection: @unchecked Sendable {
    // @unchecked Sendable: `outbox` is guarded by its lock; the wake pipe's descriptors are set
    // in init and closed in deinit; everything else the thread uses lives in `run()`'s locals.

    /// Knobs the thread needs.
    struct Settings: Sendable {
        var connectTimeout: Duration
        var pingInterval: Duration
        var pongTimeout: Duration
        var maxMessageBytes: Int
        var headers: [String: String]
        /// For wss://: the certificates to trust (PEM file), nil for the system's.
        var trustedCertificatesFile: String? = nil
    }

    private struct Outbox {
        var bytes: [UInt8] = []
        var close: ClosePayload?
        var aborted = false
    }

    let events: AsyncStream<ConnectionEvent>
    private let sink: AsyncStream<ConnectionEvent>.Continuation
    private let outbox = Locked(Outbox())
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private let target: ConnectionTarget
    private let key: String
    private let settings: Settings

    init(target: ConnectionTarget, key: String, settings: Settings) {
        (events, sink) = AsyncStream.makeStream(of: ConnectionEvent.self)
        self.target = target
        self.key = key
        self.settings = settings
        var fds: [Int32] = [-1, -1]
        if pipe(&fds) == 0 {
            for fd in fds {
                _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            }
        }
        (wakeRead, wakeWrite) = (fds[0], fds[1])
    }

    deinit {
        // Only here: the thread and every caller are done, so no write can hit a reused fd.
        if wakeRead >= 0 { closeDescriptor(wakeRead) }
        if wakeWrite >= 0 { closeDescriptor(wakeWrite) }
    }

    /// Starts the connection's thread.
    func start() {
        let thread = Thread { [self] in run() }
        thread.name = "doorman-client"
        thread.start()
    }

    /// Queues one text message (masked with a fresh key, RFC 6455 §5.3).
    func send(text: String) {
        var frame: [UInt8] = []
        Array(text.utf8).withUnsafeBytes { payload in
            FrameEncoder.append(opcode: .text, payload: payload, maskKey: UInt32.random(in: .min ... .max), to: &frame)
        }
        outbox.withLock { $0.bytes += frame }
        wakeUp()
    }

    /// Starts the close handshake; the connection ends when the server answers or after a short wait.
    func close(code: CloseCode = .normal, reason: String = "") {
        outbox.withLock { if $0.close == nil { $0.close = ClosePayload(code: code, reason: reason) } }
        wakeUp()
    }

    /// Ends the connection at once (no close frame).
    func abort() {
        outbox.withLock { $0.aborted = true }
        wakeUp()
    }

    private func wakeUp() {
        var one: UInt8 = 1
        _ = write(wakeWrite, &one, 1)   // a full pipe already means "wake up"
    }

    // MARK: - The thread

    private func run() {
        defer { sink.finish() }
        let deadline = ContinuousClock.now + settings.connectTimeout
        do throws(TransportError) {
            let fd = try TCPSocket.connect(host: target.host, port: target.port, deadline: deadline)
            defer { closeDescriptor(fd) }
            let wire = Wire(fd: fd, tls: try target.secure ? Wire.tls(host: target.host, caFile: settings.trustedCertificatesFile) : nil)
            if wire.tls != nil { try handshakeTLS(wire, deadline: deadline) }
            if let event = try session(wire, deadline: deadline) { sink.yield(event) }
        } catch {
            sink.yield(.failed(error))
        }
    }

    /// The TLS handshake, within the connect deadline.
    private func handshakeTLS(_ wire: Wire, deadline: ContinuousClock.Instant) throws(TransportError) {
        #if canImport(COpenSSL)
        guard let tls = wire.tls else { return }
        var nothing: [UInt8] = []
        while true {
            let done = try tls.handshake()
            wire.cipherOut += tls.takeOutput()
            try flush(wire, &nothing, deadline: deadline)
            if done { return }
            guard try TCPSocket.waitFor(wire.fd, events: Int32(POLLIN), deadline: deadline) else { throw .timedOut("TLS handshake") }
            var chunk = [UInt8](repeating: 0, count: 16_384)
            let result = chunk.withUnsafeMutableBytes { buffer in Result { () throws(TransportError) in try TCPSocket.read(wire.fd, into: buffer) } }
            switch try result.get() {
            case .processed(0): throw .closedByPeer
            case .processed(let n): tls.feed(chunk[..<n])
            case .wouldBlock: continue
            }
        }
        #endif
    }

    /// Handshake, then frames until the end; returns the last event.
    private func session(_ fd: Wire, deadline: ContinuousClock.Instant) throws(TransportError) -> ConnectionEvent? {
        let handshake = ClientHandshake()
        var out = handshake.request(target, key: key, headers: settings.headers.map { ($0.key, $0.value) })
        try flush(fd, &out, deadline: deadline)
        var input: [UInt8] = []
        let (head, headLength) = try readHead(fd, into: &input, deadline: deadline)
        guard head.status == 101 else {
            let body = try readBody(fd, head: head, buffered: Array(input[headLength...]), deadline: deadline)
            return .refused(status: head.status, retryAfter: ReconnectPolicy.retryAfter(header: head.value("retry-after")), body: body)
        }
        if let problem = handshake.problem(with: head) { throw .protocolViolation("handshake: \(problem)") }
        sink.yield(.opened)
        return try frames(fd, leftover: Array(input[headLength...]))
    }

    /// Reads until the response head is complete (at most 8 KiB).
    private func readHead(_ fd: Wire, into input: inout [UInt8], deadline: ContinuousClock.Instant) throws(TransportError) -> (HTTPResponseHead, Int) {
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            if let end = input.withUnsafeBytes({ HTTPHeadParser.findEnd($0) }) {
                do {
                    let head = try input.withUnsafeBytes { raw throws(HTTPHeadError) in
                        try HTTPHeadParser.parseResponse(UnsafeRawBufferPointer(rebasing: raw[..<end]))
                    }
                    return (head, end)
                } catch {
                    throw .protocolViolation("handshake response: \(error)")
                }
            }
            guard input.count < 8192 else { throw .protocolViolation("handshake response head over 8 KiB") }
            guard try waitReadable(fd, deadline: deadline) else { throw .timedOut("handshake") }
            guard let n = try readSome(fd, &chunk) else { continue }
            guard n > 0 else { throw .closedByPeer }
            input += chunk[..<n]
        }
    }

    /// A refusal's body: by Content-Length or until close, at most 64 KiB, within the deadline.
    private func readBody(_ fd: Wire, head: HTTPResponseHead, buffered: [UInt8], deadline: ContinuousClock.Instant) throws(TransportError) -> [UInt8] {
        var body = buffered
        let limit: Int
        switch try? head.bodyFraming(requestMethod: "GET") {
        case .length(let n)?: limit = min(n, 65_536)
        case .untilClose?: limit = 65_536
        default: return []   // chunked or unreadable: the status alone decides
        }
        var chunk = [UInt8](repeating: 0, count: 4096)
        while body.count < limit, try waitReadable(fd, deadline: deadline) {
            guard let n = try readSome(fd, &chunk) else { continue }
            if n == 0 { break }
            body += chunk[..<n]
        }
        return Array(body.prefix(limit))
    }

    /// Frames until the session ends; returns `.closed` or `.failed` (or nil when aborted).
    private func frames(_ fd: Wire, leftover: [UInt8]) throws(TransportError) -> ConnectionEvent? {
        var parser = FrameParser(role: .client, limits: FrameLimits(
            maxFrameBytes: settings.maxMessageBytes, maxMessageBytes: settings.maxMessageBytes))
        var message: [UInt8] = []
        var messageIsText = false
        var pending: [UInt8] = []           // bytes taken from the outbox, not yet written
        var closeSent: (code: CloseCode?, at: ContinuousClock.Instant)?
        var lastHeard = ContinuousClock.now
        var pingSentAt: ContinuousClock.Instant?
        var chunk = [UInt8](repeating: 0, count: 65_536)
        var input = leftover

        while true {
            // 1. Take what the actor queued.
            let (queued, closeRequest, aborted) = outbox.withLock { box in
                defer { box.bytes = []; box.close = nil }
                return (box.bytes, box.close, box.aborted)
            }
            if aborted { return .failed(.aborted) }
            if closeSent == nil {
                pending += queued
                if let closeRequest {
                    appendControl(.close, closeRequest.encoded, to: &pending)
                    closeSent = (closeRequest.code, ContinuousClock.now)
                }
            }

            // 2. Parse whatever has arrived.
            if !input.isEmpty {
                lastHeard = ContinuousClock.now
                pingSentAt = nil
                let frames: [WebSocketFrame]
                do {
                    frames = try parser.feed(input)
                } catch {
                    // RFC 6455 §7.1.7: fail the connection, with the close code the error maps to.
                    appendControl(.close, ClosePayload(code: CloseCode(error)).encoded, to: &pending)
                    try? flush(fd, &pending, deadline: .now + .seconds(1))
                    return .failed(.protocolViolation("\(error)"))
                }
                input = []
                for frame in frames {
                    switch frame.opcode {
                    case .text, .binary:
                        message = frame.payload
                        messageIsText = frame.opcode == .text
                    case .continuation:
                        message += frame.payload
                    case .ping:
                        // RFC 6455 §5.5.2: answer with a pong carrying the same payload.
                        if closeSent == nil { appendControl(.pong, frame.payload, to: &pending) }
                        continue
                    case .pong:
                        continue
                    case .close:
                        let payload = (try? ClosePayload(decoding: frame.payload)) ?? ClosePayload(code: nil)
                        if closeSent == nil {
                            // RFC 6455 §5.5.1: echo the code, then the server closes TCP.
                            appendControl(.close, ClosePayload(code: payload.code).encoded, to: &pending)
                            try? flush(fd, &pending, deadline: .now + .seconds(1))
                        }
                        return .closed(code: payload.code.map { Int($0.rawValue) }, reason: payload.reason)
                    }
                    if frame.fin {
                        // The parser has checked the UTF-8 of text already (RFC 6455 §8.1).
                        if messageIsText, closeSent == nil { sink.yield(.text(String(decoding: message, as: UTF8.self))) }
                        message = []
                    }
                }
            }

            // 3. Keepalive: ping after silence, give up when no answer comes.
            let now = ContinuousClock.now
            if let closeSent, now - closeSent.at > .seconds(2) {
                return .closed(code: closeSent.code.map { Int($0.rawValue) }, reason: "closed by the client")
            }
            if let sent = pingSentAt, now - sent > settings.pongTimeout { throw .timedOut("pong") }
            if pingSentAt == nil, now - lastHeard >= settings.pingInterval, closeSent == nil {
                appendControl(.ping, [], to: &pending)
                pingSentAt = now
            }
            var wakeAt = pingSentAt.map { $0 + settings.pongTimeout } ?? lastHeard + settings.pingInterval
            if let closeSent { wakeAt = min(wakeAt, closeSent.at + .seconds(2)) }

            // 4. Write what we can, then wait for input, room to write, a wake-up or the deadline.
            if !pending.isEmpty || fd.hasOutput { try writeSome(fd, &pending) }
            let writing = !pending.isEmpty || fd.hasOutput
            var fds = [
                pollfd(fd: fd.fd, events: Int16(POLLIN) | (writing ? Int16(POLLOUT) : 0), revents: 0),
                pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0),
            ]
            // Plaintext already decrypted needs no wait.
            _ = try TCPSocket.poll(&fds, until: fd.hasBufferedInput ? .now : wakeAt)
            if fds[1].revents != 0 { drainWakePipe() }
            if fd.hasBufferedInput || fds[0].revents & (Int16(POLLIN) | Int16(POLLHUP) | Int16(POLLERR)) != 0 {
                if let n = try readSome(fd, &chunk) {
                    if n == 0 {
                        if let closeSent { return .closed(code: closeSent.code.map { Int($0.rawValue) }, reason: "closed by the client") }
                        throw .closedByPeer
                    }
                    input = Array(chunk[..<n])
                }
            }
        }
    }

    // MARK: - Helpers

    private func appendControl(_ opcode: WebSocketOpcode, _ payload: [UInt8], to out: inout [UInt8]) {
        payload.withUnsafeBytes {
            FrameEncoder.append(opcode: opcode, payload: $0, maskKey: UInt32.random(in: .min ... .max), to: &out)
        }
    }

    private func waitReadable(_ fd: Wire, deadline: ContinuousClock.Instant) throws(TransportError) -> Bool {
        if fd.hasBufferedInput { return true }
        return try TCPSocket.waitFor(fd.fd, events: Int32(POLLIN), deadline: deadline)
    }

    /// One read: the byte count, 0 when the server closed, nil when nothing is there after all.
    private func readSome(_ fd: Wire, _ chunk: inout [UInt8]) throws(TransportError) -> Int? {
        try fd.read(&chunk)
    }

    /// Writes as much of `pending` as the socket takes now.
    private func writeSome(_ fd: Wire, _ pending: inout [UInt8]) throws(TransportError) {
        try fd.write(&pending)
    }

    /// Writes all of `pending`, waiting for room until `deadline`.
    private func flush(_ fd: Wire, _ pending: inout [UInt8], deadline: ContinuousClock.Instant) throws(TransportError) {
        while !pending.isEmpty || fd.hasOutput {
            try writeSome(fd, &pending)
            if !pending.isEmpty || fd.hasOutput {
                guard try TCPSocket.waitFor(fd.fd, events: Int32(POLLOUT), deadline: deadline) else { throw .timedOut("write") }
            }
        }
    }

    private func drainWakePipe() {
        var scratch = [UInt8](repeating: 0, count: 64)
        while scratch.withUnsafeMutableBytes({ read(wakeRead, $0.baseAddress, $0.count) }) > 0 {}
    }
}

/// `close(2)`, named apart from `WebSocketClientConnection.close(code:reason:)`.
private func closeDescriptor(_ fd: Int32) {
    #if canImport(Darwin)
    _ = Darwin.close(fd)
    #elseif canImport(Musl)
    _ = Musl.close(fd)
    #else
    _ = Glibc.close(fd)
    #endif
}

/// The socket, and TLS on it for `wss://`. Thread-confined: the connection's thread alone uses it.
final class Wire {
    let fd: Int32
    #if canImport(COpenSSL)
    let tls: ClientTLS?
    #else
    let tls: Never?
    #endif
    /// Ciphertext not yet taken by the socket.
    var cipherOut: [UInt8] = []
    /// Plaintext decrypted and not yet read.
    private var plainIn: [UInt8] = []
    private var closeNotified = false

    #if canImport(COpenSSL)
    init(fd: Int32, tls: ClientTLS?) {
        self.fd = fd
        self.tls = tls
    }

    static func tls(host: String, caFile: String?) throws(TransportError) -> ClientTLS {
        try ClientTLS(host: host, caFile: caFile)
    }
    #else
    init(fd: Int32, tls: Never?) {
        self.fd = fd
        self.tls = nil
    }

    static func tls(host: String, caFile: String?) throws(TransportError) -> Never? {
        throw .tls("wss:// needs OpenSSL, which this platform's build does not have")
    }
    #endif

    var hasOutput: Bool { !cipherOut.isEmpty }
    /// Decrypted input waiting, or the server's close_notify (the end of the stream) not yet read.
    var hasBufferedInput: Bool { !plainIn.isEmpty || closeNotified }

    /// One read into `chunk`: the byte count, 0 at the end of the stream, nil when nothing is there.
    func read(_ chunk: inout [UInt8]) throws(TransportError) -> Int? {
        #if canImport(COpenSSL)
        if let tls {
            if plainIn.isEmpty, !closeNotified {
                let result = chunk.withUnsafeMutableBytes { buffer in Result { () throws(TransportError) in try TCPSocket.read(fd, into: buffer) } }
                switch try result.get() {
                case .wouldBlock: return nil
                case .processed(0): return 0
                case .processed(let n):
                    tls.feed(chunk[..<n])
                    closeNotified = try !tls.decrypt(into: &plainIn)
                    cipherOut += tls.takeOutput()   // e.g. an answer to a key update
                }
            }
            if plainIn.isEmpty { return closeNotified ? 0 : nil }
            let n = min(chunk.count, plainIn.count)
            chunk.replaceSubrange(0..<n, with: plainIn[..<n])
            plainIn.removeFirst(n)
            return n
        }
        #endif
        let result = chunk.withUnsafeMutableBytes { buffer in Result { () throws(TransportError) in try TCPSocket.read(fd, into: buffer) } }
        switch try result.get() {
        case .processed(let n): return n
        case .wouldBlock: return nil
        }
    }

    /// Takes all of `pending` (encrypted, with TLS) and writes what the socket takes now.
    func write(_ pending: inout [UInt8]) throws(TransportError) {
        #if canImport(COpenSSL)
        if let tls {
            if !pending.isEmpty {
                try tls.encrypt(pending)
                pending = []
                cipherOut += tls.takeOutput()
            }
            let result = cipherOut.withUnsafeBytes { bytes in Result { () throws(TransportError) in try TCPSocket.write(fd, bytes) } }
            if case .processed(let n) = try result.get() { cipherOut.removeFirst(n) }
            return
        }
        #endif
        let result = pending.withUnsafeBytes { bytes in Result { () throws(TransportError) in try TCPSocket.write(fd, bytes) } }
        if case .processed(let n) = try result.get() { pending.removeFirst(n) }
    }
}
