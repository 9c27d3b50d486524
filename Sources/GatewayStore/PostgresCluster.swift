// SPDX-License-Identifier: Apache-2.0
import Foundation
public import GatewayCore
import Synchronization

/// One row of the change feed: what changed (`entity` `key`, `user` or `group` and its id),
/// which node made it and the audit entry it belongs to.
public struct FeedChange: Equatable, Sendable {
    public var seq: Int64
    public var entity: String
    public var id: String
    public var node: String?
    public var auditSeq: Int64?
    /// When the change was made (seconds since 1970, the writing node's clock).
    public var time: Double
}

/// One event published on some node, to be delivered on every node.
public struct FeedPublish: Equatable, Sendable {
    public var seq: Int64
    public var node: String
    public var channel: String
    public var property: String?
    /// The event's data as JSON text.
    public var data: String
    /// The change feed's head when it was written: a node delivers it only once it has applied
    /// that change, so nothing published after a revocation reaches the revoked key's sessions.
    public var changeSeq: Int64 = 0
}

/// A live session as a node last wrote it to `live_sessions` (`body` is its JSON description).
public struct SharedSession: Equatable, Sendable {
    public var node: String
    public var id: String
    public var keyID: String
    public var userID: String
    public var body: String

    public init(node: String, id: String, keyID: String, userID: String, body: String) {
        self.node = node
        self.id = id
        self.keyID = keyID
        self.userID = userID
        self.body = body
    }
}

/// What nodes share through PostgreSQL besides the identity data: the change feed, publishes,
/// node heartbeats, change receipts and live sessions.
///
/// Two kinds of connection: `FeedConnection`, owned by one node's feed thread (it LISTENs and
/// reads the feed), and this object's own connection for calls from pool threads (publishes,
/// receipts, listings), behind a `Mutex`.
public final class PostgresCluster: Sendable {
    public static let changeChannel = PostgresStore.changeChannel
    public static let publishChannel = "doorman_publish"
    public static let controlChannel = "doorman_control"
    /// Serialises publishes, so their seqs commit in order (as `PostgresStore.changeLock` does for changes).
    static let publishLock: Int64 = 0x646f_6f72_6d61_6e03
    /// Held while an empty store gets its first admin: two nodes starting together make one.
    static let setupLock: Int64 = 0x646f_6f72_6d61_6e04

    public let url: String
    public let node: String
    /// This process (a node name may be reused by the next process, never by two at once).
    public let instance: String
    /// For pool threads (receipts, listings, kills) and, apart, for publishes: a slow publish
    /// burst does not hold up an administrator's request, nor the reverse.
    private let connection = Mutex<PostgresConnection?>(nil)
    private let publishConnection = Mutex<PostgresConnection?>(nil)

    public init(url: String, node: String, instance: String? = nil) {
        self.url = url
        self.node = node
        self.instance = instance ?? node
    }

    /// Runs `body` on one of this object's connections (the publishes' own with `publishing`).
    private func with<T: Sendable>(publishing: Bool = false, _ body: (PostgresConnection) throws(StoreError) -> T) throws(StoreError) -> T {
        let url = url
        if publishing { return try publishConnection.withLock { conn throws(StoreError) in try PostgresConnection.using(&conn, url: url, connectTimeout: 2, body) } }
        return try connection.withLock { conn throws(StoreError) in try PostgresConnection.using(&conn, url: url, connectTimeout: 2, body) }
    }

    /// Runs `body` while holding a session-level advisory lock every node shares: the first
    /// start of an empty store bootstraps exactly once.
    public func withSetupLock<T>(_ body: () throws -> T) throws -> T {
        let db = try PostgresConnection(url: url, connectTimeout: 10)
        try db.query("SELECT pg_advisory_lock($1)", [String(Self.setupLock)])
        defer { _ = try? db.query("SELECT pg_advisory_unlock($1)", [String(Self.setupLock)]) }
        return try body()
    }

    /// The newest seqs of the change feed and of publishes: where a starting node begins.
    public func heads() throws(StoreError) -> (changes: Int64, publishes: Int64) {
        try with { db throws(StoreError) in
            let row = try db.query("SELECT (SELECT COALESCE(MAX(seq), 0) FROM changes), (SELECT COALESCE(MAX(seq), 0) FROM publishes)").rows.first
            return (Int64(row?[0] ?? "0") ?? 0, Int64(row?[1] ?? "0") ?? 0)
        }
    }

