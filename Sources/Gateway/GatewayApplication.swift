// SPDX-License-Identifier: Apache-2.0
import Foundation
import Logging
import GatewayCore
import Synchronization
import Transport
public import WebSocketServer
public import WireCodec

/// Routes requests: `/healthz`, WebSocket upgrades on the configured path, 404 elsewhere; in
/// echo mode, every upgrade on any path becomes an echo session.
public final class GatewayApplication: ServerApplication {
    public let config: GatewayConfig
    /// Set once the server is listening, for `/healthz`.
    private let server = Mutex<WebSocketServer?>(nil)
    /// The admin API and the pool its store calls run on (nil in echo mode).
    let admin: AdminAPI?
    let pool: BlockingPool?
    /// Live sessions (nil in echo mode).
    let sessions: SessionServices?
    /// Who may reach the admin API and page (`--admin-network`).
    let adminNetworks: NetworkAllowlist

    public convenience init(config: GatewayConfig) {
        self.init(config: config, admin: nil, pool: nil, sessions: nil)
    }

    init(config: GatewayConfig, admin: AdminAPI?, pool: BlockingPool?, sessions: SessionServices?) {
        self.config = config
        self.admin = admin
        self.pool = pool
        self.sessions = sessions
        adminNetworks = (try? NetworkAllowlist(config.adminNetworks)) ?? .denyAll
    }

    func attach(_ server: WebSocketServer) {
        self.server.withLock { $0 = server }
    }

    /// The subprotocol browsers offer (with a key-bearing token beside it); the answer names only this.
    static let subprotocol = "doorman.v1"
    /// Prefix of the key-bearing subprotocol token: `doorman.key.dmk_…`.
    static let keyProtocolPrefix = "doorman.key."

    public func upgrade(_ head: HTTPRequestHead, _ upgrade: WebSocketUpgrade, on connection: Connection) -> UpgradeDecision {
        // The same fence as every request: no session on the admin port (its paths are not ours).
        if let refusal = fence(head.path, on: connection) { return .reject(refusal) }
        if config.echo {
            // Echo mode answers the first offered protocol so that browsers offering one connect.
            return .accept(protocol: upgrade.protocols.first, session: EchoSession())
        }
        guard head.path == config.path[...] else {
            return .reject(HandshakeRejection(status: 404, reason: "not_found").response)
        }
        guard let sessions, let hub = sessions.hub(for: connection.loop) else {
            return .reject(HandshakeRejection(status: 503, reason: "not_ready").response)
        }
        if let cluster = sessions.cluster, cluster.isFeedLost {
            // Fail closed: without the change feed no key can be re-verified.
            sessions.metrics.handshake("feed_lost")
            return .reject(HandshakeRejection(status: 503, reason: "feed_lost", headers: [HTTPHeader("Retry-After", "5")]).response)
        }
        let address = connection.peerAddress
        switch authenticate(head, upgrade, address: address, sessions: sessions) {
        case .failure(let rejection):
            sessions.metrics.handshake(rejection.reason)
            sessions.logger.info("handshake rejected", metadata: ["status": "\(rejection.status)", "reason": "\(rejection.reason)"])
            // A key sent as a subprotocol (browsers, Node) cannot read a refused handshake: when the
            // key itself is the problem, upgrade and say it as a live session would be told.
            if upgrade.protocols.contains(Self.subprotocol), upgrade.protocols.contains(where: { $0.hasPrefix(Self.keyProtocolPrefix) }),
               let reason = Self.toldAfterUpgrade(rejection.reason) {
                sessions.logger.info("refused key told after the upgrade", metadata: ["reason": "\(reason.rawValue)"])
                return .accept(protocol: Self.subprotocol, session: RefusedSession(frames: sessions.endFrames[reason]!, code: reason.closeCode))
            }
            return .reject(rejection.response)
        case .success(let (resolved, selected)):
            guard sessions.reserveSession(for: resolved.key.id) else {
                sessions.metrics.handshake("too_many_sessions_for_key")
                return .reject(HandshakeRejection(status: 429, reason: "too_many_sessions_for_key", headers: [HTTPHeader("Retry-After", "5")]).response)
            }
            sessions.metrics.handshake("accepted")
            sessions.usage?.record(KeyUse(keyID: resolved.key.id, time: Date(), address: address))
            sessions.logger.info("session opened", metadata: ["session.id": "\(connection.id)", "key.id": "\(resolved.key.id)", "user.id": "\(resolved.user.id)"])
            let session = GatewaySession(id: connection.id, resolved: resolved, services: sessions, hub: hub,
                                         address: address, userAgent: head.value("user-agent"))
            return .accept(protocol: selected, session: session)
        }
    }

