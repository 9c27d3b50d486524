// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatewayCore
import GatewayStore
import Testing

/// The `IdentityStore` contract, run against every store in `StoreKind.underTest`.
extension StoreTests {
    @Suite struct IdentityStoreTests {
        let now = Date(timeIntervalSince1970: 1_800_000_000)

        func audit(_ action: String, _ id: String) -> AuditEntry {
            AuditEntry(time: now, actor: "test", action: action, targetType: "key", targetID: id)
        }

        func key(_ id: String, user: String = "u1", state: KeyState = .active) -> APIKey {
            APIKey(id: id, name: "kiosk \(id)", userID: user, state: state, createdAt: now, updatedAt: now, createdBy: "test", displayStart: "dmk_abcd")
        }

        @Test(arguments: StoreKind.underTest) func migratesOnceAndReopens(_ kind: StoreKind) throws {
            let location = try kind.makeLocation()
            let store = try kind.open(location)
            #expect(try store.isEmpty())
            try store.apply(.putUser(User(id: "u1", name: "a", createdAt: now, updatedAt: now)), audit: audit("user.create", "u1"))
            let again = try kind.open(location)
            #expect(try again.user("u1")?.name == "a")
            #expect(try !again.isEmpty())
        }

        @Test(arguments: StoreKind.underTest) func findsKeysByDigestOnly(_ kind: StoreKind) throws {
            let store = try kind.makeStore()
            let secret = APIKeySecret.generate()
            try store.apply(.putKey(key("k1"), secrets: KeySecrets(current: KeyDigest(of: secret))), audit: audit("key.create", "k1"))
            #expect(try store.key(digest: KeyDigest(of: secret), now: now)?.key.id == "k1")
            #expect(try store.key(digest: KeyDigest(of: APIKeySecret.generate()), now: now) == nil)
        }

        @Test(arguments: StoreKind.underTest) func honoursARotationsGracePeriodAndNothingAfter(_ kind: StoreKind) throws {
            let store = try kind.makeStore()
            let old = APIKeySecret.generate()
            let new = APIKeySecret.generate()
            try store.apply(.putKey(key("k1"), secrets: KeySecrets(current: KeyDigest(of: old))), audit: audit("key.create", "k1"))
            let grace = now.addingTimeInterval(60)
            try store.apply(.putKey(key("k1"), secrets: KeySecrets(current: KeyDigest(of: new), previous: KeyDigest(of: old), previousUntil: grace)),
                            audit: audit("key.rotate", "k1"))
            let secrets = try #require(try store.keySecrets(of: "k1"))
            #expect(secrets == KeySecrets(current: KeyDigest(of: new), previous: KeyDigest(of: old), previousUntil: grace))
            #expect(try store.allKeySecrets()["k1"] == secrets)
            #expect(try store.keySecrets(of: "nope") == nil)
            #expect(try store.key(digest: KeyDigest(of: new), now: now)?.viaPreviousSecret == false)
            #expect(try store.key(digest: KeyDigest(of: old), now: now)?.viaPreviousSecret == true)
            #expect(try store.key(digest: KeyDigest(of: old), now: grace) == nil)
            // Revoking ends the grace at once.
            try store.apply(.putKey(key("k1", state: .revoked), secrets: nil), audit: audit("key.revoke", "k1"))
            #expect(try store.key(digest: KeyDigest(of: old), now: now) == nil)
            #expect(try store.key(digest: KeyDigest(of: new), now: now)?.key.state == .revoked)
        }

