// SPDX-License-Identifier: Apache-2.0
public import Foundation
public import GatewayCore
import Synchronization

/// The shared store for many nodes: PostgreSQL through libpq, with the same tables and
/// semantics as `SQLiteStore`.
///
/// Every identity change appends a row to `changes` and announces its seq with
/// `NOTIFY doorman_changes, '<seq>'` in the same transaction, so the notification is delivered
/// at commit and only for committed changes:
///
///     BEGIN
///     pg_advisory_xact_lock(changeLock)      one writer at a time: seqs commit in order
///     UPDATE/INSERT/DELETE users|groups|keys
///     INSERT INTO changes … RETURNING seq  →  pg_notify('doorman_changes', seq)
///     INSERT INTO audit … RETURNING seq    →  apply's result (as SQLiteStore)
///     COMMIT                                 listeners receive '<seq>'
///
/// The lock matters to the nodes that will replay the feed: an identity column hands out its
/// numbers at INSERT, not at COMMIT, so without it seq 11 could commit before seq 10 and a
/// reader that has seen 11 would skip 10 for ever. Admin writes are rare, so one at a time costs
/// nothing noticeable.
///
/// Calls block; run them off the event loops. Connections live in a few slots, each behind its
/// own `Mutex`; a call takes a free slot (or waits for one), connects it lazily and resets it
/// when libpq reports it broken, failing with `StoreError.unavailable` while the server is away.
public final class PostgresStore: IdentityStore {
    /// The channel changes are announced on; the payload is the change's seq in decimal.
    public static let changeChannel = "doorman_changes"
    /// Advisory lock keys ("doorman" in ASCII, then 1 and 2), held to the end of a transaction.
    static let migrationLock: Int64 = 0x646f_6f72_6d61_6e01
    static let changeLock: Int64 = 0x646f_6f72_6d61_6e02

    private let url: String
    /// The node whose changes this store writes (the feed's `node` column; nil outside a cluster).
    public let node: String?
    private let slots: [Slot]
    private let nextSlot = Atomic<Int>(0)

    /// Connects to `url` (`postgres://user@host:port/db`), migrates the schema and keeps up to
    /// `connections` connections (at least one).
    /// - Throws: `StoreError.unavailable` when the server cannot be reached or migrated.
    public init(url: String, connections: Int = 2, node: String? = nil) throws(StoreError) {
        self.url = url
        self.node = node
        let first = try PostgresConnection(url: url)
        try Self.migrate(first)
        slots = [Slot(first)] + (1..<max(1, connections)).map { _ in Slot(nil) }
    }

    /// True for the URLs that select this store: `postgres://…` and `postgresql://…`.
    public static func handles(_ text: String) -> Bool {
        text.hasPrefix("postgres://") || text.hasPrefix("postgresql://")
    }