    /// The end a refusal stands for when the key itself is the problem (a malformed key is one no
    /// server knows): a browser, which cannot read the refusal, is told it after the upgrade.
    static func toldAfterUpgrade(_ refusal: String) -> SessionEndReason? {
        if refusal == "malformed_key" { return .keyUnknown }
        return [SessionEndReason.keyRevoked, .keySuspended, .keyExpired, .keyUnknown, .userDisabled].first { $0.handshakeRefusal == refusal }
    }

    /// Checks run cheapest first: origin, presence and format of the key, the address's
    /// handshake rate, the digest lookup in memory, state and expiry.
    private func authenticate(
        _ head: HTTPRequestHead, _ upgrade: WebSocketUpgrade, address: String, sessions: SessionServices
    ) -> Result<(IdentityCache.Resolved, String?), HandshakeRejection> {
        let policy = sessions.policy
        guard sessions.networks.allows(address) else { return .failure(HandshakeRejection(status: 403, reason: "address_not_allowed")) }
        if !policy.allowedOrigins.isEmpty, let origin = upgrade.origin, !policy.allowedOrigins.contains(origin) {
            return .failure(HandshakeRejection(status: 403, reason: "origin_not_allowed"))
        }
        var candidates: [String] = []
        switch PresentedKey.find(in: head) {
        case .failure(let rejection): return .failure(rejection)
        case .success(let found): if let found { candidates.append(found) }
        }
        var selected: String?
        if upgrade.protocols.contains(Self.subprotocol) {
            selected = Self.subprotocol
            candidates += upgrade.protocols.filter { $0.hasPrefix(Self.keyProtocolPrefix) }.map { String($0.dropFirst(Self.keyProtocolPrefix.count)) }
        }
        if policy.allowQueryKey, let q = head.target.firstIndex(of: "?") {
            for pair in head.target[head.target.index(after: q)...].split(separator: "&") where pair.hasPrefix("key=") {
                candidates.append(String(pair.dropFirst(4)))
            }
        }
        guard candidates.dropFirst().allSatisfy({ $0 == candidates[0] }) else { return .failure(HandshakeRejection(status: 400, reason: "conflicting_keys")) }
        guard let text = candidates.first else { return .failure(HandshakeRejection(status: 401, reason: "missing_key")) }
        guard let secret = try? APIKeySecret(parsing: text) else { return .failure(HandshakeRejection(status: 401, reason: "malformed_key")) }
        if let wait = sessions.handshakeLimiter.take(address) {
            return .failure(HandshakeRejection(status: 429, reason: "handshake_rate", headers: [RetryAfter.header(wait)]))
        }
        let now = Date()
        guard let resolved = sessions.cache.resolve(KeyDigest(of: secret), now: now) else {
            // A change to this key was committed but not read back: unusable here until it is.
            if sessions.cache.isUnconfirmed(KeyDigest(of: secret)) {
                return .failure(HandshakeRejection(status: 503, reason: "store_unavailable", headers: [HTTPHeader("Retry-After", "5")]))
            }
            return .failure(HandshakeRejection(status: 401, reason: "unknown_key"))
        }
        if let reason = SessionEndReason.refusing(resolved.key, of: resolved.user, at: now) {
            // Reversible refusals say when to try again (the device comes back after a resume).
            let later = reason.isReversible ? [HTTPHeader("Retry-After", String(Int(policy.reversibleRetry.rounded(.up))))] : []
            return .failure(HandshakeRejection(status: 401, reason: reason.handshakeRefusal, headers: later))
        }
        let limits = sessions.limits(key: resolved.key, groups: resolved.groups)
        if let wait = sessions.keyHandshakeLimiter.take(resolved.key.id, rate: limits.handshakesPerSecond ?? 0, burst: limits.handshakeBurst ?? 1) {
            return .failure(HandshakeRejection(status: 429, reason: "handshake_rate", headers: [RetryAfter.header(wait)]))
        }
        return .success((resolved, selected))
    }

