// SPDX-License-Identifier: Apache-2.0
import Logging
import Synchronization
public import Transport
public import WireCodec
import WireDeflate

/// One TCP connection: an HTTP request head, then either plain HTTP (keep-alive) or a WebSocket.
///
///     head ──(plain HTTP, body?)──▶ body ──respond──▶ head (keep-alive) | finishing
///       │
///       └──101──▶ open ──we send close──▶ closing ──peer's close──▶ finishing ──EOF/deadline──▶ closed
///                   └────peer's close / protocol error / slow consumer────▶ finishing
///
/// `finishing` flushes what is queued, then: after a complete close handshake, closes the socket;
/// after a failure or an HTTP rejection, half-closes (FIN) and discards input until the peer's
/// end of stream or the close timeout, so the last close frame or error response is not lost to
/// a TCP reset.
///
/// Pinned to one loop: a non-Sendable class that only its loop thread touches.
public final class Connection: IOHandler {
    enum State: Equatable {
        case head
        case body(remaining: Int)
        /// A request is with the application; reading is paused until its reply.
        case awaitingReply(keepAlive: Bool, headOnly: Bool)
        case open
        case closing
        case finishing
        case closed
    }

    /// Unique per process.
    public let id: UInt64
    let fd: Int32
    var generation: UInt32 = 0
    unowned let context: LoopContext
    /// Index in `context.connections` (swap-remove).
    var slot = 0

    private(set) var state = State.head
    private var headReader: HTTPHeadReader
    private var pendingHead: HTTPRequestHead?
    private var body: [UInt8] = []
    private var parser: FrameParser?
    private var message: [UInt8] = []
    /// Bytes that arrived after a request whose reply is pending (pipelining).
    private var pendingInput: [UInt8] = []
    private var readingPaused = false
    /// The peer half-closed while its request was with the application: no keep-alive after the reply.
    private var peerDoneSending = false
    /// True while the application's `respond` runs (a reply sent from inside it is synchronous).
    private var inRespond = false
    private var messageIsText = false
    private var session: (any WebSocketSession)?
    private var closeCode: CloseCode?
    /// permessage-deflate as agreed in the handshake (nil: not in use), whether the message being
    /// assembled is compressed, and this connection's own zlib streams: made on first use, only
    /// when a window must outlive a message (context takeover); otherwise the loop's are shared.
    private var deflate: DeflateParameters?
    private var messageCompressed = false
    private var ownInflater: MessageInflater?
    private var ownDeflater: MessageDeflater?

    /// Plaintext to send (for TLS: not yet encrypted).
    private var out: [UInt8] = []
    private var outStart = 0
    /// TLS only: the session, and ciphertext not yet accepted by the kernel.
    private let tls: TLSSession?
    private var sealed: [UInt8] = []
    private var sealedStart = 0
    private var watchingWrite = false
    private var corked = false
    private var halfClosed = false
    /// Both close frames are exchanged: release the socket as soon as our bytes are out.
    private var handshakeComplete = false

    /// Head deadline in `head`/`body`, close deadline in `closing`/`finishing` (loop nanoseconds).
    private var deadline: UInt64
    /// Set while a reply is streamed: how its body is delimited.
    private var streaming: HTTPResponse.BodyFraming?
    private var requestMinorVersion = 1
    /// Called on the loop when a streamed reply's queued bytes have all gone to the kernel.
    public var onReplyDrained: (() -> Void)?
    /// Called on the loop if the connection goes away while a reply is still pending or streaming.
    public var onReplyAbandoned: (() -> Void)?
    private var lastRead: UInt64
    private var pingSentAt: UInt64 = 0
    /// Counted against its address's cap of unfinished requests while it reads a request (head or
    /// body), from accept and again on each keep-alive turn; not while upgraded, while its request is
    /// with the application, or once closed.
    private var unfinished = true

    init(fd: Int32, id: UInt64, context: LoopContext, peer: PeerAddress = .unknown, tls: TLSSession? = nil, listener: Listener = .main) {
        self.fd = fd
        self.id = id
        self.peer = peer
        self.listener = listener
        self.context = context
        self.tls = tls
        headReader = HTTPHeadReader(limits: context.shared.configuration.head)
        lastRead = context.loop.now
        deadline = lastRead + context.shared.handshakeTimeout
    }

    /// The peer's IP address as accepted.
    public let peer: PeerAddress

