// SPDX-License-Identifier: Apache-2.0
import CLibPQ
import Foundation
package import GatewayCore
#if canImport(Glibc)
import Glibc
#endif

/// A thin wrapper over one libpq `PGconn`: parameterized queries (`PQexecParams`) with text
/// parameters and text results, libpq and SQLSTATE errors mapped to `StoreError`.
///
/// Messages never carry a parameter value, a password or a server `DETAIL` (a unique violation's
/// detail quotes the row's values): only libpq's own connection message and the server's
/// primary message.
///
/// `@unchecked Sendable`: a `PGconn` must not be used by two threads at once; `PostgresStore`
/// keeps each connection inside a `Mutex` slot, and tests use theirs from one task.
package final class PostgresConnection: @unchecked Sendable {
    private let conn: OpaquePointer

    /// Opens a connection. `url` is a libpq connection URI (`postgres://user@host:port/db`) or
    /// key/value string; our defaults (a connect timeout, the application name, `options`) come
    /// first so the URL can override them.
    /// - Throws: `StoreError.unavailable` when the server cannot be reached or refuses us.
    package init(url: String, connectTimeout: Int = 10, options: [(String, String)] = []) throws(StoreError) {
        let settings = Self.defaults + options
        let keywords = ["connect_timeout", "application_name"] + settings.map(\.0) + ["dbname"]
        let values = [String(connectTimeout), "doorman"] + settings.map(\.1) + [url]
        let opened: OpaquePointer? = withCStrings(keywords) { k in
            withCStrings(values) { v in PQconnectdbParams(k, v, 1) }
        }
        guard let opened else { throw .unavailable("postgres: out of memory") }
        conn = opened
        guard PQstatus(conn) == CONNECTION_OK else {
            // No PQfinish here: every stored property is set, so deinit runs and finishes it.
            throw .unavailable("postgres: cannot connect: \(Self.scrub(Self.connectionMessage(conn), secretsOf: url))")
        }
        // The server's NOTICEs ("relation … already exists, skipping") would go to stderr.
        PQsetNoticeProcessor(conn, { _, _ in }, nil)
    }

    deinit { PQfinish(conn) }

    /// Every connection notices a vanished server within seconds (not at the kernel's
    /// retransmission timeout, about 15 minutes), and the server ends what would hold others up:
    /// a statement running 15 s, a lock awaited 10 s (the global advisory locks of writes), a
    /// transaction left open 15 s by a frozen or partitioned node.
    static let defaults = [
        ("keepalives", "1"), ("keepalives_idle", "5"), ("keepalives_interval", "2"), ("keepalives_count", "2"),
        ("tcp_user_timeout", "5000"),
        ("options", "-c statement_timeout=15000 -c lock_timeout=10000 -c idle_in_transaction_session_timeout=15000"),
    ]

    /// libpq may quote a piece of a malformed URL in its message, the password too: masked.
    static func scrub(_ message: String, secretsOf url: String) -> String {
        var secrets: [String] = []
        if let scheme = url.range(of: "://") {
            let rest = url[scheme.upperBound...]
            let authority = rest[..<(rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex)]
            if let at = authority.lastIndex(of: "@"), let colon = authority[..<at].firstIndex(of: ":") {
                secrets.append(String(authority[authority.index(after: colon)..<at]))
            }
        }
        for item in url.split(whereSeparator: { $0 == "?" || $0 == "&" || $0 == " " }) where item.lowercased().hasPrefix("password=") {
            secrets.append(String(item.dropFirst("password=".count)))
        }
        var text = message
        for secret in secrets where !secret.isEmpty {
            for form in Set([secret, secret.removingPercentEncoding ?? secret]) where !form.isEmpty {
                text = text.replacingOccurrences(of: form, with: "***")
            }
        }
        return text
    }

    /// True while libpq believes the connection is up (a dead server shows only after a call fails).
    package var isConnected: Bool { PQstatus(conn) == CONNECTION_OK }

    /// Reads whatever the server sent while the connection sat idle (without blocking) and tells
    /// whether it is still usable: a server that restarted has closed it, and only a read shows that.
    package func isAlive() -> Bool {
        // A server that goes away sends an error, then the end of the stream: two reads.
        for _ in 0..<4 {
            var pfd = pollfd(fd: PQsocket(conn), events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 0) > 0 else { break }
            guard PQconsumeInput(conn) == 1, PQstatus(conn) == CONNECTION_OK else { return false }
        }
        return PQstatus(conn) == CONNECTION_OK
    }

    /// True when no transaction is open (one left open by a failed call must be rolled back).
    package var isIdle: Bool { PQtransactionStatus(conn) == PQTRANS_IDLE }

    /// Runs one or more statements without parameters or results (`PQexec`: migrations, BEGIN).
    package func execute(_ sql: String) throws(StoreError) {
        let result = PQexec(conn, sql)
        defer { PQclear(result) }
        try check(result)
    }

    /// Runs one parameterized statement; parameters travel as text, apart from the SQL, and the
    /// server infers their types from where they stand.
    @discardableResult
    package func query(_ sql: String, _ parameters: [String?] = []) throws(StoreError) -> PostgresRows {
        let result: OpaquePointer? = withOptionalCStrings(parameters) { values in
            PQexecParams(conn, sql, Int32(parameters.count), nil, values, nil, nil, 0)
        }
        defer { PQclear(result) }
        try check(result)
        return PostgresRows(result!)
    }

    /// Runs `body` on the connection kept in `slot`: opened on first use, reopened when the server
    /// has closed it, with a transaction that a failed call left open rolled back first.
    package static func using<T>(_ slot: inout PostgresConnection?, url: String, connectTimeout: Int = 10,
                                 _ body: (PostgresConnection) throws(StoreError) -> T) throws(StoreError) -> T {
        if slot?.isAlive() != true {
            slot = nil
            slot = try PostgresConnection(url: url, connectTimeout: connectTimeout)
        }
        let db = slot!
        if !db.isIdle { try db.execute("ROLLBACK") }
        return try body(db)
    }

    /// A PostgreSQL text-array literal (`{"a","b",NULL}`), each element quoted and escaped.
    package static func textArray(_ items: some Collection<String?>) -> String {
        var text = "{"
        for (i, element) in items.enumerated() {
            if i > 0 { text += "," }
            guard let item = element else { text += "NULL"; continue }
            text += "\""
            for c in item.unicodeScalars {
                if c == "\"" || c == "\\" { text += "\\" }
                text.unicodeScalars.append(c)
            }
            text += "\""
        }
        return text + "}"
    }

    /// Runs `body` between BEGIN and COMMIT, rolling back on error.
    package func transaction<T>(_ body: () throws(StoreError) -> T) throws(StoreError) -> T {
        try execute("BEGIN")
        do {
            let value = try body()
            try execute("COMMIT")
            return value
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    // MARK: - LISTEN/NOTIFY

    /// One notification received on a channel this connection LISTENs to.
    package struct Notification: Equatable, Sendable {
        package var channel: String
        package var payload: String
        /// The notifying server process.
        package var processID: Int32
    }

    /// Notifications already received, without waiting (after a query, or after `nextNotification`).
    package func pendingNotifications() throws(StoreError) -> [Notification] {
        guard PQconsumeInput(conn) == 1 else { throw .unavailable("postgres: \(Self.connectionMessage(conn))") }
        var found: [Notification] = []
        while let notify = PQnotifies(conn) {
            found.append(Notification(channel: String(cString: notify.pointee.relname),
                                      payload: String(cString: notify.pointee.extra), processID: notify.pointee.be_pid))
            PQfreemem(notify)
        }
        return found
    }

    /// Waits up to `timeout` seconds for a notification (reading from the socket with poll(2)).
    /// Returns nil on timeout.
    package func nextNotification(timeout: Double) throws(StoreError) -> Notification? {
        // Monotonic: a wall clock stepped back must not stretch the wait.
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(max(0, timeout) * 1e9)
        while true {
            guard PQconsumeInput(conn) == 1 else { throw .unavailable("postgres: \(Self.connectionMessage(conn))") }
            if let notify = PQnotifies(conn) {
                defer { PQfreemem(notify) }
                return Notification(channel: String(cString: notify.pointee.relname),
                                    payload: String(cString: notify.pointee.extra), processID: notify.pointee.be_pid)
            }
            let now = DispatchTime.now().uptimeNanoseconds
            guard now < deadline else { return nil }
            let remaining = Double(deadline - now) / 1e9
            var pfd = pollfd(fd: PQsocket(conn), events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, Int32(min(remaining * 1000, 60_000).rounded(.up)))
            if ready < 0 && errno != EINTR { throw .unavailable("postgres: poll: errno \(errno)") }
        }
    }

    // MARK: - Errors

    /// SQLSTATE class 23 (integrity constraint violation): the caller's conflict, not an outage.
    private static let constraintViolationClass = "23"

    private func check(_ result: OpaquePointer?) throws(StoreError) {
        guard let result else { throw .unavailable("postgres: \(Self.connectionMessage(conn))") }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            return
        default:
            let state = Self.field(result, "C") ?? ""
            let message = Self.field(result, "M") ?? Self.connectionMessage(conn)
            if state.hasPrefix(Self.constraintViolationClass) { throw .conflict(message) }
            if !isConnected { throw .unavailable("postgres: connection lost: \(message)") }
            throw .unavailable("postgres: \(message)\(state.isEmpty ? "" : " (SQLSTATE \(state))")")
        }
    }

    /// One diagnostic field of an error result: `C` (PG_DIAG_SQLSTATE) or `M` (PG_DIAG_MESSAGE_PRIMARY).
    private static func field(_ result: OpaquePointer, _ code: Unicode.Scalar) -> String? {
        PQresultErrorField(result, Int32(code.value)).map { String(cString: $0) }
    }

    /// libpq's last message on this connection, on one line.
    private static func connectionMessage(_ conn: OpaquePointer) -> String {
        let text = PQerrorMessage(conn).map { String(cString: $0) } ?? ""
        let line = text.split(whereSeparator: \.isNewline).joined(separator: " ")
        return line.isEmpty ? "unknown error" : line
    }
}

/// The text rows of one result, copied out of the `PGresult` (which is cleared at once).
package struct PostgresRows: Sendable {
    package let rows: [[String?]]
    /// Rows changed by an INSERT/UPDATE/DELETE (`PQcmdTuples`), 0 otherwise.
    package let changed: Int

    init(_ result: OpaquePointer) {
        let count = PQntuples(result)
        let fields = PQnfields(result)
        rows = (0..<count).map { row in
            (0..<fields).map { field in
                PQgetisnull(result, row, field) == 1 ? nil : String(cString: PQgetvalue(result, row, field))
            }
        }
        changed = Int(String(cString: PQcmdTuples(result))) ?? 0
    }

    /// The first column of the first row.
    package var scalar: String? { rows.first?.first ?? nil }
}

/// Calls `body` with a NULL-terminated array of C strings that live for the call.
private func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    withOptionalCStrings(strings.map { Optional($0) }, body)
}

/// As `withCStrings`, with nil entries passed as NULL (SQL NULL parameters).
private func withOptionalCStrings<R>(_ strings: [String?], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    let copies: [UnsafeMutablePointer<CChar>?] = strings.map { $0.map { strdup($0)! } }
    defer { for copy in copies { free(copy) } }
    let pointers = copies.map { UnsafePointer($0) } + [nil]
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}
