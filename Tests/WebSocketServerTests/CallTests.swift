// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
@testable import Gateway
import GatewayCore
import Testing
import Transport
import WebSocketServer
import WireCodec

/// Calls through the gateway to a real upstream on 127.0.0.1 that verifies every signature.
@Suite struct CallTests {
    typealias TestGateway = AdminAPITests.TestGateway
    let sessions = SessionTests()

    /// A gateway whose `pms` service is `upstream` (or a port nobody listens on).
    func gateway(_ upstream: ReferenceUpstream?, deadPort: Int = 1, _ configure: (inout GatewayConfig) -> Void = { _ in }) throws -> TestGateway {
        try TestGateway { config in
            let port = upstream?.port ?? deadPort
            config.upstreams = [UpstreamService(name: "pms", address: "127.0.0.1", port: port, hostHeader: "127.0.0.1:\(port)", basePath: "/api",
                                                secret: upstream?.secret ?? Array("reference-upstream-secret".utf8))]
            configure(&config)
        }
    }

    func call(_ client: TestClient, id: Int, _ action: String, property: String? = nil, body: Any = ["room": 101]) throws -> [String: Any] {
        var message: [String: Any] = ["id": id, "type": "call", "call": action, "body": body]
        if let property { message["property"] = property }
        try sessions.send(client, message)
        return try #require(sessions.json(client.readFrame()))
    }

