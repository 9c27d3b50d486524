// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatewayCore
import Synchronization

/// Everything a handshake needs, in memory: users, groups, keys and their digests. Loaded at
/// start and updated right after every committed change, before that change's effects reach
/// the loops — so a handshake on a loop never sees an older state than that loop's sessions.
final class IdentityCache: Sendable {
    struct Snapshot {
        var users: [String: User] = [:]
        var groups: [String: PermissionGroup] = [:]
        var keys: [String: APIKey] = [:]
        var secrets: [String: KeySecrets] = [:]
        /// Current and in-grace previous digests → key id.
        var byDigest: [KeyDigest: String] = [:]
        /// Bumped by every load and change: what was derived from an older generation (a
        /// session's welcome text) may be stale.
        var generation: UInt64 = 0
        /// Changes committed but not read back (the store failed the refresh): the keys they
        /// touch are unusable here until a refresh of the same record, or a full load, succeeds.
        var unconfirmed: [Record: Unconfirmed] = [:]
    }

    /// A record a change wrote.
    enum Record: Hashable {
        case user(String)
        case group(String)
        case key(String)
    }

    /// The keys a change touched whose state this node cannot vouch for, and why their sessions end.
    struct Unconfirmed {
        var keyIDs: Set<String>
        var reason: SessionEndReason
    }

    /// A key found by its secret, with what its rights depend on.
    struct Resolved {
        var key: APIKey
        var user: User
        var groups: [String: PermissionGroup]
        /// The digest presented: the key's current one, or its previous one during a rotation's grace.
        var digest: KeyDigest
        var viaPreviousSecret: Bool
        var previousUntil: Date?
        /// The cache generation this was read from.
        var generation: UInt64
    }

    private let state = Mutex(Snapshot())
    /// Held across a refresh's reads and its write: two threads refreshing (a pool thread after
    /// its own change, the cluster's feed thread) cannot write what they read in the other order.
    private let refreshing = Mutex(())

    /// Loads everything from `store`.
    func load(from store: any IdentityStore) throws(StoreError) {
        var snapshot = Snapshot()
        for user in try store.users() { snapshot.users[user.id] = user }
        for group in try store.groups() { snapshot.groups[group.id] = group }
        var after: String?
        repeat {
            let page = try store.keys(KeyQuery(after: after, limit: 1000))
            for key in page.items { snapshot.keys[key.id] = key }
            after = page.next
        } while after != nil
        snapshot.secrets = try store.allKeySecrets()
        Self.index(&snapshot)
        state.withLock { current in
            snapshot.generation = current.generation &+ 1
            current = snapshot
        }
    }

    private static func index(_ s: inout Snapshot) {
        s.byDigest = [:]
        for (id, secrets) in s.secrets {
            s.byDigest[secrets.current] = id
            if let previous = secrets.previous { s.byDigest[previous] = id }
        }
    }

    /// Re-reads what `change` touched from `store`: the stored record, not the change's copy, so
    /// that on many nodes whoever refreshes last leaves the newest state (two nodes may refresh
    /// after one another's changes in either order).
    ///
    /// Fails closed: if the store cannot be read, the keys the change touched become unusable on
    /// this node (handshakes 503, sessions end with the change's reason) until a refresh of the
    /// same record, or a full load, succeeds — never served from the entry the change made stale.
    func refresh(after change: IdentityChange, from store: any IdentityStore) throws(StoreError) {
        try refreshing.withLock { _ throws(StoreError) in
            do throws(StoreError) {
                try refreshLocked(after: change, from: store)
                if let record = Self.record(of: change) { mutate { $0.unconfirmed[record] = nil } }
            } catch {
                if let record = Self.record(of: change) {
                    mutate { s in s.unconfirmed[record] = Self.unconfirmed(by: change, in: s) }
                }
                throw error
            }
        }
    }

    /// The record a change is read back from (deletions read nothing).
    private static func record(of change: IdentityChange) -> Record? {
        switch change {
        case .putUser(let user): return .user(user.id)
        case .putGroup(let group): return .group(group.id)
        case .putKey(let key, _): return .key(key.id)
        case .deleteUser, .deleteGroup, .deleteKey: return nil
        }
    }

    /// The keys a change may have changed, and the reason their sessions end: the change's own
    /// (revoked, suspended, user disabled) or, for an edit, that this node cannot vouch for them.
    private static func unconfirmed(by change: IdentityChange, in s: Snapshot) -> Unconfirmed {
        switch change {
        case .putKey(let key, _):
            let reason: SessionEndReason = key.state == .revoked ? .keyRevoked : key.state == .suspended ? .keySuspended : .feedLost
            return Unconfirmed(keyIDs: [key.id], reason: reason)
        case .putUser(let user):
            return Unconfirmed(keyIDs: Set(s.keys.values.filter { $0.userID == user.id }.map(\.id)), reason: user.state == .disabled ? .userDisabled : .feedLost)
        case .putGroup(let group):
            let holders = Set(s.users.values.filter { $0.groups.contains(group.id) }.map(\.id))
            return Unconfirmed(keyIDs: Set(s.keys.values.filter { holders.contains($0.userID) || $0.groupID == group.id }.map(\.id)), reason: .feedLost)
        case .deleteUser, .deleteGroup, .deleteKey:
            return Unconfirmed(keyIDs: [], reason: .feedLost)
        }
    }

    /// Why this key's sessions must end now, if a change to it was not read back.
    func unconfirmedReason(keyID: String) -> SessionEndReason? {
        state.withLock { s in Self.unconfirmedReason(keyID, s) }
    }

