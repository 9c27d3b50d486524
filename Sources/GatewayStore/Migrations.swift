// SPDX-License-Identifier: Apache-2.0

/// Schema versions, in order. A migration is never edited once released: add the next one.
enum Migrations {
    static let sqlite: [String] = [
        // 1: users, groups, keys, audit trail, change feed.
        """
        CREATE TABLE users (id TEXT PRIMARY KEY, body TEXT NOT NULL);
        CREATE TABLE groups (id TEXT PRIMARY KEY, body TEXT NOT NULL);
        CREATE TABLE keys (
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            state TEXT NOT NULL,
            digest TEXT NOT NULL UNIQUE,
            previous_digest TEXT,
            previous_until REAL,
            last_used_at REAL,
            last_used_address TEXT,
            body TEXT NOT NULL
        );
        CREATE INDEX keys_user ON keys (user_id);
        CREATE INDEX keys_previous ON keys (previous_digest);
        CREATE TABLE audit (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            time REAL NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            target_type TEXT NOT NULL,
            target_id TEXT NOT NULL,
            change TEXT NOT NULL
        );
        CREATE INDEX audit_target ON audit (target_id);
        CREATE TABLE changes (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            entity TEXT NOT NULL,
            id TEXT NOT NULL,
            time REAL NOT NULL
        );
        """,
    ]

    /// The same schema on PostgreSQL. Times are seconds since 1970 as DOUBLE PRECISION, like
    /// SQLite's REAL, so both stores round-trip a `Date` alike. `pos` stands in for SQLite's rowid
    /// (insertion order, the key list's cursor; an upsert keeps it).
    static let postgres: [String] = [
        // 1: users, groups, keys, audit trail, change feed (its seq is what NOTIFY announces).
        """
        CREATE TABLE users (
            id TEXT PRIMARY KEY,
            pos BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
            body TEXT NOT NULL
        );
        CREATE TABLE groups (
            id TEXT PRIMARY KEY,
            pos BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
            body TEXT NOT NULL
        );
        CREATE TABLE keys (
            id TEXT PRIMARY KEY,
            pos BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
            user_id TEXT NOT NULL,
            state TEXT NOT NULL,
            digest TEXT NOT NULL UNIQUE,
            previous_digest TEXT,
            previous_until DOUBLE PRECISION,
            last_used_at DOUBLE PRECISION,
            last_used_address TEXT,
            body TEXT NOT NULL
        );
        CREATE INDEX keys_user ON keys (user_id);
        CREATE INDEX keys_previous ON keys (previous_digest);
        CREATE TABLE audit (
            seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            time DOUBLE PRECISION NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            target_type TEXT NOT NULL,
            target_id TEXT NOT NULL,
            change TEXT NOT NULL
        );
        CREATE INDEX audit_target ON audit (target_id);
        CREATE TABLE changes (
            seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            entity TEXT NOT NULL,
            id TEXT NOT NULL,
            time DOUBLE PRECISION NOT NULL
        );
        """,
        // 2: the cluster. Which node made a change and its audit entry (a receipt names it);
        // publishes (the notification carries only their seq: any payload size); the nodes and
        // their heartbeats (database time, so node clocks do not matter); what each node did
        // with a change; and each node's live sessions, for listings and per-key caps.
        """
        ALTER TABLE changes ADD COLUMN node TEXT, ADD COLUMN audit_seq BIGINT;
        CREATE TABLE publishes (
            seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            node TEXT NOT NULL,
            channel TEXT NOT NULL,
            property TEXT,
            data TEXT NOT NULL,
            time DOUBLE PRECISION NOT NULL
        );
        CREATE TABLE nodes (
            name TEXT PRIMARY KEY,
            instance TEXT NOT NULL,
            started_at DOUBLE PRECISION NOT NULL,
            heartbeat_at DOUBLE PRECISION NOT NULL,
            applied_seq BIGINT NOT NULL DEFAULT 0
        );
        CREATE TABLE change_receipts (
            audit_seq BIGINT NOT NULL,
            node TEXT NOT NULL,
            ended INTEGER NOT NULL,
            time DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (audit_seq, node)
        );
        CREATE TABLE live_sessions (
            node TEXT NOT NULL,
            id TEXT NOT NULL,
            key_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            body TEXT NOT NULL,
            PRIMARY KEY (node, id)
        );
        CREATE INDEX live_sessions_key ON live_sessions (key_id);
        """,
        // 3: each publish records the change feed's head when it was written; a node delivers it
        // only after applying that change (a publish made after a revocation never reaches the
        // revoked key's sessions, whatever order a node reads the two in). Rows of older nodes: 0.
        """
        ALTER TABLE publishes ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;
        """,
    ]
}