    @Test func anAllowedCallReachesTheUpstreamAsTheKeysUserSigned() throws {
        let upstream = try ReferenceUpstream()
        let gw = try gateway(upstream)
        let (keyID, secret) = try sessions.makeKey(gw, permissions: ["pms:*"], properties: ["hotel-1", "hotel-2"],
                                                   key: ["rules": ["pms:checkIn*"], "properties": ["hotel-1"]])
        let (client, welcome) = try sessions.connect(gw, secret: secret)
        let answer = try call(client, id: 1, "pms:checkIn", property: "hotel-1")
        #expect(answer["type"] as? String == "result" && answer["id"] as? Int == 1 && answer["status"] as? Int == 200, "\(answer)")
        let seen = try #require(answer["body"] as? [String: Any])
        #expect(seen["target"] as? String == "/api/checkIn")
        #expect(seen["key"] as? String == keyID)
        #expect(seen["user"] as? String == (welcome["user"] as? [String: Any])?["id"] as? String)
        // What the session may do, not the user's pms:*: its rule narrows it to pms:checkIn*.
        #expect(seen["scopes"] as? [String] == ["pms:checkIn*"])
        #expect(seen["properties"] as? [String] == ["hotel-1"])
        #expect(seen["property"] as? String == "hotel-1")
        #expect(seen["received"] as? String == #"{"room":101}"#)
        // Never the raw key.
        let headers = try #require(seen["headers"] as? [String])
        #expect(!headers.contains("x-api-key") && !headers.contains("authorization"))
        #expect(upstream.rejected.withLock { $0 }.isEmpty)
        // Sequential calls reuse the kept-alive connection.
        for id in 2...6 { #expect(try call(client, id: id, "pms:checkIn", property: "hotel-1")["status"] as? Int == 200) }
        #expect(upstream.accepted.load(ordering: .relaxed) == 1)
    }

    @Test func rulesDecideInOrderWithWildcardsAndPropertiesNarrow() throws {
        let upstream = try ReferenceUpstream()
        let gw = try gateway(upstream)
        let (_, secret) = try sessions.makeKey(gw, permissions: ["pms:*"], properties: ["*"],
                                               key: ["rules": ["!pms:checkOut*", "pms:check*", "pms:rooms.???"], "properties": ["hotel-1"]])
        let (client, _) = try sessions.connect(gw, secret: secret)
        #expect(try call(client, id: 1, "pms:checkIn", property: "hotel-1")["type"] as? String == "result")
        let out = try call(client, id: 2, "pms:checkOutLate", property: "hotel-1")
        #expect(out["error"] as? String == "forbidden" && out["reason"] as? String == "denied_by_rule" && out["rule"] as? String == "!pms:checkOut*")
        #expect(try call(client, id: 3, "pms:rooms.get", property: "hotel-1")["type"] as? String == "result")
        #expect(try call(client, id: 4, "pms:rooms.list", property: "hotel-1")["reason"] as? String == "no_rule_matched")
        #expect(try call(client, id: 5, "pms:checkIn", property: "hotel-2")["reason"] as? String == "property_not_allowed_for_key")
        #expect(try call(client, id: 6, "billing:charge", property: "hotel-1")["reason"] as? String == "not_permitted_for_user")
        #expect(try call(client, id: 8, "pms:checkIn")["error"] as? String == "invalid_property")   // limited keys name a property
        #expect(try call(client, id: 7, "not an action")["error"] as? String == "invalid_request")
        // Only the allowed calls reached the upstream.
        #expect(upstream.received.withLock { $0.map(\.target) } == ["/api/checkIn", "/api/rooms.get"])
    }

    @Test func anUnconfiguredServiceIsATypedError() throws {
        let upstream = try ReferenceUpstream()
        let gw = try gateway(upstream)
        let (_, secret) = try sessions.makeKey(gw, permissions: ["*:*"])
        let (client, _) = try sessions.connect(gw, secret: secret)
        #expect(try call(client, id: 1, "crm:lookup")["error"] as? String == "unknown_service")
    }

    @Test func upstreamStatusesComeBackTyped() throws {
        let upstream = try ReferenceUpstream()
        let gw = try gateway(upstream)
        let (_, secret) = try sessions.makeKey(gw, permissions: ["pms:*"])
        let (client, _) = try sessions.connect(gw, secret: secret)
        let answer = try call(client, id: 1, "pms:status/409")
        #expect(answer["error"] as? String == "upstream_status" && answer["status"] as? Int == 409)
        #expect((answer["body"] as? [String: Any])?["status"] as? Int == 409)
    }

    @Test func aDeadUpstreamFailsFastAndOpensItsCircuit() throws {
        let gw = try gateway(nil) { config in
            config.calls.circuitFailures = 2
            config.calls.circuitCooldown = 30
        }
        let (_, secret) = try sessions.makeKey(gw, permissions: ["pms:*"])
        let (client, _) = try sessions.connect(gw, secret: secret)
        for id in 1...2 {
            let answer = try call(client, id: id, "pms:checkIn")
            #expect(answer["error"] as? String == "upstream_unavailable", "\(answer)")
        }
        // Open: failed at once with a hint, without another connection attempt.
        let answer = try call(client, id: 3, "pms:checkIn")
        #expect(answer["error"] as? String == "upstream_unavailable")
        #expect((answer["retryAfterMs"] as? Int ?? 0) > 20_000)
        // The session itself is fine.
        try sessions.send(client, ["id": 4, "type": "ping"])
        #expect(sessions.json(client.readFrame())?["pong"] as? Bool == true)
    }

    @Test func aSlowUpstreamTimesOutAndOtherCallsGoOn() throws {
        let upstream = try ReferenceUpstream()
        let gw = try gateway(upstream) { $0.calls.callTimeout = 0.5 }
        let (_, secret) = try sessions.makeKey(gw, permissions: ["pms:*"])
        let (client, _) = try sessions.connect(gw, secret: secret)
        // Pipelined: the slow call first, the fast one second; the fast answer comes first.
        try sessions.send(client, ["id": 1, "type": "call", "call": "pms:slow", "body": [:] as [String: Any]])
        try sessions.send(client, ["id": 2, "type": "call", "call": "pms:checkIn", "body": [:] as [String: Any]])
        let first = try #require(sessions.json(client.readFrame()))
        #expect(first["id"] as? Int == 2 && first["type"] as? String == "result")
        let second = try #require(sessions.json(client.readFrame()))
        #expect(second["id"] as? Int == 1 && second["error"] as? String == "upstream_timeout", "\(second)")
    }

    @Test func capsCallsInFlightPerSession() throws {
        let upstream = try ReferenceUpstream()
        let gw = try gateway(upstream) { $0.calls.maxCallsPerSession = 2 }
        let (_, secret) = try sessions.makeKey(gw, permissions: ["pms:*"])
        let (client, _) = try sessions.connect(gw, secret: secret)
        for id in 1...3 { try sessions.send(client, ["id": id, "type": "call", "call": "pms:slow", "body": ["ms": 200] as [String: Any]]) }
        var byID: [Int: [String: Any]] = [:]
        for _ in 1...3 { let m = try #require(sessions.json(client.readFrame())); byID[m["id"] as? Int ?? 0] = m }
        #expect(byID[3]?["error"] as? String == "too_many_calls")
        #expect(byID[1]?["type"] as? String == "result" && byID[2]?["type"] as? String == "result")
    }

    @Test func theReferenceUpstreamRejectsTamperedAndReplayedRequests() throws {
        let upstream = try ReferenceUpstream()
        let gw = try gateway(upstream)
        let (_, secret) = try sessions.makeKey(gw, permissions: ["pms:*"])
        let (client, _) = try sessions.connect(gw, secret: secret)
        #expect(try call(client, id: 1, "pms:checkIn", body: ["room": 101])["type"] as? String == "result")
        let raw = upstream.lastRaw.withLock { $0 }
        // The same bytes again: a replay.
        #expect(try upstream.sendRaw(raw) == 401)
        // One byte of the body changed: the signature no longer holds.
        var tampered = raw
        tampered[tampered.count - 2] = UInt8(ascii: "2")
        #expect(try upstream.sendRaw(tampered) == 401)
        // Another user claimed: same.
        let text = String(decoding: raw, as: UTF8.self)
        let claimed = text.replacingOccurrences(of: "X-Doorman-User: ", with: "X-Doorman-User: usr_someone_else")
        #expect(try upstream.sendRaw(Array(claimed.utf8)) == 401)
        #expect(upstream.rejected.withLock { $0 } == ["replay", "bad_signature", "bad_signature"])
    }

    /// Issue 16, item 6: the signature covers the upstream and every `X-Doorman-*` header, so two
    /// upstreams sharing a secret cannot replay each other's calls and no identity header can be
    /// changed on the way.
    @Test func theSignatureCoversTheUpstreamAndEveryIdentityHeader() throws {
        let pms = try ReferenceUpstream(secret: "one secret for two upstreams", name: "pms")
        let billing = try ReferenceUpstream(secret: "one secret for two upstreams", name: "billing")
        let gw = try TestGateway { config in
            config.upstreams = [pms, billing].map { upstream in
                UpstreamService(name: upstream.name, address: "127.0.0.1", port: upstream.port, hostHeader: "127.0.0.1:\(upstream.port)",
                                basePath: "/api", secret: upstream.secret)
            }
        }
        let (_, secret) = try sessions.makeKey(gw, permissions: ["pms:*", "billing:*"])
        let (client, _) = try sessions.connect(gw, secret: secret)
        #expect(try call(client, id: 1, "pms:checkIn")["status"] as? Int == 200)
        #expect(try call(client, id: 2, "billing:checkIn")["status"] as? Int == 200)
        let raw = String(decoding: pms.lastRaw.withLock { $0 }, as: UTF8.self)

        // The same bytes at the other upstream (same secret, same path, a request id it never saw):
        // addressed to pms; and with the header rewritten, the signature no longer holds.
        #expect(try billing.sendRaw(Array(raw.utf8)) == 401)
        let readdressed = raw.replacingOccurrences(of: "X-Doorman-Upstream: pms\r\n", with: "X-Doorman-Upstream: billing\r\n")
        #expect(readdressed != raw)
        #expect(try billing.sendRaw(Array(readdressed.utf8)) == 401)
        #expect(billing.rejected.withLock { $0 } == ["wrong_upstream", "bad_signature"])

        // Every X-Doorman-* header the call carries is signed: each one changed is refused.
        let lines = raw.components(separatedBy: "\r\n")
        let identity = lines.filter { $0.lowercased().hasPrefix("x-doorman-") }
        let names = identity.map { String($0.prefix(while: { $0 != ":" })) }
        #expect(Set(names) == ["X-Doorman-Upstream", "X-Doorman-Timestamp", "X-Doorman-Request-Id", "X-Doorman-User", "X-Doorman-Key",
                               "X-Doorman-Scopes", "X-Doorman-Properties", "X-Doorman-Property", "X-Doorman-Signature"])
        #expect(identity.contains("X-Doorman-Upstream: pms"))
        for line in identity where !line.hasPrefix("X-Doorman-Signature:") {
            // Still well formed (a number stays a number): only the signature can refuse it.
            let changed = line.last?.isNumber == true ? String(line.dropLast()) + (line.last == "9" ? "8" : "9") : line + "x"
            let tampered = lines.map { $0 == line ? changed : $0 }.joined(separator: "\r\n")
            #expect(try pms.sendRaw(Array(tampered.utf8)) == 401, "\(line)")
        }
        #expect(pms.rejected.withLock { $0 } == ["wrong_upstream"] + Array(repeating: "bad_signature", count: identity.count - 2))
    }

