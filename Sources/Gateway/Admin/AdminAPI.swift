// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatewayCore
import Transport
import WebSocketServer
import WireCodec

/// The REST admin API under `/v1`: routing, authentication, JSON. Runs on a blocking pool.
///
/// Every route but the OpenAPI document needs a key whose user may perform the route's
/// `admin:` action (`/v1/me`: any admin action); `routes` is the single table the server, the
/// OpenAPI document and the tests enumerate. A request goes: route (404, or 405 with `Allow`) →
/// key (401, 403) → body (415, 400, by the route's `BodySchema`) → the service (400, 404, 409, 503).
struct AdminAPI: Sendable {
    /// Who may call a route.
    enum Access: Sendable, Equatable {
        /// Anyone, without a key.
        case open
        /// A key whose user may perform this `admin:` action.
        case action(String)
        /// A key that may perform at least one admin action (the page's sign-in asks who it is).
        case anyAdminAction
    }

    struct Route: Sendable {
        var method: String
        /// Path segments; `{id}` matches one segment.
        var pattern: [String]
        var access: Access
        /// The JSON body the route takes, if any.
        var body: BodySchema?
        var handler: @Sendable (AdminAPI, Call) throws(AdminError) -> HTTPResponse

        init(_ method: String, _ path: String, _ access: Access, body: BodySchema? = nil,
             _ handler: @escaping @Sendable (AdminAPI, Call) throws(AdminError) -> HTTPResponse) {
            self.method = method
            pattern = path.split(separator: "/").map(String.init)
            self.access = access
            self.body = body
            self.handler = handler
        }

        init(_ method: String, _ path: String, _ action: String?, body: BodySchema? = nil,
             _ handler: @escaping @Sendable (AdminAPI, Call) throws(AdminError) -> HTTPResponse) {
            self.init(method, path, action.map(Access.action) ?? .open, body: body, handler)
        }

        /// The one permission the route needs, if it names one.
        var action: String? { if case .action(let a) = access { a } else { nil } }

        /// False for the public routes (the OpenAPI document).
        var needsKey: Bool { access != .open }

        /// `/v1/users/{id}`.
        var path: String { "/" + pattern.joined(separator: "/") }
    }

    /// One authenticated request.
    struct Call {
        var request: HTTPRequest
        var id: String
        var query: [String: String]
        /// The checked body (empty when the route takes none).
        var body: ParsedBody
        /// The admin key and its user (nil on public routes).
        var caller: Actor?

        /// Who makes the change (every route that writes needs a key, so it is there).
        var actor: Actor {
            get throws(AdminError) {
                guard let caller else { throw AdminError(status: 401, code: "missing_key", message: "send an admin key") }
                return caller
            }
        }
    }

    let service: AdminService
    /// Where admin key uses go (last used time and address).
    let usage: KeyUsageRecorder?
    /// Live sessions (listing, kills, revocation receipts).
    var sessions: SessionServices?

