// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatewayCore
import GatewayStore
import Synchronization
import TestSupport
import Testing

/// What only the PostgreSQL store does: concurrent migration, the change feed and NOTIFY,
/// reconnecting.
extension StoreTests {
    @Suite(.enabled(if: StoreKind.underTest.contains(.postgres), "PostgreSQL server binaries not installed"))
    struct PostgresStoreTests {
        let now = Date(timeIntervalSince1970: 1_800_000_000)

        func user(_ id: String) -> IdentityChange {
            .putUser(User(id: id, name: "user \(id)", createdAt: now, updatedAt: now))
        }

        func audit(_ action: String, _ id: String) -> AuditEntry {
            AuditEntry(time: now, actor: "test", action: action, targetType: "user", targetID: id)
        }

        @Test func nodesStartingTogetherEachMigrateOnce() throws {
            let url = try PostgresServerTrait.server().createDatabase()
            let nodes = 4
            let failures = Mutex<[String]>([])
            DispatchQueue.concurrentPerform(iterations: nodes) { _ in
                do {
                    _ = try PostgresStore(url: url)
                } catch {
                    failures.withLock { $0.append("\(error)") }
                }
            }
            #expect(failures.withLock { $0 } == [])
            let db = try PostgresConnection(url: url)
            #expect(try db.query("SELECT version FROM schema_migrations ORDER BY version").rows == [["1"]])
            #expect(try PostgresStore(url: url).isEmpty())
        }

        @Test func announcesEachChangesSeqAtCommit() throws {
            let url = try PostgresServerTrait.server().createDatabase()
            let store = try PostgresStore(url: url)
            let listener = try PostgresConnection(url: url)
            try listener.execute("LISTEN \(PostgresStore.changeChannel)")

            let audits = try (1...3).map { i in try store.apply(user("u\(i)"), audit: audit("user.create", "u\(i)")) }
            #expect(audits == audits.sorted() && Set(audits).count == 3)
            var announced: [Int64] = []
            for _ in 1...3 {
                let note = try #require(try listener.nextNotification(timeout: 10))
                #expect(note.channel == PostgresStore.changeChannel)
                announced.append(try #require(Int64(note.payload)))
            }
            let feed = try listener.query("SELECT seq FROM changes ORDER BY seq").rows.compactMap { $0[0].flatMap { Int64($0) } }
            #expect(announced == feed)
            #expect(feed == feed.sorted() && Set(feed).count == 3)

            // A failed change rolls back: no feed row and no notification; the next one is announced next.
            #expect(throws: StoreError.notFound("user nope")) { try store.apply(.deleteUser(id: "nope"), audit: audit("user.delete", "nope")) }
            try store.apply(.deleteUser(id: "u1"), audit: audit("user.delete", "u1"))
            let next = try #require(try listener.nextNotification(timeout: 10))
            let last = try #require(try listener.query("SELECT MAX(seq), COUNT(*) FROM changes").rows.first)
            #expect([next.payload, "4"] == [last[0], last[1]])
        }

        @Test func concurrentWritersAnnounceSeqsInOrder() throws {
            let url = try PostgresServerTrait.server().createDatabase()
            let stores = try (0..<2).map { _ in try PostgresStore(url: url, connections: 2) }
            let listener = try PostgresConnection(url: url)
            try listener.execute("LISTEN \(PostgresStore.changeChannel)")
            let writes = 20
            let failures = Mutex<[String]>([])
            DispatchQueue.concurrentPerform(iterations: writes) { i in
                do {
                    try stores[i % stores.count].apply(user("w\(i)"), audit: audit("user.create", "w\(i)"))
                } catch {
                    failures.withLock { $0.append("\(error)") }
                }
            }
            #expect(failures.withLock { $0 } == [])
            // NOTIFY is delivered in commit order; the write lock makes that the seq order too.
            var announced: [Int64] = []
            for _ in 0..<writes { announced.append(Int64(try #require(try listener.nextNotification(timeout: 10)).payload) ?? -1) }
            #expect(announced == announced.sorted() && Set(announced).count == writes)
        }

        @Test func reconnectsAfterTheServerDropsItsConnection() throws {
            let url = try PostgresServerTrait.server().createDatabase()
            let store = try PostgresStore(url: url, connections: 1)
            try store.apply(user("u1"), audit: audit("user.create", "u1"))
            let admin = try PostgresConnection(url: url)
            let ended = try admin.query("""
                SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
                """)
            #expect(ended.rows == [["t"]])
            // The call that finds the connection dead fails as unavailable; the next one reconnects.
            let error = #expect(throws: StoreError.self) { try store.users() }
            guard case .unavailable = error else { Issue.record("expected unavailable, got \(String(describing: error))"); return }
            #expect(try store.users().map(\.id) == ["u1"])
        }
    }
}