        @Test(arguments: StoreKind.underTest) func pagesAndFiltersKeys(_ kind: StoreKind) throws {
            let store = try kind.makeStore()
            for i in 0..<25 {
                try store.apply(.putKey(key("k\(i)", user: i % 2 == 0 ? "even" : "odd", state: i % 5 == 0 ? .suspended : .active),
                                        secrets: KeySecrets(current: KeyDigest(of: APIKeySecret.generate()))), audit: audit("key.create", "k\(i)"))
            }
            var seen: [String] = []
            var cursor: String?
            repeat {
                let page = try store.keys(KeyQuery(after: cursor, limit: 10))
                seen += page.items.map(\.id)
                cursor = page.next
            } while cursor != nil
            #expect(seen == (0..<25).map { "k\($0)" })
            #expect(try store.keys(KeyQuery(userID: "even")).items.count == 13)
            #expect(try store.keys(KeyQuery(state: .suspended)).items.map(\.id) == ["k0", "k5", "k10", "k15", "k20"])
        }

        @Test(arguments: StoreKind.underTest) func keepsTheAuditTrailOfADeletedKey(_ kind: StoreKind) throws {
            let store = try kind.makeStore()
            try store.apply(.putKey(key("k1"), secrets: KeySecrets(current: KeyDigest(of: APIKeySecret.generate()))), audit: audit("key.create", "k1"))
            try store.apply(.deleteKey(id: "k1"), audit: audit("key.delete", "k1"))
            #expect(try store.key("k1") == nil)
            #expect(try store.keys(KeyQuery()).items.isEmpty)
            #expect(try store.audit(AuditQuery(targetID: "k1")).items.map(\.action) == ["key.delete", "key.create"])
            #expect(throws: StoreError.notFound("key k1")) { try store.apply(.deleteKey(id: "k1"), audit: audit("key.delete", "k1")) }
            // The failed change wrote no audit line.
            #expect(try store.audit(AuditQuery(targetID: "k1")).items.count == 2)
        }

        @Test(arguments: StoreKind.underTest) func batchesLastUse(_ kind: StoreKind) throws {
            let store = try kind.makeStore()
            try store.apply(.putKey(key("k1"), secrets: KeySecrets(current: KeyDigest(of: APIKeySecret.generate()))), audit: audit("key.create", "k1"))
            try store.recordUses([KeyUse(keyID: "k1", time: now, address: "127.0.0.1"),
                                  KeyUse(keyID: "k1", time: now.addingTimeInterval(-5), address: "127.0.0.9")])
            let k = try #require(try store.key("k1"))
            #expect(k.lastUsedAt == now)
            #expect(k.lastUsedAddress == "127.0.0.1")
        }

        @Test(arguments: StoreKind.underTest) func refusesTwoKeysWithOneDigest(_ kind: StoreKind) throws {
            let store = try kind.makeStore()
            let digest = KeyDigest(of: APIKeySecret.generate())
            try store.apply(.putKey(key("k1"), secrets: KeySecrets(current: digest)), audit: audit("key.create", "k1"))
            let error = #expect(throws: StoreError.self) {
                try store.apply(.putKey(key("k2"), secrets: KeySecrets(current: digest)), audit: audit("key.create", "k2"))
            }
            guard case .conflict = error else { Issue.record("expected a conflict, got \(String(describing: error))"); return }
            #expect(try store.audit(AuditQuery(targetID: "k2")).items.isEmpty)
        }

