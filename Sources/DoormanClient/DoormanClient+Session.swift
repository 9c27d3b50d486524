// SPDX-License-Identifier: Apache-2.0
import Foundation
import WireCodec

/// How one connection attempt or session ended.
enum SessionOutcome: Equatable {
    case closed(code: Int?, reason: String, notice: Notice?)
    case refused(status: Int, retryAfter: Duration?, reason: String?)
    case failed(String)
}

extension DoormanClient {
    var isStopped: Bool {
        if case .stopped = phase { return true }
        return false
    }

    /// Starts the supervisor once.
    func start() throws(DoormanError) {
        switch phase {
        case .stopped(let reason): throw .stopped(reason)
        case .running: return
        case .idle:
            let target = try ConnectionTarget(url: url)
            phase = .running
            supervisor = Task { await self.supervise(target) }
        }
    }

    /// Stops for good: no more attempts; everyone waiting learns why; `.stopped` ends `events`.
    func stop(_ reason: StopReason) {
        guard !isStopped else { return }
        phase = .stopped(reason)
        supervisor?.cancel()
        for (id, _) in pending { finish(id, .failure(.stopped(reason))) }
        for (token, _) in sessionWaiters { resumeWaiter(token, .failure(.stopped(reason))) }
        for waiter in stopWaiters { waiter.resume(returning: reason) }
        stopWaiters = []
        eventSink.yield(.stopped(reason))
        eventSink.finish()
    }

    // MARK: - The supervisor: connect, run, decide, wait, again

    /// Runs sessions until a stop. Each ending goes through `ReconnectPolicy`.
    func supervise(_ target: ConnectionTarget) async {
        var attempt = 0
        var quickReconnects = 0
        while !isStopped, !Task.isCancelled {
            let (outcome, lasted) = await runSession(target)
            guard !isStopped else { return }
            if let lasted, lasted >= options.stableSession { attempt = 0 }

            let action: ReconnectAction
            let code: Int?
            let reason: String
            switch outcome {
            case .closed(let closeCode, let closeReason, let notice):
                action = ReconnectPolicy.action(closeCode: closeCode, retryAfterMs: notice?.reconnect == false ? nil : notice?.retryAfterMs)
                (code, reason) = (closeCode, notice?.reason ?? closeReason)
                if action == .stop, let closeCode {
                    return stop(StopReason(source: .closeFrame, code: closeCode, reason: reason,
                                           message: notice?.message ?? "The server ended the session (\(closeCode) \(reason))."))
                }
            case .refused(let status, let retryAfter, let refusal):
                action = ReconnectPolicy.action(handshakeStatus: status, retryAfter: retryAfter, refusal: refusal)
                (code, reason) = (status, refusal ?? "http_\(status)")
                if action == .stop {
                    return stop(StopReason(source: .handshake, code: status, reason: reason, message: StopReason.message(forRefusal: reason)))
                }
            case .failed(let what):
                action = .backOff(atLeast: nil)
                (code, reason) = (nil, what)
            }

            var delay: Duration
            switch action {
            case .reconnectNow, .reconnectSoon:
                // A server that keeps asking for quick reconnects gets backoff after three.
                quickReconnects += 1
                if quickReconnects > 3 { fallthrough }
                delay = action == .reconnectNow ? .zero : .seconds(Double.random(in: 0...options.restartPause.seconds))
            case .backOff, .stop:
                let atLeast: Duration? = if case .backOff(let d) = action { d } else { nil }
                delay = max(options.backoff.delay(attempt: attempt), atLeast ?? .zero)
                attempt += 1
            case .retryAfter(let wait):
                // As the server said, plus up to as much again: a fleet does not come back at once.
                delay = wait + .seconds(Double.random(in: 0..<1) * wait.seconds)
                attempt += 1
            }
            if lasted.map({ $0 >= options.stableSession }) ?? false { quickReconnects = 0 }
            eventSink.yield(.disconnected(Disconnect(code: code, reason: reason, retryIn: delay, attempt: attempt)))
            do { try await Task.sleep(for: delay) } catch { return }   // close() cancels the wait
        }
    }