    static let routes: [Route] = [
        Route("GET", "/v1/openapi.json", nil) { _, _ in HTTPResponse(status: 200, headers: [HTTPHeader("Content-Type", "application/json")], body: OpenAPIDocument.bytes) },
        Route("GET", "/v1/me", .anyAdminAction) { api, call throws(AdminError) in
            let caller = try call.actor
            return json(200, AdminIdentity(key: caller.key, user: caller.user, actions: try api.service.allowedActions(adminActions, caller.key, caller.user)))
        },

        Route("GET", "/v1/users", "admin:users.read") { api, call throws(AdminError) in try json(200, api.service.managed(api.service.users(), by: call.actor)) },
        Route("POST", "/v1/users", "admin:users.write", body: .userCreate) { api, call throws(AdminError) in try json(201, api.service.createUser(UserInput(call.body), actor: try call.actor)) },
        Route("GET", "/v1/users/{id}", "admin:users.read") { api, call throws(AdminError) in try json(200, api.service.managed([api.service.user(call.id)], by: call.actor)[0]) },
        Route("PATCH", "/v1/users/{id}", "admin:users.write", body: .userUpdate) { api, call throws(AdminError) in try json(200, api.service.updateUser(call.id, UserInput(call.body), actor: try call.actor)) },
        Route("POST", "/v1/users/{id}/disable", "admin:users.write") { api, call throws(AdminError) in try json(200, api.service.setUserState(call.id, .disabled, actor: try call.actor)) },
        Route("POST", "/v1/users/{id}/enable", "admin:users.write") { api, call throws(AdminError) in try json(200, api.service.setUserState(call.id, .active, actor: try call.actor)) },
        Route("DELETE", "/v1/users/{id}", "admin:users.write") { api, call throws(AdminError) in try api.service.deleteUser(call.id, actor: try call.actor); return HTTPResponse(status: 204) },

        Route("GET", "/v1/groups", "admin:groups.read") { api, call throws(AdminError) in try json(200, api.service.managed(api.service.groups(), by: call.actor)) },
        Route("POST", "/v1/groups", "admin:groups.write", body: .groupCreate) { api, call throws(AdminError) in try json(201, api.service.createGroup(GroupInput(call.body), actor: try call.actor)) },
        Route("GET", "/v1/groups/{id}", "admin:groups.read") { api, call throws(AdminError) in try json(200, api.service.managed([api.service.group(call.id)], by: call.actor)[0]) },
        Route("PATCH", "/v1/groups/{id}", "admin:groups.write", body: .groupUpdate) { api, call throws(AdminError) in try json(200, api.service.updateGroup(call.id, GroupInput(call.body), actor: try call.actor)) },
        Route("DELETE", "/v1/groups/{id}", "admin:groups.write") { api, call throws(AdminError) in try api.service.deleteGroup(call.id, actor: try call.actor); return HTTPResponse(status: 204) },

        Route("GET", "/v1/keys", "admin:keys.read") { api, call throws(AdminError) in 
            let (query, status) = try keyQuery(call.query)
            var page = try api.service.keys(query)
            // By status: active and expired are both stored active. A page may then hold fewer
            // than `limit` keys; `next` still leads through all of them.
            if let status {
                let now = Date()
                page.items = page.items.filter { $0.status(at: now) == status }
            }
            return json(200, KeyList(page, sessions: api.sessions, manageable: try api.service.manageable(page.items, by: call.actor)))
        },
        Route("POST", "/v1/keys", "admin:keys.write", body: .keyCreate) { api, call throws(AdminError) in try json(201, api.service.createKey(KeyInput(call.body), actor: try call.actor)) },
        Route("GET", "/v1/keys/{id}", "admin:keys.read") { api, call throws(AdminError) in 
            let key = try api.service.key(call.id)
            return json(200, KeyView(key, sessions: api.sessions, manageable: try api.service.manageable([key], by: call.actor).contains(key.id)))
        },
        Route("PATCH", "/v1/keys/{id}", "admin:keys.write", body: .keyUpdate) { api, call throws(AdminError) in try json(200, api.service.updateKey(call.id, KeyInput(call.body), actor: try call.actor)) },
        Route("POST", "/v1/keys/{id}/suspend", "admin:keys.write") { api, call throws(AdminError) in try api.stopKey(call, .suspended) },
        Route("POST", "/v1/keys/{id}/resume", "admin:keys.write") { api, call throws(AdminError) in try json(200, api.service.setKeyState(call.id, .active, actor: try call.actor)) },
        Route("POST", "/v1/keys/{id}/revoke", "admin:keys.write") { api, call throws(AdminError) in try api.stopKey(call, .revoked) },
        Route("POST", "/v1/keys/{id}/rotate", "admin:keys.write", body: .rotate) { api, call throws(AdminError) in try json(200, api.service.rotateKey(call.id, RotateInput(graceSeconds: call.body.number("graceSeconds")), actor: try call.actor)) },
        Route("DELETE", "/v1/keys/{id}", "admin:keys.write") { api, call throws(AdminError) in try api.service.deleteKey(call.id, actor: try call.actor); return HTTPResponse(status: 204) },
        Route("POST", "/v1/keys/{id}/explain", "admin:keys.read", body: .explain) { api, call throws(AdminError) in try json(200, api.service.explain(call.id, ExplainInput(call.body))) },

        Route("GET", "/v1/sessions", "admin:sessions.read") { api, call throws(AdminError) in
            guard let sessions = api.sessions else { return json(200, SessionList(items: [])) }
            return json(200, SessionList(items: sessions.list(keyID: call.query["key"], userID: call.query["user"])))
        },
        Route("DELETE", "/v1/sessions/{id}", "admin:sessions.write") { api, call throws(AdminError) in
            guard let id = UInt64(call.id), let sessions = api.sessions else { throw AdminError.notFound("session \(call.id)") }
            let node = call.query["node"] ?? sessions.nodeName
            // Ending a session acts for its key: only within the caller's rights.
            guard let session = sessions.list(keyID: nil, userID: nil).first(where: { $0.node == node && $0.id == call.id }) else {
                throw AdminError.notFound(node == sessions.nodeName ? "session \(call.id)" : "session \(call.id) on node \(node)")
            }
            try api.service.permitActing(onKey: session.keyID, actor: try call.actor)
            if node != sessions.nodeName {
                // Another node's session: that node ends it when its feed hears the request.
                guard let cluster = sessions.cluster else { throw AdminError.notFound("session \(call.id) on node \(node)") }
                do throws(StoreError) { try cluster.requestKill(node: node, sessionID: call.id) } catch { throw AdminError(error) }
                return HTTPResponse(status: 202)
            }
            guard sessions.kill(sessionID: id) else { throw AdminError.notFound("session \(call.id)") }
            return HTTPResponse(status: 204)
        },

        Route("GET", "/v1/audit", "admin:audit.read") { api, call throws(AdminError) in try json(200, AuditList(api.service.audit(auditQuery(call.query)))) },
    ]