    @Test func callsAreRateLimitedPerKeyThenTheFloodCloses4129() throws {
        let upstream = try ReferenceUpstream()
        let gw = try gateway(upstream) { config in
            config.sessions.callsPerSecond = 0.001
            config.sessions.callBurst = 2
            config.sessions.floodTolerance = 3
        }
        let (_, secret) = try sessions.makeKey(gw, permissions: ["pms:*"])
        let (client, _) = try sessions.connect(gw, secret: secret)
        #expect(try call(client, id: 1, "pms:checkIn")["type"] as? String == "result")
        #expect(try call(client, id: 2, "pms:checkIn")["type"] as? String == "result")
        let limited = try call(client, id: 3, "pms:checkIn")
        #expect(limited["error"] as? String == "rate_limited" && (limited["retryAfterMs"] as? Int ?? 0) > 0)
        // The same key over HTTP shares the bucket.
        let (status, _) = try gw.call("POST", "/pms/checkIn", key: secret, body: [:] as [String: Any])
        #expect(status == 429)
        for id in 4...6 { _ = try call(client, id: id, "pms:checkIn") }
        var code: UInt16?
        for _ in 0..<3 where code == nil { code = client.readCloseCode() }
        #expect(code == 4129)
    }

    @Test func aKeysOwnLimitsOverrideItsGroupsWhichOverrideTheServers() throws {
        let upstream = try ReferenceUpstream()
        let gw = try gateway(upstream)
        let (status, group) = try gw.call("POST", "/v1/groups", body: ["name": "kiosks", "permissions": ["pms:*"],
                                                                        "limits": ["callsPerSecond": 0.001, "callBurst": 1]])
        #expect(status == 201)
        let groupID = try #require((group as? [String: Any])?["id"] as? String)
        #expect(((group as? [String: Any])?["limits"] as? [String: Any])?["callBurst"] as? Int == 1)
        // The group's bucket: one call, then rate_limited.
        let (_, grouped) = try sessions.makeKey(gw, permissions: ["pms:*"], key: ["groupID": groupID])
        let (a, _) = try sessions.connect(gw, secret: grouped)
        #expect(try call(a, id: 1, "pms:checkIn")["type"] as? String == "result")
        #expect(try call(a, id: 2, "pms:checkIn")["error"] as? String == "rate_limited")
        // The key's own burst over the group's rate: three calls, then rate_limited.
        let (_, own) = try sessions.makeKey(gw, permissions: ["pms:*"], key: ["groupID": groupID, "limits": ["callBurst": 3]])
        let (b, _) = try sessions.connect(gw, secret: own)
        for id in 1...3 { #expect(try call(b, id: id, "pms:checkIn")["type"] as? String == "result") }
        #expect(try call(b, id: 4, "pms:checkIn")["error"] as? String == "rate_limited")
        // A key without a group or limits gets the server's (50/s, burst 100).
        let (_, plain) = try sessions.makeKey(gw, permissions: ["pms:*"])
        let (c, _) = try sessions.connect(gw, secret: plain)
        for id in 1...5 { #expect(try call(c, id: id, "pms:checkIn")["type"] as? String == "result") }
        // Bad limits are refused, naming the field.
        let (bad, problem) = try gw.call("PATCH", "/v1/groups/\(groupID)", body: ["limits": ["callsPerSecond": -1]])
        #expect(bad == 400 && (problem as? [String: Any])?["field"] as? String == "limits.callsPerSecond")
    }

    @Test func aKeysOwnLimitsCoverHandshakesAndMessagesToo() throws {
        let gw = try gateway(nil)
        let (_, secret) = try sessions.makeKey(gw, permissions: ["channel:*"], key: ["limits": [
            "handshakesPerSecond": 0.001, "handshakeBurst": 2, "messagesPerSecond": 0.001, "messageBurst": 2,
        ]])
        let (client, _) = try sessions.connect(gw, secret: secret)
        _ = try sessions.connect(gw, secret: secret)
        // The third handshake of this key within its burst is refused; another key is not affected.
        let third = try TestClient(port: gw.port)
        let head = try #require(third.upgrade(path: "/ws", headers: ["X-API-Key: \(secret)"]))
        #expect(head.hasPrefix("HTTP/1.1 429") && head.lowercased().contains("retry-after"), "\(head)")
        let (_, other) = try sessions.makeKey(gw, permissions: ["channel:*"])
        _ = try sessions.connect(gw, secret: other)
        // Messages: two, then rate_limited.
        for id in 1...2 {
            try sessions.send(client, ["id": id, "type": "ping"])
            #expect(sessions.json(client.readFrame())?["type"] as? String == "result")
        }
        try sessions.send(client, ["id": 3, "type": "ping"])
        #expect(sessions.json(client.readFrame())?["error"] as? String == "rate_limited")
    }

    /// `X-Doorman-Scopes` is the session's effective rights as patterns it may use in full —
    /// user ∩ key ∩ group, then the rules — never the key's raw scopes.
    @Test func upstreamsAreToldTheEffectiveRightsNotTheRawScopes() throws {
        let upstream = try ReferenceUpstream()
        let gw = try gateway(upstream)
        func scopesSeen(_ key: [String: Any]) throws -> [String]? {
            let (_, secret) = try sessions.makeKey(gw, permissions: ["pms:*", "door:open"], key: key)
            let (status, body) = try gw.call("POST", "/pms/checkIn", key: secret, body: ["room": 1])
            #expect(status == 200)
            return (body as? [String: Any])?["scopes"] as? [String]
        }
        // Scopes "*:*" under a user of pms:* and door:open: the user's, not "*:*".
        #expect(try scopesSeen(["scopes": ["*:*"]]) == ["pms:*", "door:open"])
        // A rule that denies part of pms:* leaves pms:* out (never more than the session may do).
        #expect(try scopesSeen(["scopes": ["*:*"], "rules": ["!pms:refund", "*:*"]]) == ["door:open"])
        // The narrower of the two lists wins.
        #expect(try scopesSeen(["scopes": ["pms:check*"]]) == ["pms:check*"])
    }

    // MARK: - Plain HTTP

    @Test func httpCallsCarryTheSameChecksAndStripHopByHopHeaders() throws {
        let upstream = try ReferenceUpstream()
        let gw = try gateway(upstream)
        let (keyID, secret) = try sessions.makeKey(gw, permissions: ["pms:*"], key: ["rules": ["pms:checkIn"]])
        let (status, body) = try gw.call("POST", "/pms/checkIn?late=1", key: secret,
                                         headers: ["Connection: close, X-Secret-Hop", "X-Secret-Hop: 1", "Keep-Alive: timeout=5", "X-Doorman-User: usr_spoofed",
                                                   // Underscores: many frameworks read `X_Doorman_User` as `X-Doorman-User`.
                                                   "X_Doorman_User: usr_spoofed", "X-Doorman_Property: hotel-9", "X_API_Key: \(secret)", "X_Forwarded_For: 10.9.9.9",
                                                   "X-Forwarded-For: 10.9.9.9", "Forwarded: for=10.9.9.9",
                                                   "Authorization: Bearer \(secret)", "X-Trace: abc"],
                                         body: ["room": 7])
        #expect(status == 200)
        let seen = try #require(body as? [String: Any])
        #expect(seen["target"] as? String == "/api/checkIn?late=1")
        #expect(seen["key"] as? String == keyID)
        #expect(seen["user"] as? String != "usr_spoofed")
        let headers = try #require(seen["headers"] as? [String])
        #expect(headers.contains("x-trace") && headers.contains("x-forwarded-for"))
        for hop in ["x-secret-hop", "keep-alive", "authorization", "x-api-key", "connection", "x_doorman_user", "x-doorman_property", "x_api_key", "x_forwarded_for"] {
            #expect(!headers.contains(hop), "\(hop)")
        }
        #expect(headers.filter { $0 == "x-doorman-user" }.count == 1)
        // The caller's own forwarding claims are dropped; the gateway says where the call came from.
        #expect(seen["forwardedFor"] as? [String] == ["127.0.0.1"])
        // Denied, unauthenticated, unknown service: the gateway answers itself.
        #expect(try gw.call("POST", "/pms/checkOut", key: secret).0 == 403)
        #expect(try gw.call("POST", "/pms/checkIn", key: "dmk_nope").0 == 401)
        #expect(try gw.call("GET", "/crm/lookup", key: secret).0 == 404)
        #expect(upstream.received.withLock { $0.count } == 1)
    }

    @Test func httpCallsOfAKeyLimitedToPropertiesNameOne() throws {
        let upstream = try ReferenceUpstream()
        let gw = try gateway(upstream)
        let (_, secret) = try sessions.makeKey(gw, permissions: ["pms:*"], properties: ["*"], key: ["properties": ["hotel-1"]])
        for headers in [[], ["X-Doorman-Property: a b"]] {
            let (status, body) = try gw.call("POST", "/pms/checkIn", key: secret, headers: headers, body: ["room": 7])
            #expect(status == 400 && (body as? [String: Any])?["error"] as? String == "invalid_property", "\(headers): \(status)")
        }
        #expect(try gw.call("POST", "/pms/checkIn", key: secret, headers: ["X-Doorman-Property: hotel-1"], body: ["room": 7]).0 == 200)
        #expect(upstream.received.withLock { $0.count } == 1)   // only the named one reached the upstream
        let client = try TestClient(port: gw.port)
        client.send("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        let text = client.readResponse()?.body ?? ""
        #expect(text.contains(#"doorman_calls_total{result="invalid_property"} 2"#), "\(text.split(separator: "\n").filter { $0.contains("calls_total") })")
    }

    @Test func httpAnswersStreamThroughWithoutBufferingWhole() throws {
        let upstream = try ReferenceUpstream()
        let gw = try gateway(upstream) { $0.server.maxWriteQueueBytes = 512 * 1024 }
        let (_, secret) = try sessions.makeKey(gw, permissions: ["pms:*"])
        let client = try TestClient(port: gw.port, receiveBuffer: 16 * 1024)
        let size = 8 * 1024 * 1024
        client.send(Array("GET /pms/big?bytes=\(size) HTTP/1.1\r\nHost: x\r\nX-API-Key: \(secret)\r\n\r\n".utf8))
        let head = try #require(client.readResponseHead())
        #expect(head.hasPrefix("HTTP/1.1 200") && head.lowercased().contains("transfer-encoding: chunked"), "\(head)")
        // Read slowly at first: the gateway must pause the upstream, not queue 8 MiB (its queue cap is 512 KiB).
        usleep(300_000)
        let body = try #require(client.readChunkedBody())
        #expect(body.count == size)
        // HEAD: the length a GET would have, and no body.
        client.send(Array("HEAD /pms/checkIn HTTP/1.1\r\nHost: x\r\nX-API-Key: \(secret)\r\n\r\n".utf8))
        let headOnly = try #require(client.readResponseHead())
        #expect(headOnly.hasPrefix("HTTP/1.1 200") && !headOnly.lowercased().contains("content-length: 0\r\n"), "\(headOnly)")
        // Keep-alive: the same connection serves the next request.
        client.send(Array("GET /pms/status/204 HTTP/1.1\r\nHost: x\r\nX-API-Key: \(secret)\r\n\r\n".utf8))
        let noContent = try #require(client.readResponseHead())
        #expect(noContent.hasPrefix("HTTP/1.1 204") && !noContent.lowercased().contains("content-length"), "\(noContent)")
    }

    /// An HTTP/1.0 client gets the streamed answer delimited by the connection's end: whole, even
    /// when it reads late (the upstream is paused and resumed between), then the end of stream.
    @Test func anHTTP10ClientGetsAWholeStreamedAnswerThenTheEnd() throws {
        let upstream = try ReferenceUpstream()
        let gw = try gateway(upstream) { $0.server.maxWriteQueueBytes = 512 * 1024 }
        let (_, secret) = try sessions.makeKey(gw, permissions: ["pms:*"])
        let client = try TestClient(port: gw.port, receiveBuffer: 16 * 1024)
        let size = 3 * 1024 * 1024
        client.send(Array("GET /pms/big?bytes=\(size) HTTP/1.0\r\nX-API-Key: \(secret)\r\n\r\n".utf8))
        let head = try #require(client.readResponseHead())
        #expect(head.hasPrefix("HTTP/1.1 200") && head.lowercased().contains("connection: close") && !head.lowercased().contains("chunked"))
        usleep(300_000)
        #expect(client.readToEnd()?.count == size)
    }

    /// A streamed answer times out when it stalls, however long it has been going.
    @Test func aStalledStreamIsCutAfterTheCallTimeout() throws {
        let upstream = try ReferenceUpstream()
        let gw = try gateway(upstream) { $0.calls.callTimeout = 0.5 }
        let (_, secret) = try sessions.makeKey(gw, permissions: ["pms:*"])
        let client = try TestClient(port: gw.port)
        client.send(Array("GET /pms/stall HTTP/1.1\r\nHost: x\r\nX-API-Key: \(secret)\r\n\r\n".utf8))
        #expect(client.readResponseHead()?.hasPrefix("HTTP/1.1 200") == true)
        // The gateway ends the connection well before the upstream (which stalls 3 s): the end of
        // stream comes within 2 s, and without the last chunk.
        client.setTimeout(2)
        let rest = try #require(client.readToEnd())
        #expect(!String(decoding: rest, as: UTF8.self).hasSuffix("0\r\n\r\n"))
    }

    @Test func httpCallsObeyTheNetworkAllowlistAndAPerKeyCap() throws {
        let upstream = try ReferenceUpstream()
        let fenced = try gateway(upstream) { $0.sessions.allowedNetworks = ["10.0.0.0/8"] }
        let (_, outside) = try sessions.makeKey(fenced, permissions: ["pms:*"])
        #expect(try fenced.call("GET", "/pms/checkIn", key: outside).0 == 403)
        let capped = try gateway(upstream) { $0.calls.maxCallsPerSession = 1 }
        let (_, secret) = try sessions.makeKey(capped, permissions: ["pms:*"])
        let slow = try TestClient(port: capped.port)
        slow.send(Array("GET /pms/slow?ms=500 HTTP/1.1\r\nHost: x\r\nX-API-Key: \(secret)\r\n\r\n".utf8))
        usleep(100_000)
        #expect(try capped.call("GET", "/pms/checkIn", key: secret).0 == 429)
        #expect(slow.readResponseHead()?.hasPrefix("HTTP/1.1 200") == true)
        // Given back when the call ends.
        #expect(try capped.call("GET", "/pms/checkIn", key: secret).0 == 200)
    }

    @Test func aBucketNeverRefillsFromAnEarlierClockReading() {
        let limiter = RateLimiter(rate: 1, burst: 2)
        let t = monotonicNanoseconds()
        #expect(limiter.take("k", now: t + 1_000) == nil)
        #expect(limiter.take("k", now: t + 2_000) == nil)
        // Another loop read the clock before this one took the lock: no wrap-around refill.
        #expect(limiter.take("k", now: t) != nil)
    }

    @Test func httpFailuresMapToGatewayStatuses() throws {
        let upstream = try ReferenceUpstream()
        let slow = try gateway(upstream) { $0.calls.callTimeout = 0.3 }
        let (_, secret) = try sessions.makeKey(slow, permissions: ["pms:*"])
        #expect(try slow.call("GET", "/pms/slow?ms=1000", key: secret).0 == 504)
        let dead = try gateway(nil)
        let (_, other) = try sessions.makeKey(dead, permissions: ["pms:*"])
        let (status, body) = try dead.call("GET", "/pms/checkIn", key: other)
        #expect(status == 503 && (body as? [String: Any])?["error"] as? String == "upstream_unavailable")
    }
}
