// SPDX-License-Identifier: Apache-2.0
import Foundation
import Glibc
@testable import Gateway
import GatewayCore
import Logging
import Testing
import WebSocketServer
import WireCodec

/// The admin API over real sockets against a real gateway and SQLite file.
@Suite struct AdminAPITests {
    /// A gateway on 127.0.0.1:0 with a fresh database.
    final class TestGateway {
        let gateway: Gateway
        let adminKey: String
        var port: Int { gateway.port }

        /// - Parameter adminKey: the store's admin key when it is not empty (another node of a cluster).
        init(adminKey preset: String? = nil, _ configure: (inout GatewayConfig) -> Void = { _ in },
             wrapStore: (@Sendable (any IdentityStore) -> any IdentityStore)? = nil) throws {
            var config = GatewayConfig()
            config.server.port = 0
            config.server.loops = 1
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("doorman-admin-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            config.database = dir.appendingPathComponent("doorman.db").path
            configure(&config)
            var logger = Logger(label: "test")
            logger.logLevel = .critical
            gateway = try Gateway(config: config, logger: logger, wrapStore: wrapStore)
            adminKey = try #require(preset ?? gateway.bootstrapSecret)
        }

        deinit { gateway.shutdown() }

        /// One request on a new connection; returns status and parsed JSON (if any).
        func call(_ method: String, _ path: String, key: String? = nil, headers: [String] = [], body: Any? = nil, port: Int? = nil) throws -> (Int, Any?) {
            let client = try TestClient(port: port ?? self.port)
            var request = "\(method) \(path) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            if let key = key ?? Optional(adminKey), !key.isEmpty { request += "X-API-Key: \(key)\r\n" }
            for h in headers { request += h + "\r\n" }
            var payload: [UInt8] = []
            if let body { payload = Array(try JSONSerialization.data(withJSONObject: body)) }
            request += "Content-Length: \(payload.count)\r\n\r\n"
            client.send(Array(request.utf8) + payload)
            let response = try #require(client.readResponse())
            let status = Int(response.head.split(separator: " ")[1]) ?? 0
            let json = response.body.isEmpty ? nil : try? JSONSerialization.jsonObject(with: Data(response.body.utf8))
            return (status, json)
        }
    }

    /// A client that half-closes after its request (`nc -N`, some scripts) still gets the answer
    /// of a route answered later, off the loop; then the connection closes.
    @Test func aHalfClosedClientStillGetsALaterReply() throws {
        let gw = try TestGateway()
        let client = try TestClient(port: gw.port)
        client.send(Array("GET /v1/users HTTP/1.1\r\nHost: x\r\nX-API-Key: \(gw.adminKey)\r\n\r\n".utf8))
        shutdown(client.fd, Int32(SHUT_WR))
        let response = try #require(client.readResponse())
        #expect(response.head.hasPrefix("HTTP/1.1 200"))
        #expect(response.head.lowercased().contains("connection: close"))
        #expect(client.awaitsEndOfStream())
    }