    public func respond(to request: HTTPRequest, on connection: Connection, reply: HTTPReply) {
        // The admin surface is fenced by listener and network before anything else is read.
        if let refusal = fence(request.head.path, on: connection) { return reply.send(refusal) }
        if let sessions, request.head.path == "/v1/publish" {
            return publish(request, sessions: sessions, connection: connection, reply: reply)
        }
        if request.head.path == "/metrics", config.metricsRequireKey, let refusal = metricsRefusal(request) {
            return reply.send(refusal)
        }
        if let admin, let pool, AdminAPI.owns(request.head.path) {
            let key: String?
            switch PresentedKey.find(in: request.head) {
            case .failure(let rejection): return reply.send(rejection.response)
            case .success(let found): key = found
            }
            // Store calls block: off the loop, back through `reply`.
            let peer = connection.peerAddress
            pool.submit { reply.send(admin.handle(request, presentedKey: key, peer: peer)) }
            return
        }
        if let sessions, let calls = sessions.calls, let (service, api) = Self.callTarget(request.head.path, calls) {
            return proxy(request, to: service, api: api, sessions: sessions, calls: calls, connection: connection, reply: reply)
        }
        if AdminPage.owns(request.head.path) {
            return reply.send(AdminPage.response(to: request))
        }
        reply.send(route(request))
    }

    /// The admin API (`/v1/*` but `/v1/publish`) and page.
    static func isAdminSurface(_ path: Substring) -> Bool {
        (AdminAPI.owns(path) && path != "/v1/publish") || AdminPage.owns(path)
    }

    /// Probes every listener answers.
    static let probes: Set<Substring> = ["/healthz", "/readyz", "/metrics"]

