// SPDX-License-Identifier: Apache-2.0
import Foundation

/// The OpenAPI 3 document of the admin API, served at `/v1/openapi.json` and checked against the
/// running server by `scripts/api-check.sh` (Schemathesis).
///
/// Built from the same tables the server runs on, so they cannot drift apart: paths, methods and
/// request bodies from `AdminAPI.routes` and their `BodySchema`s (every field rule spelled out as
/// JSON Schema); the rest (summaries, results, the errors each route can give) from `operations`
/// below, which must name every route (checked when the document is built).
enum OpenAPIDocument {
    /// The document as served (compact JSON, keys sorted).
    static let bytes: [UInt8] = {
        let data = try? JSONSerialization.data(withJSONObject: make(), options: [.sortedKeys, .withoutEscapingSlashes])
        return Array(data ?? Data("{}".utf8))
    }()

    static var json: String { String(decoding: bytes, as: UTF8.self) }

    /// What the table says about one route beyond its method, path and body.
    struct Operation {
        var id: String
        var summary: String
        /// Success status and result schema (nil: no content).
        var ok: Int = 200
        var returns: Any?
        /// Statuses besides those every route of its kind can give (see `responses`).
        var errors: [Int] = []
        var query: [[String: Any]] = []
        /// Follow-up operations that take this one's new id (for stateful testing): operation id → JSON pointer.
        var links: [String] = []
        var linkPointer = "/id"
    }