    /// Every `admin:` action a route needs, sorted (what `/v1/me` reports on).
    static let adminActions: [String] = Set(routes.compactMap(\.action)).sorted()

    /// True if `path` belongs to the admin API.
    static func owns(_ path: Substring) -> Bool { path == "/v1" || path.hasPrefix("/v1/") }

    /// Handles one request (blocking): route (404, 405), key (401, 403), body (415, 400), then the route.
    func handle(_ request: HTTPRequest, presentedKey: String?, peer: String = "") -> HTTPResponse {
        var response = HTTPResponse(status: 500)
        let changes = ChangeReceipts.collect {
            response = route(request, presentedKey: presentedKey, peer: peer)
        }
        // In a cluster, a change is answered once every live node has applied it (at most 2 s):
        // a key created through one node works at once on every other.
        if let cluster = sessions?.cluster, !changes.isEmpty {
            _ = cluster.remoteReceipts(auditSeqs: changes.map(\.auditSeq), until: monotonicNanoseconds() + 2_000_000_000, vouching: false)
        }
        return response
    }

    private func route(_ request: HTTPRequest, presentedKey: String?, peer: String) -> HTTPResponse {
        var response: HTTPResponse
        do throws(AdminError) {
            let (route, id) = try Self.match(request.head)
            var caller: Actor?
            if route.needsKey {
                guard let presentedKey else { throw AdminError(status: 401, code: "missing_key", message: "send an admin key in X-API-Key or Authorization") }
                let (key, user) = try service.authenticate(presentedKey)
                usage?.record(KeyUse(keyID: key.id, time: Date(), address: peer))
                switch route.access {
                case .action(let action): try service.authorize(key, user, action)
                case .anyAdminAction:
                    guard try !service.allowedActions(Self.adminActions, key, user).isEmpty else {
                        throw AdminError(status: 403, code: "forbidden", message: "this key may perform no admin action")
                    }
                case .open: break
                }
                caller = Actor(key: key, user: user)
            }
            let body = try route.body.map { schema throws(AdminError) in try Self.body(of: request, schema) } ?? ParsedBody(values: [:])
            response = try route.handler(self, Call(request: request, id: id, query: Self.query(request.head.target), body: body, caller: caller))
        } catch {
            response = error.response
        }
        // HEAD: the engine sends these headers (with the GET body's length) and no body (RFC 9110 §9.3.2).
        return response
    }

    /// Suspend or revoke, with a receipt: how many live sessions the change ended. With
    /// `?wait=true`, waits until every loop has sent them their notice and close frame.
    func stopKey(_ call: Call, _ state: KeyState) throws(AdminError) -> HTTPResponse {
        let wait: Bool
        switch call.query["wait"] {
        case nil, "false": wait = false
        case "true": wait = true
        default: throw AdminError.invalid("wait", "true or false")
        }
        let before = sessions?.clusterSessionsOf(call.id) ?? 0
        var key: APIKey?
        var failure: AdminError?
        let receipts = ChangeReceipts.collect {
            do throws(AdminError) { key = try service.setKeyState(call.id, state, actor: try call.actor) } catch { failure = error }
        }
        if let failure { throw failure }
        guard let key else { throw AdminError.notFound("key \(call.id)") }
        if wait {
            var complete = receipts.allSatisfy { $0.receipt.wait() }
            let here = receipts.reduce(0) { $0 + $1.receipt.ended }
            guard let sessions, let cluster = sessions.cluster else {
                return Self.json(200, KeyChange(key: key, sessionsEnded: here, complete: complete))
            }
            // Every other live node writes its own receipt once it has acted on the change.
            var nodes = [sessions.nodeName: here]
            let (ended, all) = cluster.remoteReceipts(auditSeqs: receipts.map(\.auditSeq), until: monotonicNanoseconds() + 5_000_000_000, vouching: true)
            for (node, n) in ended { nodes[node, default: 0] += n }
            complete = complete && all
            return Self.json(200, KeyChange(key: key, sessionsEnded: nodes.values.reduce(0, +), complete: complete, nodes: nodes))
        }
        return Self.json(200, KeyChange(key: key, sessionsEnded: before, complete: receipts.allSatisfy(\.receipt.isComplete)))
    }