    /// An event to publish.
    public struct Event: Sendable {
        public var channel: String
        public var property: String?
        /// JSON text.
        public var data: String

        public init(channel: String, property: String?, data: String) {
            self.channel = channel
            self.property = property
            self.data = data
        }
    }

    /// Writes an event for every node (this one included) and announces it; durable on return.
    /// - Returns: its seq.
    @discardableResult
    public func publish(channel: String, property: String?, data: String) throws(StoreError) -> Int64 {
        try publish([Event(channel: channel, property: property, data: data)])[0]
    }

    /// Writes events, in this order, in one transaction, and announces the last seq (readers take
    /// every row up to it); durable on return.
    /// - Returns: their seqs, ascending.
    @discardableResult
    public func publish(_ events: [Event]) throws(StoreError) -> [Int64] {
        guard !events.isEmpty else { return [] }
        return try with(publishing: true) { db throws(StoreError) in
            try db.transaction { () throws(StoreError) -> [Int64] in
                try db.query("SELECT pg_advisory_xact_lock($1)", [String(Self.publishLock)])
                let seqs = try db.query("""
                    INSERT INTO publishes (node, channel, property, data, time, change_seq)
                    SELECT $1, e.channel, e.property, e.data, EXTRACT(EPOCH FROM clock_timestamp()),
                           (SELECT COALESCE(MAX(seq), 0) FROM changes)
                    FROM unnest($2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS e(channel, property, data, n)
                    ORDER BY e.n
                    RETURNING seq
                    """, [node, PostgresConnection.textArray(events.map(\.channel)), PostgresConnection.textArray(events.map(\.property)),
                          PostgresConnection.textArray(events.map(\.data))]).rows.compactMap { $0[0].flatMap { Int64($0) } }.sorted()
                guard seqs.count == events.count, let last = seqs.last else { throw .unavailable("postgres: publish seqs not returned") }
                try db.query("SELECT pg_notify($1, $2)", [Self.publishChannel, String(last)])
                return seqs
            }
        }
    }

    /// Nodes whose heartbeat is younger than `within` seconds (database time), this one included.
    public func liveNodes(within: Double = PostgresCluster.nodeTimeout) throws(StoreError) -> [String] {
        try with { db throws(StoreError) in
            try db.query("SELECT name FROM nodes WHERE heartbeat_at > EXTRACT(EPOCH FROM clock_timestamp()) - $1 ORDER BY name",
                         [String(within)]).rows.compactMap { $0[0] }
        }
    }

    /// A node that has not beaten for this long is taken for dead (its sessions no longer listed or counted).
    public static let nodeTimeout: Double = 5

    /// What each node reported for a change (node → sessions it ended).
    public func receipts(auditSeq: Int64) throws(StoreError) -> [String: Int] {
        try with { db throws(StoreError) in
            var found: [String: Int] = [:]
            for row in try db.query("SELECT node, ended FROM change_receipts WHERE audit_seq = $1", [String(auditSeq)]).rows {
                if let node = row[0], let ended = row[1].flatMap({ Int($0) }) { found[node] = ended }
            }
            return found
        }
    }

    /// Live sessions written by the other live nodes, optionally of one key or user.
    public func remoteSessions(keyID: String?, userID: String?) throws(StoreError) -> [SharedSession] {
        try with { db throws(StoreError) in
            try db.query("""
                SELECT s.node, s.id, s.key_id, s.user_id, s.body FROM live_sessions s JOIN nodes n ON n.name = s.node
                WHERE s.node <> $1 AND n.heartbeat_at > EXTRACT(EPOCH FROM clock_timestamp()) - $2
                  AND ($3::text IS NULL OR s.key_id = $3) AND ($4::text IS NULL OR s.user_id = $4)
                """, [node, String(Self.nodeTimeout), keyID, userID]).rows.compactMap { row in
                guard let node = row[0], let id = row[1], let key = row[2], let user = row[3], let body = row[4] else { return nil }
                return SharedSession(node: node, id: id, keyID: key, userID: user, body: body)
            }
        }
    }

    /// Asks `node` to end one of its sessions (an administrator's kill of a remote session).
    public func requestKill(node target: String, sessionID: String) throws(StoreError) {
        try with { db throws(StoreError) in
            _ = try db.query("SELECT pg_notify($1, $2)", [Self.controlChannel, "kill \(target) \(sessionID)"])
        }
    }

