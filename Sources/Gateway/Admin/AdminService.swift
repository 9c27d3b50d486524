// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatewayCore

/// Server policy for key expiry.
public struct KeyPolicy: Sendable, Equatable {
    /// Every key must have an expiry.
    public var requireExpiry = false
    /// Longest allowed lifetime from now, in seconds; nil = no cap.
    public var maxLifetime: Double?

    public init(requireExpiry: Bool = false, maxLifetime: Double? = nil) {
        self.requireExpiry = requireExpiry
        self.maxLifetime = maxLifetime
    }
}

// Inputs (JSON bodies, checked first by their `BodySchema`). Every field optional: creates check
// what they need, edits apply what is given.
struct UserInput: Codable {
    var name: String?
    var permissions: [String]?
    var groups: [String]?
    var properties: [String]?
}

struct GroupInput: Codable {
    var name: String?
    var description: String?
    var permissions: [String]?
    /// Given: replaces the group's limits (`.some(nil)` removes them).
    var limits: RateLimits??
}

struct KeyInput: Codable {
    var name: String?
    var description: String?
    var userID: String?
    var groupID: String?
    var scopes: [String]?
    var properties: [String]?
    var rules: [String]?
    var expiresAt: Date?
    /// Set true in an edit to remove the expiry (before `expiresAt` applies).
    var clearExpiry: Bool?
    /// Set true in an edit to remove the group (before `groupID` applies).
    var clearGroup: Bool?
    /// Given: replaces the key's limits (`.some(nil)` removes them).
    var limits: RateLimits??
}

struct RotateInput: Codable {
    /// Seconds the old secret keeps working (0 = none).
    var graceSeconds: Double?
}

struct ExplainInput: Codable {
    var action: String
    var property: String?
}

/// A key with its secret: returned by create and rotate, and only there.
struct IssuedKey: Codable {
    var key: APIKey
    var secret: String
}

/// Who makes an admin change: the key (the audit trail names it) and its user. Every write is
/// bounded by what this key may do itself (`Delegation`).
struct Actor {
    var key: APIKey
    var user: User
    var id: String { key.id }
}

/// The one service layer behind the REST API, the CLI and the admin page. Blocking (store calls):
/// run on a `BlockingPool`.
final class AdminService: Sendable {
    let store: any IdentityStore
    let policy: KeyPolicy
    let clock: @Sendable () -> Date

    init(store: any IdentityStore, policy: KeyPolicy, clock: @escaping @Sendable () -> Date = { Date() }) {
        self.store = store
        self.policy = policy
        self.clock = clock
    }

    // MARK: - Authentication

    /// The key and user behind a presented secret, for admin requests.
    func authenticate(_ text: String) throws(AdminError) -> (APIKey, User) {
        guard let secret = try? APIKeySecret(parsing: text) else {
            throw AdminError(status: 401, code: "malformed_key", message: "the key is not a Doorman key")
        }
        let now = clock()
        guard let match = try wrap({ () throws(StoreError) in try store.key(digest: KeyDigest(of: secret), now: now) }) else {
            throw AdminError(status: 401, code: "unknown_key", message: "no such key")
        }
        let key = match.key
        guard let user = try wrap({ () throws(StoreError) in try store.user(key.userID) }) else {
            throw AdminError(status: 401, code: "unknown_key", message: "the key's user no longer exists")
        }
        if let reason = SessionEndReason.refusing(key, of: user, at: now) {
            throw AdminError(status: 401, code: reason.handshakeRefusal, message: reason.message)
        }
        return (key, user)
    }

    /// 403 unless the key may perform `action` (an `admin:` permission).
    func authorize(_ key: APIKey, _ user: User, _ action: String) throws(AdminError) {
        let decision = Authorizer.decide(AccessRequest(action: action), key: key, user: user, groups: try groupTable(), now: clock())
        guard decision.allowed else {
            throw AdminError(status: 403, code: "forbidden", message: "this key may not \(action) (\(decision.reason.rawValue))")
        }
    }