    /// Where the admin surface may be reached, one decision for every request and handshake:
    /// with an admin port (`--admin-port`) the admin API and page answer there only and it answers
    /// nothing else but the probes (404 either way, as if absent); then `--admin-network` (403).
    func fence(_ path: Substring, on connection: Connection) -> HTTPResponse? {
        let admin = Self.isAdminSurface(path)
        if config.server.adminPort != nil {
            let onAdminPort = connection.listener == .admin
            if admin != onAdminPort, !(onAdminPort && Self.probes.contains(path)) {
                return .json(status: 404, #"{"error":"not_found"}"#)
            }
        }
        if admin, !adminNetworks.allows(connection.peerAddress) {
            return Self.failure(403, "address_not_allowed", "the admin API and page are not reachable from this address")
        }
        return nil
    }

    /// `POST /v1/publish {"channel":…,"property":…,"data":…}` with a key that may publish there.
    /// 202 once accepted: delivered on one node, durable in the shared feed in a cluster.
    private func publish(_ request: HTTPRequest, sessions: SessionServices, connection: Connection, reply: HTTPReply) {
        let accepted = HTTPResponse(status: 202, headers: [HTTPHeader("Content-Type", "application/json")], body: JSONText.object([("published", .bool(true))]).bytes)
        let refused = Self.failure(503, "unavailable", "the event could not be stored for the other nodes; try again")
        switch checkPublish(request, sessions: sessions, connection: connection) {
        case .failure(let refusal): reply.send(refusal.response)
        case .success(let (channel, property, data)):
            sessions.publish(channel: channel, property: property, data: data) { stored in reply.send(stored ? accepted : refused) }
        }
    }

    private static func failure(_ status: Int, _ code: String, _ message: String) -> HTTPResponse {
        HTTPResponse(status: status, headers: [HTTPHeader("Content-Type", "application/json")],
                     body: JSONText.object([("error", .string(code)), ("message", .string(message))]).bytes)
    }

    /// A publish's checks: the channel, property and data, or the answer that refuses it.
    private func checkPublish(_ request: HTTPRequest, sessions: SessionServices, connection: Connection)
        -> Result<(String, String?, Any), PublishRefusal> {
        func fail(_ status: Int, _ code: String, _ message: String) -> Result<(String, String?, Any), PublishRefusal> {
            .failure(PublishRefusal(response: Self.failure(status, code, message)))
        }
        guard request.head.method == "POST" else { return fail(405, "method_not_allowed", "use POST") }
        if let cluster = sessions.cluster, cluster.isFeedLost { return fail(503, "feed_lost", "this node lost the cluster's change feed; try another") }
        guard sessions.networks.allows(connection.peerAddress) else { return fail(403, "address_not_allowed", "publishing is not allowed from this address") }
        let text: String
        switch PresentedKey.find(in: request.head) {
        case .failure: return fail(400, "conflicting_keys", "two different keys")
        case .success(let found):
            guard let found else { return fail(401, "missing_key", "send a key in X-API-Key or Authorization") }
            text = found
        }
        guard let secret = try? APIKeySecret(parsing: text) else { return fail(401, "malformed_key", "the key is not a Doorman key") }
        guard let resolved = sessions.cache.resolve(KeyDigest(of: secret), now: Date()) else {
            if sessions.cache.isUnconfirmed(KeyDigest(of: secret)) { return fail(503, "store_unavailable", "this key's last change is not confirmed yet; try again") }
            return fail(401, "unknown_key", "no such key")
        }
        if let wait = sessions.publishLimiter.take(resolved.key.id) {
            sessions.metrics.publishesRateLimited.add()
            var response = Self.failure(429, "rate_limited", "too many publishes for this key")
            response.headers.append(RetryAfter.header(wait))
            return .failure(PublishRefusal(response: response))
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(request.body)) as? [String: Any],
              let channel = object["channel"] as? String else {
            return fail(400, "invalid_field", "a JSON object with channel (and property, data)")
        }
        guard case .success(let property) = PropertyName.parse(json: object["property"]) else {
            return fail(400, "invalid_property", SessionMessage.invalidPropertyMessage)
        }
        let decision = Authorizer.decide(AccessRequest(action: "channel:publish.\(channel)", property: property),
                                         key: resolved.key, user: resolved.user, groups: resolved.groups, now: Date())
        guard decision.allowed else {
            return fail(decision.reason.refusalStatus, decision.reason.rawValue, "this key may not publish to \(channel)")
        }
        sessions.usage?.record(KeyUse(keyID: resolved.key.id, time: Date(), address: connection.peerAddress))
        return .success((channel, property, object["data"] ?? NSNull()))
    }

    /// `/{service}/{api_name}` for a configured service: the upstream and the api name.
    static func callTarget(_ path: Substring, _ calls: CallService) -> (UpstreamService, String)? {
        guard path.count > 1, path.first == "/" else { return nil }
        let rest = path.dropFirst()
        guard let slash = rest.firstIndex(of: "/"), let service = calls.upstreams[String(rest[..<slash])] else { return nil }
        return (service, String(rest[rest.index(after: slash)...]))
    }

    /// A call over plain HTTP: the key from the headers, the same checks as a session's call, the
    /// caller's end-to-end headers and body passed on with the signed identity, and the upstream's
    /// answer streamed back.
    private func proxy(_ request: HTTPRequest, to service: UpstreamService, api: String, sessions: SessionServices, calls: CallService,
                       connection: Connection, reply: HTTPReply) {
        func fail(_ status: Int, _ code: String, _ message: String, _ extra: [(String, JSONText)] = [], headers: [HTTPHeader] = []) {
            if code != "unauthorized" { sessions.metrics.call(code) }
            reply.send(HTTPResponse(status: status, headers: [HTTPHeader("Content-Type", "application/json")] + headers,
                                    body: JSONText.object([("error", .string(code)), ("message", .string(message))] + extra).bytes))
        }
        let action = service.name + ":" + api
        // The same network allowlist as sessions: a key taken out of the building does not call from outside.
        guard sessions.networks.allows(connection.peerAddress) else { return fail(403, "forbidden", "calls are not allowed from this address", [("reason", .string("address_not_allowed"))]) }
        if let cluster = sessions.cluster, cluster.isFeedLost {
            return fail(503, "feed_lost", "this node lost the cluster's change feed; try another", headers: [HTTPHeader("Retry-After", "5")])
        }
        guard !["TRACE", "CONNECT"].contains(request.head.method) else {
            return fail(405, "invalid_request", "calls do not take \(request.head.method)", headers: [HTTPHeader("Allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")])
        }
        guard ActionName.validateAction(action) == nil else {
            return fail(400, "invalid_request", "an api name is segments of letters, digits, _ and -, separated by . or /")
        }
        let resolved: IdentityCache.Resolved
        switch resolveKey(request.head, sessions: sessions) {
        case .failure(let refusal): return fail(refusal.status, "unauthorized", "this request needs a valid key", [("reason", .string(refusal.reason))])
        case .success(let found): resolved = found
        }
        guard case .success(let property) = PropertyName.parse(header: request.head.value("x-doorman-property")) else {
            return fail(400, "invalid_property", SessionMessage.invalidPropertyMessage)
        }
        let decision = Authorizer.decide(AccessRequest(action: action, property: property), key: resolved.key, user: resolved.user,
                                         groups: resolved.groups, now: Date())
        guard decision.allowed else {
            return fail(decision.reason.refusalStatus, decision.reason.refusalCode, "this key may not call \(action)", [("reason", .string(decision.reason.rawValue))])
        }
        let limits = sessions.limits(key: resolved.key, groups: resolved.groups)
        if let wait = sessions.callLimiter.take(resolved.key.id, rate: limits.callsPerSecond ?? 0, burst: limits.callBurst ?? 1) {
            return fail(429, "rate_limited", "too many calls", [("retryAfterMs", .int(RetryAfter.milliseconds(wait)))],
                        headers: [RetryAfter.header(wait)])
        }
        guard let hub = sessions.hub(for: connection.loop) else { return fail(503, "overloaded", "not ready") }
        // Like a session's cap on calls in flight: one key cannot hold every upstream connection.
        let keyID = resolved.key.id
        guard sessions.reserveHTTPCall(for: keyID, limit: calls.policy.maxCallsPerSession) else {
            return fail(429, "too_many_calls", "at most \(calls.policy.maxCallsPerSession) calls in flight per key", [("retryAfterMs", .int(100))],
                        headers: [HTTPHeader("Retry-After", "1")])
        }
        sessions.usage?.record(KeyUse(keyID: keyID, time: Date(), address: connection.peerAddress))
        let rights = GatewaySession.rights(key: resolved.key, user: resolved.user, groups: resolved.groups)
        let caller = CallService.Caller(userID: resolved.user.id, keyID: resolved.key.id,
                                        scopes: GatewaySession.callScopes(key: resolved.key, user: resolved.user, groups: resolved.groups),
                                        properties: rights.properties, property: property)
        // End-to-end headers only: not hop-by-hop, not those the client's Connection names, never the key.
        let named = HTTPHeader.namedHopByHop(request.head.values("connection"))
        var headers = request.head.headers.filter { $0.isEndToEnd(extraHopByHop: named) }
        headers.append(HTTPHeader("X-Forwarded-For", connection.peerAddress))
        headers.append(HTTPHeader("X-Forwarded-Proto", connection.isSecure ? "https" : "http"))
        headers.append(HTTPHeader("Via", "1.1 doorman"))
        let query = request.head.target.firstIndex(of: "?").map { request.head.target[request.head.target.index(after: $0)...] }
        let bytes = calls.request(to: service, method: request.head.method, api: api, query: query, headers: headers,
                                        body: request.body, caller: caller, requestID: hub.makeRequestID())
        let call = HTTPCall(connection: connection, reply: reply, metrics: sessions.metrics) { sessions.releaseHTTPCall(for: keyID) }
        let exchange = UpstreamExchange(request: bytes, method: request.head.method, timeoutCoversBody: false, responder: call)
        call.exchange = exchange
        connection.onReplyAbandoned = { [weak exchange] in exchange?.cancel() }
        calls.pool(service, on: hub).start(exchange)
    }

    /// The key presented in a plain HTTP request's headers, resolved and still usable.
    private func resolveKey(_ head: HTTPRequestHead, sessions: SessionServices) -> Result<IdentityCache.Resolved, KeyRefusal> {
        let text: String
        switch PresentedKey.find(in: head) {
        case .failure: return .failure(KeyRefusal(status: 400, reason: "conflicting_keys"))
        case .success(let found):
            guard let found else { return .failure(KeyRefusal(status: 401, reason: "missing_key")) }
            text = found
        }
        guard let secret = try? APIKeySecret(parsing: text) else { return .failure(KeyRefusal(status: 401, reason: "malformed_key")) }
        guard let resolved = sessions.cache.resolve(KeyDigest(of: secret), now: Date()) else {
            if sessions.cache.isUnconfirmed(KeyDigest(of: secret)) { return .failure(KeyRefusal(status: 503, reason: "store_unavailable")) }
            return .failure(KeyRefusal(status: 401, reason: "unknown_key"))
        }
        if let reason = SessionEndReason.refusing(resolved.key, of: resolved.user, at: Date()) {
            return .failure(KeyRefusal(status: 401, reason: reason.handshakeRefusal))
        }
        return .success(resolved)
    }

    /// With `--metrics-require-key`: nil when the request's key may `admin:metrics.read`, else
    /// the refusal (401 without a usable key, 403 with a key that may not).
    private func metricsRefusal(_ request: HTTPRequest) -> HTTPResponse? {
        guard let sessions else { return Self.failure(403, "forbidden", "metrics need a key, and echo mode has none") }
        let resolved: IdentityCache.Resolved
        switch resolveKey(request.head, sessions: sessions) {
        case .failure(let refusal): return Self.failure(refusal.status, refusal.reason, "send a key that may admin:metrics.read")
        case .success(let found): resolved = found
        }
        let decision = Authorizer.decide(AccessRequest(action: "admin:metrics.read"), key: resolved.key, user: resolved.user, groups: resolved.groups, now: Date())
        return decision.allowed ? nil : Self.failure(403, "forbidden", "this key may not admin:metrics.read (\(decision.reason.rawValue))")
    }

    func route(_ request: HTTPRequest) -> HTTPResponse {
        switch request.head.path {
        case "/healthz":
            guard request.head.method == "GET" || request.head.method == "HEAD" else {
                var r = HTTPResponse.json(status: 405, #"{"error":"method_not_allowed"}"#)
                r.headers.append(HTTPHeader("Allow", "GET, HEAD"))
                return r
            }
            let connections = server.withLock { $0?.activeConnections ?? 0 }
            return .json(status: 200, #"{"status":"ok","connections":\#(connections)}"#)
        case "/readyz":
            // Ready: serving, not draining, and (gateway mode) the identity cache loaded.
            let draining = server.withLock { $0?.isDraining ?? true }
            if draining { return .json(status: 503, #"{"status":"draining"}"#) }
            if let cluster = sessions?.cluster {
                let age = String(format: "%.1f", cluster.feedAge)
                if cluster.isFeedLost {
                    return .json(status: 503, #"{"status":"feed_lost","node":"\#(cluster.node)","feedAgeSeconds":\#(age),"boundSeconds":\#(cluster.bound)}"#)
                }
                return .json(status: 200, #"{"status":"ready","node":"\#(cluster.node)","feedAgeSeconds":\#(age)}"#)
            }
            return .json(status: 200, #"{"status":"ready"}"#)
        case "/metrics":
            let (connections, slow, unfinished) = server.withLock { ($0?.activeConnections ?? 0, $0?.slowConsumerCloses ?? 0, $0?.unfinishedHandshakeRefusals ?? 0) }
            let metrics = sessions?.metrics ?? GatewayMetrics()
            var text = metrics.render(connections: connections, sessions: sessions?.liveSessions.load(ordering: .relaxed) ?? 0, slowConsumers: slow,
                                      unfinishedRefused: unfinished)
            if let cluster = sessions?.cluster { text += cluster.renderMetrics() }
            return HTTPResponse(status: 200, headers: [HTTPHeader("Content-Type", "text/plain; version=0.0.4")], body: Array(text.utf8))
        default:
            return .json(status: 404, #"{"error":"not_found"}"#)
        }
    }
}

/// A publish refused, with its answer.
struct PublishRefusal: Error {
    var response: HTTPResponse
}

/// Why a plain HTTP request's key is not accepted.
struct KeyRefusal: Error {
    var status: Int
    var reason: String
}

/// Echo mode's session: every message goes back as it came.
final class EchoSession: WebSocketSession {
    func opened(_ connection: Connection) {}

    func received(_ message: WebSocketMessage, on connection: Connection) {
        if message.isText {
            connection.send(text: message.payload)
        } else {
            connection.send(binary: message.payload)
        }
    }

    func closed(_ connection: Connection, code: CloseCode?) {}
}