    static func match(_ head: HTTPRequestHead) throws(AdminError) -> (Route, String) {
        let segments = head.path.split(separator: "/").map { String($0).removingPercentEncoding ?? String($0) }
        var allowed: [String] = []
        for route in routes where route.pattern.count == segments.count {
            var id = ""
            let fits = zip(route.pattern, segments).allSatisfy { p, s in
                if p == "{id}" { id = s; return !s.isEmpty }
                return p == s
            }
            guard fits else { continue }
            if route.method == head.method || (head.method == "HEAD" && route.method == "GET") { return (route, id) }
            allowed.append(route.method)
            if route.method == "GET" { allowed.append("HEAD") }
        }
        if !allowed.isEmpty {
            // RFC 9110 §15.5.6: a 405 lists the methods the resource has.
            var error = AdminError(status: 405, code: "method_not_allowed", message: "\(head.method) is not allowed here; allowed: \(allowed.joined(separator: ", "))")
            error.headers = [HTTPHeader("Allow", allowed.joined(separator: ", "))]
            throw error
        }
        throw AdminError.notFound("route \(head.path)")
    }

    /// A route's body, checked against its schema (400). It is JSON: a body labelled as anything
    /// else (a form, text) is refused with 415; an unlabelled one is read as JSON.
    static func body(of request: HTTPRequest, _ schema: BodySchema) throws(AdminError) -> ParsedBody {
        let types = request.head.values("content-type")
        if !request.body.isEmpty, !types.isEmpty {
            let mediaType = types[0].split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false)[0].trimmingOWS.lowercased()
            guard types.count == 1, mediaType == "application/json" else {
                throw AdminError(status: 415, code: "unsupported_media_type", message: "send the body as Content-Type: application/json")
            }
        }
        return try schema.parse(request.body)
    }

    /// The query string's parameters, `application/x-www-form-urlencoded` style (`+` is a space).
    static func query(_ target: String) -> [String: String] {
        guard let q = target.firstIndex(of: "?") else { return [:] }
        var out: [String: String] = [:]
        for pair in target[target.index(after: q)...].split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map { part in
                let spaced = part.replacingOccurrences(of: "+", with: " ")
                return spaced.removingPercentEncoding ?? spaced
            }
            if let k = parts.first { out[k] = parts.count > 1 ? parts[1] : "" }
        }
        return out
    }

    /// The store's query, and the status to keep (active and expired are both stored active).
    static func keyQuery(_ q: [String: String]) throws(AdminError) -> (KeyQuery, KeyStatus?) {
        var query = KeyQuery(userID: q["user"], limit: 100)
        var status: KeyStatus?
        if let s = q["state"] {
            guard let wanted = KeyStatus(rawValue: s) else { throw .invalid("state", "one of active, suspended, revoked, expired") }
            switch wanted {
            case .active:
                query.state = .active
                status = wanted
            case .expired:
                status = wanted   // stored active or suspended: filtered by status below
            case .suspended:
                query.state = .suspended
                status = wanted
            case .revoked: query.state = .revoked
            }
        }
        if let l = q["limit"] { query.limit = try integer(l, "limit", 1...1000) }
        if let after = q["after"] {
            // The cursor is a page's `next`: 1 to 18 digits.
            guard (1...18).contains(after.utf8.count), after.utf8.allSatisfy({ (48...57).contains($0) }) else {
                throw .invalid("after", "a cursor from a previous page's next")
            }
            query.after = after
        }
        return (query, status)
    }

    static func auditQuery(_ q: [String: String]) throws(AdminError) -> AuditQuery {
        var query = AuditQuery(targetID: q["target"], actor: q["actor"], action: q["action"], limit: 100)
        if let b = q["before"] { query.before = Int64(try integer(b, "before", 1...Int.max)) }
        if let l = q["limit"] { query.limit = try integer(l, "limit", 1...1000) }
        return query
    }

    /// A decimal integer (digits only) in `range`.
    static func integer(_ text: String, _ name: String, _ range: ClosedRange<Int>) throws(AdminError) -> Int {
        guard !text.isEmpty, text.utf8.allSatisfy({ (48...57).contains($0) }), let value = Int(text), range.contains(value) else {
            throw .invalid(name, "an integer from \(range.lowerBound) to \(range.upperBound)")
        }
        return value
    }

    /// RFC 3339 in UTC, whole seconds (`RFC3339`), for responses and the audit trail.
    static var dateEncoding: JSONEncoder.DateEncodingStrategy {
        .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(RFC3339.format(date))
        }
    }

    static func json<T: Encodable>(_ status: Int, _ value: T) -> HTTPResponse {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.dateEncodingStrategy = dateEncoding
        let body = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return HTTPResponse(status: status, headers: [HTTPHeader("Content-Type", "application/json"), HTTPHeader("Cache-Control", "no-store")], body: Array(body))
    }
}