    @Test func runsAKeysWholeLifecycle() throws {
        let gw = try TestGateway()
        let (s1, user) = try gw.call("POST", "/v1/users", body: ["name": "kiosk user", "permissions": ["pms:checkIn*"], "properties": ["hotel-1"]])
        #expect(s1 == 201)
        let userID = try #require((user as? [String: Any])?["id"] as? String)
        let (s2, issued) = try gw.call("POST", "/v1/keys", body: ["name": "lobby kiosk", "userID": userID, "rules": ["pms:checkIn*"]])
        #expect(s2 == 201)
        let issuedKey = try #require(issued as? [String: Any])
        let secret = try #require(issuedKey["secret"] as? String)
        let key = try #require(issuedKey["key"] as? [String: Any])
        let keyID = try #require(key["id"] as? String)
        #expect((try? APIKeySecret(parsing: secret)) != nil)
        #expect(key["displayStart"] as? String == String(secret.prefix(8)))
        // Shown once: no later read carries the secret.
        let (_, shown) = try gw.call("GET", "/v1/keys/\(keyID)")
        #expect((shown as? [String: Any])?["secret"] == nil)
        #expect(!"\(shown ?? "")".contains(secret))

        #expect(try gw.call("PATCH", "/v1/keys/\(keyID)", body: ["name": "lobby kiosk 2", "properties": ["hotel-1"]]).0 == 200)
        #expect(try gw.call("POST", "/v1/keys/\(keyID)/suspend").0 == 200)
        let (_, suspended) = try gw.call("GET", "/v1/keys?state=suspended")
        #expect(((suspended as? [String: Any])?["items"] as? [[String: Any]])?.map { $0["id"] as? String } == [keyID])
        #expect(try gw.call("POST", "/v1/keys/\(keyID)/resume").0 == 200)

        let (s3, rotated) = try gw.call("POST", "/v1/keys/\(keyID)/rotate", body: ["graceSeconds": 60])
        #expect(s3 == 200)
        let newSecret = try #require((rotated as? [String: Any])?["secret"] as? String)
        #expect(newSecret != secret)

        let (s4, decision) = try gw.call("POST", "/v1/keys/\(keyID)/explain", body: ["action": "pms:checkInGuest", "property": "hotel-1"])
        #expect(s4 == 200)
        #expect((decision as? [String: Any])?["allowed"] as? Bool == true)
        #expect((decision as? [String: Any])?["decidedBy"] as? String == "pms:checkIn*")
        let (_, denied) = try gw.call("POST", "/v1/keys/\(keyID)/explain", body: ["action": "pms:refund", "property": "hotel-1"])
        #expect((denied as? [String: Any])?["reason"] as? String == "not_permitted_for_user")
        let (_, unnamed) = try gw.call("POST", "/v1/keys/\(keyID)/explain", body: ["action": "pms:checkInGuest"])
        #expect((unnamed as? [String: Any])?["reason"] as? String == "invalid_property")   // a key limited to hotel-1 names it
        let (_, malformed) = try gw.call("POST", "/v1/keys/\(keyID)/explain", body: ["action": "pms:checkInGuest", "property": "hotel 1"])
        #expect((malformed as? [String: Any])?["reason"] as? String == "invalid_property")   // read as live requests read it

        #expect(try gw.call("POST", "/v1/keys/\(keyID)/revoke").0 == 200)
        // Terminal.
        #expect(try gw.call("POST", "/v1/keys/\(keyID)/resume").0 == 409)
        #expect(try gw.call("POST", "/v1/keys/\(keyID)/rotate").0 == 409)
        // Revoked keys stay listed, disabled.
        let (_, all) = try gw.call("GET", "/v1/keys?user=\(userID)")
        #expect(((all as? [String: Any])?["items"] as? [[String: Any]])?.first?["state"] as? String == "revoked")
        #expect(try gw.call("DELETE", "/v1/keys/\(keyID)").0 == 204)
        #expect(try gw.call("GET", "/v1/keys/\(keyID)").0 == 404)

        let (_, audit) = try gw.call("GET", "/v1/audit?target=\(keyID)")
        let actions = ((audit as? [String: Any])?["items"] as? [[String: Any]])?.compactMap { $0["action"] as? String }
        #expect(actions == ["key.delete", "key.revoke", "key.rotate", "key.resume", "key.suspend", "key.update", "key.create"])
    }