        @Test(arguments: StoreKind.underTest) func aRevokedKeyStaysRevokedAgainstWritersThatReadItBefore(_ kind: StoreKind) throws {
            let store = try kind.makeStore()
            try store.apply(.putKey(key("k1"), secrets: KeySecrets(current: KeyDigest(of: APIKeySecret.generate()))), audit: audit("key.create", "k1"))
            try store.apply(.putKey(key("k1", state: .revoked), secrets: nil), audit: audit("key.revoke", "k1"))
            // An edit and a rotation that read the key while it was active (on another node, or
            // another pool thread) must not bring it back.
            #expect(throws: StoreError.conflict(StoreError.keyRevoked)) {
                try store.apply(.putKey(key("k1"), secrets: nil), audit: audit("key.update", "k1"))
            }
            #expect(throws: StoreError.conflict(StoreError.keyRevoked)) {
                try store.apply(.putKey(key("k1"), secrets: KeySecrets(current: KeyDigest(of: APIKeySecret.generate()))), audit: audit("key.rotate", "k1"))
            }
            #expect(try store.key("k1")?.state == .revoked)
            #expect(try store.audit(AuditQuery(targetID: "k1")).items.map(\.action) == ["key.revoke", "key.create"])
            #expect(throws: StoreError.notFound("key nope")) { try store.apply(.putKey(key("nope"), secrets: nil), audit: audit("key.update", "nope")) }
        }

        @Test(arguments: StoreKind.underTest) func recordsTheLatestUseOfManyKeysAtOnce(_ kind: StoreKind) throws {
            let store = try kind.makeStore()
            for id in ["k1", "k2", "k3"] {
                try store.apply(.putKey(key(id), secrets: KeySecrets(current: KeyDigest(of: APIKeySecret.generate()))), audit: audit("key.create", id))
            }
            try store.recordUses([KeyUse(keyID: "k3", time: now, address: "10.0.0.3"), KeyUse(keyID: "k1", time: now, address: "10.0.0.1"),
                                  KeyUse(keyID: "k3", time: now.addingTimeInterval(10), address: "10.0.0.33"), KeyUse(keyID: "gone", time: now, address: "x")])
            #expect(try store.key("k1")?.lastUsedAddress == "10.0.0.1")
            #expect(try store.key("k2")?.lastUsedAt == nil)
            #expect(try store.key("k3")?.lastUsedAddress == "10.0.0.33" && store.key("k3")?.lastUsedAt == now.addingTimeInterval(10))
            // An older use never overwrites a newer one.
            try store.recordUses([KeyUse(keyID: "k3", time: now, address: "10.0.0.3")])
            #expect(try store.key("k3")?.lastUsedAddress == "10.0.0.33")
        }
    }
}

@Suite struct StoreLocationTests {
    @Test func picksPostgreSQLForItsURLsAndSQLiteOtherwise() {
        #expect(StoreLocation("postgres://doorman@db:5432/doorman") == .postgres(url: "postgres://doorman@db:5432/doorman"))
        #expect(StoreLocation("postgresql://db/doorman") == .postgres(url: "postgresql://db/doorman"))
        #expect(StoreLocation("sqlite:/var/lib/doorman.db") == .sqlite(path: "/var/lib/doorman.db"))
        #expect(StoreLocation("sqlite:///var/lib/doorman.db") == .sqlite(path: "/var/lib/doorman.db"))
        #expect(StoreLocation("doorman.db") == .sqlite(path: "doorman.db"))
    }

    @Test func neverPrintsAPassword() {
        #expect("\(StoreLocation("postgres://doorman:s3cret@db:5432/doorman"))" == "postgres://doorman:***@db:5432/doorman")
        #expect("\(StoreLocation("postgres://doorman:s3cret@db"))" == "postgres://doorman:***@db")
        #expect("\(StoreLocation("postgres://db/doorman?user=doorman&password=s3cret&sslmode=require"))"
                == "postgres://db/doorman?user=doorman&password=***&sslmode=require")
        #expect("\(StoreLocation("postgres://doorman@db/doorman"))" == "postgres://doorman@db/doorman")
    }

    @Test func aFailedConnectNeverQuotesThePassword() {
        // libpq quotes a malformed piece of the URL in its message; the store's error must not.
        for url in ["postgres://doorman:s3cr%zzet@127.0.0.1:1/doorman", "postgres://doorman:s3cr%20et@127.0.0.1:1/doorman?password=an0ther%"] {
            do {
                _ = try PostgresStore(url: url)
                Issue.record("connected to \(url)?")
            } catch {
                let text = "\(error)"
                #expect(!text.contains("s3cr") && !text.contains("an0ther"), "\(text)")
            }
        }
    }
}
