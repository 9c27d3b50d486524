// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatewayCore
import WebSocketServer
import WireCodec

/// The REST admin API under `/v1`: routing, authentication, JSON. Runs on a blocking pool.
///
/// Every route but the OpenAPI document needs a key whose user may perform the route's
/// `admin:` action; `routes` is the single table both the server and the tests enumerate.
struct AdminAPI: Sendable {
    struct Route: Sendable {
        var method: String
        /// Path segments; `{id}` matches one segment.
        var pattern: [String]
        /// The permission the caller needs; nil = public.
        var action: String?
        var handler: @Sendable (AdminAPI, Call) throws(AdminError) -> HTTPResponse

        init(_ method: String, _ path: String, _ action: String?,
             _ handler: @escaping @Sendable (AdminAPI, Call) throws(AdminError) -> HTTPResponse) {
            self.method = method
            pattern = path.split(separator: "/").map(String.init)
            self.action = action
            self.handler = handler
        }
    }

    /// One authenticated request.
    struct Call {
        var request: HTTPRequest
        var id: String
        var query: [String: String]
        /// The admin key's id: the audit trail's actor.
        var actor: String
    }

    let service: AdminService
    /// Where admin key uses go (last used time and address).
    let usage: KeyUsageRecorder?

    static let routes: [Route] = [
        Route("GET", "/v1/openapi.json", nil) { _, _ in HTTPResponse(status: 200, headers: [HTTPHeader("Content-Type", "application/json")], body: Array(OpenAPIDocument.json.utf8)) },

        Route("GET", "/v1/users", "admin:users.read") { api, _ throws(AdminError) in try json(200, api.service.users()) },
        Route("POST", "/v1/users", "admin:users.write") { api, call throws(AdminError) in try json(201, api.service.createUser(decode(call), actor: call.actor)) },
        Route("GET", "/v1/users/{id}", "admin:users.read") { api, call throws(AdminError) in try json(200, api.service.user(call.id)) },
        Route("PATCH", "/v1/users/{id}", "admin:users.write") { api, call throws(AdminError) in try json(200, api.service.updateUser(call.id, decode(call), actor: call.actor)) },
        Route("POST", "/v1/users/{id}/disable", "admin:users.write") { api, call throws(AdminError) in try json(200, api.service.setUserState(call.id, .disabled, actor: call.actor)) },
        Route("POST", "/v1/users/{id}/enable", "admin:users.write") { api, call throws(AdminError) in try json(200, api.service.setUserState(call.id, .active, actor: call.actor)) },
        Route("DELETE", "/v1/users/{id}", "admin:users.write") { api, call throws(AdminError) in try api.service.deleteUser(call.id, actor: call.actor); return HTTPResponse(status: 204) },

        Route("GET", "/v1/groups", "admin:groups.read") { api, _ throws(AdminError) in try json(200, api.service.groups()) },
        Route("POST", "/v1/groups", "admin:groups.write") { api, call throws(AdminError) in try json(201, api.service.createGroup(decode(call), actor: call.actor)) },
        Route("GET", "/v1/groups/{id}", "admin:groups.read") { api, call throws(AdminError) in try json(200, api.service.group(call.id)) },
        Route("PATCH", "/v1/groups/{id}", "admin:groups.write") { api, call throws(AdminError) in try json(200, api.service.updateGroup(call.id, decode(call), actor: call.actor)) },
        Route("DELETE", "/v1/groups/{id}", "admin:groups.write") { api, call throws(AdminError) in try api.service.deleteGroup(call.id, actor: call.actor); return HTTPResponse(status: 204) },

        Route("GET", "/v1/keys", "admin:keys.read") { api, call throws(AdminError) in try json(200, KeyList(api.service.keys(keyQuery(call.query)))) },
        Route("POST", "/v1/keys", "admin:keys.write") { api, call throws(AdminError) in try json(201, api.service.createKey(decode(call), actor: call.actor)) },
        Route("GET", "/v1/keys/{id}", "admin:keys.read") { api, call throws(AdminError) in try json(200, api.service.key(call.id)) },
        Route("PATCH", "/v1/keys/{id}", "admin:keys.write") { api, call throws(AdminError) in try json(200, api.service.updateKey(call.id, decode(call), actor: call.actor)) },
        Route("POST", "/v1/keys/{id}/suspend", "admin:keys.write") { api, call throws(AdminError) in try json(200, api.service.setKeyState(call.id, .suspended, actor: call.actor)) },
        Route("POST", "/v1/keys/{id}/resume", "admin:keys.write") { api, call throws(AdminError) in try json(200, api.service.setKeyState(call.id, .active, actor: call.actor)) },
        Route("POST", "/v1/keys/{id}/revoke", "admin:keys.write") { api, call throws(AdminError) in try json(200, api.service.setKeyState(call.id, .revoked, actor: call.actor)) },
        Route("POST", "/v1/keys/{id}/rotate", "admin:keys.write") { api, call throws(AdminError) in try json(200, api.service.rotateKey(call.id, decode(call, empty: RotateInput()), actor: call.actor)) },
        Route("DELETE", "/v1/keys/{id}", "admin:keys.write") { api, call throws(AdminError) in try api.service.deleteKey(call.id, actor: call.actor); return HTTPResponse(status: 204) },
        Route("POST", "/v1/keys/{id}/explain", "admin:keys.read") { api, call throws(AdminError) in try json(200, api.service.explain(call.id, decode(call))) },

        Route("GET", "/v1/audit", "admin:audit.read") { api, call throws(AdminError) in try json(200, AuditList(api.service.audit(auditQuery(call.query)))) },
    ]