    @Test func aDataPlaneKeyGets403OnEveryAdminRoute() throws {
        let gw = try TestGateway()
        let (_, user) = try gw.call("POST", "/v1/users", body: ["name": "device", "permissions": ["*:*"]])
        let userID = try #require((user as? [String: Any])?["id"] as? String)
        let (_, issued) = try gw.call("POST", "/v1/keys", body: ["name": "panel", "userID": userID])
        let deviceKey = try #require((issued as? [String: Any])?["secret"] as? String)
        // Enumerated from the router: a route added later cannot be missed.
        let protected = AdminAPI.routes.filter(\.needsKey)
        #expect(protected.count >= 20)
        for route in protected {
            let path = "/" + route.pattern.map { $0 == "{id}" ? "x" : $0 }.joined(separator: "/")
            let (status, body) = try gw.call(route.method, path, key: deviceKey, body: route.method == "GET" || route.method == "DELETE" ? nil : [:])
            #expect(status == 403, "\(route.method) \(path)")
            #expect((body as? [String: Any])?["error"] as? String == "forbidden")
        }
        // ...and no key at all is a 401 everywhere.
        for route in protected {
            let path = "/" + route.pattern.map { $0 == "{id}" ? "x" : $0 }.joined(separator: "/")
            #expect(try gw.call(route.method, path, key: "").0 == 401, "\(route.method) \(path)")
        }
    }

    @Test(arguments: [
        ("X-API-Key: dmk_nope", "malformed_key"),
        ("Authorization: Bearer dmk_00000000000000000000000000000000000000000000000000", "malformed_key"),
    ])
    func refusesBadKeysWith401(header: String, code: String) throws {
        let gw = try TestGateway()
        let (status, body) = try gw.call("GET", "/v1/users", key: "", headers: [header])
        #expect(status == 401)
        #expect((body as? [String: Any])?["error"] as? String == code)
    }

    @Test func acceptsEveryKeyHeaderAndRefusesTwoDifferentKeys() throws {
        let gw = try TestGateway()
        for header in ["X-API-Key: \(gw.adminKey)", "Authorization: apiKey \(gw.adminKey)", "authorization: BEARER \(gw.adminKey)", "user-api-key: \(gw.adminKey)"] {
            #expect(try gw.call("GET", "/v1/users", key: "", headers: [header]).0 == 200, "\(header.prefix(20))")
        }
        let other = APIKeySecret.generate().text
        #expect(try gw.call("GET", "/v1/users", headers: ["Authorization: Bearer \(other)"]).0 == 400)
        #expect(try gw.call("GET", "/v1/users", key: "", headers: ["Authorization: Bearer \(other)"]).0 == 401)   // unknown
    }

    @Test func namesTheOffendingField() throws {
        let gw = try TestGateway()
        let (s1, e1) = try gw.call("POST", "/v1/users", body: ["name": "x", "permissions": ["pms:ok", "pms:bad..name"]])
        #expect(s1 == 400)
        #expect((e1 as? [String: Any])?["field"] as? String == "permissions[1]")
        let (s2, e2) = try gw.call("POST", "/v1/keys", body: ["name": "k"])
        #expect(s2 == 400)
        #expect((e2 as? [String: Any])?["field"] as? String == "userID")
        let (s3, e3) = try gw.call("POST", "/v1/users", body: ["name": 5])
        #expect(s3 == 400)
        #expect((e3 as? [String: Any])?["field"] as? String == "name")
        #expect(try gw.call("GET", "/v1/nothing").0 == 404)
        #expect(try gw.call("PUT", "/v1/users").0 == 405)
    }

    @Test func enforcesTheExpiryPolicy() throws {
        let gw = try TestGateway { $0.keyPolicy = KeyPolicy(requireExpiry: true, maxLifetime: 86400) }
        let (_, user) = try gw.call("POST", "/v1/users", body: ["name": "u", "permissions": ["pms:*"]])
        let userID = try #require((user as? [String: Any])?["id"] as? String)
        let (s1, e1) = try gw.call("POST", "/v1/keys", body: ["name": "k", "userID": userID])
        #expect(s1 == 400)
        #expect((e1 as? [String: Any])?["field"] as? String == "expiresAt")
        let tooLong = ISO8601DateFormatter().string(from: Date().addingTimeInterval(3 * 86400))
        #expect(try gw.call("POST", "/v1/keys", body: ["name": "k", "userID": userID, "expiresAt": tooLong]).0 == 400)
        let fine = ISO8601DateFormatter().string(from: Date().addingTimeInterval(3600))
        #expect(try gw.call("POST", "/v1/keys", body: ["name": "k", "userID": userID, "expiresAt": fine]).0 == 201)
    }