    /// One connection from connect to its end. Returns how it ended and how long its session
    /// lasted (nil: no welcome).
    func runSession(_ target: ConnectionTarget) async -> (SessionOutcome, Duration?) {
        linkCount += 1
        let id = linkCount
        let connection = WebSocketClientConnection(target: target, key: key, settings: .init(
            connectTimeout: options.connectTimeout, pingInterval: options.pingInterval, pongTimeout: options.pongTimeout,
            maxMessageBytes: options.maxMessageBytes, headers: options.headers, trustedCertificatesFile: options.trustedCertificatesFile))
        link = Link(id: id, connection: connection)
        // The welcome must come within the connect timeout too.
        let welcomeTimer = Task { [connectTimeout = options.connectTimeout] in
            do { try await Task.sleep(for: connectTimeout) } catch { return }
            self.abortUnwelcomed(id)
        }
        defer { welcomeTimer.cancel() }
        connection.start()

        var outcome = SessionOutcome.failed("connection ended")
        for await event in connection.events {
            switch event {
            case .opened: break
            case .text(let text): received(text, on: id)
            case .refused(let status, let retryAfter, let body):
                outcome = .refused(status: status, retryAfter: retryAfter, reason: ClientHandshake.refusalReason(body: body))
            case .closed(let code, let reason):
                outcome = .closed(code: code, reason: reason, notice: link?.notice)
            case .failed(let error):
                outcome = .failed(error.description)
            }
        }
        if Task.isCancelled { connection.close() }
        let lasted = link?.welcomedAt.map { $0.duration(to: .now) }
        link = nil
        for (requestID, request) in pending where request.linkID == id { finish(requestID, .failure(.connectionLost)) }
        return (outcome, lasted)
    }

    func abortUnwelcomed(_ id: Int) {
        guard let link, link.id == id, link.welcome == nil else { return }
        link.connection.abort()
    }

    // MARK: - Incoming messages

    /// Dispatches one server message of the session on link `id`.
    func received(_ text: String, on id: Int) {
        guard link?.id == id, case .object(let m)? = JSONValue(parsing: text), let type = m["type"]?.stringValue else { return }
        switch type {
        case "welcome":
            guard let welcome = Welcome(m) else { return }
            link?.welcome = welcome
            link?.welcomedAt = .now
            for (token, _) in sessionWaiters { resumeWaiter(token, .success(welcome)) }
            // `.connected` once the subscriptions are back, so "connected" means "getting events".
            Task { await self.restoreSubscriptions(on: id, then: welcome) }
        case "result":
            if let requestID = m["id"]?.intValue { finish(requestID, .success(m)) }
        case "error":
            if let requestID = m["id"]?.intValue { finish(requestID, .failure(DoormanError(answer: m))) }
        case "event":
            guard let channel = m["channel"]?.stringValue else { return }
            let property = m["property"]?.stringValue
            subscriptions[ChannelAddress(channel: channel, property: property)]?
                .handler(ChannelEvent(channel: channel, property: property, data: m["data"] ?? .null))
        case "notice":
            let notice = Notice(m)
            link?.notice = notice
            eventSink.yield(.notice(notice))
        case "permissions_changed":
            let change = PermissionsChange(m)
            link?.welcome?.scopes = change.scopes
            link?.welcome?.properties = change.properties
            link?.welcome?.rules = change.rules
            link?.welcome?.expiresAt = change.expiresAt
            for address in change.removedSubscriptions { subscriptions[address] = nil }
            eventSink.yield(.permissionsChanged(change))
        case "expiry_warning":
            eventSink.yield(.expiryWarning(expiresAt: m["expiresAt"]?.stringValue.flatMap(Date.init(rfc3339:))))
        default:
            break   // newer servers may send more; ignore what we do not know
        }
    }