    static func operations() -> [String: Operation] {
        let userLinks = ["getUser", "updateUser", "disableUser", "enableUser", "deleteUser"]
        let keyLinks = ["getKey", "updateKey", "suspendKey", "resumeKey", "revokeKey", "rotateKey", "explainKey", "deleteKey"]
        return [
            "GET /v1/openapi.json": Operation(id: "openapi", summary: "This document", returns: ["type": "object"]),
            "GET /v1/me": Operation(id: "me", summary: "The calling key, its user and the admin actions it may perform (403 if none)", returns: ref("Me")),
            "GET /v1/users": Operation(id: "listUsers", summary: "List users", returns: list("User")),
            "POST /v1/users": Operation(id: "createUser", summary: "Create a user", ok: 201, returns: ref("User"), errors: [404], links: userLinks),
            "GET /v1/users/{id}": Operation(id: "getUser", summary: "Show a user", returns: ref("User"), errors: [404]),
            "PATCH /v1/users/{id}": Operation(id: "updateUser", summary: "Edit a user", returns: ref("User"), errors: [404, 409]),
            "POST /v1/users/{id}/disable": Operation(id: "disableUser", summary: "Disable a user (every key of theirs stops working)", returns: ref("User"), errors: [404, 409]),
            "POST /v1/users/{id}/enable": Operation(id: "enableUser", summary: "Enable a user", returns: ref("User"), errors: [404, 409]),
            "DELETE /v1/users/{id}": Operation(id: "deleteUser", summary: "Delete a user (409 user_has_keys while keys remain)", ok: 204, errors: [404, 409]),

            "GET /v1/groups": Operation(id: "listGroups", summary: "List permission groups", returns: list("Group")),
            "POST /v1/groups": Operation(id: "createGroup", summary: "Create a group", ok: 201, returns: ref("Group"),
                                         links: ["getGroup", "updateGroup", "deleteGroup"]),
            "GET /v1/groups/{id}": Operation(id: "getGroup", summary: "Show a group", returns: ref("Group"), errors: [404]),
            "PATCH /v1/groups/{id}": Operation(id: "updateGroup", summary: "Edit a group", returns: ref("Group"), errors: [404, 409]),
            "DELETE /v1/groups/{id}": Operation(id: "deleteGroup", summary: "Delete a group (409 group_in_use while users or keys use it)", ok: 204, errors: [404, 409]),

            "GET /v1/keys": Operation(id: "listKeys", summary: "List keys (with their live sessions on this node), oldest first, a page at a time", returns: ref("KeyList"), query: [
                param("user", ["type": "string"], "only this user's keys"),
                param("state", ["type": "string", "enum": ["active", "expired", "suspended", "revoked"]], "only keys with this status (a page may then hold fewer than limit keys; follow next)"),
                param("after", ["type": "string", "pattern": "^[0-9]{1,18}$"], "the previous page's next"),
                param("limit", ["type": "integer", "minimum": 1, "maximum": 1000], "page size (default 100)"),
            ]),
            "POST /v1/keys": Operation(id: "createKey", summary: "Create a key (the secret is shown once)", ok: 201, returns: ref("IssuedKey"), errors: [404],
                                       links: keyLinks, linkPointer: "/key/id"),
            "GET /v1/keys/{id}": Operation(id: "getKey", summary: "Show a key, with its live sessions on every node", returns: ref("Key"), errors: [404]),
            "PATCH /v1/keys/{id}": Operation(id: "updateKey", summary: "Edit a key (409 key_revoked once revoked)", returns: ref("Key"), errors: [404, 409]),
            "POST /v1/keys/{id}/suspend": Operation(id: "suspendKey", summary: "Suspend a key; its live sessions get a notice and close 4102 (they retry slowly and come back after a resume)", returns: ref("KeyChange"), errors: [404, 409],
                                                    query: [param("wait", ["type": "string", "enum": ["true", "false"]], "wait until every session is told and closed")]),
            "POST /v1/keys/{id}/resume": Operation(id: "resumeKey", summary: "Resume a suspended key", returns: ref("Key"), errors: [404, 409]),
            "POST /v1/keys/{id}/revoke": Operation(id: "revokeKey", summary: "Revoke a key (terminal); its live sessions get a notice and close 4001", returns: ref("KeyChange"), errors: [404, 409],
                                                   query: [param("wait", ["type": "string", "enum": ["true", "false"]], "wait until every session is told and closed")]),
            "GET /v1/sessions": Operation(id: "listSessions", summary: "Live sessions on every node (other nodes' as of their last sync, about a second ago)", returns: ref("SessionList"), query: [
                param("key", ["type": "string"], "only this key's sessions"),
                param("user", ["type": "string"], "only this user's sessions"),
            ]),
            "DELETE /v1/sessions/{id}": Operation(id: "killSession", summary: "End a live session (notice, then close 4107: the device comes back after the notice's retryAfterMs); 202 when it is on another node", ok: 204, errors: [404],
                                                  query: [param("node", ["type": "string"], "the node holding the session (from the listing); default this one")]),
            "POST /v1/keys/{id}/rotate": Operation(id: "rotateKey", summary: "Rotate a key's secret (the new secret is shown once)", returns: ref("IssuedKey"), errors: [404, 409]),
            "DELETE /v1/keys/{id}": Operation(id: "deleteKey", summary: "Delete a key (it stays in the audit trail)", ok: 204, errors: [404, 409]),
            "POST /v1/keys/{id}/explain": Operation(id: "explainKey", summary: "May this key do an action on a property, and why", returns: ref("Decision"), errors: [404]),

            "GET /v1/audit": Operation(id: "listAudit", summary: "Read the audit trail, newest first, a page at a time", returns: ref("AuditList"), query: [
                param("target", ["type": "string"], "only entries about this object id"),
                param("actor", ["type": "string"], "only entries by this key id (or bootstrap)"),
                param("action", ["type": "string"], "only this action, e.g. key.revoke"),
                param("before", ["type": "integer", "minimum": 1, "maximum": Int.max], "the previous page's next: entries older than this seq"),
                param("limit", ["type": "integer", "minimum": 1, "maximum": 1000], "page size (default 100)"),
            ]),
        ]
    }

    /// What each error status means; every status a route can give is listed with it.
    static let errorMeanings: [Int: String] = [
        400: "invalid_field: a body field, query parameter (named in field) or the body itself; conflicting_keys: two different keys presented",
        401: "missing_key, malformed_key, unknown_key, revoked_key, suspended_key or expired_key",
        403: "forbidden: the key (or its user) may not do this; beyond_your_rights: the change would touch a key, user or group with rights beyond the calling key's own; address_not_allowed: this client network may not reach the admin API (--admin-network)",
        404: "not_found: no such object; with field, no such object referred to by that body field",
        409: "the object's state forbids it: user_has_keys, group_in_use, key_revoked, conflict; stale_write: the record kept changing under 20 tries of the write",
        413: "body_too_large (--max-body-bytes)",
        415: "unsupported_media_type: a body labelled with a Content-Type other than application/json",
        503: "store_unavailable (nothing was changed) or draining",
    ]