    /// Claims this node's name for this process: refused while another process holding it has
    /// beaten within `nodeTimeout` (two live nodes with one name would take each other's
    /// receipts and session rows).
    public func claimName() throws(StoreError) {
        try with { db throws(StoreError) in
            let claimed = try db.query("""
                INSERT INTO nodes (name, instance, started_at, heartbeat_at)
                VALUES ($1, $2, EXTRACT(EPOCH FROM clock_timestamp()), EXTRACT(EPOCH FROM clock_timestamp()))
                ON CONFLICT (name) DO UPDATE SET instance = excluded.instance, started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at
                WHERE nodes.instance = excluded.instance OR nodes.heartbeat_at < EXTRACT(EPOCH FROM clock_timestamp()) - $3
                """, [node, instance, String(Self.nodeTimeout)])
            guard claimed.changed == 1 else {
                throw .conflict("node name \(node) is used by another live node: give each node its own --node-name")
            }
            try db.query("DELETE FROM live_sessions WHERE node = $1", [node])
        }
    }

    /// Removes this node from `nodes` and `live_sessions` (a clean stop).
    public func leave() {
        _ = try? with { db throws(StoreError) in
            try db.query("DELETE FROM live_sessions WHERE node = $1 AND EXISTS (SELECT 1 FROM nodes WHERE name = $1 AND instance = $2)", [node, instance])
            try db.query("DELETE FROM nodes WHERE name = $1 AND instance = $2", [node, instance])
        }
    }

    /// A new connection for this node's feed thread.
    public func openFeed() throws(StoreError) -> FeedConnection {
        FeedConnection(db: try PostgresConnection(url: url, connectTimeout: 2), node: node, instance: instance)
    }
}

/// The feed thread's connection: LISTENs for changes, publishes and control messages, and
/// carries the node's heartbeat, receipts and live-session rows.
///
/// `@unchecked Sendable`: used by one thread at a time (the feed thread that opened it).
public final class FeedConnection: @unchecked Sendable {
    private let db: PostgresConnection
    public let node: String
    let instance: String

    init(db: PostgresConnection, node: String, instance: String) {
        self.db = db
        self.node = node
        self.instance = instance
    }

    public var isConnected: Bool { db.isConnected }

    /// Subscribes to the channels and (re)registers the node under its name, unless another live
    /// process holds that name (`StoreError.conflict`).
    public func join() throws(StoreError) {
        try db.execute("LISTEN \(PostgresCluster.changeChannel); LISTEN \(PostgresCluster.publishChannel); LISTEN \(PostgresCluster.controlChannel)")
        let claimed = try db.query("""
            INSERT INTO nodes (name, instance, started_at, heartbeat_at)
            VALUES ($1, $2, EXTRACT(EPOCH FROM clock_timestamp()), EXTRACT(EPOCH FROM clock_timestamp()))
            ON CONFLICT (name) DO UPDATE SET instance = excluded.instance, heartbeat_at = excluded.heartbeat_at
            WHERE nodes.instance = excluded.instance OR nodes.heartbeat_at < EXTRACT(EPOCH FROM clock_timestamp()) - $3
            """, [node, instance, String(PostgresCluster.nodeTimeout)])
        guard claimed.changed == 1 else { throw .conflict("node name \(node) is used by another live node") }
    }

    /// Waits up to `timeout` seconds for notifications; returns all that arrived (maybe none).
    public func wait(timeout: Double) throws(StoreError) -> [(channel: String, payload: String)] {
        guard let first = try db.nextNotification(timeout: timeout) else { return [] }
        return [(first.channel, first.payload)] + (try db.pendingNotifications()).map { ($0.channel, $0.payload) }
    }

    /// Notifications that arrived while running other statements.
    public func pending() throws(StoreError) -> [(channel: String, payload: String)] {
        try db.pendingNotifications().map { ($0.channel, $0.payload) }
    }

    /// Changes after `seq`, oldest first (at most `limit`).
    public func changes(after seq: Int64, limit: Int = 1000) throws(StoreError) -> [FeedChange] {
        try db.query("SELECT seq, entity, id, node, audit_seq, time FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2",
                     [String(seq), String(limit)]).rows.compactMap { row in
            guard let seq = row[0].flatMap({ Int64($0) }), let entity = row[1], let id = row[2] else { return nil }
            return FeedChange(seq: seq, entity: entity, id: id, node: row[3], auditSeq: row[4].flatMap { Int64($0) },
                              time: row[5].flatMap { Double($0) } ?? 0)
        }
    }

