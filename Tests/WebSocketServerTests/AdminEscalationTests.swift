// SPDX-License-Identifier: Apache-2.0
import Foundation
@testable import Gateway
import GatewayCore
import Synchronization
import Testing
import TestSupport
import WebSocketServer
import WireCodec

/// Random admin roles send random admin requests through the admin API (routes, authorization,
/// bodies, the service); afterwards no key or user has a right that neither it had at the start
/// nor any of the acting keys held. Keys whose secret an answer returns join the actors, as an
/// attacker would use them.
@Suite struct AdminEscalationTests {

    /// Sequences per run (`DOORMAN_ESCALATION_SEQUENCES` overrides).
    static let sequences = ProcessInfo.processInfo.environment["DOORMAN_ESCALATION_SEQUENCES"].flatMap(Int.init) ?? 10_000
    static let now = Date()

    /// The rights sampled: admin writes and reads, device actions every pattern shape meets, and a
    /// request without a property and on each of two properties (which tells every property list apart).
    static let actions = ["admin:keys.read", "admin:keys.write", "admin:users.write", "admin:groups.write", "pms:checkIn", "pms:checkOut",
                          "pms:refund", "door:open", "rms:open"]
    static let properties: [String?] = [nil, "hotel-1", "hotel-2"]
    static let patterns = ["admin:*", "admin:keys.*", "admin:keys.write", "admin:keys.read", "admin:users.*", "admin:users.write",
                           "admin:groups.*", "admin:groups.write", "admin:*.read", "admin:*.write", "*", "pms:*", "pms:check*", "pms:checkIn",
                           "door:*", "*:open", "door:open", "*:*.write"]
    static let propertyLists = [["*"], ["*"], ["hotel-1"], ["hotel-2"], ["hotel-1", "hotel-2"]]

    struct Right: Hashable { var action: String; var property: String? }

    /// What a key could do while usable (active, not expired, its user enabled), by the Authorizer.
    static func rights(of key: APIKey, _ user: User, _ groups: [String: PermissionGroup]) -> Set<Right> {
        var key = key, user = user
        key.state = .active
        key.expiresAt = nil
        user.state = .active
        var out = Set<Right>()
        for action in actions {
            for property in properties where Authorizer.decide(AccessRequest(action: action, property: property), key: key, user: user, groups: groups, now: now).allowed {
                out.insert(Right(action: action, property: property))
            }
        }
        return out
    }

    /// The records rights are computed from.
    struct Snapshot {
        var users: [String: User]
        var groups: [String: PermissionGroup]
        var keys: [APIKey]

        init(_ store: MemoryStore) {
            users = Dictionary(uniqueKeysWithValues: ((try? store.users()) ?? []).map { ($0.id, $0) })
            groups = store.groupTable()
            keys = store.allKeys()
        }
    }

    /// Every key's and user's rights, by id (a user's: those of a key with no narrowing). Records
    /// unchanged since `before` keep `known` rights (the Authorizer is not asked again).
    static func census(_ now: Snapshot, unchangedFrom before: Snapshot? = nil, known: [String: Set<Right>] = [:]) -> [String: Set<Right>] {
        // The groups a principal's rights read, as they were and as they are.
        func same(_ ids: [String]) -> Bool { ids.allSatisfy { before?.groups[$0] == now.groups[$0] } }
        var out: [String: Set<Right>] = [:]
        for user in now.users.values {
            if before?.users[user.id] == user, same(user.groups), let rights = known[user.id] { out[user.id] = rights; continue }
            let probe = APIKey(id: "probe", name: "probe", userID: user.id, createdAt: Self.now, updatedAt: Self.now, createdBy: "t", displayStart: "")
            out[user.id] = rights(of: probe, user, now.groups)
        }
        let keysBefore = Dictionary(uniqueKeysWithValues: (before?.keys ?? []).map { ($0.id, $0) })
        for key in now.keys {
            guard let user = now.users[key.userID] else { continue }
            if keysBefore[key.id] == key, before?.users[user.id] == user, same(user.groups + (key.groupID.map { [$0] } ?? [])),
               let rights = known[key.id] { out[key.id] = rights; continue }
            out[key.id] = rights(of: key, user, now.groups)
        }
        return out
    }