extension UserInput {
    init(_ body: ParsedBody) {
        self.init(name: body.text("name"), permissions: body.list("permissions"), groups: body.list("groups"), properties: body.list("properties"))
    }
}

extension GroupInput {
    init(_ body: ParsedBody) {
        self.init(name: body.text("name"), description: body.text("description"), permissions: body.list("permissions"), limits: body.limits("limits"))
    }
}

extension KeyInput {
    init(_ body: ParsedBody) {
        self.init(name: body.text("name"), description: body.text("description"), userID: body.text("userID"), groupID: body.text("groupID"),
                  scopes: body.list("scopes"), properties: body.list("properties"), rules: body.list("rules"), expiresAt: body.date("expiresAt"),
                  clearExpiry: body.flag("clearExpiry"), clearGroup: body.flag("clearGroup"), limits: body.limits("limits"))
    }
}

extension ExplainInput {
    init(_ body: ParsedBody) {
        self.init(action: body.text("action") ?? "", property: body.text("property"))
    }
}

/// A suspension or revocation and what it did to live sessions.
struct KeyChange: Encodable {
    var key: APIKey
    /// Sessions ended (with ?wait=true, counted once every loop has acted; otherwise the key's
    /// live sessions at the time, all being ended).
    var sessionsEnded: Int
    /// True once every loop has sent its sessions their notice and close frame (in a cluster, with
    /// ?wait=true: on every live node).
    var complete: Bool
    /// In a cluster with ?wait=true: sessions ended per node that answered.
    var nodes: [String: Int]?
}

struct SessionList: Encodable {
    var items: [SessionInfo]
}

struct KeyList: Encodable {
    var items: [KeyView]
    var next: String?
    init(_ page: Page<APIKey>, sessions: SessionServices?, manageable: Set<String>) {
        items = page.items.map { KeyView($0, sessions: sessions, manageable: manageable.contains($0.id)) }
        next = page.next
    }
}

/// A key as its list and read show it: the record plus its live sessions on every node (counts
/// from memory, other nodes' as of their last sync, so the page's table needs no request per key).
struct KeyView: Encodable {
    var key: APIKey
    var liveSessions: Int
    /// False when the calling key may not change this one (it is above it): the page hides the
    /// key's actions.
    var manageable: Bool
    /// `state`, or `expired` for an active key past its expiry.
    var status: KeyStatus
    /// While a rotation's grace runs: when the previous secret stops working.
    var previousUntil: Date?

    init(_ key: APIKey, sessions: SessionServices?, manageable: Bool, now: Date = Date()) {
        self.key = key
        liveSessions = sessions?.clusterSessionsOf(key.id) ?? 0
        self.manageable = manageable
        status = key.status(at: now)
        previousUntil = sessions?.cache.current(keyID: key.id)?.3.previousUntil.flatMap { $0 > now ? $0 : nil }
    }

    private enum CodingKeys: String, CodingKey { case liveSessions, manageable, status, previousUntil }

    /// The key's own fields and `liveSessions` side by side in one object.
    func encode(to encoder: any Encoder) throws {
        try key.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(liveSessions, forKey: .liveSessions)
        try container.encode(manageable, forKey: .manageable)
        try container.encode(status, forKey: .status)
        try container.encodeIfPresent(previousUntil, forKey: .previousUntil)
    }
}

/// A user or group as lists and reads show it: the record and whether the calling key may change
/// it (the page hides what it may not do).
struct Managed<Item: Encodable>: Encodable {
    var item: Item
    var manageable: Bool

    private enum CodingKeys: String, CodingKey { case manageable }

    func encode(to encoder: any Encoder) throws {
        try item.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(manageable, forKey: .manageable)
    }
}

/// `GET /v1/me`: the calling key, its user, and the admin actions it may perform (the page hides
/// what it could not do).
struct AdminIdentity: Encodable {
    var key: APIKey
    var user: User
    var actions: [String]
}

struct AuditList: Encodable {
    var items: [AuditEntry]
    var next: String?
    init(_ page: Page<AuditEntry>) { items = page.items; next = page.next }
}