    /// Publishes after `seq`, oldest first (at most `limit`: rows may be up to a mebibyte each).
    public func publishes(after seq: Int64, limit: Int = 100) throws(StoreError) -> [FeedPublish] {
        try db.query("SELECT seq, node, channel, property, data, change_seq FROM publishes WHERE seq > $1 ORDER BY seq LIMIT $2",
                     [String(seq), String(limit)]).rows.compactMap { row in
            guard let seq = row[0].flatMap({ Int64($0) }), let node = row[1], let channel = row[2], let data = row[4] else { return nil }
            return FeedPublish(seq: seq, node: node, channel: channel, property: row[3], data: data,
                               changeSeq: row[5].flatMap { Int64($0) } ?? 0)
        }
    }

    /// Records that this node acted on a change (`ended` sessions).
    public func writeReceipt(auditSeq: Int64, ended: Int) throws(StoreError) {
        try db.query("""
            INSERT INTO change_receipts (audit_seq, node, ended, time) VALUES ($1, $2, $3, EXTRACT(EPOCH FROM clock_timestamp()))
            ON CONFLICT (audit_seq, node) DO UPDATE SET ended = excluded.ended
            """, [String(auditSeq), node, String(ended)])
    }

    /// The node's heartbeat, with the last change seq it applied.
    public func heartbeat(appliedSeq: Int64) throws(StoreError) {
        let updated = try db.query("""
            UPDATE nodes SET heartbeat_at = EXTRACT(EPOCH FROM clock_timestamp()), applied_seq = $3 WHERE name = $1 AND instance = $2
            """, [node, instance, String(appliedSeq)])
        if updated.changed == 0 { try join() }   // removed by another node's clean-up while we were away
    }

    /// Brings this node's rows in `live_sessions` up to date: adds `added`, drops `removed` ids.
    public func syncSessions(added: [SharedSession], removed: [String]) throws(StoreError) {
        guard !added.isEmpty || !removed.isEmpty else { return }
        try db.transaction { () throws(StoreError) in
            if !removed.isEmpty {
                try db.query("DELETE FROM live_sessions WHERE node = $1 AND id = ANY($2::text[])", [node, PostgresConnection.textArray(removed)])
            }
            for chunk in stride(from: 0, to: added.count, by: 2000).map({ added[$0..<min($0 + 2000, added.count)] }) {
                try db.query("""
                    INSERT INTO live_sessions (node, id, key_id, user_id, body)
                    SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[]) ON CONFLICT (node, id) DO NOTHING
                    """, [node, PostgresConnection.textArray(chunk.map(\.id)), PostgresConnection.textArray(chunk.map(\.keyID)), PostgresConnection.textArray(chunk.map(\.userID)), PostgresConnection.textArray(chunk.map(\.body))])
            }
        }
    }

    /// Drops every session row of this node (at start, and before a full re-sync after the feed was lost).
    public func clearSessions() throws(StoreError) {
        try db.query("DELETE FROM live_sessions WHERE node = $1", [node])
    }

    /// Live sessions per key on the other live nodes.
    public func remoteSessionCounts() throws(StoreError) -> [String: Int] {
        var counts: [String: Int] = [:]
        for row in try db.query("""
            SELECT s.key_id, COUNT(*) FROM live_sessions s JOIN nodes n ON n.name = s.node
            WHERE s.node <> $1 AND n.heartbeat_at > EXTRACT(EPOCH FROM clock_timestamp()) - $2 GROUP BY s.key_id
            """, [node, String(PostgresCluster.nodeTimeout)]).rows {
            if let key = row[0], let n = row[1].flatMap({ Int($0) }) { counts[key] = n }
        }
        return counts
    }

    /// Deletes what nobody needs any more: publishes and receipts older than `retention`
    /// seconds, and the rows of nodes silent for a minute.
    public func cleanUp(retention: Double) throws(StoreError) {
        let cutoff = "EXTRACT(EPOCH FROM clock_timestamp()) - $1"
        try db.query("DELETE FROM publishes WHERE time < \(cutoff)", [String(retention)])
        try db.query("DELETE FROM change_receipts WHERE time < \(cutoff)", [String(retention)])
        try db.query("DELETE FROM live_sessions WHERE node IN (SELECT name FROM nodes WHERE heartbeat_at < \(cutoff))", ["60"])
        try db.query("DELETE FROM nodes WHERE heartbeat_at < \(cutoff)", ["60"])
    }
}