    /// The actions of `actions` the key may perform (for `/v1/me`).
    func allowedActions(_ actions: [String], _ key: APIKey, _ user: User) throws(AdminError) -> [String] {
        let groups = try groupTable()
        let now = clock()
        return actions.filter { Authorizer.decide(AccessRequest(action: $0), key: key, user: user, groups: groups, now: now).allowed }
    }

    // MARK: - Users

    func users() throws(AdminError) -> [User] { try wrap { () throws(StoreError) in try store.users() } }

    func user(_ id: String) throws(AdminError) -> User {
        guard let user = try wrap({ () throws(StoreError) in try store.user(id) }) else { throw .notFound("user \(id)") }
        return user
    }

    func createUser(_ input: UserInput, actor: Actor) throws(AdminError) -> User {
        let now = clock()
        guard let name = input.name else { throw .invalid("name", "name is required") }
        var user = User(id: Self.makeID("usr"), name: try Self.checked(name, .name, "name"), createdAt: now, updatedAt: now)
        try apply(input, to: &user)
        let groups = try groupTable()
        try permit(actor, [.init("the user", Rights(user: user, groups: groups))], groups: groups)
        try commit(.putUser(user), actor: actor.id, action: "user.create", type: "user", id: user.id, change: input)
        return user
    }

    func updateUser(_ id: String, _ input: UserInput, actor: Actor) throws(AdminError) -> User {
        try versioned(id) { version throws(AdminError) in
            var user = try self.user(id)
            let before = user
            try apply(input, to: &user)
            let groups = try groupTable()
            try permit(actor, [.init("the user", Rights(user: before, groups: groups)), .init("the edited user", Rights(user: user, groups: groups))],
                       groups: groups)
            user.updatedAt = clock()
            try commit(ifVersion: version, .putUser(user), actor: actor.id, action: "user.update", type: "user", id: id, change: input)
            return user
        }
    }

    func setUserState(_ id: String, _ state: UserState, actor: Actor) throws(AdminError) -> User {
        try versioned(id) { version throws(AdminError) in
            var user = try self.user(id)
            try permit(actor, user: user)
            user.state = state
            user.updatedAt = clock()
            try commit(ifVersion: version, .putUser(user), actor: actor.id, action: state == .active ? "user.enable" : "user.disable", type: "user", id: id,
                       change: ["state": state.rawValue])
            return user
        }
    }

    func deleteUser(_ id: String, actor: Actor) throws(AdminError) {
        try versioned(id) { version throws(AdminError) in
            try permit(actor, user: try user(id))
            let keys = try wrap { () throws(StoreError) in try store.keys(KeyQuery(userID: id, limit: 1)) }
            guard keys.items.isEmpty else { throw .conflict("user_has_keys", "delete or move the user's keys first") }
            try commit(ifVersion: version, .deleteUser(id: id), actor: actor.id, action: "user.delete", type: "user", id: id, change: [String: String]())
        }
    }

    private func apply(_ input: UserInput, to user: inout User) throws(AdminError) {
        if let name = input.name { user.name = try Self.checked(name, .name, "name") }
        if let permissions = input.permissions { user.permissions = try Self.checked(permissions, .permission, "permissions", maxItems: FieldRule.maxPatterns) }
        if let groups = input.groups {
            _ = try Self.checked(groups, .reference, "groups", maxItems: FieldRule.maxPatterns)
            let known = try groupTable()
            for (i, g) in groups.enumerated() where known[g] == nil { throw .notFound("group \(g)", field: "groups[\(i)]") }
            user.groups = groups
        }
        if let properties = input.properties { user.properties = try Self.checked(properties, .property, "properties", maxItems: FieldRule.maxProperties) }
    }

    // MARK: - Groups

    func groups() throws(AdminError) -> [PermissionGroup] { try wrap { () throws(StoreError) in try store.groups() } }

    func group(_ id: String) throws(AdminError) -> PermissionGroup {
        guard let group = try wrap({ () throws(StoreError) in try store.group(id) }) else { throw .notFound("group \(id)") }
        return group
    }