    /// True if `path` belongs to the admin API.
    static func owns(_ path: Substring) -> Bool { path == "/v1" || path.hasPrefix("/v1/") }

    /// Handles one request (blocking).
    func handle(_ request: HTTPRequest, presentedKey: String?, peer: String = "") -> HTTPResponse {
        do throws(AdminError) {
            let (route, id) = try Self.match(request.head)
            var actor = "anonymous"
            if let action = route.action {
                guard let presentedKey else { throw AdminError(status: 401, code: "missing_key", message: "send an admin key in X-API-Key or Authorization") }
                let (key, user) = try service.authenticate(presentedKey)
                usage?.record(KeyUse(keyID: key.id, time: Date(), address: peer))
                try service.authorize(key, user, action)
                actor = key.id
            }
            return try route.handler(self, Call(request: request, id: id, query: Self.query(request.head.target), actor: actor))
        } catch {
            return error.response
        }
    }

    static func match(_ head: HTTPRequestHead) throws(AdminError) -> (Route, String) {
        let segments = head.path.split(separator: "/").map(String.init)
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
        }
        if !allowed.isEmpty {
            throw AdminError(status: 405, code: "method_not_allowed", message: "allowed: \(allowed.joined(separator: ", "))")
        }
        throw AdminError.notFound("route \(head.path)")
    }

    static func query(_ target: String) -> [String: String] {
        guard let q = target.firstIndex(of: "?") else { return [:] }
        var out: [String: String] = [:]
        for pair in target[target.index(after: q)...].split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1).map { String($0).removingPercentEncoding ?? String($0) }
            if let k = parts.first { out[k] = parts.count > 1 ? parts[1] : "" }
        }
        return out
    }

    static func keyQuery(_ q: [String: String]) throws(AdminError) -> KeyQuery {
        var query = KeyQuery(userID: q["user"], after: q["after"], limit: 100)
        if let s = q["state"] {
            guard let state = KeyState(rawValue: s) else { throw .invalid("state", "one of active, suspended, revoked") }
            query.state = state
        }
        if let l = q["limit"] {
            guard let limit = Int(l), (1...1000).contains(limit) else { throw .invalid("limit", "1 to 1000") }
            query.limit = limit
        }
        if let after = q["after"], Int64(after) == nil { throw .invalid("after", "a cursor from a previous page") }
        return query
    }

    static func auditQuery(_ q: [String: String]) throws(AdminError) -> AuditQuery {
        var query = AuditQuery(targetID: q["target"], actor: q["actor"], action: q["action"], limit: 100)
        if let b = q["before"] {
            guard let before = Int64(b) else { throw .invalid("before", "a cursor from a previous page") }
            query.before = before
        }
        if let l = q["limit"] {
            guard let limit = Int(l), (1...1000).contains(limit) else { throw .invalid("limit", "1 to 1000") }
            query.limit = limit
        }
        return query
    }

    static func decode<T: Decodable>(_ call: Call, empty: T? = nil) throws(AdminError) -> T {
        if call.request.body.isEmpty, let empty { return empty }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        do {
            return try decoder.decode(T.self, from: Data(call.request.body))
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            throw .invalid(context.codingPath.map(\.stringValue).joined(separator: "."), "wrong type: \(context.debugDescription)")
        } catch let DecodingError.keyNotFound(key, _) {
            throw .invalid(key.stringValue, "\(key.stringValue) is required")
        } catch let DecodingError.dataCorrupted(context) {
            throw .invalid(context.codingPath.map(\.stringValue).joined(separator: ".").ifEmpty("body"), "not valid JSON: \(context.debugDescription)")
        } catch {
            throw .invalid("body", "not valid JSON")
        }
    }

    static func json<T: Encodable>(_ status: Int, _ value: T) -> HTTPResponse {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        let body = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return HTTPResponse(status: status, headers: [HTTPHeader("Content-Type", "application/json"), HTTPHeader("Cache-Control", "no-store")], body: Array(body))
    }
}

struct KeyList: Encodable {
    var items: [APIKey]
    var next: String?
    init(_ page: Page<APIKey>) { items = page.items; next = page.next }
}

struct AuditList: Encodable {
    var items: [AuditEntry]
    var next: String?
    init(_ page: Page<AuditEntry>) { items = page.items; next = page.next }
}

extension String {
    func ifEmpty(_ other: String) -> String { isEmpty ? other : self }
}
