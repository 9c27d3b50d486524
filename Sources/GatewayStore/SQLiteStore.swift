// SPDX-License-Identifier: Apache-2.0
public import Foundation
public import GatewayCore
import Synchronization

/// The embedded store: one SQLite file in WAL mode, `synchronous=FULL` (a commit is on disk
/// before it is acknowledged), versioned migrations. One connection, serialised by a Mutex; calls
/// block, so callers run them off the event loops.
public final class SQLiteStore: IdentityStore {
    private let connection: Mutex<SQLiteConnection>
    public let path: String

    /// Opens (creating if needed) and migrates the database at `path`.
    public init(path: String) throws(StoreError) {
        self.path = path
        let db = try SQLiteConnection(path: path)
        try db.execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")
        try Self.migrate(db)
        connection = Mutex(db)
    }

    /// `sqlite:PATH`, `sqlite://PATH` or a plain path.
    public static func path(fromURL text: String) -> String {
        for prefix in ["sqlite://", "sqlite:"] where text.hasPrefix(prefix) { return String(text.dropFirst(prefix.count)) }
        return text
    }

    private static func migrate(_ db: SQLiteConnection) throws(StoreError) {
        try db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)")
        try db.transaction { () throws(StoreError) in
            var current: Int64 = 0
            try db.query("SELECT COALESCE(MAX(version), 0) FROM schema_migrations") { row in current = row.int(0) }
            guard current <= Int64(Migrations.sqlite.count) else {
                throw .unavailable("database schema version \(current) is newer than this binary knows (\(Migrations.sqlite.count))")
            }
            for (index, sql) in Migrations.sqlite.enumerated() where Int64(index + 1) > current {
                try db.execute(sql)
                try db.query("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                             [.int(Int64(index + 1)), .real(Date().timeIntervalSince1970)])
            }
        }
    }

    private func with<T: Sendable>(_ body: (SQLiteConnection) throws(StoreError) -> T) throws(StoreError) -> T {
        try connection.withLock { db throws(StoreError) in try body(db) }
    }

    // MARK: - Reads

    public func user(_ id: String) throws(StoreError) -> User? {
        try with { db throws(StoreError) in try Self.one(db, "SELECT body FROM users WHERE id = ?", [.text(id)]) }
    }

    public func users() throws(StoreError) -> [User] {
        try with { db throws(StoreError) in try Self.all(db, "SELECT body FROM users ORDER BY rowid") }
    }

    public func group(_ id: String) throws(StoreError) -> PermissionGroup? {
        try with { db throws(StoreError) in try Self.one(db, "SELECT body FROM groups WHERE id = ?", [.text(id)]) }
    }

    public func groups() throws(StoreError) -> [PermissionGroup] {
        try with { db throws(StoreError) in try Self.all(db, "SELECT body FROM groups ORDER BY rowid") }
    }

    private static let keyColumns = "body, last_used_at, last_used_address, rowid, digest, previous_digest, previous_until"

    public func key(_ id: String) throws(StoreError) -> APIKey? {
        try with { db throws(StoreError) in
            var found: APIKey?
            try db.query("SELECT \(Self.keyColumns) FROM keys WHERE id = ?", [.text(id)]) { row throws(StoreError) in found = try Self.key(row) }
            return found
        }
    }

    public func keys(_ query: KeyQuery) throws(StoreError) -> Page<APIKey> {
        try with { db throws(StoreError) in
            var sql = "SELECT \(Self.keyColumns) FROM keys WHERE rowid > ?"
            var bindings: [SQLiteConnection.Value] = [.int(Int64(query.after ?? "") ?? 0)]
            if let user = query.userID { sql += " AND user_id = ?"; bindings.append(.text(user)) }
            if let state = query.state { sql += " AND state = ?"; bindings.append(.text(state.rawValue)) }
            sql += " ORDER BY rowid LIMIT ?"
            let limit = max(1, min(query.limit, 1000))
            bindings.append(.int(Int64(limit + 1)))
            var items: [APIKey] = []
            var rowids: [Int64] = []
            try db.query(sql, bindings) { row throws(StoreError) in
                items.append(try Self.key(row))
                rowids.append(row.int(3))
            }
            return Page(reading: items, limit: limit) { String(rowids[$0]) }
        }
    }

    public func key(digest: KeyDigest, now: Date) throws(StoreError) -> KeyMatch? {
        try with { db throws(StoreError) in
            var match: KeyMatch?
            try db.query("SELECT \(Self.keyColumns) FROM keys WHERE digest = ? OR previous_digest = ?",
                         [.text(digest.hex), .text(digest.hex)]) { row throws(StoreError) in
                let key = try Self.key(row)
                // Constant-time confirmation of the index lookup.
                if let current = row.text(4).flatMap(KeyDigest.init(hex:)), current.constantTimeEquals(digest) {
                    match = KeyMatch(key: key, digest: current, viaPreviousSecret: false)
                } else if let previous = row.text(5).flatMap(KeyDigest.init(hex:)), previous.constantTimeEquals(digest),
                          let until = row.real(6), until > now.timeIntervalSince1970 {
                    match = KeyMatch(key: key, digest: previous, viaPreviousSecret: true)
                }
            }
            return match
        }
    }