    static func make() -> [String: Any] {
        let table = operations()
        var paths: [String: [String: Any]] = [:]
        for route in AdminAPI.routes {
            let key = "\(route.method) \(route.path)"
            guard let operation = table[key] else { preconditionFailure("OpenAPIDocument.operations lacks \(key)") }
            var item = paths[route.path] ?? [:]
            if route.pattern.contains("{id}") {
                item["parameters"] = [["name": "id", "in": "path", "required": true, "schema": ["type": "string", "minLength": 1]]]
            }
            item[route.method.lowercased()] = self.operation(operation, route, table)
            paths[route.path] = item
        }
        var schemas = responseSchemas()
        for route in AdminAPI.routes {
            if let body = route.body { schemas[body.name] = body.jsonSchema }
        }
        return [
            "openapi": "3.0.3",
            "info": [
                "title": "Doorman admin API",
                "version": "1",
                "description": """
                    Users, permission groups, API keys and the audit trail. Every operation but this document needs an \
                    admin key (X-API-Key: <key>, or Authorization: Bearer <key>) whose user holds the operation's admin: \
                    permission. Errors are JSON: {"error": code, "message": text, "field": the offending field (400, 404)}. \
                    Bodies are JSON objects; unknown fields and null are refused (400). Where it answers is the \
                    operator's to fence: with --admin-port only on that port (404 on the others), with --admin-network \
                    only from those networks (403 address_not_allowed before the key is read).
                    """,
            ],
            "security": [["apiKey": [String]()]],
            "components": [
                "securitySchemes": ["apiKey": ["type": "apiKey", "in": "header", "name": "X-API-Key"]],
                "schemas": schemas,
            ],
            "paths": paths,
        ]
    }

    private static func operation(_ op: Operation, _ route: AdminAPI.Route, _ table: [String: Operation]) -> [String: Any] {
        var out: [String: Any] = ["operationId": op.id, "summary": op.summary]
        switch route.access {
        case .action(let action): out["description"] = "Needs the \(action) permission."
        case .anyAdminAction: out["description"] = "Needs a key that may perform at least one admin: action."
        case .open: out["security"] = [Any]()
        }
        if !op.query.isEmpty { out["parameters"] = op.query }
        if let body = route.body {
            out["requestBody"] = ["required": !body.optional,
                                  "content": ["application/json": ["schema": ref(body.name)]]]
        }
        var success: [String: Any] = ["description": op.ok == 204 ? "done" : "ok"]
        if let returns = op.returns { success["content"] = ["application/json": ["schema": returns]] }
        if !op.links.isEmpty {
            var links: [String: Any] = [:]
            for target in op.links {
                guard table.values.contains(where: { $0.id == target }) else { preconditionFailure("link to unknown operation \(target)") }
                links[target] = ["operationId": target, "parameters": ["id": "$response.body#\(op.linkPointer)"]]
            }
            success["links"] = links
        }
        var responses: [String: Any] = [String(op.ok): success]
        var errors = Set(op.errors)
        if route.needsKey { errors.formUnion([400, 401, 403, 503]) }
        if route.body != nil { errors.formUnion([400, 413, 415]) }
        for status in errors.sorted() {
            responses[String(status)] = ["description": errorMeanings[status] ?? "error",
                                         "content": ["application/json": ["schema": ref("Error")]]]
        }
        out["responses"] = responses
        return out
    }

    // MARK: - Results