    /// The listener this connection came in on.
    public let listener: Listener

    /// The peer's IP address as text (made on each call; ask only when needed).
    public var peerAddress: String { peer == .unknown ? Socket.peerAddress(fd) : peer.description }

    /// True while the WebSocket is open for messages both ways.
    public var isOpen: Bool { state == .open }

    /// Bytes queued and not yet accepted by the kernel.
    public var queuedBytes: Int { out.count - outStart + sealed.count - sealedStart }

    /// True for a connection from the TLS listener.
    public var isSecure: Bool { tls != nil }

    // MARK: - Sending

    /// Sends a text message (`payload` must be UTF-8).
    public func send(text payload: [UInt8]) { sendMessage(.text, payload) }

    /// Sends a binary message.
    public func send(binary payload: [UInt8]) { sendMessage(.binary, payload) }

    /// Sends a message prepared once for many connections, compressed if this connection takes
    /// the shared compressed form (no server context takeover, a 15-bit window).
    public func send(prepared message: PreparedMessage) {
        guard state == .open else { return }
        if let compressed = message.compressed, let deflate, deflate.serverDeflaterIsShareable, deflate.serverMaxWindowBits == 15 {
            writeOrQueue(compressed)
        } else {
            writeOrQueue(message.plain)
        }
    }

    /// Sends ready bytes that end with a close frame carrying `code` (encoded once for many
    /// connections, e.g. a notice and its close), and starts the close handshake: one write,
    /// no per-connection encoding.
    public func send(finalFrames bytes: [UInt8], closeCode code: CloseCode) {
        guard state == .open else { return }
        closeCode = code
        state = .closing
        deadline = context.loop.now + context.shared.closeTimeout
        writeOrQueue(bytes)
    }

    /// The loop this connection lives on.
    public var loop: EventLoop { context.loop }

    private func sendMessage(_ opcode: WebSocketOpcode, _ payload: [UInt8]) {
        guard state == .open else { return }
        if let compressed = compressed(payload) {
            // RFC 7692 §6: RSV1 marks a compressed message.
            compressed.withUnsafeBytes { FrameEncoder.append(opcode: opcode, payload: $0, rsv1: true, to: &out) }
        } else {
            payload.withUnsafeBytes { FrameEncoder.append(opcode: opcode, payload: $0, to: &out) }
        }
        afterQueueing()
    }

    /// The message compressed for this connection, or nil to send it as it is (no extension,
    /// below the size threshold, or zlib out of memory: uncompressed is always allowed).
    private func compressed(_ payload: [UInt8]) -> [UInt8]? {
        guard let deflate, let configuration = context.shared.deflate, configuration.shouldCompress(payload.count) else { return nil }
        let deflater: MessageDeflater
        if deflate.serverDeflaterIsShareable {
            deflater = context.sharedDeflater(windowBits: deflate.serverMaxWindowBits)
        } else {
            if ownDeflater == nil { ownDeflater = MessageDeflater(parameters: deflate, configuration: configuration) }
            deflater = ownDeflater!
        }
        return try? deflater.compress(payload)
    }

    /// Writes straight from `bytes` when nothing is queued (no copy), queueing what the kernel
    /// does not take.
    private func writeOrQueue(_ bytes: [UInt8]) {
        guard tls == nil, !corked, outStart == out.count else {
            out.append(contentsOf: bytes)
            return afterQueueing()
        }
        let result: IOResult<Int>
        do {
            result = try bytes.withUnsafeBytes { raw throws(SystemError) in try Socket.write(fd, raw) }
        } catch {
            return closeNow()
        }
        let written: Int
        switch result {
        case .processed(let n): written = n
        case .wouldBlock: written = 0
        }
        if written < bytes.count {
            out.removeAll(keepingCapacity: true)
            outStart = 0
            out.append(contentsOf: bytes[written...])
            afterQueueing()
        }
    }

    private func afterQueueing() {
        // Backpressure: never queue without bound for a peer that does not read.
        if queuedBytes > context.shared.configuration.maxWriteQueueBytes {
            context.shared.logger.debug("write queue full", metadata: ["connection.id": "\(id)", "queued": "\(queuedBytes)"])
            context.shared.slowConsumerCloses.add(1, ordering: .relaxed)
            fail(.slowConsumer, reason: "write queue full")
            return
        }
        if !corked { flush() }
    }