    @Test func recordsWhenAndWhereAnAdminKeyWasLastUsed() throws {
        let gw = try TestGateway()
        let (_, first) = try gw.call("GET", "/v1/keys")
        let key = try #require(((first as? [String: Any])?["items"] as? [[String: Any]])?.first)
        // The first use is written at once (no batch is pending); later ones within 5 s wait for the next batch.
        var seen: [String: Any]?
        for _ in 0..<100 {
            let (_, again) = try gw.call("GET", "/v1/keys/\(key["id"] as! String)")
            seen = again as? [String: Any]
            if seen?["lastUsedAt"] != nil { break }
        }
        #expect(seen?["lastUsedAt"] as? String != nil)
        #expect(seen?["lastUsedAddress"] as? String == "127.0.0.1")
    }

    /// The issue's escalations, each as a new user would try it: refused with 403
    /// `beyond_your_rights`, and nothing changed.
    @Test func noAdminRoleMakesItselfFullAdmin() throws {
        let gw = try TestGateway()
        func id(_ body: Any?) throws -> String { try #require((body as? [String: Any])?["id"] as? String) }
        func issue(_ name: String, _ permissions: [String], groups: [String] = []) throws -> (user: String, key: String, secret: String) {
            let user = try id(gw.call("POST", "/v1/users", body: ["name": name, "permissions": permissions, "groups": groups]).1)
            let (_, issued) = try gw.call("POST", "/v1/keys", body: ["name": name, "userID": user])
            let object = try #require(issued as? [String: Any])
            return (user, try id(object["key"]), try #require(object["secret"] as? String))
        }
        let (_, me) = try gw.call("GET", "/v1/me")
        let root = try #require(me as? [String: Any])
        let rootUser = try id(root["user"]), rootKey = try id(root["key"])

        // A help desk (`admin:keys.*`) lists keys, but cannot issue or rotate one above itself.
        let desk = try issue("help desk", ["admin:keys.*", "pms:*"])
        #expect(try gw.call("GET", "/v1/keys", key: desk.secret).0 == 200)
        let (s1, b1) = try gw.call("POST", "/v1/keys", key: desk.secret, body: ["name": "mine now", "userID": rootUser])
        #expect(s1 == 403 && (b1 as? [String: Any])?["error"] as? String == "beyond_your_rights", "\(String(describing: b1))")
        let (s2, b2) = try gw.call("POST", "/v1/keys/\(rootKey)/rotate", key: desk.secret, body: ["graceSeconds": 0])
        #expect(s2 == 403 && !"\(String(describing: b2))".contains("secret"))
        #expect(try gw.call("POST", "/v1/keys/\(rootKey)/suspend", key: desk.secret).0 == 403)
        #expect(try gw.call("GET", "/v1/me").0 == 200, "the real admin still works")
        // Nor end the admin's live session.
        let adminSession = try TestClient(port: gw.port)
        #expect(adminSession.upgrade(path: "/ws", headers: ["X-API-Key: \(gw.adminKey)"])?.hasPrefix("HTTP/1.1 101") == true)
        let welcome = try #require(adminSession.readFrame())
        let sessionID = try #require((try? JSONSerialization.jsonObject(with: Data(welcome.payload)) as? [String: Any])?["session"] as? String)
        #expect(try gw.call("DELETE", "/v1/sessions/\(sessionID)", key: desk.secret).0 == 403)
        // No dormant rights either: scopes beyond the desk on a key whose user holds less today
        // would wake the day someone widens that user.
        let narrowUser = try id(gw.call("POST", "/v1/users", body: ["name": "reader", "permissions": ["pms:read"]]).1)
        #expect(try gw.call("POST", "/v1/keys", key: desk.secret, body: ["name": "trap", "userID": narrowUser, "scopes": ["pms:*", "admin:*"]]).0 == 403)
        #expect(try gw.call("POST", "/v1/keys", key: desk.secret, body: ["name": "fine", "userID": narrowUser, "scopes": ["pms:*"]]).0 == 201)
        // …but a device key within its rights is fine, and the list says which keys it may manage.
        let device = try id(gw.call("POST", "/v1/users", body: ["name": "panel", "permissions": ["pms:checkIn"]]).1)
        #expect(try gw.call("POST", "/v1/keys", key: desk.secret, body: ["name": "panel", "userID": device]).0 == 201)
        let (_, list) = try gw.call("GET", "/v1/keys", key: desk.secret)
        let items = try #require((list as? [String: Any])?["items"] as? [[String: Any]])
        #expect(items.first { $0["id"] as? String == rootKey }?["manageable"] as? Bool == false)
        #expect(items.first { $0["name"] as? String == "panel" }?["manageable"] as? Bool == true)

        // A user admin cannot PATCH itself to `admin:*`.
        let users = try issue("user admin", ["admin:users.*"])
        #expect(try gw.call("PATCH", "/v1/users/\(users.user)", key: users.secret, body: ["permissions": ["admin:*"]]).0 == 403)
        #expect(try gw.call("POST", "/v1/users", key: users.secret, body: ["name": "x", "permissions": ["admin:*"]]).0 == 403)
        #expect(try gw.call("POST", "/v1/users/\(rootUser)/disable", key: users.secret).0 == 403)

        // A member of a group holding `admin:groups.*` cannot widen that group.
        let group = try id(gw.call("POST", "/v1/groups", body: ["name": "group admins", "permissions": ["admin:groups.*"]]).1)
        let member = try issue("group admin", [], groups: [group])
        #expect(try gw.call("PATCH", "/v1/groups/\(group)", key: member.secret, body: ["permissions": ["admin:*"]]).0 == 403)
        #expect(try gw.call("GET", "/v1/users", key: member.secret).0 == 403, "the group still holds only admin:groups.*")

        // A read-only admin (`!*:*.write` before `admin:*`) reads but never writes; explain says why.
        let (_, ro) = try gw.call("POST", "/v1/keys", body: ["name": "read only", "userID": rootUser, "rules": ["!*:*.write", "admin:*"]])
        let readOnly = try #require((ro as? [String: Any])?["secret"] as? String)
        let readOnlyID = try id((ro as? [String: Any])?["key"])
        #expect(try gw.call("GET", "/v1/keys", key: readOnly).0 == 200)
        #expect(try gw.call("POST", "/v1/users", key: readOnly, body: ["name": "y"]).0 == 403)
        let (_, why) = try gw.call("POST", "/v1/keys/\(readOnlyID)/explain", body: ["action": "admin:keys.write"])
        #expect((why as? [String: Any])?["reason"] as? String == "denied_by_rule")
        #expect((why as? [String: Any])?["decidedBy"] as? String == "!*:*.write")
    }

    /// `--admin-network` fences the admin API and page (not publish); `--metrics-require-key`
    /// closes `/metrics` to all but keys that may `admin:metrics.read`.
    @Test func theAdminSurfaceCanBeFenced() throws {
        let fenced = try TestGateway { $0.adminNetworks = ["10.0.0.0/8", "2001:db8::/32"] }
        for path in ["/v1/me", "/v1/keys", "/v1/openapi.json", "/admin/", "/admin"] {
            let (status, body) = try fenced.call("GET", path)
            #expect(status == 403 && (body as? [String: Any])?["error"] as? String == "address_not_allowed", "\(path)")
        }
        #expect(try fenced.call("POST", "/v1/publish", key: "", body: ["channel": "c"]).0 == 401, "publishing is not fenced")
        #expect(try fenced.call("GET", "/healthz", key: "").0 == 200)
        let open = try TestGateway { $0.adminNetworks = ["127.0.0.0/8"] }
        #expect(try open.call("GET", "/v1/me").0 == 200)

        let metrics = try TestGateway { $0.metricsRequireKey = true }
        #expect(try metrics.call("GET", "/metrics", key: "").0 == 401)
        let (_, user) = try metrics.call("POST", "/v1/users", body: ["name": "device", "permissions": ["pms:*"]])
        let userID = try #require((user as? [String: Any])?["id"] as? String)
        let (_, issued) = try metrics.call("POST", "/v1/keys", body: ["name": "panel", "userID": userID])
        let device = try #require((issued as? [String: Any])?["secret"] as? String)
        #expect(try metrics.call("GET", "/metrics", key: device).0 == 403)
        #expect(try metrics.call("GET", "/metrics").0 == 200, "the admin key may read metrics")
        #expect(try TestGateway().call("GET", "/metrics", key: "").0 == 200, "open by default")
    }

    /// Issue 16, item 8: with `--admin-port` the admin API and page answer on that port only, and
    /// it answers nothing else but the probes; sessions, calls and publishing stay on the main port.
    @Test func theAdminSurfaceCanHaveItsOwnPort() throws {
        let gw = try TestGateway { $0.server.adminPort = 0 }
        let adminPort = try #require(gw.gateway.server.adminPort)
        #expect(adminPort != gw.port)
        for path in ["/v1/me", "/v1/keys", "/v1/openapi.json", "/admin/", "/admin"] {
            let (onMain, body) = try gw.call("GET", path)
            #expect(onMain == 404 && (body as? [String: Any])?["error"] as? String == "not_found", "\(path) on the main port")
            let (onAdmin, _) = try gw.call("GET", path, port: adminPort)
            #expect((200..<400).contains(onAdmin), "\(path) on the admin port: \(onAdmin)")
        }
        #expect(try gw.call("POST", "/v1/publish", key: "", body: ["channel": "c"]).0 == 401, "publishing stays on the main port")
        #expect(try gw.call("POST", "/v1/publish", key: "", body: ["channel": "c"], port: adminPort).0 == 404)
        for probe in ["/healthz", "/readyz", "/metrics"] {
            #expect(try gw.call("GET", probe, key: "").0 == 200, "\(probe)")
            #expect(try gw.call("GET", probe, key: "", port: adminPort).0 == 200, "\(probe) on the admin port")
        }
        // Sessions open on the main port only.
        let sessions = SessionTests()
        let (_, secret) = try sessions.makeKey(gw, permissions: ["pms:*"], viaPort: adminPort)
        _ = try sessions.connect(gw, secret: secret)
        let client = try TestClient(port: adminPort)
        client.send(Array("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-API-Key: \(secret)\r\n\r\n".utf8))
        let refused = try #require(client.readResponse())
        #expect(refused.head.hasPrefix("HTTP/1.1 404"), "\(refused.head)")
        // Sessions never live on an admin or probe path (the fence would not judge them as sessions).
        for path in ["/admin/ws", "/v1/ws", "/v1", "/metrics"] {
            var config = GatewayConfig()
            config.path = path
            #expect(throws: ConfigError.self, "\(path)") { try config.validate() }
        }
    }

    @Test func meNamesTheCallerAndWhatItMayDo() throws {
        let gw = try TestGateway()
        let (status, me) = try gw.call("GET", "/v1/me")
        #expect(status == 200)
        let object = try #require(me as? [String: Any])
        #expect((object["key"] as? [String: Any])?["name"] as? String == "bootstrap admin key")
        #expect((object["user"] as? [String: Any])?["name"] as? String == "admin")
        #expect(object["actions"] as? [String] == AdminAPI.adminActions)
        #expect(AdminAPI.adminActions.contains("admin:keys.write"))
        #expect(!"\(object)".contains(gw.adminKey))

        // An auditor who may only read the trail sees just that.
        let (_, auditor) = try gw.call("POST", "/v1/users", body: ["name": "auditor", "permissions": ["admin:audit.read"]])
        let auditorID = try #require((auditor as? [String: Any])?["id"] as? String)
        let (_, issued) = try gw.call("POST", "/v1/keys", body: ["name": "auditor key", "userID": auditorID])
        let auditorKey = try #require((issued as? [String: Any])?["secret"] as? String)
        let (s2, narrow) = try gw.call("GET", "/v1/me", key: auditorKey)
        #expect(s2 == 200)
        #expect((narrow as? [String: Any])?["actions"] as? [String] == ["admin:audit.read"])
        // No key, or a key with no admin permission at all.
        #expect(try gw.call("GET", "/v1/me", key: "").0 == 401)
        #expect(try gw.call("GET", "/v1/me", key: "dmk_wrong").0 == 401)
    }

    @Test func listsAndShowsEachKeysLiveSessions() throws {
        let gw = try TestGateway()
        let (_, user) = try gw.call("POST", "/v1/users", body: ["name": "panel user", "permissions": ["channel:*"]])
        let userID = try #require((user as? [String: Any])?["id"] as? String)
        let (_, issued) = try gw.call("POST", "/v1/keys", body: ["name": "panel", "userID": userID])
        let secret = try #require((issued as? [String: Any])?["secret"] as? String)
        let keyID = try #require(((issued as? [String: Any])?["key"] as? [String: Any])?["id"] as? String)
        #expect((issued as? [String: Any]).map { ($0["key"] as? [String: Any])?["liveSessions"] == nil } == true)

        var clients: [TestClient] = []
        for _ in 0..<2 {
            let client = try TestClient(port: gw.port)
            #expect(client.upgrade(path: "/ws", headers: ["X-API-Key: \(secret)"])?.hasPrefix("HTTP/1.1 101") == true)
            _ = client.readFrame()   // the welcome: the session is registered
            clients.append(client)
        }
        let (_, one) = try gw.call("GET", "/v1/keys/\(keyID)")
        #expect((one as? [String: Any])?["liveSessions"] as? Int == 2)
        #expect((one as? [String: Any])?["name"] as? String == "panel")
        let (_, list) = try gw.call("GET", "/v1/keys")
        let rows = try #require((list as? [String: Any])?["items"] as? [[String: Any]])
        #expect(rows.first { $0["id"] as? String == keyID }?["liveSessions"] as? Int == 2)
        #expect(rows.first { $0["id"] as? String != keyID }?["liveSessions"] as? Int == 0)
        // The document promises the field.
        #expect(OpenAPIDocument.json.contains(#""liveSessions":{"#))
    }

    @Test func aSuspendedAdminKeyLosesAccessAtOnce() throws {
        let gw = try TestGateway()
        let (_, keys) = try gw.call("GET", "/v1/keys")
        let adminKeyID = try #require(((keys as? [String: Any])?["items"] as? [[String: Any]])?.first?["id"] as? String)
        // A second admin key to act with.
        let (_, users) = try gw.call("GET", "/v1/users")
        let adminUser = try #require((users as? [[String: Any]])?.first?["id"] as? String)
        let (_, second) = try gw.call("POST", "/v1/keys", body: ["name": "second admin", "userID": adminUser])
        let secondKey = try #require((second as? [String: Any])?["secret"] as? String)
        #expect(try gw.call("POST", "/v1/keys/\(adminKeyID)/suspend", key: secondKey).0 == 200)
        let (status, body) = try gw.call("GET", "/v1/users")
        #expect(status == 401)
        #expect((body as? [String: Any])?["error"] as? String == "suspended_key")
    }
}