    func createGroup(_ input: GroupInput, actor: Actor) throws(AdminError) -> PermissionGroup {
        let now = clock()
        guard let name = input.name else { throw .invalid("name", "name is required") }
        var group = PermissionGroup(id: Self.makeID("grp"), name: try Self.checked(name, .name, "name"), permissions: [], createdAt: now, updatedAt: now)
        group.description = try Self.checked(input.description ?? "", .text(maxLength: 2000), "description")
        group.permissions = try Self.checked(input.permissions ?? [], .permission, "permissions", maxItems: FieldRule.maxPatterns)
        if let limits = input.limits { group.limits = limits }
        try permit(actor, [.init("the group", Rights(group: group))], groups: try groupTable())
        try commit(.putGroup(group), actor: actor.id, action: "group.create", type: "group", id: group.id, change: input)
        return group
    }

    func updateGroup(_ id: String, _ input: GroupInput, actor: Actor) throws(AdminError) -> PermissionGroup {
        try versioned(id) { version throws(AdminError) in
            var group = try self.group(id)
            let before = group
            if let name = input.name { group.name = try Self.checked(name, .name, "name") }
            if let description = input.description { group.description = try Self.checked(description, .text(maxLength: 2000), "description") }
            if let permissions = input.permissions { group.permissions = try Self.checked(permissions, .permission, "permissions", maxItems: FieldRule.maxPatterns) }
            if let limits = input.limits { group.limits = limits }
            try permit(actor, [.init("the group", Rights(group: before)), .init("the edited group", Rights(group: group))], groups: try groupTable())
            group.updatedAt = clock()
            try commit(ifVersion: version, .putGroup(group), actor: actor.id, action: "group.update", type: "group", id: id, change: input)
            return group
        }
    }

    func deleteGroup(_ id: String, actor: Actor) throws(AdminError) {
        try versioned(id) { version throws(AdminError) in
            try permit(actor, [.init("the group", Rights(group: try group(id)))], groups: try groupTable())
            if try users().contains(where: { $0.groups.contains(id) }) { throw .conflict("group_in_use", "users still hold this group") }
            var query = KeyQuery(limit: 1000)
            while true {
                let page = try keys(query)
                if page.items.contains(where: { $0.groupID == id }) { throw .conflict("group_in_use", "keys still use this group") }
                guard let next = page.next else { break }
                query.after = next
            }
            try commit(ifVersion: version, .deleteGroup(id: id), actor: actor.id, action: "group.delete", type: "group", id: id, change: [String: String]())
        }
    }

    // MARK: - Keys

    func keys(_ query: KeyQuery) throws(AdminError) -> Page<APIKey> { try wrap { () throws(StoreError) in try store.keys(query) } }

    func key(_ id: String) throws(AdminError) -> APIKey {
        guard let key = try wrap({ () throws(StoreError) in try store.key(id) }) else { throw .notFound("key \(id)") }
        return key
    }

    func createKey(_ input: KeyInput, actor: Actor) throws(AdminError) -> IssuedKey {
        let now = clock()
        guard let name = input.name else { throw .invalid("name", "name is required") }
        guard let userID = input.userID else { throw .invalid("userID", "userID is required") }
        _ = try Self.checked(userID, .reference, "userID")
        guard let user = try wrap({ () throws(StoreError) in try store.user(userID) }) else { throw .notFound("user \(userID)", field: "userID") }
        let secret = APIKeySecret.generate()
        var key = APIKey(id: Self.makeID("key"), name: try Self.checked(name, .name, "name"), userID: userID, createdAt: now, updatedAt: now,
                         createdBy: actor.id, displayStart: secret.displayStart)
        try apply(input, to: &key, creating: true)
        try permit(actor, key: key, user: user)
        try commit(.putKey(key, secrets: KeySecrets(current: KeyDigest(of: secret))), actor: actor.id, action: "key.create", type: "key",
                   id: key.id, change: input)
        return IssuedKey(key: key, secret: secret.text)
    }

