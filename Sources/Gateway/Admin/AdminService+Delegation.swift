// SPDX-License-Identifier: Apache-2.0
import GatewayCore

/// Every admin write passes `Delegation` here: nothing it touches may exceed the actor's key.
extension AdminService {
    /// Refuses (403 `beyond_your_rights`) unless everything the change touches is within what the
    /// actor's key may do (`Delegation`, the one rule every write here passes).
    func permit(_ actor: Actor, _ touches: [Delegation.Touched], groups: [String: PermissionGroup]) throws(AdminError) {
        let verdict = Delegation.decide(actor: Rights(key: actor.key, user: actor.user, groups: groups), touches: touches)
        if case .refused(let why) = verdict { throw AdminError(status: 403, code: "beyond_your_rights", message: why) }
    }

    func permit(_ actor: Actor, user: User) throws(AdminError) {
        let groups = try groupTable()
        try permit(actor, [.init("the user", Rights(user: user, groups: groups))], groups: groups)
    }

    /// A key as it is (and as an edit leaves it).
    func permit(_ actor: Actor, key: APIKey, user: User?, edited: APIKey? = nil) throws(AdminError) {
        let groups = try groupTable()
        var touches = Self.touches(key, user: user, groups: groups)
        if let edited { touches += Self.touches(edited, user: user, groups: groups).map { .init("after the edit, " + $0.what, $0.rights) } }
        try permit(actor, touches, groups: groups)
    }

    /// Refuses unless the actor may act for this key (ending one of its sessions).
    func permitActing(onKey id: String, actor: Actor) throws(AdminError) {
        guard let key = try wrap({ () throws(StoreError) in try store.key(id) }) else {
            // A session of a key gone meanwhile: only a full administrator acts blind.
            return try permit(actor, [.init("a deleted key's session", .fullAdministrator)], groups: try groupTable())
        }
        try permit(actor, key: key, user: try wrap({ () throws(StoreError) in try store.user(key.userID) }))
    }

    /// The ids of `keys` the actor may change (lists tell the page which buttons to show).
    func manageable(_ keys: [APIKey], by actor: Actor) throws(AdminError) -> Set<String> {
        let groups = try groupTable()
        let users = Dictionary(try self.users().map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        let rights = Rights(key: actor.key, user: actor.user, groups: groups)
        return Set(keys.filter { Delegation.decide(actor: rights, touches: Self.touches($0, user: users[$0.userID], groups: groups)) == .allowed }.map(\.id))
    }

    /// Users with whether the actor may change each.
    func managed(_ users: [User], by actor: Actor) throws(AdminError) -> [Managed<User>] {
        let groups = try groupTable()
        let rights = Rights(key: actor.key, user: actor.user, groups: groups)
        return users.map { Managed(item: $0, manageable: Delegation.decide(actor: rights, touches: [.init("the user", Rights(user: $0, groups: groups))]) == .allowed) }
    }

    /// Groups with whether the actor may change each.
    func managed(_ list: [PermissionGroup], by actor: Actor) throws(AdminError) -> [Managed<PermissionGroup>] {
        let rights = Rights(key: actor.key, user: actor.user, groups: try groupTable())
        return list.map { Managed(item: $0, manageable: Delegation.decide(actor: rights, touches: [.init("the group", Rights(group: $0))]) == .allowed) }
    }

    /// What acting on a key touches: its effective rights and what its own fields let it reach as
    /// its user grows (`Rights(declaredBy:)`), not everything its user holds when it narrows (a
    /// help desk limited to one hotel issues that hotel's keys for a user that reaches every
    /// hotel). A key whose user cannot be read is left to a full administrator.
    static func touches(_ key: APIKey, user: User?, groups: [String: PermissionGroup]) -> [Delegation.Touched] {
        guard let user else { return [.init("the key (its user is gone)", .fullAdministrator)] }
        return [.init("the key", Rights(key: key, user: user, groups: groups)),
                .init("what the key's own fields reach", Rights(declaredBy: key, user: user, groups: groups))]
    }
}