    private static func responseSchemas() -> [String: Any] {
        let date: [String: Any] = ["type": "string", "format": "date-time"]
        let string: [String: Any] = ["type": "string"]
        let strings: [String: Any] = ["type": "array", "items": string]
        return [
            "Error": object(["error": ["type": "string", "description": "a stable code"], "message": string, "field": string],
                            required: ["error"]),
            "User": object(["id": string, "name": string, "state": ["type": "string", "enum": ["active", "disabled"]],
                            "permissions": strings, "groups": strings, "properties": strings, "createdAt": date, "updatedAt": date,
                            "manageable": ["type": "boolean", "description": "whether the calling key may change it (within its own rights)"]],
                           required: ["id", "name", "state", "permissions", "groups", "properties", "createdAt", "updatedAt"]),
            "Group": object(["id": string, "name": string, "description": string, "permissions": strings, "limits": BodySchema.limitsSchema,
                             "createdAt": date, "updatedAt": date, "manageable": ["type": "boolean", "description": "whether the calling key may change it (within its own rights)"]],
                            required: ["id", "name", "description", "permissions", "createdAt", "updatedAt"]),
            "Key": object(["id": string, "name": string, "description": string, "userID": string, "groupID": string,
                           "scopes": strings, "properties": strings, "rules": strings, "limits": BodySchema.limitsSchema,
                           "state": ["type": "string", "enum": ["active", "suspended", "revoked"]],
                           "status": ["type": "string", "enum": ["active", "expired", "suspended", "revoked"],
                                      "description": "what the key is now: its state, or expired for a key past expiresAt that is not revoked (in the key list and a key's read only)"],
                           "previousUntil": ["type": "string", "format": "date-time",
                                             "description": "while a rotation's grace runs: when the previous secret stops working (in the key list and a key's read only)"],
                           "expiresAt": date, "createdAt": date, "updatedAt": date, "lastUsedAt": date, "lastUsedAddress": string,
                           "createdBy": ["type": "string", "description": "the admin key id that created it, or bootstrap"],
                           "displayStart": ["type": "string", "description": "dmk_ and the secret's first 4 random characters"],
                           "liveSessions": ["type": "integer", "minimum": 0, "description": "live sessions on this node (in the key list and a key's read only)"],
                           "manageable": ["type": "boolean", "description": "whether the calling key may change it (within its own rights)"]],
                          required: ["id", "name", "description", "userID", "scopes", "properties", "rules", "state",
                                     "createdAt", "updatedAt", "createdBy", "displayStart"]),
            "IssuedKey": object(["key": ref("Key"), "secret": ["type": "string", "description": "the key itself: shown this once, never stored"]],
                                required: ["key", "secret"]),
            "KeyList": object(["items": ["type": "array", "items": ref("Key")],
                               "next": ["type": "string", "description": "pass as after for the next page; absent on the last"]],
                              required: ["items"]),
            "AuditEntry": object(["seq": ["type": "integer"], "time": date, "actor": string, "action": string, "targetType": string,
                                  "targetID": string, "change": ["type": "string", "description": "what changed, as JSON text"]],
                                 required: ["seq", "time", "actor", "action", "targetType", "targetID", "change"]),
            "AuditList": object(["items": ["type": "array", "items": ref("AuditEntry")],
                                 "next": ["type": "string", "description": "pass as before for the next page; absent on the last"]],
                                required: ["items"]),
            "KeyChange": object(["key": ref("Key"),
                                 "sessionsEnded": ["type": "integer", "minimum": 0, "description": "live sessions the change ended"],
                                 "complete": ["type": "boolean", "description": "every loop has sent its sessions their notice and close frame (in a cluster: on every live node)"],
                                 "nodes": ["type": "object", "additionalProperties": ["type": "integer", "minimum": 0],
                                           "description": "in a cluster with ?wait=true: sessions ended per node that answered"]],
                                required: ["key", "sessionsEnded", "complete"]),
            "Session": object(["id": string, "keyID": string, "userID": string, "address": string, "userAgent": string,
                               "since": date, "lastActivity": date, "node": string, "subscriptions": ["type": "integer", "minimum": 0]],
                              required: ["id", "keyID", "userID", "address", "since", "lastActivity", "node", "subscriptions"]),
            "SessionList": object(["items": list("Session")], required: ["items"]),
            "Me": object(["key": ref("Key"), "user": ref("User"),
                          "actions": ["type": "array", "items": string, "description": "the admin: actions this key may perform"]],
                         required: ["key", "user", "actions"]),
            "Decision": object(["allowed": ["type": "boolean"],
                                "reason": ["type": "string", "enum": [
                                    "allowed", "invalid_action", "invalid_property", "key_revoked", "key_suspended", "key_expired", "user_disabled",
                                    "property_not_allowed_for_user", "property_not_allowed_for_key", "not_permitted_for_user",
                                    "not_in_key_scopes", "denied_by_rule", "no_rule_matched",
                                ]],
                                "decidedBy": ["type": "string", "description": "the pattern, scope or rule that decided"],
                                "ruleIndex": ["type": "integer", "minimum": 0]],
                               required: ["allowed", "reason"]),
        ]
    }

    private static func object(_ properties: [String: Any], required: [String]) -> [String: Any] {
        ["type": "object", "properties": properties, "required": required, "additionalProperties": false]
    }

    private static func ref(_ name: String) -> [String: Any] { ["$ref": "#/components/schemas/\(name)"] }

    private static func list(_ name: String) -> [String: Any] { ["type": "array", "items": ref(name)] }

    private static func param(_ name: String, _ schema: [String: Any], _ description: String) -> [String: Any] {
        ["name": name, "in": "query", "required": false, "schema": schema, "description": description]
    }
}