    public func keySecrets(of keyID: String) throws(StoreError) -> KeySecrets? {
        try with { db throws(StoreError) in
            var out: [String: KeySecrets] = [:]
            try db.query("SELECT id, digest, previous_digest, previous_until FROM keys WHERE id = ?", [.text(keyID)]) { row in
                Self.secretsRow(row, into: &out)
            }
            return out[keyID]
        }
    }

    private static func secretsRow(_ row: SQLiteConnection.Row, into out: inout [String: KeySecrets]) {
        guard let id = row.text(0), let current = row.text(1).flatMap(KeyDigest.init(hex:)) else { return }
        out[id] = KeySecrets(current: current, previous: row.text(2).flatMap(KeyDigest.init(hex:)),
                             previousUntil: row.real(3).map { Date(timeIntervalSince1970: $0) })
    }

    public func allKeySecrets() throws(StoreError) -> [String: KeySecrets] {
        try with { db throws(StoreError) in
            var out: [String: KeySecrets] = [:]
            try db.query("SELECT id, digest, previous_digest, previous_until FROM keys") { row in
                Self.secretsRow(row, into: &out)
            }
            return out
        }
    }

    public func currentDigest(of keyID: String) throws(StoreError) -> KeyDigest? {
        try with { db throws(StoreError) in
            var digest: KeyDigest?
            try db.query("SELECT digest FROM keys WHERE id = ?", [.text(keyID)]) { row in digest = row.text(0).flatMap(KeyDigest.init(hex:)) }
            return digest
        }
    }

    public func audit(_ query: AuditQuery) throws(StoreError) -> Page<AuditEntry> {
        try with { db throws(StoreError) in
            var sql = "SELECT seq, time, actor, action, target_type, target_id, change FROM audit WHERE seq < ?"
            var bindings: [SQLiteConnection.Value] = [.int(query.before ?? Int64.max)]
            if let t = query.targetID { sql += " AND target_id = ?"; bindings.append(.text(t)) }
            if let a = query.actor { sql += " AND actor = ?"; bindings.append(.text(a)) }
            if let a = query.action { sql += " AND action = ?"; bindings.append(.text(a)) }
            let limit = max(1, min(query.limit, 1000))
            sql += " ORDER BY seq DESC LIMIT ?"
            bindings.append(.int(Int64(limit + 1)))
            var items: [AuditEntry] = []
            try db.query(sql, bindings) { row in
                items.append(AuditEntry(seq: row.int(0), time: Date(timeIntervalSince1970: row.real(1) ?? 0), actor: row.text(2) ?? "",
                                        action: row.text(3) ?? "", targetType: row.text(4) ?? "", targetID: row.text(5) ?? "",
                                        change: row.text(6) ?? "{}"))
            }
            return Page(reading: items, limit: limit) { String(items[$0].seq) }
        }
    }

    public func isEmpty() throws(StoreError) -> Bool {
        try with { db throws(StoreError) in
            var count: Int64 = 0
            try db.query("SELECT COUNT(*) FROM users") { row in count = row.int(0) }
            return count == 0
        }
    }

    // MARK: - Writes

    public func version(of id: String) throws(StoreError) -> Int64 {
        try with { db throws(StoreError) in try Self.version(of: id, db) }
    }

    private static func version(of id: String, _ db: SQLiteConnection) throws(StoreError) -> Int64 {
        var version: Int64 = 0
        try db.query("SELECT COALESCE(MAX(seq), 0) FROM audit WHERE target_id = ?", [.text(id)]) { row in version = row.int(0) }
        return version
    }

    @discardableResult
    public func apply(_ change: IdentityChange, audit entry: AuditEntry, ifVersion: Int64?) throws(StoreError) -> Int64 {
        try with { db throws(StoreError) in
            // BEGIN IMMEDIATE: one writer at a time, so the version cannot move between check and write.
            try db.transaction { () throws(StoreError) -> Int64 in
                if let ifVersion, try Self.version(of: entry.targetID, db) != ifVersion { throw .conflict(StoreError.staleWrite) }
                let (entity, id) = try Self.write(change, db)
                try db.query("INSERT INTO changes (entity, id, time) VALUES (?, ?, ?)",
                             [.text(entity), .text(id), .real(entry.time.timeIntervalSince1970)])
                try db.query("INSERT INTO audit (time, actor, action, target_type, target_id, change) VALUES (?, ?, ?, ?, ?, ?)",
                             [.real(entry.time.timeIntervalSince1970), .text(entry.actor), .text(entry.action),
                              .text(entry.targetType), .text(entry.targetID), .text(entry.change)])
                var seq: Int64 = 0
                try db.query("SELECT last_insert_rowid()") { row in seq = row.int(0) }
                return seq
            }
        }
    }

