// SPDX-License-Identifier: Apache-2.0
public import Foundation

/// One line of the audit trail. Kept when its target is deleted.
public struct AuditEntry: Codable, Equatable, Sendable {
    /// Position in the trail (assigned by the store).
    public var seq: Int64
    public var time: Date
    /// Who did it: an admin key's id, or `bootstrap`.
    public var actor: String
    /// e.g. `key.create`, `key.revoke`, `user.disable`.
    public var action: String
    public var targetType: String
    public var targetID: String
    /// What changed, as JSON (never a secret).
    public var change: String

    public init(seq: Int64 = 0, time: Date, actor: String, action: String, targetType: String, targetID: String, change: String = "{}") {
        self.seq = seq
        self.time = time
        self.actor = actor
        self.action = action
        self.targetType = targetType
        self.targetID = targetID
        self.change = change
    }
}

/// A key as found by its secret's digest.
public struct KeyMatch: Equatable, Sendable {
    public var key: APIKey
    /// The stored digest that matched (current or, during a rotation's grace, the previous one).
    public var digest: KeyDigest
    /// True when the previous secret of a rotated key matched, inside its grace period.
    public var viaPreviousSecret: Bool

    public init(key: APIKey, digest: KeyDigest, viaPreviousSecret: Bool) {
        self.key = key
        self.digest = digest
        self.viaPreviousSecret = viaPreviousSecret
    }
}

/// A secret's digest and, after a rotation, the previous one with the end of its grace period.
public struct KeySecrets: Equatable, Sendable {
    public var current: KeyDigest
    public var previous: KeyDigest?
    public var previousUntil: Date?

    public init(current: KeyDigest, previous: KeyDigest? = nil, previousUntil: Date? = nil) {
        self.current = current
        self.previous = previous
        self.previousUntil = previousUntil
    }
}

/// One change to the identity data, applied atomically with its audit entry.
public enum IdentityChange: Sendable {
    case putUser(User)
    case deleteUser(id: String)
    case putGroup(PermissionGroup)
    case deleteGroup(id: String)
    /// Insert or update a key; `secrets` only when the secret is new (create, rotate).
    case putKey(APIKey, secrets: KeySecrets?)
    case deleteKey(id: String)
}

/// A use of a key at a handshake, written in batches (never one write per handshake).
public struct KeyUse: Equatable, Sendable {
    public var keyID: String
    public var time: Date
    public var address: String

    public init(keyID: String, time: Date, address: String) {
        self.keyID = keyID
        self.time = time
        self.address = address
    }
}

/// Filters and paging for key lists.
public struct KeyQuery: Equatable, Sendable {
    public var userID: String?
    public var state: KeyState?
    /// Opaque cursor from the previous page.
    public var after: String?
    public var limit: Int

    public init(userID: String? = nil, state: KeyState? = nil, after: String? = nil, limit: Int = 100) {
        self.userID = userID
        self.state = state
        self.after = after
        self.limit = limit
    }
}

/// Filters and paging for the audit trail (newest first).
public struct AuditQuery: Equatable, Sendable {
    public var targetID: String?
    public var actor: String?
    public var action: String?
    /// Entries with a smaller seq than this.
    public var before: Int64?
    public var limit: Int

    public init(targetID: String? = nil, actor: String? = nil, action: String? = nil, before: Int64? = nil, limit: Int = 100) {
        self.targetID = targetID
        self.actor = actor
        self.action = action
        self.before = before
        self.limit = limit
    }
}

/// A page of results and the cursor to the next one.
public struct Page<Item: Sendable>: Sendable {
    public var items: [Item]
    public var next: String?

    public init(items: [Item], next: String?) {
        self.items = items
        self.next = next
    }

    /// A page from up to `limit + 1` items read: an extra one only says that a next page exists,
    /// whose cursor `cursor` makes from the index of the last item kept.
    public init(reading read: [Item], limit: Int, cursor: (Int) -> String) {
        items = Array(read.prefix(limit))
        next = read.count > limit ? cursor(limit - 1) : nil
    }
}

/// What a store can fail with.
public enum StoreError: Error, Equatable, Sendable, CustomStringConvertible {
    case notFound(String)
    case conflict(String)
    /// The database cannot be reached or written (disk full, locked, gone).
    case unavailable(String)

    /// The conflict's message when a write meets a key revoked meanwhile (revocation is final).
    public static let keyRevoked = "key revoked: a revoked key cannot be changed"
    /// The conflict's message when a record changed since the writer read it (its version moved).
    public static let staleWrite = "stale write: the record changed since it was read"

    public var description: String {
        switch self {
        case .notFound(let m): return "not found: \(m)"
        case .conflict(let m): return "conflict: \(m)"
        case .unavailable(let m): return "store unavailable: \(m)"
        }
    }
}

extension IdentityStore {
    /// Applies `change` whatever the record's version (creates, and writers that read nothing).
    @discardableResult
    public func apply(_ change: IdentityChange, audit: AuditEntry) throws(StoreError) -> Int64 {
        try apply(change, audit: audit, ifVersion: nil)
    }
}

/// Where users, groups, keys and the audit trail live: SQLite on one node, PostgreSQL on many.
/// Calls block (they may fsync): run them off the event loops.
public protocol IdentityStore: Sendable {
    func user(_ id: String) throws(StoreError) -> User?
    func users() throws(StoreError) -> [User]
    func group(_ id: String) throws(StoreError) -> PermissionGroup?
    func groups() throws(StoreError) -> [PermissionGroup]
    func key(_ id: String) throws(StoreError) -> APIKey?
    func keys(_ query: KeyQuery) throws(StoreError) -> Page<APIKey>
    /// The key whose current secret, or previous secret still in its grace period at `now`, has `digest`.
    func key(digest: KeyDigest, now: Date) throws(StoreError) -> KeyMatch?
    /// Every key's secrets (digests and grace), for the in-memory cache handshakes use.
    func allKeySecrets() throws(StoreError) -> [String: KeySecrets]
    /// One key's secrets (after a change to that key).
    func keySecrets(of keyID: String) throws(StoreError) -> KeySecrets?
    /// The digest of a key's current secret (a rotation keeps it as the previous one).
    func currentDigest(of keyID: String) throws(StoreError) -> KeyDigest?
    /// A record's version: the seq of its newest audit entry (every change writes one), 0 if none.
    func version(of id: String) throws(StoreError) -> Int64
    /// Applies `change` and appends `audit` in one durable transaction; returns the audit seq.
    /// With `ifVersion`, only while the changed record's version is still that one (read it before
    /// reading the record); otherwise nothing is written and `.conflict(StoreError.staleWrite)` is
    /// thrown, so a read-check-write never overwrites a change it did not see.
    @discardableResult
    func apply(_ change: IdentityChange, audit: AuditEntry, ifVersion: Int64?) throws(StoreError) -> Int64
    func audit(_ query: AuditQuery) throws(StoreError) -> Page<AuditEntry>
    /// Records last-used times and addresses (a batch).
    func recordUses(_ uses: [KeyUse]) throws(StoreError)
    /// True when no user exists yet (first start).
    func isEmpty() throws(StoreError) -> Bool
}
