// SPDX-License-Identifier: Apache-2.0
import Foundation
@testable import Gateway
import GatewayCore
import Testing
import WebSocketServer
import WireCodec
import WireDeflate

/// Live sessions over real sockets: the key at the handshake, channels, revocation.
@Suite struct SessionTests {
    typealias TestGateway = AdminAPITests.TestGateway

    /// A user with `permissions` on `properties`, and a key for it; returns (key id, secret).
    /// - Parameter port: the port the admin API answers on (nil: the main one).
    func makeKey(_ gw: TestGateway, permissions: [String] = ["channel:*"], properties: [String] = ["*"], key extra: [String: Any] = [:],
                 viaPort port: Int? = nil) throws -> (String, String) {
        let (_, user) = try gw.call("POST", "/v1/users", body: ["name": "device user", "permissions": permissions, "properties": properties], port: port)
        let userID = try #require((user as? [String: Any])?["id"] as? String)
        var body: [String: Any] = ["name": "device", "userID": userID]
        body.merge(extra) { $1 }
        let (status, issued) = try gw.call("POST", "/v1/keys", body: body, port: port)
        #expect(status == 201)
        let object = try #require(issued as? [String: Any])
        return (try #require((object["key"] as? [String: Any])?["id"] as? String), try #require(object["secret"] as? String))
    }

    /// A session: upgrade with the key, then read the welcome.
    func connect(_ gw: TestGateway, secret: String, header: String = "X-API-Key: ") throws -> (TestClient, [String: Any]) {
        let client = try TestClient(port: gw.port)
        let head = try #require(client.upgrade(path: "/ws", headers: [header + secret]))
        #expect(head.hasPrefix("HTTP/1.1 101"), "\(head)")
        return (client, try #require(json(client.readFrame())))
    }

    func json(_ frame: WebSocketFrame?) -> [String: Any]? {
        guard let frame, frame.opcode == .text else { return nil }
        return try? JSONSerialization.jsonObject(with: Data(frame.payload)) as? [String: Any]
    }

    func send(_ client: TestClient, _ object: [String: Any]) throws {
        client.sendFrame(.text, Array(try JSONSerialization.data(withJSONObject: object)))
    }

    @Test func welcomesSubscribesAndDeliversAPublishedEvent() throws {
        let gw = try TestGateway()
        let (_, secret) = try makeKey(gw, permissions: ["channel:subscribe.door-*", "channel:publish.door-*"], properties: ["hotel-1"])
        let (client, welcome) = try connect(gw, secret: secret)
        #expect(welcome["type"] as? String == "welcome")
        #expect(welcome["session"] as? String != nil)
        #expect((welcome["properties"] as? [String]) == ["hotel-1"])
        try send(client, ["id": 1, "type": "subscribe", "channel": "door-events", "property": "hotel-1"])
        #expect(json(client.readFrame())?["type"] as? String == "result")
        // Forbidden: another property, another channel.
        try send(client, ["id": 2, "type": "subscribe", "channel": "door-events", "property": "hotel-2"])
        let denied = json(client.readFrame())
        #expect(denied?["error"] as? String == "forbidden" && denied?["id"] as? Int == 2)
        try send(client, ["id": 3, "type": "subscribe", "channel": "billing", "property": "hotel-1"])
        #expect(json(client.readFrame())?["reason"] as? String == "not_permitted_for_user")
        // Bad input is an error message, not a dropped connection.
        client.sendFrame(.text, Array("{not json".utf8))
        #expect(json(client.readFrame())?["error"] as? String == "invalid_message")
        try send(client, ["id": 4, "type": "teleport"])
        #expect(json(client.readFrame())?["error"] as? String == "unknown_type")

        let (status, _) = try gw.call("POST", "/v1/publish", key: secret, body: ["channel": "door-events", "property": "hotel-1", "data": ["door": 12, "open": true]])
        #expect(status == 202)
        let event = try #require(json(client.readFrame()))
        #expect(event["type"] as? String == "event" && event["channel"] as? String == "door-events")
        #expect((event["data"] as? [String: Any])?["door"] as? Int == 12)
        // A publish from a session reaches subscribers too.
        try send(client, ["id": 5, "type": "publish", "channel": "door-events", "property": "hotel-1", "data": "hi"])
        var seen: [String] = []
        for _ in 0..<2 { seen.append(json(client.readFrame())?["type"] as? String ?? "?") }
        #expect(Set(seen) == ["event", "result"])
    }

    /// Issue 16's second finding, request by request: a key limited to hotel-1 whose user reaches
    /// every property cannot leave the property out (or send one that is not a name) to escape it.
    @Test func aKeyLimitedToPropertiesMustNameOneOnEveryRequest() throws {
        let gw = try TestGateway()
        let (_, secret) = try makeKey(gw, permissions: ["channel:*", "pms:*"], properties: ["*"], key: ["properties": ["hotel-1"]])
        let (client, _) = try connect(gw, secret: secret)
        let missing: [String: Any] = [:]
        let invalid: [[String: Any]] = [missing, ["property": 7], ["property": ["hotel-2"]], ["property": NSNull()], ["property": ""]]
        var id = 0
        for field in invalid {
            for type in ["subscribe", "publish"] {
                id += 1
                try send(client, ["id": id, "type": type, "channel": "alerts", "data": ["x": 1]].merging(field) { $1 })
                let answer = json(client.readFrame())
                #expect(answer?["error"] as? String == "invalid_property" && answer?["id"] as? Int == id, "\(type) \(field): \(answer ?? [:])")
            }
            id += 1
            try send(client, ["id": id, "type": "call", "call": "pms:checkIn", "body": [:]].merging(field) { $1 })
            #expect(json(client.readFrame())?["error"] as? String == "invalid_property", "call \(field)")
        }
        // Named, it works.
        try send(client, ["id": 100, "type": "subscribe", "channel": "alerts", "property": "hotel-1"])
        #expect(json(client.readFrame())?["type"] as? String == "result")
        // HTTP publishes: no property or one that is not a name → 400 invalid_property.
        for body: [String: Any] in [["channel": "alerts", "data": 1], ["channel": "alerts", "property": 7, "data": 1], ["channel": "alerts", "property": NSNull()],
                                    ["channel": "alerts", "property": ["hotel-2"]], ["channel": "alerts", "property": ""]] {
            let (status, answer) = try gw.call("POST", "/v1/publish", key: secret, body: body)
            #expect(status == 400 && (answer as? [String: Any])?["error"] as? String == "invalid_property", "\(body): \(status)")
        }
        // A key that reaches every property may use property-less (shared) channels.
        let (_, everywhere) = try makeKey(gw, permissions: ["channel:*"], properties: ["*"])
        let (shared, _) = try connect(gw, secret: everywhere)
        try send(shared, ["id": 1, "type": "subscribe", "channel": "alerts"])
        #expect(json(shared.readFrame())?["type"] as? String == "result")
        #expect(try gw.call("POST", "/v1/publish", key: everywhere, body: ["channel": "alerts", "data": 1]).0 == 202)
        #expect(json(shared.readFrame())?["type"] as? String == "event")
        // The limited session got none of it: its next frame answers its own ping.
        try send(client, ["id": 200, "type": "ping"])
        #expect(json(client.readFrame())?["id"] as? Int == 200)
    }

    @Test func aTinyConfiguredRateAnswers429WithACappedRetryAfter() throws {
        // Its wait is about 1e300 seconds: turned into an Int unchecked, it traps the whole process.
        let gw = try TestGateway { $0.sessions.publishesPerSecond = 1e-300; $0.sessions.publishBurst = 1 }
        let (_, secret) = try makeKey(gw)
        #expect(try gw.call("POST", "/v1/publish", key: secret, body: ["channel": "alerts", "data": 1]).0 == 202)
        let client = try TestClient(port: gw.port)
        let body = #"{"channel":"alerts","data":1}"#
        client.send("POST /v1/publish HTTP/1.1\r\nHost: x\r\nX-API-Key: \(secret)\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
        let head = try #require(client.readResponseHead())
        #expect(head.hasPrefix("HTTP/1.1 429") && head.contains("Retry-After: 3600\r\n"), "\(head)")
    }

    @Test func narrowingAKeysPropertiesDropsItsPropertyLessSubscriptions() throws {
        let gw = try TestGateway()
        let (keyID, secret) = try makeKey(gw, permissions: ["channel:*"], properties: ["*"])
        let (client, _) = try connect(gw, secret: secret)
        try send(client, ["id": 1, "type": "subscribe", "channel": "alerts"])
        #expect(json(client.readFrame())?["type"] as? String == "result")
        #expect(try gw.call("PATCH", "/v1/keys/\(keyID)", body: ["properties": ["hotel-1"]]).0 == 200)
        let changed = try #require(json(client.readFrame()))
        #expect(changed["type"] as? String == "permissions_changed")
        let removed = try #require(changed["removedSubscriptions"] as? [[String: Any]])
        #expect(removed.count == 1 && removed[0]["channel"] as? String == "alerts" && removed[0]["property"] == nil)
    }

    @Test func aPublishReachesCompressingSubscribersCompressedOnceAndOthersPlain() throws {
        let gw = try TestGateway { $0.server.compression = true }
        let (_, secret) = try makeKey(gw)
        // One subscriber offers permessage-deflate, one does not.
        let deflating = try TestClient(port: gw.port)
        let head = try #require(deflating.upgrade(path: "/ws", headers: ["X-API-Key: " + secret, "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"]))
        #expect(head.contains("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover"), "\(head)")
        deflating.allowRSV1()
        let (plain, _) = try connect(gw, secret: secret)
        let welcome = try #require(deflating.readFrame())
        let inflater = MessageInflater(windowBits: 15, contextTakeover: false, maxMessageBytes: 1 << 20)
        func text(_ frame: WebSocketFrame) throws -> [String: Any]? {
            let bytes = frame.rsv1 ? try inflater.inflateMessage([frame.payload]) : frame.payload
            return try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any]
        }
        #expect(try text(welcome)?["type"] as? String == "welcome")
        for client in [deflating, plain] {
            try send(client, ["id": 1, "type": "subscribe", "channel": "dashboard"])
            let reply = try #require(client.readFrame())
            #expect(try text(reply)?["type"] as? String == "result")
        }
        let rooms = (1...40).map { ["room": $0, "temperature": 21.5, "occupied": $0 % 2 == 0] as [String: Any] }
        let (status, _) = try gw.call("POST", "/v1/publish", key: secret, body: ["channel": "dashboard", "data": rooms])
        #expect(status == 202)
        let compressed = try #require(deflating.readFrame())
        let uncompressed = try #require(plain.readFrame())
        #expect(compressed.rsv1 && !uncompressed.rsv1)
        #expect(compressed.payload.count * 3 < uncompressed.payload.count, "similar JSON compresses well")
        let event = try #require(try text(compressed))
        #expect(event["type"] as? String == "event" && (event["data"] as? [Any])?.count == 40)
        #expect(try inflater.inflateMessage([compressed.payload]) == uncompressed.payload)
    }

    @Test func revocationSendsANoticeThenCloses4001AndTheKeyNeverWorksAgain() throws {
        let gw = try TestGateway()
        let (keyID, secret) = try makeKey(gw)
        let (a, _) = try connect(gw, secret: secret)
        let (b, _) = try connect(gw, secret: secret, header: "Authorization: Bearer ")
        #expect(try gw.call("POST", "/v1/keys/\(keyID)/revoke").0 == 200)
        for client in [a, b] {
            let notice = try #require(json(client.readFrame()))
            #expect(notice["type"] as? String == "notice" && notice["reason"] as? String == "key_revoked")
            #expect(notice["reconnect"] as? Bool == false)
            #expect(client.readCloseCode() == 4001)
        }
        let again = try TestClient(port: gw.port)
        again.send("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nX-API-Key: \(secret)\r\n\r\n")
        let response = try #require(again.readResponse())
        #expect(response.head.hasPrefix("HTTP/1.1 401"))
        #expect(response.body.contains("revoked_key"))
    }

    @Test func noEventPublishedAfterARevocationReachesTheKeysSessions() throws {
        let gw = try TestGateway { $0.server.loops = 2 }
        let (keyID, secret) = try makeKey(gw)
        let (_, publisher) = try makeKey(gw)
        let sessions = try (0..<4).map { _ in try connect(gw, secret: secret).0 }
        for (i, c) in sessions.enumerated() {
            try send(c, ["id": i, "type": "subscribe", "channel": "alerts"])
            #expect(json(c.readFrame())?["type"] as? String == "result")
        }
        #expect(try gw.call("POST", "/v1/publish", key: publisher, body: ["channel": "alerts", "data": "before"]).0 == 202)
        #expect(try gw.call("POST", "/v1/keys/\(keyID)/revoke").0 == 200)
        for i in 0..<20 {
            #expect(try gw.call("POST", "/v1/publish", key: publisher, body: ["channel": "alerts", "data": "after \(i)"]).0 == 202)
        }
        for c in sessions {
            var events: [String] = []
            var code: UInt16?
            while let frame = c.readFrame() {
                if frame.opcode == .close { code = frame.payload.count >= 2 ? UInt16(frame.payload[0]) << 8 | UInt16(frame.payload[1]) : nil; break }
                if let m = json(frame), m["type"] as? String == "event" { events.append(m["data"] as? String ?? "?") }
            }
            #expect(events == ["before"])
            #expect(code == 4001)
        }
    }

    @Test(arguments: [
        ("suspend", 4102, "key_suspended"),
        ("delete", 4006, "key_deleted"),
    ])
    func endsSessionsForEveryKindOfChange(action: String, code: UInt16, reason: String) throws {
        let gw = try TestGateway()
        let (keyID, secret) = try makeKey(gw)
        let (client, _) = try connect(gw, secret: secret)
        let (status, _) = action == "delete" ? try gw.call("DELETE", "/v1/keys/\(keyID)") : try gw.call("POST", "/v1/keys/\(keyID)/\(action)")
        #expect(status < 300)
        #expect(json(client.readFrame())?["reason"] as? String == reason)
        #expect(client.readCloseCode() == code)
    }

    /// Issue 17: a suspend, a disabled user and a kick are reversible: the notice says come back
    /// (4100-4199, `reconnect: true`, `retryAfterMs`), the refused handshakes meanwhile say when
    /// (Retry-After), and after a resume the same key works again. Revoke stays final.
    @Test func reversibleEndsSayWhenToComeBackAndFinalOnesDoNot() throws {
        let gw = try TestGateway { $0.sessions.reversibleRetry = 7 }
        let (keyID, secret) = try makeKey(gw)
        let (client, _) = try connect(gw, secret: secret)
        #expect(try gw.call("POST", "/v1/keys/\(keyID)/suspend").0 == 200)
        let notice = try #require(json(client.readFrame()))
        #expect(notice["code"] as? Int == 4102 && notice["reconnect"] as? Bool == true && notice["retryAfterMs"] as? Int == 7000, "\(notice)")
        #expect(client.readCloseCode() == 4102)
        let refused = try TestClient(port: gw.port)
        let head = try #require(refused.upgrade(path: "/ws", headers: ["X-API-Key: " + secret]))
        #expect(head.hasPrefix("HTTP/1.1 401") && head.contains("Retry-After: 7"), "\(head)")
        #expect(try gw.call("POST", "/v1/keys/\(keyID)/resume").0 == 200)
        let (back, welcome) = try connect(gw, secret: secret)
        #expect(welcome["type"] as? String == "welcome")
        #expect(try gw.call("POST", "/v1/keys/\(keyID)/revoke").0 == 200)
        let final = try #require(json(back.readFrame()))
        #expect(final["code"] as? Int == 4001 && final["reconnect"] as? Bool == false && final["retryAfterMs"] == nil, "\(final)")
    }

    /// Issue 17: a client that sends its key as a subprotocol (a browser, Node) cannot read a
    /// refused handshake, so a key that is unknown, revoked, suspended or expired is upgraded and
    /// then told as a live session would be; a key in a header still gets the HTTP answer.
    @Test func aBrowserLearnsWhyItsKeyWasRefused() throws {
        let gw = try TestGateway()
        let (keyID, secret) = try makeKey(gw)
        let (_, expiredSecret) = try makeKey(gw, key: ["expiresAt": "2020-01-01T00:00:00Z"])
        #expect(try gw.call("POST", "/v1/keys/\(keyID)/suspend").0 == 200)
        let unknown = APIKeySecret.generate().text
        for (key, code, reason) in [(secret, 4102, "key_suspended"), (expiredSecret, 4003, "key_expired"), (unknown, 4008, "unknown_key")] {
            let browser = try TestClient(port: gw.port)
            let head = try #require(browser.upgrade(path: "/ws", headers: ["Sec-WebSocket-Protocol: doorman.v1, doorman.key.\(key)"]))
            #expect(head.hasPrefix("HTTP/1.1 101") && head.contains("Sec-WebSocket-Protocol: doorman.v1"), "\(head)")
            let notice = try #require(json(browser.readFrame()))
            #expect(notice["type"] as? String == "notice" && notice["code"] as? Int == code && notice["reason"] as? String == reason, "\(notice)")
            #expect(browser.readCloseCode() == UInt16(code))
            let headerClient = try TestClient(port: gw.port)
            #expect(headerClient.upgrade(path: "/ws", headers: ["X-API-Key: " + key])?.hasPrefix("HTTP/1.1 401") == true)
        }
        #expect(try gw.call("POST", "/v1/keys/\(keyID)/revoke").0 == 200)
        let browser = try TestClient(port: gw.port)
        #expect(browser.upgrade(path: "/ws", headers: ["Sec-WebSocket-Protocol: doorman.v1, doorman.key.\(secret)"])?.hasPrefix("HTTP/1.1 101") == true)
        #expect(json(browser.readFrame())?["reason"] as? String == "key_revoked")
        #expect(browser.readCloseCode() == 4001)
        // A malformed key (a truncated paste) is a key no server knows: final, not retried for ever.
        let garbled = try TestClient(port: gw.port)
        #expect(garbled.upgrade(path: "/ws", headers: ["Sec-WebSocket-Protocol: doorman.v1, doorman.key.dmk_nonsense"])?.hasPrefix("HTTP/1.1 101") == true)
        #expect(json(garbled.readFrame())?["code"] as? Int == 4008)
    }

    /// Final ends win over reversible ones: a key that expired while suspended says expired (stop),
    /// never suspended (a device would retry it for ever).
    @Test func aKeyThatExpiredWhileSuspendedIsExpired() throws {
        let gw = try TestGateway()
        let (keyID, secret) = try makeKey(gw, key: ["expiresAt": "2020-01-01T00:00:00Z"])
        #expect(try gw.call("POST", "/v1/keys/\(keyID)/suspend").0 == 200)
        let header = try TestClient(port: gw.port)
        header.send(Array("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-API-Key: \(secret)\r\n\r\n".utf8))
        let refused = try #require(header.readResponse())
        #expect(refused.head.hasPrefix("HTTP/1.1 401") && refused.body.contains("expired_key") && !refused.head.contains("Retry-After"), "\(refused)")
        let browser = try TestClient(port: gw.port)
        #expect(browser.upgrade(path: "/ws", headers: ["Sec-WebSocket-Protocol: doorman.v1, doorman.key.\(secret)"])?.hasPrefix("HTTP/1.1 101") == true)
        #expect(json(browser.readFrame())?["reason"] as? String == "key_expired")
        #expect(browser.readCloseCode() == 4003)
    }

    @Test func disablingTheUserEndsItsSessions() throws {
        let gw = try TestGateway()
        let (keyID, secret) = try makeKey(gw)
        let (_, key) = try gw.call("GET", "/v1/keys/\(keyID)")
        let userID = try #require((key as? [String: Any])?["userID"] as? String)
        let (client, _) = try connect(gw, secret: secret)
        #expect(try gw.call("POST", "/v1/users/\(userID)/disable").0 == 200)
        #expect(json(client.readFrame())?["reason"] as? String == "user_disabled")
        #expect(client.readCloseCode() == 4105)
    }

    @Test func narrowingRightsDropsSubscriptionsAndPushesPermissionsChanged() throws {
        let gw = try TestGateway()
        let (keyID, secret) = try makeKey(gw, permissions: ["channel:*"])
        let (client, _) = try connect(gw, secret: secret)
        try send(client, ["id": 1, "type": "subscribe", "channel": "a"])
        try send(client, ["id": 2, "type": "subscribe", "channel": "b"])
        _ = client.readFrame(); _ = client.readFrame()
        #expect(try gw.call("PATCH", "/v1/keys/\(keyID)", body: ["scopes": ["channel:subscribe.a"]]).0 == 200)
        let changed = try #require(json(client.readFrame()))
        #expect(changed["type"] as? String == "permissions_changed")
        #expect((changed["scopes"] as? [String]) == ["channel:subscribe.a"])
        #expect((changed["removedSubscriptions"] as? [[String: Any]])?.map { $0["channel"] as? String } == ["b"])
        // The session goes on, with "a" only.
        #expect(try gw.call("POST", "/v1/publish", key: secret, body: ["channel": "b", "data": 1]).0 == 403)
        let (_, admin) = try makeKey(gw, permissions: ["channel:*"])
        #expect(try gw.call("POST", "/v1/publish", key: admin, body: ["channel": "b", "data": "no"]).0 == 202)
        #expect(try gw.call("POST", "/v1/publish", key: admin, body: ["channel": "a", "data": "yes"]).0 == 202)
        #expect(json(client.readFrame())?["data"] as? String == "yes")
    }

    @Test func aWelcomeAfterAChangeShowsTheNewRights() throws {
        // The welcome's text is cached per key and loop; a change to the key, its user or a
        // group must never let a new session see the old rights.
        let gw = try TestGateway()
        let (keyID, secret) = try makeKey(gw, permissions: ["channel:*"])
        let (first, welcome) = try connect(gw, secret: secret)
        #expect((welcome["scopes"] as? [String]) == ["channel:*"])
        #expect(try gw.call("PATCH", "/v1/keys/\(keyID)", body: ["scopes": ["channel:subscribe.a"]]).0 == 200)
        #expect(json(first.readFrame())?["type"] as? String == "permissions_changed")
        let (_, later) = try connect(gw, secret: secret)
        #expect((later["scopes"] as? [String]) == ["channel:subscribe.a"])
        #expect(later["session"] as? String != welcome["session"] as? String)
    }

    @Test func expiresALiveSessionOnTime() throws {
        let gw = try TestGateway()
        // Whole seconds: what ISO 8601 without fractions carries.
        let expiry = Date(timeIntervalSince1970: (Date().timeIntervalSince1970 + 1.5).rounded(.up))
        let (_, secret) = try makeKey(gw, key: ["expiresAt": ISO8601DateFormatter().string(from: expiry)])
        let (client, welcome) = try connect(gw, secret: secret)
        #expect(welcome["expiresAt"] as? String != nil)
        // (The default warning comes 300 s ahead: already past, so none here.)
        let notice = try #require(json(client.readFrame()))
        #expect(notice["reason"] as? String == "key_expired")
        #expect(Date() >= expiry)   // never early
        #expect(client.readCloseCode() == 4003)
    }

    @Test func rotationKeepsOldSessionsUntilTheGraceEnds() throws {
        let gw = try TestGateway()
        let (keyID, secret) = try makeKey(gw)
        let (old, _) = try connect(gw, secret: secret)
        let (_, rotated) = try gw.call("POST", "/v1/keys/\(keyID)/rotate", body: ["graceSeconds": 1])
        let fresh = try #require((rotated as? [String: Any])?["secret"] as? String)
        let (new, _) = try connect(gw, secret: fresh)
        #expect(json(old.readFrame())?["reason"] as? String == "key_rotated")
        #expect(old.readCloseCode() == 4004)
        // The new secret's session is untouched.
        try send(new, ["id": 9, "type": "ping"])
        #expect(json(new.readFrame())?["type"] as? String == "result")
    }

    @Test func revokeReturnsAReceiptAndCanWaitForEveryClose() throws {
        let gw = try TestGateway { $0.server.loops = 2 }
        let (keyID, secret) = try makeKey(gw)
        let clients = try (0..<6).map { _ in try connect(gw, secret: secret).0 }
        // Live sessions are listed, per key, with their address.
        let (_, listed) = try gw.call("GET", "/v1/sessions?key=\(keyID)")
        let items = try #require((listed as? [String: Any])?["items"] as? [[String: Any]])
        #expect(items.count == 6)
        #expect(items.allSatisfy { $0["address"] as? String == "127.0.0.1" && $0["keyID"] as? String == keyID })
        let (status, receipt) = try gw.call("POST", "/v1/keys/\(keyID)/revoke?wait=true")
        #expect(status == 200)
        #expect((receipt as? [String: Any])?["sessionsEnded"] as? Int == 6)
        #expect((receipt as? [String: Any])?["complete"] as? Bool == true)
        for c in clients { #expect(c.readCloseCode() == 4001) }
        let (_, after) = try gw.call("GET", "/v1/sessions?key=\(keyID)")
        #expect(((after as? [String: Any])?["items"] as? [[String: Any]])?.isEmpty == true)
    }

    @Test func anAdministratorKillsOneSession() throws {
        let gw = try TestGateway()
        let (_, secret) = try makeKey(gw)
        let (a, welcomeA) = try connect(gw, secret: secret)
        let (b, _) = try connect(gw, secret: secret)
        let id = try #require(welcomeA["session"] as? String)
        #expect(try gw.call("DELETE", "/v1/sessions/\(id)").0 == 204)
        #expect(json(a.readFrame())?["reason"] as? String == "killed_by_administrator")
        #expect(a.readCloseCode() == 4107)
        try send(b, ["id": 1, "type": "ping"])
        #expect(json(b.readFrame())?["type"] as? String == "result")
        #expect(try gw.call("DELETE", "/v1/sessions/\(id)").0 == 404)
    }

    @Test func refusesAddressesOutsideTheAllowlistAndOriginsOutsideTheirs() throws {
        let gw = try TestGateway {
            $0.sessions.allowedNetworks = ["10.0.0.0/8"]
        }
        let (_, secret) = try makeKey(gw)
        let client = try TestClient(port: gw.port)
        #expect(client.upgrade(path: "/ws", headers: ["X-API-Key: \(secret)"])?.hasPrefix("HTTP/1.1 403") == true)
        let open = try TestGateway {
            $0.sessions.allowedNetworks = ["127.0.0.0/8", "::1"]
            $0.sessions.allowedOrigins = ["https://desk.example"]
        }
        let (_, key) = try makeKey(open)
        #expect(try TestClient(port: open.port).upgrade(path: "/ws", headers: ["X-API-Key: \(key)"])?.hasPrefix("HTTP/1.1 101") == true)
        #expect(try TestClient(port: open.port).upgrade(path: "/ws", headers: ["X-API-Key: \(key)", "Origin: https://desk.example"])?.hasPrefix("HTTP/1.1 101") == true)
        #expect(try TestClient(port: open.port).upgrade(path: "/ws", headers: ["X-API-Key: \(key)", "Origin: https://evil.example"])?.hasPrefix("HTTP/1.1 403") == true)
    }

    @Test(arguments: [("10.1.2.3", true), ("11.0.0.1", false), ("::ffff:10.9.9.9", true), ("2001:db8::1", true), ("2001:db9::1", false), ("junk", false)])
    func matchesCIDRBlocks(address: String, allowed: Bool) throws {
        let list = try NetworkAllowlist(["10.0.0.0/8", "2001:db8::/32"])
        #expect(list.allows(address) == allowed)
    }

    @Test func theRateLimiterForgetsRefilledNamesWithoutScanningOnEveryCall() {
        let limiter = RateLimiter(rate: 10, burst: 2)
        let start: UInt64 = 1_000_000_000_000
        for i in 0...100_000 { _ = limiter.take("10.0.\(i)", now: start) }
        #expect(limiter.trackedNames == 100_001)
        // One name is still limited a moment later; two seconds on, every idle bucket has refilled.
        #expect(limiter.take("busy", now: start) == nil)
        #expect(limiter.take("busy", now: start) == nil)
        #expect(limiter.take("busy", now: start) != nil)
        _ = limiter.take("later", now: start + 2_000_000_000)
        #expect(limiter.trackedNames < 10)
    }

    @Test func exportsPrometheusMetricsAndReadiness() throws {
        let gw = try TestGateway()
        let (keyID, secret) = try makeKey(gw)
        let (client, _) = try connect(gw, secret: secret)
        #expect(try gw.call("POST", "/v1/keys/\(keyID)/revoke").0 == 200)
        #expect(client.readCloseCode() == 4001)
        let c = try TestClient(port: gw.port)
        c.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        let metrics = try #require(c.readResponse())
        #expect(metrics.head.contains("text/plain; version=0.0.4"))
        #expect(metrics.body.contains("doorman_handshakes_total{result=\"accepted\"} 1"))
        #expect(metrics.body.contains("doorman_sessions_ended_total{reason=\"key_revoked\"} 1"))
        #expect(metrics.body.contains("doorman_revocation_to_close_seconds_count 1"))
        #expect(!metrics.body.contains("dmk_"))
        c.send("GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(c.readResponse()?.head.hasPrefix("HTTP/1.1 200") == true)
    }

    @Test func throttlesAFloodThenClosesWith4129() throws {
        let gw = try TestGateway { $0.sessions.messagesPerSecond = 1; $0.sessions.messageBurst = 5; $0.sessions.floodTolerance = 20 }
        let (_, secret) = try makeKey(gw)
        let (client, _) = try connect(gw, secret: secret)
        for i in 0..<100 { try send(client, ["id": i, "type": "ping"]) }
        var limited = 0
        var code: UInt16?
        while let frame = client.readFrame() {
            if frame.opcode == .close { code = frame.payload.count >= 2 ? UInt16(frame.payload[0]) << 8 | UInt16(frame.payload[1]) : nil; break }
            if json(frame)?["error"] as? String == "rate_limited" { limited += 1 }
        }
        #expect(limited > 0)
        #expect(code == 4129)
    }

    @Test func acceptsTheKeyInABrowserSubprotocolAndAnswersOnlyTheProtocolName() throws {
        let gw = try TestGateway()
        let (_, secret) = try makeKey(gw)
        let client = try TestClient(port: gw.port)
        let head = try #require(client.upgrade(path: "/ws", headers: ["Sec-WebSocket-Protocol: doorman.v1, doorman.key.\(secret)"]))
        #expect(head.hasPrefix("HTTP/1.1 101"))
        #expect(head.contains("Sec-WebSocket-Protocol: doorman.v1\r\n"))
        #expect(!head.contains(secret))
    }

    @Test(arguments: [
        ([String](), "missing_key"),
        (["X-API-Key: dmk_wrong"], "malformed_key"),
        (["X-API-Key: \(APIKeySecret.generate().text)"], "unknown_key"),
    ])
    func rejectsHandshakesWithAReason(headers: [String], reason: String) throws {
        let gw = try TestGateway()
        let client = try TestClient(port: gw.port)
        client.send("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                    + headers.map { $0 + "\r\n" }.joined() + "\r\n")
        let response = try #require(client.readResponse())
        #expect(response.head.hasPrefix("HTTP/1.1 401"))
        #expect(response.body.contains(reason))
    }

    @Test func noSessionSurvivesARevokeRacingItsHandshake() throws {
        let gw = try TestGateway { $0.sessions.handshakesPerSecond = 0 }
        var survivors = 0
        for _ in 0..<1000 {
            let (keyID, secret) = try makeKey(gw)
            let client = try TestClient(port: gw.port)
            // The handshake is in flight while the revoke commits.
            client.send("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nX-API-Key: \(secret)\r\n\r\n")
            #expect(try gw.call("POST", "/v1/keys/\(keyID)/revoke").0 == 200)
            // Either answer is fine; no answer at all is not.
            guard let head = client.readResponseHead() else {
                Issue.record("no answer to an in-flight handshake")
                continue
            }
            if head.hasPrefix("HTTP/1.1 101") {
                // Accepted before the revoke: it must be told and closed.
                _ = client.readFrame()   // welcome
                if client.readCloseCode() != 4001 { survivors += 1 }
            }
        }
        #expect(survivors == 0)
    }
}