    @Test func noSequenceOfAdminRequestsEscalates() throws {
        var rng = SplitMix64(seed: UInt64(ProcessInfo.processInfo.environment["DOORMAN_ESCALATION_SEED"].flatMap(Int.init) ?? 20261207))
        var refusals = 0, successes = 0
        for sequence in 0..<Self.sequences {
            let store = MemoryStore()
            var actors = store.populate(&rng)
            let api = AdminAPI(service: AdminService(store: store, policy: KeyPolicy()), usage: nil)
            let before = Snapshot(store)
            let start = Self.census(before)
            var held = actors.reduce(into: Set<Right>()) { $0.formUnion(start[$1.keyID] ?? []) }
            // A full administrator (every admin action) is the top of the tree: it defines every
            // user and group, so it holds every right.
            if actors.contains(where: { a in Self.actions.filter { $0.hasPrefix("admin:") }.allSatisfy { start[a.keyID]?.contains(Right(action: $0, property: nil)) == true } }) {
                held = Set(Self.actions.flatMap { a in Self.properties.map { Right(action: a, property: $0) } })
            }
            var log: [String] = []
            var learned = Set<String>()
            for _ in 0..<8 {
                let actor = actors.randomElement(using: &rng)!
                let (method, path, body) = Self.randomRequest(store, actor: actor, &rng)
                var headers = [HTTPHeader("Host", "t")]
                if body != nil { headers.append(HTTPHeader("Content-Type", "application/json")) }
                let request = HTTPRequest(head: HTTPRequestHead(method: method, target: path, headers: headers), body: body.map { Array($0.utf8) } ?? [])
                let response = api.handle(request, presentedKey: actor.secret)
                log.append("\(actor.keyID) \(method) \(path) \(body ?? "") → \(response.status)")
                if response.status == 403 { refusals += 1 } else if response.status < 300 { successes += 1 }
                if response.status < 300, let object = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any],
                   let secret = object["secret"] as? String, let key = object["key"] as? [String: Any], let id = key["id"] as? String {
                    actors.append(MemoryStore.Holder(keyID: id, secret: secret))
                    learned.insert(id)
                }
            }
            let after = Snapshot(store)
            let end = Self.census(after, unchangedFrom: before, known: start)
            // No secret handed out carries dormant rights: what the key's own fields reach, were
            // its user to hold everything, stays within what the actors held.
            for key in after.keys where learned.contains(key.id) {
                guard let user = after.users[key.userID] else { continue }
                var bound = user
                if !key.scopes.isEmpty || key.groupID != nil { bound.permissions = ["*", "admin:*"]; bound.groups = [] }
                if !key.properties.contains("*") { bound.properties = ["*"] }
                let dormant = Self.rights(of: key, bound, after.groups).subtracting(held)
                #expect(dormant.isEmpty, "sequence \(sequence): \(key.id) could reach \(dormant.map { "\($0.action)@\($0.property ?? "-")" }.sorted())\n\(log.joined(separator: "\n"))")
                if !dormant.isEmpty { return }
            }
            for (id, now) in end {
                let gained = now.subtracting(start[id] ?? []).subtracting(held)
                #expect(gained.isEmpty, "sequence \(sequence): \(id) gained \(gained.map { "\($0.action)@\($0.property ?? "-")" }.sorted())\n\(log.joined(separator: "\n"))")
                if !gained.isEmpty { return }
            }
        }
        // Not vacuous: the requests both succeed and get refused, often.
        #expect(successes > Self.sequences / 2 && refusals > Self.sequences / 2, "\(successes) succeeded, \(refusals) refused")
    }

    static func randomRequest(_ store: MemoryStore, actor: MemoryStore.Holder, _ rng: inout SplitMix64) -> (String, String, String?) {
        func list(_ values: [String]) -> String { "[" + values.map { "\"\($0)\"" }.joined(separator: ",") + "]" }
        // Half the patterns come from the actor's own, so that many requests are within its rights.
        let own = store.userOf(actor.keyID).flatMap { try? store.user($0) }?.permissions ?? []
        func some(_ max: Int) -> [String] {
            (0..<Int.random(in: 0...max, using: &rng)).map { _ in (Bool.random(using: &rng) ? own.randomElement(using: &rng) : nil) ?? patterns.randomElement(using: &rng)! }
        }
        let users = ((try? store.users()) ?? []).map(\.id), groups = store.groupTable().keys.sorted(), keys = store.allKeys().map(\.id)
        let user = users.randomElement(using: &rng)!, key = (keys + [actor.keyID]).randomElement(using: &rng)!
        let props = propertyLists.randomElement(using: &rng)!
        switch Int.random(in: 0..<12, using: &rng) {
        case 0: return ("POST", "/v1/users", #"{"name":"n","permissions":\#(list(some(3))),"properties":\#(list(props))}"#)
        case 1:
            let field = Bool.random(using: &rng) ? #""permissions":\#(list(some(3)))"# : Bool.random(using: &rng)
                ? #""groups":\#(list(groups.isEmpty ? [] : [groups.randomElement(using: &rng)!]))"# : #""properties":\#(list(props))"#
            return ("PATCH", "/v1/users/\(user)", "{\(field)}")
        case 2: return ("POST", "/v1/users/\(user)/\(Bool.random(using: &rng) ? "disable" : "enable")", nil)
        case 3: return ("POST", "/v1/groups", #"{"name":"g","permissions":\#(list(some(2)))}"#)
        case 4: return ("PATCH", "/v1/groups/\(groups.randomElement(using: &rng) ?? "none")", #"{"permissions":\#(list(some(3)))}"#)
        case 5, 6:
            var fields = [#""name":"k""#, #""userID":"\#(user)""#]
            if Bool.random(using: &rng) { fields.append(#""scopes":\#(list(some(2)))"#) }
            if Bool.random(using: &rng) { fields.append(#""properties":\#(list(props))"#) }
            if Bool.random(using: &rng) { fields.append(#""rules":\#(list(some(2).map { (Bool.random(using: &rng) ? "!" : "") + $0 }))"#) }
            if Bool.random(using: &rng), let g = groups.randomElement(using: &rng) { fields.append(#""groupID":"\#(g)""#) }
            return ("POST", "/v1/keys", "{" + fields.joined(separator: ",") + "}")
        case 7:
            let field = [#""scopes":\#(list(some(2)))"#, #""scopes":[]"#, #""properties":\#(list(props))"#, #""rules":[]"#,
                         #""rules":\#(list(some(2)))"#, #""clearGroup":true"#].randomElement(using: &rng)!
            return ("PATCH", "/v1/keys/\(key)", "{\(field)}")
        case 8: return ("POST", "/v1/keys/\(key)/rotate", #"{"graceSeconds":0}"#)
        case 9: return ("POST", "/v1/keys/\(key)/\(["suspend", "resume", "revoke"].randomElement(using: &rng)!)", nil)
        case 10: return ("DELETE", "/v1/keys/\(key)", nil)
        default: return ("PATCH", "/v1/users/\(store.userOf(actor.keyID) ?? user)", #"{"permissions":\#(list(some(2)))}"#)
        }
    }
}

/// An identity store in memory: users, groups, keys, secrets and the audit trail, under one lock.
final class MemoryStore: IdentityStore {
    struct Holder { var keyID: String; var secret: String }

    private struct State {
        var users: [String: User] = [:]
        var groups: [String: PermissionGroup] = [:]
        var keys: [String: APIKey] = [:]
        var secrets: [String: KeySecrets] = [:]
        var audit: [AuditEntry] = []
    }

    private let state = Mutex(State())

    func groupTable() -> [String: PermissionGroup] { state.withLock { $0.groups } }
    func allKeys() -> [APIKey] { state.withLock { $0.keys.values.sorted { $0.id < $1.id } } }
    func userOf(_ keyID: String) -> String? { state.withLock { $0.keys[keyID]?.userID } }

    /// A random world: a full administrator, three users with random admin and device rights, two
    /// device users, two groups, one or two keys each. Returns one or two non-root keys to act with.
    func populate(_ rng: inout SplitMix64) -> [Holder] {
        let now = AdminEscalationTests.now
        func some(_ max: Int) -> [String] { (0..<Int.random(in: 1...max, using: &rng)).map { _ in AdminEscalationTests.patterns.randomElement(using: &rng)! } }
        var holders: [Holder] = []
        func add(_ key: APIKey) -> Holder {
            let secret = APIKeySecret.generate()
            var key = key
            key.displayStart = secret.displayStart
            _ = try? apply(.putKey(key, secrets: KeySecrets(current: KeyDigest(of: secret))), audit: AuditEntry(time: now, actor: "t", action: "key.create", targetType: "key", targetID: key.id))
            return Holder(keyID: key.id, secret: secret.text)
        }
        for g in ["grp_1", "grp_2"] {
            _ = try? apply(.putGroup(PermissionGroup(id: g, name: g, permissions: some(2), createdAt: now, updatedAt: now)), audit: AuditEntry(time: now, actor: "t", action: "group.create", targetType: "group", targetID: g))
        }
        _ = try? apply(.putUser(User(id: "usr_root", name: "root", permissions: ["admin:*"], createdAt: now, updatedAt: now)), audit: AuditEntry(time: now, actor: "t", action: "user.create", targetType: "user", targetID: "usr_root"))
        _ = add(APIKey(id: "key_root", name: "root", userID: "usr_root", createdAt: now, updatedAt: now, createdBy: "t", displayStart: ""))
        for u in 1...3 {
            // Each user holds an admin role (help desk, user admin, group admin…) and some device rights.
            let role = ["admin:keys.*", "admin:users.*", "admin:groups.*", "admin:*.write", "admin:keys.write", "admin:*"].randomElement(using: &rng)!
            let user = User(id: "usr_\(u)", name: "u\(u)", permissions: [role] + some(2), groups: Bool.random(using: &rng) ? ["grp_\(Int.random(in: 1...2, using: &rng))"] : [],
                            properties: AdminEscalationTests.propertyLists.randomElement(using: &rng)!, createdAt: now, updatedAt: now)
            _ = try? apply(.putUser(user), audit: AuditEntry(time: now, actor: "t", action: "user.create", targetType: "user", targetID: user.id))
            for k in 1...Int.random(in: 1...2, using: &rng) {
                let key = APIKey(id: "key_\(u)_\(k)", name: "k", userID: user.id, scopes: Bool.random(using: &rng) ? [role] + some(2) : [],
                                 properties: Bool.random(using: &rng) ? ["*"] : AdminEscalationTests.propertyLists.randomElement(using: &rng)!,
                                 rules: Int.random(in: 0..<3, using: &rng) == 0 ? ["!" + some(1)[0], "*", "admin:*"] : [],
                                 createdAt: now, updatedAt: now, createdBy: "t", displayStart: "")
                holders.append(add(key))
            }
        }
        // Devices' users: device rights only, the usual targets of a help desk.
        for u in 4...5 {
            let user = User(id: "usr_\(u)", name: "d\(u)", permissions: ["pms:checkIn", "door:open", "pms:*", "door:*"].shuffled(using: &rng).prefix(2).map { $0 },
                            properties: AdminEscalationTests.propertyLists.randomElement(using: &rng)!, createdAt: now, updatedAt: now)
            _ = try? apply(.putUser(user), audit: AuditEntry(time: now, actor: "t", action: "user.create", targetType: "user", targetID: user.id))
            _ = add(APIKey(id: "key_\(u)_1", name: "k", userID: user.id, createdAt: now, updatedAt: now, createdBy: "t", displayStart: ""))
        }
        holders.shuffle(using: &rng)
        return Array(holders.prefix(Int.random(in: 1...2, using: &rng)))
    }

    func user(_ id: String) throws(StoreError) -> User? { state.withLock { $0.users[id] } }
    func users() throws(StoreError) -> [User] { state.withLock { $0.users.values.sorted { $0.id < $1.id } } }
    func group(_ id: String) throws(StoreError) -> PermissionGroup? { state.withLock { $0.groups[id] } }
    func groups() throws(StoreError) -> [PermissionGroup] { state.withLock { $0.groups.values.sorted { $0.id < $1.id } } }
    func key(_ id: String) throws(StoreError) -> APIKey? { state.withLock { $0.keys[id] } }

    func keys(_ query: KeyQuery) throws(StoreError) -> Page<APIKey> {
        let all = allKeys().filter { (query.userID == nil || $0.userID == query.userID) && (query.state == nil || $0.state == query.state) }
        return Page(items: Array(all.prefix(query.limit)), next: nil)
    }

    func key(digest: KeyDigest, now: Date) throws(StoreError) -> KeyMatch? {
        state.withLock { s in
            for (id, secrets) in s.secrets {
                if secrets.current == digest, let key = s.keys[id] { return KeyMatch(key: key, digest: digest, viaPreviousSecret: false) }
                if secrets.previous == digest, let until = secrets.previousUntil, until > now, let key = s.keys[id] {
                    return KeyMatch(key: key, digest: digest, viaPreviousSecret: true)
                }
            }
            return nil
        }
    }

    func allKeySecrets() throws(StoreError) -> [String: KeySecrets] { state.withLock { $0.secrets } }
    func keySecrets(of keyID: String) throws(StoreError) -> KeySecrets? { state.withLock { $0.secrets[keyID] } }
    func currentDigest(of keyID: String) throws(StoreError) -> KeyDigest? { state.withLock { $0.secrets[keyID]?.current } }

    func version(of id: String) throws(StoreError) -> Int64 {
        state.withLock { s in s.audit.last { $0.targetID == id }?.seq ?? 0 }
    }

    @discardableResult
    func apply(_ change: IdentityChange, audit: AuditEntry, ifVersion: Int64?) throws(StoreError) -> Int64 {
        try state.withLock { s throws(StoreError) in
            if let ifVersion, (s.audit.last { $0.targetID == audit.targetID }?.seq ?? 0) != ifVersion { throw .conflict(StoreError.staleWrite) }
            switch change {
            case .putUser(let user): s.users[user.id] = user
            case .deleteUser(let id): s.users[id] = nil
            case .putGroup(let group): s.groups[group.id] = group
            case .deleteGroup(let id): s.groups[id] = nil
            case .putKey(let key, let secrets):
                s.keys[key.id] = key
                if let secrets { s.secrets[key.id] = secrets }
            case .deleteKey(let id):
                s.keys[id] = nil
                s.secrets[id] = nil
            }
            var entry = audit
            entry.seq = Int64(s.audit.count + 1)
            s.audit.append(entry)
            return entry.seq
        }
    }

    func audit(_ query: AuditQuery) throws(StoreError) -> Page<AuditEntry> { state.withLock { Page(items: Array($0.audit.reversed().prefix(query.limit)), next: nil) } }
    func recordUses(_ uses: [KeyUse]) throws(StoreError) {}
    func isEmpty() throws(StoreError) -> Bool { state.withLock { $0.users.isEmpty } }
}