    /// Applies the migrations this database lacks, in one transaction, under an advisory lock:
    /// nodes starting together queue on the lock, and each later one finds the work done.
    static func migrate(_ db: PostgresConnection) throws(StoreError) {
        try db.transaction { () throws(StoreError) in
            try db.query("SELECT pg_advisory_xact_lock($1)", [String(migrationLock)])
            try db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)")
            let current = Int64(try db.query("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").scalar ?? "0") ?? 0
            guard current <= Int64(Migrations.postgres.count) else {
                throw .unavailable("database schema version \(current) is newer than this binary knows (\(Migrations.postgres.count))")
            }
            for (index, sql) in Migrations.postgres.enumerated() where Int64(index + 1) > current {
                try db.execute(sql)
                try db.query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                             [String(index + 1), String(Date().timeIntervalSince1970)])
            }
        }
    }

    /// Runs `body` on a connection of its own: a free slot if there is one, else the next slot
    /// in turn (waiting for its lock).
    private func with<T: Sendable>(_ body: (PostgresConnection) throws(StoreError) -> T) throws(StoreError) -> T {
        let start = nextSlot.wrappingAdd(1, ordering: .relaxed).oldValue & Int.max
        for offset in 0..<slots.count {
            let slot = slots[(start + offset) % slots.count]
            if let result = try slot.connection.withLockIfAvailable({ conn throws(StoreError) in try PostgresConnection.using(&conn, url: url, body) }) {
                return result
            }
        }
        return try slots[start % slots.count].connection.withLock { conn throws(StoreError) in try PostgresConnection.using(&conn, url: url, body) }
    }

    /// One pooled connection (nil until first needed) behind its lock.
    private final class Slot: Sendable {
        let connection: Mutex<PostgresConnection?>
        init(_ connection: PostgresConnection?) { self.connection = Mutex(connection) }
    }

    // MARK: - Reads

    public func user(_ id: String) throws(StoreError) -> User? {
        try with { db throws(StoreError) in try Self.one(db, "SELECT body FROM users WHERE id = $1", [id]) }
    }

    public func users() throws(StoreError) -> [User] {
        try with { db throws(StoreError) in try Self.all(db, "SELECT body FROM users ORDER BY pos") }
    }

    public func group(_ id: String) throws(StoreError) -> PermissionGroup? {
        try with { db throws(StoreError) in try Self.one(db, "SELECT body FROM groups WHERE id = $1", [id]) }
    }

    public func groups() throws(StoreError) -> [PermissionGroup] {
        try with { db throws(StoreError) in try Self.all(db, "SELECT body FROM groups ORDER BY pos") }
    }

    private static let keyColumns = "body, last_used_at, last_used_address, pos, digest, previous_digest, previous_until"

    public func key(_ id: String) throws(StoreError) -> APIKey? {
        try with { db throws(StoreError) in
            try db.query("SELECT \(Self.keyColumns) FROM keys WHERE id = $1", [id]).rows.first.map { row throws(StoreError) in try Self.key(row) }
        }
    }

    public func keys(_ query: KeyQuery) throws(StoreError) -> Page<APIKey> {
        try with { db throws(StoreError) in
            var sql = "SELECT \(Self.keyColumns) FROM keys WHERE pos > $1"
            var parameters: [String?] = [String(Int64(query.after ?? "") ?? 0)]
            if let user = query.userID { parameters.append(user); sql += " AND user_id = $\(parameters.count)" }
            if let state = query.state { parameters.append(state.rawValue); sql += " AND state = $\(parameters.count)" }
            let limit = max(1, min(query.limit, 1000))
            parameters.append(String(limit + 1))
            sql += " ORDER BY pos LIMIT $\(parameters.count)"
            let rows = try db.query(sql, parameters).rows
            var items: [APIKey] = []
            for row in rows.prefix(limit) { items.append(try Self.key(row)) }
            let next = rows.count > limit ? rows[limit - 1][3] : nil
            return Page(items: items, next: next)
        }
    }

    public func key(digest: KeyDigest, now: Date) throws(StoreError) -> KeyMatch? {
        try with { db throws(StoreError) in
            var match: KeyMatch?
            for row in try db.query("SELECT \(Self.keyColumns) FROM keys WHERE digest = $1 OR previous_digest = $1", [digest.hex]).rows {
                let key = try Self.key(row)
                // Constant-time confirmation of the index lookup.
                if let current = row[4].flatMap(KeyDigest.init(hex:)), current.constantTimeEquals(digest) {
                    match = KeyMatch(key: key, digest: current, viaPreviousSecret: false)
                } else if let previous = row[5].flatMap(KeyDigest.init(hex:)), previous.constantTimeEquals(digest),
                          let until = row[6].flatMap(Double.init), until > now.timeIntervalSince1970 {
                    match = KeyMatch(key: key, digest: previous, viaPreviousSecret: true)
                }
            }
            return match
        }
    }

    private static let secretsColumns = "id, digest, previous_digest, previous_until"

    public func keySecrets(of keyID: String) throws(StoreError) -> KeySecrets? {
        try with { db throws(StoreError) in
            Self.secrets(try db.query("SELECT \(Self.secretsColumns) FROM keys WHERE id = $1", [keyID]))[keyID]
        }
    }

    public func allKeySecrets() throws(StoreError) -> [String: KeySecrets] {
        try with { db throws(StoreError) in Self.secrets(try db.query("SELECT \(Self.secretsColumns) FROM keys")) }
    }

    private static func secrets(_ result: PostgresRows) -> [String: KeySecrets] {
        var out: [String: KeySecrets] = [:]
        for row in result.rows {
            guard let id = row[0], let current = row[1].flatMap(KeyDigest.init(hex:)) else { continue }
            out[id] = KeySecrets(current: current, previous: row[2].flatMap(KeyDigest.init(hex:)),
                                 previousUntil: row[3].flatMap(Double.init).map { Date(timeIntervalSince1970: $0) })
        }
        return out
    }

    public func currentDigest(of keyID: String) throws(StoreError) -> KeyDigest? {
        try with { db throws(StoreError) in
            try db.query("SELECT digest FROM keys WHERE id = $1", [keyID]).scalar.flatMap(KeyDigest.init(hex:))
        }
    }

    public func audit(_ query: AuditQuery) throws(StoreError) -> Page<AuditEntry> {
        try with { db throws(StoreError) in
            var sql = "SELECT seq, time, actor, action, target_type, target_id, change FROM audit WHERE seq < $1"
            var parameters: [String?] = [String(query.before ?? Int64.max)]
            if let t = query.targetID { parameters.append(t); sql += " AND target_id = $\(parameters.count)" }
            if let a = query.actor { parameters.append(a); sql += " AND actor = $\(parameters.count)" }
            if let a = query.action { parameters.append(a); sql += " AND action = $\(parameters.count)" }
            let limit = max(1, min(query.limit, 1000))
            parameters.append(String(limit + 1))
            sql += " ORDER BY seq DESC LIMIT $\(parameters.count)"
            let items = try db.query(sql, parameters).rows.map { row in
                AuditEntry(seq: row[0].flatMap { Int64($0) } ?? 0, time: Date(timeIntervalSince1970: row[1].flatMap(Double.init) ?? 0),
                           actor: row[2] ?? "", action: row[3] ?? "", targetType: row[4] ?? "", targetID: row[5] ?? "",
                           change: row[6] ?? "{}")
            }
            return Page(reading: items, limit: limit) { String(items[$0].seq) }
        }
    }

    public func isEmpty() throws(StoreError) -> Bool {
        try with { db throws(StoreError) in try db.query("SELECT 1 FROM users LIMIT 1").rows.isEmpty }
    }

    // MARK: - Writes

    /// Applies `change`, appends it to the change feed (announced by NOTIFY at commit) and
    /// appends `audit`, in one transaction.
    /// - Returns: the audit entry's seq, as `SQLiteStore` does.
    @discardableResult
    public func apply(_ change: IdentityChange, audit entry: AuditEntry, ifVersion: Int64?) throws(StoreError) -> Int64 {
        try with { db throws(StoreError) in
            try db.transaction { () throws(StoreError) -> Int64 in
                try db.query("SELECT pg_advisory_xact_lock($1)", [String(Self.changeLock)])
                // After the lock (one writer at a time): the version cannot move between check and write.
                if let ifVersion, try Self.version(of: entry.targetID, db) != ifVersion { throw .conflict(StoreError.staleWrite) }
                let (entity, id) = try Self.write(change, db)
                let time = String(entry.time.timeIntervalSince1970)
                let seq = try db.query("""
                    INSERT INTO audit (time, actor, action, target_type, target_id, change) VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq
                    """, [time, entry.actor, entry.action, entry.targetType, entry.targetID, entry.change]).scalar
                guard let seq = seq.flatMap({ Int64($0) }) else { throw .unavailable("postgres: no audit seq returned") }
                try db.query("""
                    WITH c AS (INSERT INTO changes (entity, id, time, node, audit_seq) VALUES ($1, $2, $3, $4, $5) RETURNING seq)
                    SELECT pg_notify('\(Self.changeChannel)', seq::text) FROM c
                    """, [entity, id, time, node, String(seq)])
                return seq
            }
        }
    }

    public func version(of id: String) throws(StoreError) -> Int64 {
        try with { db throws(StoreError) in try Self.version(of: id, db) }
    }

    private static func version(of id: String, _ db: PostgresConnection) throws(StoreError) -> Int64 {
        let text = try db.query("SELECT COALESCE(MAX(seq), 0) FROM audit WHERE target_id = $1", [id]).scalar
        guard let version = text.flatMap({ Int64($0) }) else { throw .unavailable("postgres: no version returned") }
        return version
    }

    private static func write(_ change: IdentityChange, _ db: PostgresConnection) throws(StoreError) -> (String, String) {
        switch change {
        case .putUser(let user):
            try db.query("INSERT INTO users (id, body) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                         [user.id, try StoreJSON.encode(user)])
            return ("user", user.id)
        case .deleteUser(let id):
            guard try db.query("DELETE FROM users WHERE id = $1", [id]).changed == 1 else { throw .notFound("user \(id)") }
            return ("user", id)
        case .putGroup(let group):
            try db.query("INSERT INTO groups (id, body) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                         [group.id, try StoreJSON.encode(group)])
            return ("group", group.id)
        case .deleteGroup(let id):
            guard try db.query("DELETE FROM groups WHERE id = $1", [id]).changed == 1 else { throw .notFound("group \(id)") }
            return ("group", id)
        case .putKey(let key, let secrets):
            var stored = key
            stored.lastUsedAt = nil
            stored.lastUsedAddress = nil
            let body = try StoreJSON.encode(stored)
            if let secrets {
                let inserted = try db.query("""
                    INSERT INTO keys (id, user_id, state, digest, previous_digest, previous_until, body) VALUES ($1, $2, $3, $4, $5, $6, $7)
                    ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, state = excluded.state, digest = excluded.digest,
                      previous_digest = excluded.previous_digest, previous_until = excluded.previous_until, body = excluded.body
                    WHERE keys.state <> 'revoked'
                    """,
                    [key.id, key.userID, key.state.rawValue, secrets.current.hex, secrets.previous?.hex,
                     secrets.previousUntil.map { String($0.timeIntervalSince1970) }, body])
                // A revoked key is final, even against a writer (maybe on another node) that read it
                // before the revocation committed.
                guard inserted.changed == 1 else { throw .conflict(StoreError.keyRevoked) }
            } else {
                // A revoked key never works again, not even through a rotation's old secret.
                let updated = try db.query("""
                    UPDATE keys SET user_id = $1, state = $2, body = $3,
                      previous_digest = CASE WHEN $2 = 'revoked' THEN NULL ELSE previous_digest END,
                      previous_until = CASE WHEN $2 = 'revoked' THEN NULL ELSE previous_until END
                    WHERE id = $4 AND state <> 'revoked'
                    """, [key.userID, key.state.rawValue, body, key.id])
                if updated.changed != 1 {
                    let exists = try db.query("SELECT 1 FROM keys WHERE id = $1", [key.id]).rows.isEmpty == false
                    throw exists ? .conflict(StoreError.keyRevoked) : .notFound("key \(key.id)")
                }
            }
            return ("key", key.id)
        case .deleteKey(let id):
            guard try db.query("DELETE FROM keys WHERE id = $1", [id]).changed == 1 else { throw .notFound("key \(id)") }
            return ("key", id)
        }
    }

    /// One statement, latest use per key, in key order: two nodes recording at once never lock
    /// the same rows in opposite orders, and no transaction holds key rows between round trips.
    public func recordUses(_ uses: [KeyUse]) throws(StoreError) {
        var latest: [String: KeyUse] = [:]
        for use in uses where latest[use.keyID].map({ $0.time < use.time }) ?? true { latest[use.keyID] = use }
        guard !latest.isEmpty else { return }
        let ordered = latest.values.sorted { $0.keyID < $1.keyID }
        try with { db throws(StoreError) in
            _ = try db.query("""
                UPDATE keys k SET last_used_at = u.time::double precision, last_used_address = u.address
                FROM unnest($1::text[], $2::text[], $3::text[]) AS u(id, time, address)
                WHERE k.id = u.id AND (k.last_used_at IS NULL OR k.last_used_at < u.time::double precision)
                """, [PostgresConnection.textArray(ordered.map(\.keyID)), PostgresConnection.textArray(ordered.map { String($0.time.timeIntervalSince1970) }),
                      PostgresConnection.textArray(ordered.map(\.address))])
        }
    }

    private static func one<T: Decodable>(_ db: PostgresConnection, _ sql: String, _ parameters: [String?]) throws(StoreError) -> T? {
        guard let body = try db.query(sql, parameters).scalar else { return nil }
        return try StoreJSON.decode(body)
    }

    private static func all<T: Decodable>(_ db: PostgresConnection, _ sql: String) throws(StoreError) -> [T] {
        var items: [T] = []
        for row in try db.query(sql).rows { items.append(try StoreJSON.decode(row[0] ?? "")) }
        return items
    }

    private static func key(_ row: [String?]) throws(StoreError) -> APIKey {
        var key: APIKey = try StoreJSON.decode(row[0] ?? "")
        key.lastUsedAt = row[1].flatMap(Double.init).map { Date(timeIntervalSince1970: $0) }
        key.lastUsedAddress = row[2]
        return key
    }
}