    func updateKey(_ id: String, _ input: KeyInput, actor: Actor) throws(AdminError) -> APIKey {
        try versioned(id) { version throws(AdminError) in
            var key = try self.key(id)
            guard key.state != .revoked else { throw .conflict("key_revoked", "a revoked key cannot be edited") }
            if input.userID != nil, input.userID != key.userID { throw .invalid("userID", "a key's user cannot change; create a new key") }
            let before = key
            try apply(input, to: &key, creating: false)
            try permit(actor, key: before, user: try self.user(key.userID), edited: key)
            key.updatedAt = clock()
            try commit(ifVersion: version, .putKey(key, secrets: nil), actor: actor.id, action: "key.update", type: "key", id: id, change: input)
            return key
        }
    }

    func setKeyState(_ id: String, _ state: KeyState, actor: Actor) throws(AdminError) -> APIKey {
        try versioned(id) { version throws(AdminError) in
            var key = try keyToChange(id, actor: actor, ifRevoked: "a revoked key never works again")
            let action = state == .revoked ? "key.revoke" : state == .suspended ? "key.suspend" : "key.resume"
            key.state = state
            key.updatedAt = clock()
            try commit(ifVersion: version, .putKey(key, secrets: nil), actor: actor.id, action: action, type: "key", id: id, change: ["state": state.rawValue])
            return key
        }
    }

    func rotateKey(_ id: String, _ input: RotateInput, actor: Actor) throws(AdminError) -> IssuedKey {
        try versioned(id) { version throws(AdminError) in
            var key = try keyToChange(id, actor: actor, ifRevoked: "a revoked key cannot be rotated")
            let grace = input.graceSeconds ?? 0
            guard (0...Self.maxGraceSeconds).contains(grace) else { throw .invalid("graceSeconds", "must be 0 to \(Int(Self.maxGraceSeconds)) seconds") }
            let now = clock()
            guard let current = try wrap({ () throws(StoreError) in try store.currentDigest(of: id) }) else { throw .notFound("key \(id)") }
            let secret = APIKeySecret.generate()
            key.displayStart = secret.displayStart
            key.updatedAt = now
            let secrets = KeySecrets(current: KeyDigest(of: secret), previous: grace > 0 ? current : nil,
                                     previousUntil: grace > 0 ? now.addingTimeInterval(grace) : nil)
            try commit(ifVersion: version, .putKey(key, secrets: secrets), actor: actor.id, action: "key.rotate", type: "key", id: id, change: input)
            return IssuedKey(key: key, secret: secret.text)
        }
    }

    /// A key about to change: refused (409, `why`) once revoked, and unless within the actor.
    private func keyToChange(_ id: String, actor: Actor, ifRevoked why: String) throws(AdminError) -> APIKey {
        let key = try self.key(id)
        guard key.state != .revoked else { throw .conflict("key_revoked", why) }
        try permit(actor, key: key, user: try self.user(key.userID))
        return key
    }

    func deleteKey(_ id: String, actor: Actor) throws(AdminError) {
        try versioned(id) { version throws(AdminError) in
            let key = try self.key(id)
            try permit(actor, key: key, user: try wrap({ () throws(StoreError) in try store.user(key.userID) }))
            try commit(ifVersion: version, .deleteKey(id: id), actor: actor.id, action: "key.delete", type: "key", id: id, change: [String: String]())
        }
    }

    func explain(_ id: String, _ input: ExplainInput) throws(AdminError) -> AccessDecision {
        let key = try self.key(id)
        let user = try self.user(key.userID)
        return Authorizer.decide(AccessRequest(action: input.action, property: input.property), key: key, user: user,
                                 groups: try groupTable(), now: clock())
    }

