// SPDX-License-Identifier: Apache-2.0
import CSQLite
import GatewayCore

/// A thin wrapper over one sqlite3 handle, opened with SQLITE_OPEN_NOMUTEX.
///
/// `@unchecked Sendable`: it is only ever used inside `SQLiteStore`'s Mutex, which serialises
/// every call; SQLite itself then needs no locking of its own.
final class SQLiteConnection: @unchecked Sendable {
    private var db: OpaquePointer?
    private var statements: [String: OpaquePointer] = [:]

    init(path: String) throws(StoreError) {
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        guard sqlite3_open_v2(path, &db, flags, nil) == SQLITE_OK else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close(db)
            throw .unavailable("cannot open \(path): \(message)")
        }
        sqlite3_busy_timeout(db, 5000)
    }

    deinit {
        for (_, statement) in statements { sqlite3_finalize(statement) }
        sqlite3_close(db)
    }

    /// Runs one or more statements without results.
    func execute(_ sql: String) throws(StoreError) {
        var error: UnsafeMutablePointer<CChar>?
        guard sqlite3_exec(db, sql, nil, nil, &error) == SQLITE_OK else {
            let message = error.map { String(cString: $0) } ?? "unknown error"
            sqlite3_free(error)
            throw .unavailable(message)
        }
    }

    /// A value to bind.
    enum Value {
        case text(String)
        case int(Int64)
        case real(Double)
        case null
    }

    /// Runs a (cached) statement and calls `row` for each result row.
    func query(_ sql: String, _ bindings: [Value] = [], row: (Row) throws(StoreError) -> Void = { _ in }) throws(StoreError) {
        let statement = try prepare(sql)
        defer {
            sqlite3_reset(statement)
            sqlite3_clear_bindings(statement)
        }
        for (i, value) in bindings.enumerated() {
            let index = Int32(i + 1)
            switch value {
            case .text(let s): sqlite3_bind_text(statement, index, s, -1, SQLITE_TRANSIENT_PTR)
            case .int(let v): sqlite3_bind_int64(statement, index, v)
            case .real(let v): sqlite3_bind_double(statement, index, v)
            case .null: sqlite3_bind_null(statement, index)
            }
        }
        while true {
            let rc = sqlite3_step(statement)
            if rc == SQLITE_DONE { return }
            guard rc == SQLITE_ROW else {
                let message = String(cString: sqlite3_errmsg(db))
                if rc == SQLITE_CONSTRAINT { throw .conflict(message) }
                throw .unavailable(message)
            }
            try row(Row(statement: statement))
        }
    }

    /// Rows changed by the last statement.
    var changes: Int { Int(sqlite3_changes(db)) }

    /// Runs `body` in a transaction (BEGIN IMMEDIATE … COMMIT), rolling back on error.
    func transaction<T>(_ body: () throws(StoreError) -> T) throws(StoreError) -> T {
        try execute("BEGIN IMMEDIATE")
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    private func prepare(_ sql: String) throws(StoreError) -> OpaquePointer {
        if let cached = statements[sql] { return cached }
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(db, sql, -1, &statement, nil) == SQLITE_OK, let statement else {
            throw .unavailable("prepare failed: \(String(cString: sqlite3_errmsg(db))) in \(sql)")
        }
        statements[sql] = statement
        return statement
    }

    /// One result row.
    struct Row {
        let statement: OpaquePointer

        func text(_ column: Int32) -> String? {
            guard sqlite3_column_type(statement, column) != SQLITE_NULL, let p = sqlite3_column_text(statement, column) else { return nil }
            return String(cString: p)
        }

        func int(_ column: Int32) -> Int64 { sqlite3_column_int64(statement, column) }

        func real(_ column: Int32) -> Double? {
            sqlite3_column_type(statement, column) == SQLITE_NULL ? nil : sqlite3_column_double(statement, column)
        }
    }
}

/// SQLITE_TRANSIENT: SQLite copies the bound text before the call returns.
let SQLITE_TRANSIENT_PTR = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)
