// SPDX-License-Identifier: Apache-2.0

/// What a key, a user or a group may do, kept as the patterns, rules and property lists that decide
/// it (the same inputs `Authorizer.decide` reads), so that one principal's rights can be compared
/// with another's without enumerating actions. State (suspended, disabled, expired) is left out:
/// rights are what the principal could do while usable.
///
///     key   = user's patterns (own ∪ groups') ∩ key's scopes ∪ group (if any), then the key's
///             rules; properties: the user's ∩ the key's
///     user  = own ∪ groups' patterns; the user's properties
///     group = its patterns, on every property (whoever holds it may reach them all)
public struct Rights: Equatable, Sendable {
    /// An action is within only if every list has a pattern granting it (actions of the reserved
    /// `admin` service only by a pattern that names it).
    public var grants: [[String]]
    /// Ordered rules (`!` denies), the first match decides; none present = no further filter.
    public var rules: [String]
    /// Property lists, intersected (`"*"` = every property).
    public var properties: [[String]]

    public init(grants: [[String]], rules: [String] = [], properties: [[String]]) {
        self.grants = grants
        self.rules = rules
        self.properties = properties
    }

    /// A key's effective rights.
    public init(key: APIKey, user: User, groups: [String: PermissionGroup]) {
        var grants = [Self.patterns(of: user, groups)]
        if !key.scopes.isEmpty || key.groupID != nil {
            grants.append(key.scopes + (key.groupID.flatMap { groups[$0]?.permissions } ?? []))
        }
        self.init(grants: grants, rules: key.rules, properties: [user.properties, key.properties])
    }

    /// What a key's own fields let it reach, whatever its user holds today: its scopes and group
    /// (or, with none, its user's patterns), its rules, its properties (or, with `"*"`, its user's).
    /// A key's effective rights grow with its user; these bound how far. An administrator who
    /// writes a key must hold these too, so no key carries dormant rights (`admin:*` in the scopes
    /// of a key whose user holds only `pms:read`) that wake when someone widens its user.
    public init(declaredBy key: APIKey, user: User, groups: [String: PermissionGroup]) {
        let narrowing = !key.scopes.isEmpty || key.groupID != nil
        let grants = narrowing ? key.scopes + (key.groupID.flatMap { groups[$0]?.permissions } ?? []) : Self.patterns(of: user, groups)
        self.init(grants: [grants], rules: key.rules, properties: [key.properties.contains("*") ? user.properties : key.properties])
    }

    /// A user's rights: what a key with no narrowing could do.
    public init(user: User, groups: [String: PermissionGroup]) {
        self.init(grants: [Self.patterns(of: user, groups)], properties: [user.properties])
    }

    /// A group's rights: its patterns on every property.
    public init(group: PermissionGroup) {
        self.init(grants: [group.permissions], properties: [["*"]])
    }

    /// Every admin action on every property: the top of the tree, bounded by nothing.
    public static let fullAdministrator = Rights(grants: [["admin:*"]], properties: [["*"]])

    private static func patterns(of user: User, _ groups: [String: PermissionGroup]) -> [String] {
        user.permissions + user.groups.flatMap { groups[$0]?.permissions ?? [] }
    }

    /// The patterns these rights are made of that they allow in full, as a list a reader can take
    /// as "may do whatever one of these matches" (what upstreams are told in `X-Doorman-Scopes`).
    /// Their union is within these rights, never beyond: a pattern only partly inside another list,
    /// or partly denied by a rule, is left out (so `["!pms:refund", "pms:*"]` tells nothing rather
    /// than `pms:*`). One that another kept pattern holds is left out too.
    public func patternsAllowedInFull() -> [String] {
        var kept: [String] = []
        for pattern in grants.joined() + rules.filter({ !$0.hasPrefix("!") }) where !kept.contains(pattern) {
            if missing(from: Rights(grants: [[pattern]], properties: properties)) == nil { kept.append(pattern) }
        }
        // The first of two equal patterns stays; one strictly inside another goes.
        return kept.enumerated().filter { i, p in
            !kept.enumerated().contains { j, q in j != i && Self.grantContains(q, p) && (!Self.grantContains(p, q) || j < i) }
        }.map(\.element)
    }

    // MARK: - Containment

