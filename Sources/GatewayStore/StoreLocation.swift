// SPDX-License-Identifier: Apache-2.0
import Foundation
public import GatewayCore

/// Where the identity store lives, as named by `--db` / `DOORMAN_DB`: a `postgres://` (or
/// `postgresql://`) URL selects PostgreSQL; anything else (`sqlite:PATH`, `sqlite://PATH`, a
/// plain path) is a SQLite file, the default.
public enum StoreLocation: Equatable, Sendable, CustomStringConvertible {
    case sqlite(path: String)
    case postgres(url: String)

    public init(_ text: String) {
        self = PostgresStore.handles(text) ? .postgres(url: text) : .sqlite(path: SQLiteStore.path(fromURL: text))
    }

    /// Opens (and migrates) the store.
    /// - Parameter connections: PostgreSQL connections to keep (one per thread that calls the store).
    /// - Throws: `StoreError.unavailable` when it cannot be opened, reached or migrated.
    /// - Parameter node: this node's name in a cluster (recorded with each change it makes).
    public func makeStore(connections: Int, node: String? = nil) throws(StoreError) -> any IdentityStore {
        switch self {
        case .sqlite(let path): return try SQLiteStore(path: path)
        case .postgres(let url): return try PostgresStore(url: url, connections: connections, node: node)
        }
    }

    /// For logs: the path, or the URL with any password replaced by `***`.
    public var description: String {
        switch self {
        case .sqlite(let path): return "sqlite:\(path)"
        case .postgres(let url): return Self.redacting(url)
        }
    }

    /// `postgres://user:secret@host/db?password=secret` → `postgres://user:***@host/db?password=***`.
    static func redacting(_ url: String) -> String {
        guard let scheme = url.range(of: "://") else { return url }
        var head = String(url[..<scheme.upperBound])
        var rest = Substring(url[scheme.upperBound...])
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        if let at = authority.lastIndex(of: "@"), let colon = authority[..<at].firstIndex(of: ":") {
            head += authority[...colon] + "***"
            rest = rest[at...]
        }
        let parts = rest.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { return head + rest }
        let query = parts[1].split(separator: "&", omittingEmptySubsequences: false).map { item in
            item.lowercased().hasPrefix("password=") ? "password=***" : String(item)
        }
        return head + parts[0] + "?" + query.joined(separator: "&")
    }
}