    private static func write(_ change: IdentityChange, _ db: SQLiteConnection) throws(StoreError) -> (String, String) {
        switch change {
        case .putUser(let user):
            try db.query("INSERT INTO users (id, body) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                         [.text(user.id), .text(try encode(user))])
            return ("user", user.id)
        case .deleteUser(let id):
            try db.query("DELETE FROM users WHERE id = ?", [.text(id)])
            guard db.changes == 1 else { throw .notFound("user \(id)") }
            return ("user", id)
        case .putGroup(let group):
            try db.query("INSERT INTO groups (id, body) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                         [.text(group.id), .text(try encode(group))])
            return ("group", group.id)
        case .deleteGroup(let id):
            try db.query("DELETE FROM groups WHERE id = ?", [.text(id)])
            guard db.changes == 1 else { throw .notFound("group \(id)") }
            return ("group", id)
        case .putKey(let key, let secrets):
            var stored = key
            stored.lastUsedAt = nil
            stored.lastUsedAddress = nil
            let body = try encode(stored)
            if let secrets {
                try db.query("""
                    INSERT INTO keys (id, user_id, state, digest, previous_digest, previous_until, body) VALUES (?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, state = excluded.state, digest = excluded.digest,
                      previous_digest = excluded.previous_digest, previous_until = excluded.previous_until, body = excluded.body
                    WHERE keys.state <> 'revoked'
                    """,
                    [.text(key.id), .text(key.userID), .text(key.state.rawValue), .text(secrets.current.hex),
                     secrets.previous.map { .text($0.hex) } ?? .null, secrets.previousUntil.map { .real($0.timeIntervalSince1970) } ?? .null,
                     .text(body)])
                // A revoked key is final, even against a writer that read it before the revocation.
                guard db.changes == 1 else { throw .conflict(StoreError.keyRevoked) }
            } else {
                try db.query("UPDATE keys SET user_id = ?, state = ?, body = ? WHERE id = ? AND state <> 'revoked'",
                             [.text(key.userID), .text(key.state.rawValue), .text(body), .text(key.id)])
                if db.changes != 1 {
                    var exists = false
                    try db.query("SELECT 1 FROM keys WHERE id = ?", [.text(key.id)]) { _ throws(StoreError) in exists = true }
                    throw exists ? .conflict(StoreError.keyRevoked) : .notFound("key \(key.id)")
                }
                // A revoked key never works again, not even through a rotation's old secret.
                if key.state == .revoked {
                    try db.query("UPDATE keys SET previous_digest = NULL, previous_until = NULL WHERE id = ?", [.text(key.id)])
                }
            }
            return ("key", key.id)
        case .deleteKey(let id):
            try db.query("DELETE FROM keys WHERE id = ?", [.text(id)])
            guard db.changes == 1 else { throw .notFound("key \(id)") }
            return ("key", id)
        }
    }

    public func recordUses(_ uses: [KeyUse]) throws(StoreError) {
        guard !uses.isEmpty else { return }
        try with { db throws(StoreError) in
            try db.transaction { () throws(StoreError) in
                for use in uses {
                    try db.query("UPDATE keys SET last_used_at = ?, last_used_address = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)",
                                 [.real(use.time.timeIntervalSince1970), .text(use.address), .text(use.keyID), .real(use.time.timeIntervalSince1970)])
                }
            }
        }
    }

    // MARK: - Encoding

    private static func encode<T: Encodable>(_ value: T) throws(StoreError) -> String { try StoreJSON.encode(value) }

    private static func decode<T: Decodable>(_ text: String) throws(StoreError) -> T { try StoreJSON.decode(text) }

    private static func one<T: Decodable>(_ db: SQLiteConnection, _ sql: String, _ bindings: [SQLiteConnection.Value]) throws(StoreError) -> T? {
        var found: T?
        try db.query(sql, bindings) { row throws(StoreError) in found = try decode(row.text(0) ?? "") }
        return found
    }

    private static func all<T: Decodable>(_ db: SQLiteConnection, _ sql: String) throws(StoreError) -> [T] {
        var items: [T] = []
        try db.query(sql) { row throws(StoreError) in items.append(try decode(row.text(0) ?? "")) }
        return items
    }

    private static func key(_ row: SQLiteConnection.Row) throws(StoreError) -> APIKey {
        var key: APIKey = try decode(row.text(0) ?? "")
        key.lastUsedAt = row.real(1).map { Date(timeIntervalSince1970: $0) }
        key.lastUsedAddress = row.text(2)
        return key
    }
}