    /// Nil when everything `other` allows these rights allow too; otherwise what is not covered
    /// (a pattern or a property), for the refusal's message.
    ///
    /// Sound, not complete: it never says "covered" wrongly, and may refuse an unusual pair that is
    /// in fact covered. `other` is within a list of these grants if one of its own lists (or its
    /// allow rules) is, pattern by pattern; within these rules if each of its patterns is decided
    /// "allow" by them as a whole (a rule that meets a pattern only in part refuses, unless what it
    /// meets is denied by `other` first anyway).
    public func missing(from other: Rights) -> String? {
        if let gap = Self.missingProperty(mine: Self.reach(properties), theirs: Self.reach(other.properties)) { return gap }
        let candidates = other.candidates()
        for list in grants {
            let covered = candidates.contains { c in c.allSatisfy { p in list.contains { Self.grantContains($0, p.pattern) } } }
            if !covered { return Self.firstUncovered(candidates) { p in list.contains { Self.grantContains($0, p.pattern) } } }
        }
        if !rules.isEmpty {
            let covered = candidates.contains { c in c.allSatisfy(rulesAllow) }
            if !covered { return Self.firstUncovered(candidates, rulesAllow) }
        }
        return nil
    }

    /// A pattern the target may be granted, with the patterns its own earlier deny rules take out.
    private struct Granted {
        var pattern: String
        var excluded: [String]
    }

    /// Lists any one of which holds everything these rights allow: each grants list (less the
    /// deny rules before every allow rule), and the allow rules (each less the deny rules before it).
    private func candidates() -> [[Granted]] {
        let leadingDenials = rules.prefix { $0.hasPrefix("!") }.map { String($0.dropFirst()) }
        var lists = grants.map { $0.map { Granted(pattern: $0, excluded: leadingDenials) } }
        if !rules.isEmpty {
            var denied: [String] = []
            var allowed: [Granted] = []
            for rule in rules {
                if rule.hasPrefix("!") { denied.append(String(rule.dropFirst())) } else { allowed.append(Granted(pattern: rule, excluded: denied)) }
            }
            lists.append(allowed)
        }
        return lists
    }

    /// True when these rules allow every action `granted` may stand for: walked in order, a deny
    /// rule that can meet it refuses (unless the target denies all of that first), an allow rule
    /// holding all of it accepts, one meeting it in part refuses.
    private func rulesAllow(_ granted: Granted) -> Bool {
        let p = Wildcard(granted.pattern)
        for rule in rules {
            if rule.hasPrefix("!") {
                let denied = Wildcard(String(rule.dropFirst()))
                guard denied.overlaps(p) else { continue }
                if granted.excluded.contains(where: { Wildcard($0).contains(denied) }) { continue }
                return false
            }
            if Self.grantContains(rule, granted.pattern) { return true }
            if Self.grantOverlaps(rule, granted.pattern) { return false }
        }
        return false
    }

    /// Containment under the reserved-service rule: a pattern not naming `admin:` grants no admin action.
    private static func grantContains(_ outer: String, _ inner: String) -> Bool {
        if Authorizer.namesReservedService(inner), !Authorizer.namesReservedService(outer) { return false }
        return Wildcard(outer).contains(Wildcard(inner))
    }

    private static func grantOverlaps(_ a: String, _ b: String) -> Bool {
        guard Authorizer.namesReservedService(a) == Authorizer.namesReservedService(b) else { return false }
        return Wildcard(a).overlaps(Wildcard(b))
    }

    private static func firstUncovered(_ candidates: [[Granted]], _ covered: (Granted) -> Bool) -> String {
        let list = candidates.first ?? []
        return list.first { !covered($0) }.map { "action \($0.pattern)" } ?? "actions"
    }

    /// The properties reached by every list; nil = every property.
    static func reach(_ lists: [[String]]) -> [String]? {
        var result: [String]?
        for list in lists where !list.contains("*") {
            result = result.map { current in current.filter { Authorizer.reaches(list, $0) } } ?? list
        }
        return result
    }

    private static func missingProperty(mine: [String]?, theirs: [String]?) -> String? {
        guard let mine else { return nil }
        guard let theirs else { return "every property" }
        return theirs.first { !Authorizer.reaches(mine, $0) }.map { "property \($0)" }
    }
}