    private func apply(_ input: KeyInput, to key: inout APIKey, creating: Bool) throws(AdminError) {
        if let name = input.name { key.name = try Self.checked(name, .name, "name") }
        if let description = input.description { key.description = try Self.checked(description, .text(maxLength: 2000), "description") }
        if input.clearGroup == true { key.groupID = nil }
        if let group = input.groupID {
            _ = try Self.checked(group, .reference, "groupID")
            guard try wrap({ () throws(StoreError) in try store.group(group) }) != nil else { throw .notFound("group \(group)", field: "groupID") }
            key.groupID = group
        }
        if let scopes = input.scopes { key.scopes = try Self.checked(scopes, .permission, "scopes", maxItems: FieldRule.maxPatterns) }
        if let properties = input.properties { key.properties = try Self.checked(properties, .property, "properties", maxItems: FieldRule.maxProperties) }
        if let rules = input.rules { key.rules = try Self.checked(rules, .rule, "rules", maxItems: FieldRule.maxPatterns) }
        if let limits = input.limits { key.limits = limits }
        // A time already past is allowed: it expires the key at once (sessions close as for any expiry).
        if input.clearExpiry == true { key.expiresAt = nil }
        if let expiry = input.expiresAt { key.expiresAt = expiry }
        if policy.requireExpiry, key.expiresAt == nil { throw .invalid("expiresAt", "the server requires every key to expire") }
        if let cap = policy.maxLifetime, let expiry = key.expiresAt, expiry.timeIntervalSince(clock()) > cap {
            throw .invalid("expiresAt", "the server caps key lifetime at \(Int(cap)) seconds")
        }
    }

    // MARK: - Audit

    func audit(_ query: AuditQuery) throws(AdminError) -> Page<AuditEntry> { try wrap { () throws(StoreError) in try store.audit(query) } }

    // MARK: - Helpers

    func groupTable() throws(AdminError) -> [String: PermissionGroup] {
        Dictionary(uniqueKeysWithValues: try groups().map { ($0.id, $0) })
    }

    /// Writes a change with its audit entry; with `ifVersion`, only if the record is as read (else
    /// 409 `stale_write`, which `versioned` retries).
    private func commit<C: Encodable>(ifVersion: Int64? = nil, _ change: IdentityChange, actor: String, action: String, type: String, id: String,
                                      change detail: C) throws(AdminError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        encoder.dateEncodingStrategy = AdminAPI.dateEncoding
        let text = (try? encoder.encode(detail)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        _ = try wrap { () throws(StoreError) in
            try store.apply(change, audit: AuditEntry(time: clock(), actor: actor, action: action, targetType: type, targetID: id, change: text),
                            ifVersion: ifVersion)
        }
    }

    /// Runs a read-check-write of one record with the record's version read first; when another
    /// write to it lands in between (the store refuses the stale write), reads and checks again.
    /// So two admins' edits, suspends and disables of the same record never undo each other:
    /// each applies to what the other left, and the delegation check sees it too.
    private func versioned<T>(_ id: String, _ body: (Int64) throws(AdminError) -> T) throws(AdminError) -> T {
        var attempts = 0
        while true {
            attempts += 1
            let version = try wrap { () throws(StoreError) in try store.version(of: id) }
            do {
                return try body(version)
            } catch where error.code == "stale_write" && attempts < Self.maxWriteAttempts {
                continue
            }
        }
    }

    /// Tries of a read-check-write that keeps meeting other writes (then 409 `stale_write`).
    static let maxWriteAttempts = 20

    func wrap<T>(_ body: () throws(StoreError) -> T) throws(AdminError) -> T {
        do { return try body() } catch { throw AdminError(error) }
    }

    /// Longest grace period of a rotated key's old secret: 30 days.
    static let maxGraceSeconds: Double = 30 * 86400

    static func makeID(_ kind: String) -> String {
        var rng = SystemRandomNumberGenerator()
        return kind + "_" + Base62.encode((0..<12).map { _ in UInt8.random(in: 0...255, using: &rng) }, width: 16)
    }

    static func checked(_ value: String, _ rule: FieldRule, _ field: String) throws(AdminError) -> String {
        switch rule.check(value) {
        case .success(let accepted): return accepted
        case .failure(let problem): throw .invalid(field, problem.message)
        }
    }

    static func checked(_ values: [String], _ rule: FieldRule, _ field: String, maxItems: Int) throws(AdminError) -> [String] {
        guard values.count <= maxItems else { throw .invalid(field, "at most \(maxItems) entries") }
        var out: [String] = []
        for (i, value) in values.enumerated() { out.append(try checked(value, rule, "\(field)[\(i)]")) }
        return out
    }
}