    /// Subscribes again to everything after a reconnect. A refusal forgets that subscription and
    /// reports `.subscriptionLost`; a dropped connection leaves it for the next session.
    func restoreSubscriptions(on id: Int, then welcome: Welcome) async {
        // Concurrently: one round trip for all of them, not one per subscription.
        await withTaskGroup(of: Void.self) { group in
            for (address, subscription) in subscriptions {
                group.addTask { await self.restore(address, generation: subscription.generation, on: id) }
            }
        }
        guard link?.id == id, !isStopped else { return }
        eventSink.yield(.connected(link?.welcome ?? welcome))
    }

    private func restore(_ address: ChannelAddress, generation: Int, on id: Int) async {
        guard link?.id == id else { return }
        do {
            _ = try await exchange(address.fields(type: "subscribe"), on: id, deadline: .now + options.requestTimeout, what: "subscribe")
        } catch where error.code == .connectionLost || error.code == .stopped || error.code == .timeout {
            return   // the next session tries again
        } catch {
            if subscriptions[address]?.generation == generation { subscriptions[address] = nil }
            eventSink.yield(.subscriptionLost(address, error))
        }
    }

    // MARK: - Requests and waiters

    /// Sends a request on the current session (waiting for one if the client is reconnecting)
    /// and waits for its answer, all within `timeout`.
    func request(_ fields: [String: JSONValue], timeout: Duration, what: String) async throws(DoormanError) -> [String: JSONValue] {
        let deadline = ContinuousClock.now + timeout
        try start()
        _ = try await awaitSession(deadline: deadline)
        guard let link, link.welcome != nil else { throw .connectionLost }
        return try await exchange(fields, on: link.id, deadline: deadline, what: what)
    }

    /// Sends one request on link `id` and waits for its answer until `deadline`.
    func exchange(_ fields: [String: JSONValue], on id: Int, deadline: ContinuousClock.Instant, what: String) async throws(DoormanError) -> [String: JSONValue] {
        guard let link, link.id == id else { throw .connectionLost }
        nextID += 1
        let requestID = nextID
        var message = fields
        message["id"] = .number(Double(requestID))
        let text = JSONValue.object(message).jsonText
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Result<[String: JSONValue], DoormanError>, Never>) in
                guard !Task.isCancelled else { return continuation.resume(returning: .failure(.cancelled)) }
                let timer = Task {
                    do { try await Task.sleep(until: deadline) } catch { return }
                    self.finish(requestID, .failure(.timeout(what)))
                }
                pending[requestID] = PendingRequest(continuation: continuation, timer: timer, linkID: id)
                link.connection.send(text: text)
            }
        } onCancel: {
            Task { await self.finish(requestID, .failure(.cancelled)) }
        }
        return try result.get()
    }

    /// Completes request `id` once (later answers for it are ignored).
    func finish(_ id: Int, _ result: Result<[String: JSONValue], DoormanError>) {
        guard let request = pending.removeValue(forKey: id) else { return }
        request.timer.cancel()
        request.continuation.resume(returning: result)
    }

    /// The current welcome, or waits for the next one until `deadline` (nil: no deadline).
    func awaitSession(deadline: ContinuousClock.Instant?) async throws(DoormanError) -> Welcome {
        if case .stopped(let reason) = phase { throw .stopped(reason) }
        if let welcome = link?.welcome { return welcome }
        nextID += 1
        let token = nextID
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Result<Welcome, DoormanError>, Never>) in
                guard !Task.isCancelled else { return continuation.resume(returning: .failure(.cancelled)) }
                let timer = deadline.map { deadline in
                    Task {
                        do { try await Task.sleep(until: deadline) } catch { return }
                        self.resumeWaiter(token, .failure(.timeout("the connection")))
                    }
                }
                sessionWaiters[token] = SessionWaiter(continuation: continuation, timer: timer)
            }
        } onCancel: {
            Task { await self.resumeWaiter(token, .failure(.cancelled)) }
        }
        return try result.get()
    }

    func resumeWaiter(_ token: Int, _ result: Result<Welcome, DoormanError>) {
        guard let waiter = sessionWaiters.removeValue(forKey: token) else { return }
        waiter.timer?.cancel()
        waiter.continuation.resume(returning: result)
    }
}