    /// Starts the close handshake (RFC 6455 §7.1.2): sends a close frame and waits for the peer's.
    public func close(code: CloseCode = .normal, reason: String = "") {
        switch state {
        case .open: break
        case .head, .body, .awaitingReply: return closeNow()
        case .closing, .finishing, .closed: return
        }
        sendControl(.close, ClosePayload(code: code, reason: reason).encoded)
        closeCode = code
        state = .closing
        deadline = context.loop.now + context.shared.closeTimeout
        if !corked { flush() }
    }

    private func sendControl(_ opcode: WebSocketOpcode, _ payload: [UInt8]) {
        payload.withUnsafeBytes { FrameEncoder.append(opcode: opcode, payload: $0, to: &out) }
    }

    /// _Fail the WebSocket Connection_ (RFC 6455 §7.1.7): close frame with `code`, then finish.
    private func fail(_ code: CloseCode, reason: String = "") {
        if state == .open {
            sendControl(.close, ClosePayload(code: code, reason: reason).encoded)
            closeCode = code
        }
        finish()
    }

    /// Stop reading for meaning: flush, half-close, wait for the peer's end of stream.
    private func finish() {
        guard state != .closed, state != .finishing else { return }
        state = .finishing
        deadline = context.loop.now + context.shared.closeTimeout
        if !corked { flush() }
    }

    // MARK: - Events

    public func handleIO(_ events: UInt32) {
        if readingPaused {
            // Only EPOLLHUP/EPOLLERR reach a paused connection's input side: the peer is gone. (An
            // EPOLLIN from before the pause, later in the same batch, is not.)
            if events & EventLoop.failure != 0 { return closeNow() }
        } else if events & (EventLoop.readable | EventLoop.hangup) != 0 {
            readable()
        }
        if state != .closed, events & EventLoop.writable != 0 { flush() }
    }

    private func readable() {
        let buffer = context.readBuffer
        var rounds = 0
        while state != .closed, !readingPaused {
            let n: Int
            do {
                switch try Socket.read(fd, into: buffer) {
                case .wouldBlock: return
                case .processed(let count): n = count
                }
            } catch {
                closeNow()
                return
            }
            if n == 0 {
                if case .awaitingReply = state {
                    // The peer sent its request and half-closed: it still reads. Answer, then close.
                    peerDoneSending = true
                    if !readingPaused {
                        readingPaused = true
                        updateInterest()
                    }
                    return
                }
                // End of stream: the peer is gone (or done, in `finishing`).
                closeNow()
                return
            }
            lastRead = context.loop.now
            pingSentAt = 0
            corked = true
            if let tls {
                do {
                    try tls.receive(UnsafeRawBufferPointer(rebasing: buffer[..<n]), scratch: context.tlsScratch) { plaintext in
                        process(plaintext)
                    }
                } catch {
                    // Garbage, a refused handshake or a broken record: send the alert, then go.
                    context.shared.logger.debug("TLS failed", metadata: ["connection.id": "\(id)", "error": "\(error)"])
                    return endTLS(tls)
                }
                if state == .closed { return }   // closed while its plaintext was processed
                if tls.peerClosed {
                    // close_notify (RFC 8446 §6.1): no more input; answer it, then close.
                    corked = false
                    flush()
                    tls.shutdown()
                    return endTLS(tls)
                }
            } else {
                process(UnsafeRawBufferPointer(rebasing: buffer[..<n]))
            }
            corked = false
            flush()
            rounds += 1
            // A full buffer means more is waiting; come back for it, but let others run too.
            guard n == buffer.count, rounds < 4 else { return }
        }
    }

    private func process(_ bytes: UnsafeRawBufferPointer) {
        var cursor = ByteCursor(bytes)
        while !cursor.isAtEnd {
            switch state {
            case .head:
                do {
                    guard let (head, used) = try headReader.feed(cursor.rest) else { return }
                    cursor.index += used
                    handleHead(head)
                } catch {
                    reject(HandshakeRejection(error).response)
                    return
                }
            case .body(let remaining):
                let take = min(remaining, cursor.remaining)
                body.append(contentsOf: UnsafeRawBufferPointer(rebasing: cursor.bytes[cursor.index..<cursor.index + take]))
                cursor.index += take
                if take == remaining, let head = pendingHead {
                    pendingHead = nil
                    let request = HTTPRequest(head: head, body: body)
                    body = []
                    respond(to: request)
                } else {
                    state = .body(remaining: remaining - take)
                }
            case .awaitingReply:
                pendingInput.append(contentsOf: cursor.rest)
                if !readingPaused, pendingInput.count > Self.maxPendingInput {
                    // Read nothing more until the reply (EPOLLHUP/ERR still arrive).
                    readingPaused = true
                    updateInterest()
                }
                return
            case .open, .closing:
                parseFrames(&cursor)
            case .finishing, .closed:
                return   // discard
            }
        }
    }