    private static func unconfirmedReason(_ keyID: String, _ s: Snapshot) -> SessionEndReason? {
        // A revocation's reason wins over a suspension's, which wins over "cannot vouch".
        let reasons = s.unconfirmed.values.filter { $0.keyIDs.contains(keyID) }.map(\.reason)
        return [.keyRevoked, .keySuspended, .userDisabled, .feedLost].first { reasons.contains($0) }
    }

    /// True when `digest` names a key that is unusable until a refresh succeeds (a handshake or
    /// call gets 503, not "unknown key").
    func isUnconfirmed(_ digest: KeyDigest) -> Bool {
        state.withLock { s in s.byDigest[digest].map { Self.unconfirmedReason($0, s) != nil } ?? false }
    }

    private func refreshLocked(after change: IdentityChange, from store: any IdentityStore) throws(StoreError) {
        switch change {
        case .putUser(let user):
            let stored = try store.user(user.id)
            mutate { $0.users[user.id] = stored }
        case .deleteUser(let id):
            mutate { $0.users[id] = nil }
        case .putGroup(let group):
            let stored = try store.group(group.id)
            mutate { $0.groups[group.id] = stored }
        case .deleteGroup(let id):
            mutate { $0.groups[id] = nil }
        case .putKey(let key, _):
            let stored = try store.key(key.id)
            let secrets = try store.keySecrets(of: key.id)
            mutate { s in
                if let old = s.secrets[key.id] {
                    s.byDigest[old.current] = nil
                    if let previous = old.previous { s.byDigest[previous] = nil }
                }
                s.keys[key.id] = stored
                s.secrets[key.id] = secrets
                if let secrets {
                    s.byDigest[secrets.current] = key.id
                    if let previous = secrets.previous { s.byDigest[previous] = key.id }
                }
            }
        case .deleteKey(let id):
            mutate { s in
                if let old = s.secrets.removeValue(forKey: id) {
                    s.byDigest[old.current] = nil
                    if let previous = old.previous { s.byDigest[previous] = nil }
                }
                s.keys[id] = nil
            }
        }
    }

    /// Applies a change and bumps the generation under the same lock, so nothing can read the
    /// new data with the old generation (a cached welcome would outlive the change).
    private func mutate(_ body: (inout Snapshot) -> Void) {
        state.withLock { s in
            body(&s)
            s.generation &+= 1
        }
    }

    /// The key behind `digest`, confirmed in constant time; a previous secret only inside its grace.
    func resolve(_ digest: KeyDigest, now: Date) -> Resolved? {
        state.withLock { s -> Resolved? in
            guard let id = s.byDigest[digest], let key = s.keys[id], let secrets = s.secrets[id], let user = s.users[key.userID] else { return nil }
            guard s.unconfirmed.isEmpty || Self.unconfirmedReason(id, s) == nil else { return nil }
            if secrets.current.constantTimeEquals(digest) {
                return Resolved(key: key, user: user, groups: s.groups, digest: digest, viaPreviousSecret: false, previousUntil: nil, generation: s.generation)
            }
            guard let previous = secrets.previous, previous.constantTimeEquals(digest), let until = secrets.previousUntil, until > now else { return nil }
            return Resolved(key: key, user: user, groups: s.groups, digest: digest, viaPreviousSecret: true, previousUntil: until, generation: s.generation)
        }
    }

    /// The current key, user and groups for a key id (rights recomputation).
    func current(keyID: String) -> (APIKey, User, [String: PermissionGroup], KeySecrets)? {
        state.withLock { s in
            guard let key = s.keys[keyID], let user = s.users[key.userID], let secrets = s.secrets[keyID] else { return nil }
            return (key, user, s.groups, secrets)
        }
    }
}

/// A store that tells the gateway about every committed change: whatever path made it (REST,
/// CLI, a future web page), the cache is updated and live sessions feel it.
final class NotifyingStore: IdentityStore {
    private let base: any IdentityStore
    private let observer: @Sendable (IdentityChange, Int64) -> Void

    /// `observer` gets each committed change with its audit seq.
    init(_ base: any IdentityStore, observer: @escaping @Sendable (IdentityChange, Int64) -> Void) {
        self.base = base
        self.observer = observer
    }

    func user(_ id: String) throws(StoreError) -> User? { try base.user(id) }
    func users() throws(StoreError) -> [User] { try base.users() }
    func group(_ id: String) throws(StoreError) -> PermissionGroup? { try base.group(id) }
    func groups() throws(StoreError) -> [PermissionGroup] { try base.groups() }
    func key(_ id: String) throws(StoreError) -> APIKey? { try base.key(id) }
    func keys(_ query: KeyQuery) throws(StoreError) -> Page<APIKey> { try base.keys(query) }
    func key(digest: KeyDigest, now: Date) throws(StoreError) -> KeyMatch? { try base.key(digest: digest, now: now) }
    func allKeySecrets() throws(StoreError) -> [String: KeySecrets] { try base.allKeySecrets() }
    func keySecrets(of keyID: String) throws(StoreError) -> KeySecrets? { try base.keySecrets(of: keyID) }
    func currentDigest(of keyID: String) throws(StoreError) -> KeyDigest? { try base.currentDigest(of: keyID) }
    func audit(_ query: AuditQuery) throws(StoreError) -> Page<AuditEntry> { try base.audit(query) }
    func recordUses(_ uses: [KeyUse]) throws(StoreError) { try base.recordUses(uses) }
    func isEmpty() throws(StoreError) -> Bool { try base.isEmpty() }
    func version(of id: String) throws(StoreError) -> Int64 { try base.version(of: id) }

    @discardableResult
    func apply(_ change: IdentityChange, audit: AuditEntry, ifVersion: Int64?) throws(StoreError) -> Int64 {
        let seq = try base.apply(change, audit: audit, ifVersion: ifVersion)
        observer(change, seq)   // after the commit: the change is durable
        return seq
    }
}
