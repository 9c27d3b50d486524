// SPDX-License-Identifier: Apache-2.0
import Foundation
@testable import Gateway
import GatewayCore
import Synchronization
import Testing
import WireCodec

/// A committed change that this node cannot read back never leaves the key usable from the stale
/// cache entry: its sessions end with the change's code, handshakes get 503, until a reload works.
@Suite struct CacheFailClosedTests {
    /// Passes everything to the real store; once armed, every read after the next write fails
    /// (the store went away right after the commit), until disarmed.
    final class FailingStore: IdentityStore {
        let base: any IdentityStore
        let armed = Atomic(false)
        let failing = Atomic(false)

        init(_ base: any IdentityStore) { self.base = base }

        private func read<T>(_ body: () throws(StoreError) -> T) throws(StoreError) -> T {
            if failing.load(ordering: .sequentiallyConsistent) { throw .unavailable("injected: the store went away") }
            return try body()
        }

        func user(_ id: String) throws(StoreError) -> User? { try read { () throws(StoreError) in try base.user(id) } }
        func users() throws(StoreError) -> [User] { try read { () throws(StoreError) in try base.users() } }
        func group(_ id: String) throws(StoreError) -> PermissionGroup? { try read { () throws(StoreError) in try base.group(id) } }
        func groups() throws(StoreError) -> [PermissionGroup] { try read { () throws(StoreError) in try base.groups() } }
        func key(_ id: String) throws(StoreError) -> APIKey? { try read { () throws(StoreError) in try base.key(id) } }
        func keys(_ query: KeyQuery) throws(StoreError) -> Page<APIKey> { try read { () throws(StoreError) in try base.keys(query) } }
        func key(digest: KeyDigest, now: Date) throws(StoreError) -> KeyMatch? { try read { () throws(StoreError) in try base.key(digest: digest, now: now) } }
        func allKeySecrets() throws(StoreError) -> [String: KeySecrets] { try read { () throws(StoreError) in try base.allKeySecrets() } }
        func keySecrets(of keyID: String) throws(StoreError) -> KeySecrets? { try read { () throws(StoreError) in try base.keySecrets(of: keyID) } }
        func currentDigest(of keyID: String) throws(StoreError) -> KeyDigest? { try read { () throws(StoreError) in try base.currentDigest(of: keyID) } }
        func audit(_ query: AuditQuery) throws(StoreError) -> Page<AuditEntry> { try read { () throws(StoreError) in try base.audit(query) } }
        func recordUses(_ uses: [KeyUse]) throws(StoreError) { try base.recordUses(uses) }
        func isEmpty() throws(StoreError) -> Bool { try base.isEmpty() }
        func version(of id: String) throws(StoreError) -> Int64 { try read { () throws(StoreError) in try base.version(of: id) } }

        @discardableResult
        func apply(_ change: IdentityChange, audit: AuditEntry, ifVersion: Int64?) throws(StoreError) -> Int64 {
            let seq = try base.apply(change, audit: audit, ifVersion: ifVersion)
            if armed.exchange(false, ordering: .sequentiallyConsistent) { failing.store(true, ordering: .sequentiallyConsistent) }
            return seq
        }
    }

    @Test(arguments: [("revoke", 4001, "revoked_key"), ("suspend", 4102, "suspended_key")])
    func aChangeNotReadBackEndsTheKeysSessionsAndRefusesIt(action: String, code: Int, reason: String) throws {
        let box = Mutex<FailingStore?>(nil)
        let gw = try AdminAPITests.TestGateway(wrapStore: { base in
            let failing = FailingStore(base)
            box.withLock { $0 = failing }
            return failing
        })
        let store = try #require(box.withLock { $0 })
        let sessions = SessionTests()
        let (keyID, secret) = try sessions.makeKey(gw)
        let (client, welcome) = try sessions.connect(gw, secret: secret)
        #expect(welcome["type"] as? String == "welcome")

        // The change commits; then the store cannot be read, so the cache cannot be refreshed.
        store.armed.store(true, ordering: .sequentiallyConsistent)
        #expect(try gw.call("POST", "/v1/keys/\(keyID)/\(action)").0 == 200)
        let failedAfterCommit = store.failing.load(ordering: .sequentiallyConsistent)
        #expect(failedAfterCommit, "the refresh after the commit met the failure")
        #expect(client.readCloseCode().map(Int.init) == code, "the session ends with the change's code, not served from the stale entry")

        // A new handshake with the key is refused for now (503, not a stale 101 or a false 401).
        let probe = try TestClient(port: gw.port)
        let head = try #require(probe.upgrade(path: "/ws", headers: ["X-API-Key: \(secret)"]))
        #expect(head.hasPrefix("HTTP/1.1 503"), "\(head)")

        // The store comes back; the reload (what the once-a-second retry runs) brings the
        // committed state, and the key is refused for what it is.
        store.failing.store(false, ordering: .sequentiallyConsistent)
        gw.gateway.reloadCacheAfterFailure()
        let again = try TestClient(port: gw.port)
        again.send(Array(("GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nX-API-Key: \(secret)\r\n\r\n").utf8))
        let (answer, body) = try #require(again.readResponse())
        #expect(answer.hasPrefix("HTTP/1.1 401") && (answer + body).contains(reason), "\(answer)\(body)")
    }
}