    // MARK: - HTTP

    private func handleHead(_ head: HTTPRequestHead) {
        let shared = context.shared
        if WebSocketHandshake.isUpgradeRequest(head) {
            let upgrade: WebSocketUpgrade
            switch WebSocketHandshake.validate(head) {
            case .failure(let rejection): return reject(rejection.response)
            case .success(let valid): upgrade = valid
            }
            if context.draining { return reject(HandshakeRejection(status: 503, reason: "draining").response) }
            switch shared.application.upgrade(head, upgrade, on: self) {
            case .reject(let response):
                reject(response)
            case .accept(let selected, let session):
                // RFC 6455 §4.2.2: the server may only choose a protocol the client offered.
                precondition(selected.map(upgrade.protocols.contains) ?? true, "selected protocol was not offered")
                // RFC 7692 §5: accept the first permessage-deflate offer we can honour, if any.
                var extensions: String?
                if let configuration = shared.deflate, case let offers = head.values("sec-websocket-extensions"), !offers.isEmpty,
                   let agreed = PerMessageDeflate.negotiate(offers, configuration: configuration) {
                    deflate = agreed.parameters
                    extensions = agreed.responseHeaderValue
                }
                WebSocketHandshake.appendResponse(accept: upgrade.accept, protocol: selected, extensions: extensions, to: &out)
                state = .open
                finishedRequest()
                parser = FrameParser(role: .server, limits: shared.configuration.frames)
                if deflate != nil { parser!.allowedReservedBits = 0x4 }   // RFC 7692 §6: RSV1
                self.session = session
                session.opened(self)
            }
            return
        }
        // Plain HTTP. Bodies by Content-Length only.
        if head.count("transfer-encoding") > 0 {
            return reject(HTTPResponse.json(status: 501, #"{"error":"chunked_not_supported"}"#))
        }
        let lengths = head.values("content-length")
        guard lengths.count <= 1, let length = lengths.isEmpty ? 0 : Int(lengths[0]), length >= 0 else {
            return reject(HTTPResponse.json(status: 400, #"{"error":"invalid_content_length"}"#))
        }
        guard length <= shared.configuration.maxBodyBytes else {
            return reject(HTTPResponse.json(status: 413, #"{"error":"body_too_large"}"#))
        }
        if length > 0 {
            pendingHead = head
            body.reserveCapacity(length)
            state = .body(remaining: length)
        } else {
            respond(to: HTTPRequest(head: head))
        }
    }

    /// The request is read: the connection no longer counts against its address's cap.
    private func finishedRequest() {
        guard unfinished else { return }
        unfinished = false
        context.shared.releaseUnfinished(peer)
    }

    private func respond(to request: HTTPRequest) {
        finishedRequest()
        requestMinorVersion = request.head.minorVersion
        state = .awaitingReply(keepAlive: request.head.keepAlive && !context.draining, headOnly: request.head.method == "HEAD")
        context.awaitingReply[id] = self
        inRespond = true
        context.shared.application.respond(to: request, on: self, reply: HTTPReply(context: context, connectionID: id))
        inRespond = false
        // A reply that comes later does not stop reading at once (two epoll_ctl calls per proxied
        // call): what a client pipelines meanwhile is held, and reading pauses only past a bound.
    }

    /// The application's answer to the pending request (on the loop thread).
    func deliverReply(_ response: HTTPResponse) {
        guard case .awaitingReply(let keepAlive, let headOnly) = state, streaming == nil else { return }
        response.encode(into: &out, keepAlive: keepAlive && !peerDoneSending, headOnly: headOnly)
        replyDone(keepAlive: keepAlive)
    }

    // MARK: - Streamed replies (loop thread; for a proxied body that must not be buffered whole)

    /// Input held while a reply is pending, before reading pauses.
    static let maxPendingInput = 64 * 1024

    /// Holds writes in the queue (several pieces of a streamed reply go out in one send).
    public func holdWrites() { corked = true }

    /// Sends what was held.
    public func releaseWrites() {
        guard corked else { return }
        corked = false
        flush()
    }

    /// A request is with the application (its reply pending or streaming).
    public var isAwaitingReply: Bool { if case .awaitingReply = state { return true } else { return false } }

    /// Starts the reply to the pending request with `head` (its body is ignored) and a body of
    /// `contentLength` bytes, or of unknown length (chunked to an HTTP/1.1 client, until close to
    /// HTTP/1.0). Follow with `writeReplyBody` and `endReply`. False if no reply is pending.
    public func beginReply(_ head: HTTPResponse, contentLength: Int?) -> Bool {
        guard case .awaitingReply(let keepAlive, let headOnly) = state, streaming == nil else { return false }
        let framing: HTTPResponse.BodyFraming
        if let contentLength { framing = .length(contentLength) }
        else if headOnly { framing = .length(0) }
        else { framing = requestMinorVersion >= 1 ? .chunked : .untilClose }
        if framing == .untilClose { state = .awaitingReply(keepAlive: false, headOnly: headOnly) }
        streaming = framing
        var bytes: [UInt8] = []
        head.encodeHead(into: &bytes, keepAlive: keepAlive && !peerDoneSending && framing != .untilClose, framing: framing)
        writeOrQueue(bytes)
        return state != .closed
    }

    /// Bytes of the streamed body. The caller watches `queuedBytes` and waits for `onReplyDrained`
    /// before writing more than the peer reads.
    public func writeReplyBody(_ bytes: UnsafeRawBufferPointer) {
        guard let framing = streaming, case .awaitingReply(_, let headOnly) = state, !headOnly, !bytes.isEmpty else { return }
        var chunk: [UInt8] = []
        chunk.reserveCapacity(bytes.count + 12)
        if framing == .chunked { chunk += String(bytes.count, radix: 16).utf8; chunk += [0x0d, 0x0a] }
        chunk.append(contentsOf: bytes)
        if framing == .chunked { chunk += [0x0d, 0x0a] }
        writeOrQueue(chunk)
    }

    /// Ends the streamed body; the connection goes on to its next request (or closes).
    public func endReply() {
        guard let framing = streaming, case .awaitingReply(let keepAlive, let headOnly) = state else { return }
        if framing == .chunked && !headOnly { writeOrQueue(Array("0\r\n\r\n".utf8)) }
        guard state != .closed else { return }
        streaming = nil
        replyDone(keepAlive: keepAlive && framing != .untilClose)
    }

    /// Gives up on a streamed reply (its source failed midway): the peer sees the body cut short.
    public func abortReply() {
        guard streaming != nil || { if case .awaitingReply = state { return true } else { return false } }() else { return }
        closeNow()
    }

    private func replyDone(keepAlive: Bool) {
        onReplyDrained = nil
        onReplyAbandoned = nil
        // Waiting for the next request counts against the address's cap again; an address at its cap
        // gets this answer and then the end of the connection instead.
        if keepAlive && !peerDoneSending && context.shared.admitUnfinished(peer) {
            unfinished = true
            state = .head
            deadline = context.loop.now + context.shared.handshakeTimeout
        } else {
            finish()
        }
        guard !inRespond else { return }   // answered synchronously, inside `process`: it goes on with the input
        if readingPaused {
            readingPaused = false
            updateInterest()
        }
        if !pendingInput.isEmpty {
            var input: [UInt8] = []
            swap(&input, &pendingInput)
            corked = true
            input.withUnsafeBytes { process($0) }
            corked = false
        }
        flush()
    }

    /// Answers and closes.
    private func reject(_ response: HTTPResponse) {
        response.encode(into: &out, keepAlive: false)
        finish()
    }

    // MARK: - WebSocket

    private func parseFrames(_ cursor: inout ByteCursor) {
        while !cursor.isAtEnd, state == .open || state == .closing {
            let result: ParseResult
            do {
                result = try parser!.parse(&cursor)
            } catch {
                context.shared.logger.debug("protocol error", metadata: ["connection.id": "\(id)", "error": "\(error)"])
                fail(CloseCode(error))
                return
            }
            if case .frame(let frame) = result { handleFrame(frame) }
        }
    }

    private func handleFrame(_ frame: WebSocketFrame) {
        switch frame.opcode {
        case .text, .binary:
            guard state == .open else { return }
            if frame.fin {
                if frame.rsv1 {
                    deliverCompressed(isText: frame.opcode == .text, frame.payload)
                } else {
                    deliver(WebSocketMessage(isText: frame.opcode == .text, payload: frame.payload))
                }
            } else {
                messageIsText = frame.opcode == .text
                messageCompressed = frame.rsv1
                message = frame.payload
            }
        case .continuation:
            guard state == .open else { return }
            // The parser bounds the sum of a message's frames (compressed bytes, when compressed).
            message.append(contentsOf: frame.payload)
            if frame.fin {
                var whole: [UInt8] = []
                swap(&whole, &message)
                if messageCompressed {
                    deliverCompressed(isText: messageIsText, whole)
                } else {
                    deliver(WebSocketMessage(isText: messageIsText, payload: whole))
                }
            }
        case .ping:
            // RFC 6455 §5.5.2: answer with a pong carrying the same data.
            if state == .open { sendControl(.pong, frame.payload) }
        case .pong:
            pingSentAt = 0
        case .close:
            // Validated by the parser already.
            let peer = (try? ClosePayload(decoding: frame.payload)) ?? ClosePayload(code: nil)
            if state == .open {
                // RFC 6455 §5.5.1: echo the status code, then the server closes TCP first.
                sendControl(.close, ClosePayload(code: peer.code).encoded)
                closeCode = peer.code ?? .noStatus
            }
            // RFC 6455 §7.1.1: with both close frames exchanged, the server closes the TCP connection.
            handshakeComplete = true
            finish()
        }
    }

    private func deliver(_ message: WebSocketMessage) {
        session?.received(message, on: self)
    }

    /// Inflates a compressed message within the message limit (a decompression bomb costs at
    /// most the limit, then 1009), checks text for UTF-8 (1007), and delivers it.
    private func deliverCompressed(isText: Bool, _ payload: [UInt8]) {
        guard let deflate else { return fail(.protocolError) }
        let limit = context.shared.configuration.frames.maxMessageBytes
        var inflated: [UInt8] = []
        var failure: DeflateError?
        if deflate.serverInflaterIsShareable {
            let inflater = context.sharedInflater(maxMessageBytes: limit)
            do { inflated = try inflater.inflateMessage([payload]) } catch { failure = error }
        } else {
            if ownInflater == nil { ownInflater = MessageInflater(parameters: deflate, maxMessageBytes: limit) }
            // (Typed-throws closures crash Swift 6.3.1's IRGen here: the error is carried out.)
            payload.withUnsafeBytes { raw in
                do throws(DeflateError) { try ownInflater!.inflate(raw, isFinal: true, appendingTo: &inflated) } catch { failure = error }
            }
        }
        if let failure {
            context.shared.logger.debug("inflate failed", metadata: ["connection.id": "\(id)", "error": "\(failure)"])
            return fail(CloseCode(failure))
        }
        if isText {
            // RFC 6455 §8.1: text is UTF-8; a compressed message is checked once inflated.
            var validator = UTF8Validator()
            guard validator.validate(inflated), validator.isComplete else { return fail(.invalidPayload) }
        }
        deliver(WebSocketMessage(isText: isText, payload: inflated))
    }

    // MARK: - Writing

    func flush() {
        // A closed connection's fd may already belong to someone else: never touch it again.
        guard state != .closed else { return }
        let allWritten: Bool
        if let tls {
            if outStart < out.count {
                // Nothing can be said before the TLS handshake completes; a reply to a peer that
                // never finished it (a deadline's 408) is dropped.
                if tls.isHandshakeComplete {
                    // (A typed-throws closure here crashes Swift 6.3.1's IRGen: the error is carried out.)
                    var failed = false
                    out.withUnsafeBytes { raw in
                        do { try tls.send(UnsafeRawBufferPointer(rebasing: raw[outStart...])) } catch { failed = true }
                    }
                    if failed { return closeNow() }
                }
                out = []
                outStart = 0
            }
            // Ending: our close_notify goes before the FIN (RFC 8446 §6.1; idempotent).
            if state == .finishing { tls.shutdown() }
            tls.takeOutput(into: &sealed)
            switch Socket.drain(&sealed, from: &sealedStart, to: fd) {   // the borrow of `sealed` ends here
            case .failed: return closeNow()
            case .blocked: allWritten = false
            case .drained:
                allWritten = true
                sealed = []   // idle TLS connections keep no buffers
            }
        } else {
            switch Socket.drain(&out, from: &outStart, to: fd) {   // the borrow of `out` ends here
            case .failed: return closeNow()
            case .blocked: allWritten = false
            case .drained: allWritten = true
            }
        }
        guard allWritten else {
            if !watchingWrite {
                watchingWrite = true
                updateInterest()
            }
            return
        }
        if watchingWrite {
            watchingWrite = false
            updateInterest()
        }
        if streaming != nil, let drained = onReplyDrained {
            // The source may now produce the rest of the reply, even end it: not inside this flush,
            // which would go on to half-close with those bytes still queued. Next turn of the loop.
            onReplyDrained = nil
            _ = context.loop.schedule(at: context.loop.now, drained)
        }
        if state == .finishing {
            if handshakeComplete {
                closeNow()
            } else if !halfClosed {
                halfClosed = true
                Socket.shutdownWrite(fd)
            }
        }
    }

    /// Sends what TLS still has to say (an alert, our close_notify), best effort, and closes.
    private func endTLS(_ tls: TLSSession) {
        guard state != .closed else { return }   // the fd may already be someone else's
        corked = false
        tls.takeOutput(into: &sealed)
        _ = Socket.drain(&sealed, from: &sealedStart, to: fd)   // best effort: closing either way
        closeNow()
    }

    /// Tells epoll what we wait for: input unless paused, output while the kernel is full.
    private func updateInterest() {
        guard state != .closed else { return }
        let events = (readingPaused ? 0 : EventLoop.readable | EventLoop.hangup) | (watchingWrite ? EventLoop.writable : 0)
        context.loop.modify(fd, generation: generation, events: events)
    }

    /// Releases the socket now; the session and a pending reply's owner hear of it once the
    /// current event has been handled.
    ///
    /// Safe to call from anywhere on the loop, in the middle of anything: it touches no buffer,
    /// queue or parser (a caller may hold one `inout`, or be iterating its own tables) and calls
    /// nothing outside this connection. The buffers are dropped and the owners told by
    /// `releaseAfterClose`, which the loop runs after the handler, timer or job at hand returns.
    func closeNow() {
        guard state != .closed else { return }
        state = .closed
        watchingWrite = false
        context.loop.deregister(fd)
        Socket.close(fd)
        context.remove(self)
        finishedRequest()   // a closed connection counts no more
        context.loop.afterCurrentEvent { [self] in releaseAfterClose() }
    }

    /// The second half of `closeNow`, run by the loop outside any borrow or callback.
    private func releaseAfterClose() {
        out = []
        sealed = []
        message = []
        ownInflater = nil
        ownDeflater = nil
        body = []
        pendingInput = []
        parser = nil
        streaming = nil
        onReplyDrained = nil
        if let abandoned = onReplyAbandoned {
            onReplyAbandoned = nil
            abandoned()
        }
        if let session {
            self.session = nil
            session.closed(self, code: closeCode)
        }
    }

    // MARK: - Timers

    /// Called by the loop's sweep (every tick).
    func tick(_ now: UInt64) {
        switch state {
        case .head, .body:
            guard now >= deadline else { return }
            if headReader.bufferedCount == 0, pendingHead == nil {
                closeNow()   // an idle keep-alive or a connection that never spoke
            } else {
                reject(HTTPResponse.json(status: 408, #"{"error":"request_timeout"}"#))
                flush()
            }
        case .open:
            let shared = context.shared
            guard shared.idleTimeout > 0 else { return }
            if pingSentAt != 0 {
                // No answer to our ping: a half-open peer. Nothing can reach it; drop it.
                if now - pingSentAt >= shared.pongTimeout { closeNow() }
            } else if now - lastRead >= shared.idleTimeout {
                sendControl(.ping, [])
                pingSentAt = now
                flush()
            }
        case .closing, .finishing:
            if now >= deadline { closeNow() }
        case .awaitingReply, .closed:
            break
        }
    }

    /// Server shutdown: sessions get 1001, idle HTTP connections go at once.
    func drain() {
        switch state {
        case .open: close(code: .goingAway, reason: "server shutting down")
        case .head where headReader.bufferedCount == 0: closeNow()
        default: break
        }
    }
}
