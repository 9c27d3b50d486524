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
            #expect(try db.query("SELECT version FROM schema_migrations ORDER BY version").rows == [["1"], ["2"], ["3"]])
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
            // The dropped connection is noticed before use (the server's goodbye is read first), so
            // the next call reconnects and succeeds instead of failing once.
            #expect(try store.users().map(\.id) == ["u1"])
        }

        @Test func feedRowsNameTheNodeAndAuditEntryOfEachChange() throws {
            let url = try PostgresServerTrait.server().createDatabase()
            let store = try PostgresStore(url: url, node: "A#run1")
            let cluster = PostgresCluster(url: url, node: "B")
            let feed = try cluster.openFeed()
            try feed.join()
            let auditSeq = try store.apply(user("u1"), audit: audit("user.create", "u1"))
            let changes = try feed.changes(after: 0)
            #expect(changes.map(\.entity) == ["user"] && changes.map(\.id) == ["u1"])
            #expect(changes.first?.node == "A#run1" && changes.first?.auditSeq == auditSeq)
            #expect(try feed.changes(after: changes[0].seq).isEmpty)
            #expect(try cluster.heads().changes == changes[0].seq)
        }

        @Test func publishesKeepTheirOrderAndAnySize() throws {
            let url = try PostgresServerTrait.server().createDatabase()
            _ = try PostgresStore(url: url)
            let a = PostgresCluster(url: url, node: "A"), b = PostgresCluster(url: url, node: "B")
            let feed = try b.openFeed()
            try feed.join()
            let big = String(repeating: "x", count: 100_000)   // NOTIFY's payload limit is 8000 bytes
            let seqs = try (0..<10).map { i in try (i % 2 == 0 ? a : b).publish(channel: "door", property: i == 3 ? nil : "hotel-1", data: i == 5 ? "\"\(big)\"" : "\(i)") }
            #expect(seqs == seqs.sorted())
            let rows = try feed.publishes(after: 0)
            #expect(rows.map(\.seq) == seqs)
            #expect(rows.map(\.node) == (0..<10).map { $0 % 2 == 0 ? "A" : "B" })
            #expect(rows[3].property == nil && rows[4].property == "hotel-1")
            #expect(rows[5].data.count == big.count + 2 && rows[6].data == "6")
            // Every publish was announced with its seq.
            var announced: [String] = []
            while announced.count < 10, let batch = Optional(try feed.wait(timeout: 10)), !batch.isEmpty {
                announced += batch.filter { $0.channel == PostgresCluster.publishChannel }.map(\.payload)
            }
            #expect(announced == seqs.map(String.init))
        }

        @Test func liveSessionRowsRoundTripAnyTextAndLeaveWithTheirNode() throws {
            let url = try PostgresServerTrait.server().createDatabase()
            _ = try PostgresStore(url: url)
            let a = PostgresCluster(url: url, node: "A"), b = PostgresCluster(url: url, node: "B")
            let feedA = try a.openFeed(), feedB = try b.openFeed()
            try feedA.join()
            try feedB.join()
            // Array literals must survive quotes, backslashes, commas, braces and non-ASCII.
            let odd = [#"a"b"#, #"c\d"#, "e,f", "{g}", "NULL", "", "ü ✓"]
            let rows = odd.enumerated().map { i, text in
                SharedSession(node: "A", id: "\(i)", keyID: "key_\(i % 2)", userID: text, body: #"{"x":"\#(text)"}"#)
            }
            try feedA.syncSessions(added: rows, removed: [])
            #expect(try b.remoteSessions(keyID: nil, userID: nil).sorted { $0.id < $1.id } == rows)
            #expect(try a.remoteSessions(keyID: nil, userID: nil).isEmpty)   // its own are not "remote"
            #expect(try b.remoteSessions(keyID: "key_1", userID: nil).map(\.id).sorted() == ["1", "3", "5"])
            #expect(try feedB.remoteSessionCounts() == ["key_0": 4, "key_1": 3])
            try feedA.syncSessions(added: [], removed: ["0", "1"])
            #expect(try feedB.remoteSessionCounts() == ["key_0": 3, "key_1": 2])
            // A node that leaves takes its rows with it.
            a.leave()
            #expect(try b.remoteSessions(keyID: nil, userID: nil).isEmpty)
            #expect(try b.liveNodes() == ["B"])
        }
    }
}
