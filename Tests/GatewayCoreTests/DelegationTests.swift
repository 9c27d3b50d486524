// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatewayCore
import Testing
import TestSupport

/// The one rule for admin writes (`Delegation`) and the comparisons under it: pattern containment
/// and overlap, and `Rights`, checked against brute force and against `Authorizer.decide`.
@Suite struct DelegationTests {
    static let now = Date(timeIntervalSince1970: 1_800_000_000)

    static func user(_ permissions: [String], groups: [String] = [], properties: [String] = ["*"]) -> User {
        User(id: "u", name: "u", permissions: permissions, groups: groups, properties: properties, createdAt: now, updatedAt: now)
    }

    static func key(scopes: [String] = [], properties: [String] = ["*"], rules: [String] = [], group: String? = nil) -> APIKey {
        APIKey(id: "k", name: "k", userID: "u", groupID: group, scopes: scopes, properties: properties, rules: rules,
               createdAt: now, updatedAt: now, createdBy: "t", displayStart: "dmk_abcd")
    }

    static func rights(_ permissions: [String], scopes: [String] = [], properties: [String] = ["*"], rules: [String] = []) -> Rights {
        Rights(key: key(scopes: scopes, properties: properties, rules: rules), user: user(permissions), groups: [:])
    }

    // MARK: - Patterns

    /// Every string over `a`, `b`, `:` up to five long.
    static let texts: [String] = {
        var all = [""], layer = [""]
        for _ in 0..<5 {
            layer = layer.flatMap { t in ["a", "b", ":"].map { t + $0 } }
            all += layer
        }
        return all
    }()

    @Test func patternContainmentAndOverlapAreNeverWrong() {
        var rng = SplitMix64(seed: 7)
        func pattern() -> String { String((0..<Int.random(in: 0...4, using: &rng)).map { _ in "ab:*?".randomElement(using: &rng)! }) }
        var contained = 0, disjoint = 0
        for _ in 0..<3000 {
            let outer = Wildcard(pattern()), inner = Wildcard(pattern())
            let matchedByInner = Self.texts.filter(inner.matches)
            if outer.contains(inner) {
                contained += 1
                #expect(matchedByInner.allSatisfy(outer.matches), "\(outer) contains \(inner)")
            }
            if !outer.overlaps(inner) {
                disjoint += 1
                #expect(!matchedByInner.contains(where: outer.matches), "\(outer) and \(inner) overlap")
            }
        }
        // Not vacuous: both answers come up often.
        #expect(contained > 300 && disjoint > 300, "\(contained) contained, \(disjoint) disjoint")
    }

    @Test func patternContainmentKnowsTheUsualShapes() {
        let yes = [("*", "pms:checkIn"), ("pms:*", "pms:check*"), ("pms:check*", "pms:check??"), ("*:*", "pms:*"), ("p?s:*", "pms:*"),
                   ("*", "*"), ("PMS:*", "pms:x"), ("*o*", "*oo*"), ("admin:*", "admin:keys.write")]
        for (outer, inner) in yes { #expect(Wildcard(outer).contains(Wildcard(inner)), "\(outer) ⊇ \(inner)") }
        let no = [("pms:*", "*"), ("pms:check?", "pms:check*"), ("?", "*"), ("pms:checkIn", "pms:check*"), ("admin:keys.*", "admin:*")]
        for (outer, inner) in no { #expect(!Wildcard(outer).contains(Wildcard(inner)), "\(outer) ⊉ \(inner)") }
        #expect(Wildcard("pms:*").overlaps(Wildcard("*:checkIn")))
        #expect(!Wildcard("pms:*").overlaps(Wildcard("door:*")))
    }

    // MARK: - Rights

    static let actions = ["admin:keys.read", "admin:keys.write", "admin:users.write", "admin:groups.write", "pms:checkIn", "pms:checkOut",
                          "pms:refund", "door:open", "door:lock", "rms:open"]
    static let properties: [String?] = [nil, "hotel-1", "hotel-2", "hotel-3"]

    static func randomPattern(_ rng: inout SplitMix64) -> String {
        ["*", "*:*", "pms:*", "pms:check*", "pms:checkIn", "door:*", "*:open", "door:open", "admin:*", "admin:keys.*", "admin:*.write",
         "admin:keys.read", "admin:users.write", "*:*.write", "?ms:*"].randomElement(using: &rng)!
    }

    /// A random key, user or group: its `Rights`, and the Authorizer's answer for it (the one
    /// owner of the decision is the oracle; a user or group is asked through a key that narrows nothing).
    struct Principal: CustomStringConvertible {
        var rights: Rights
        var key: APIKey
        var user: User
        var groups: [String: PermissionGroup]

        func allows(_ action: String, _ property: String?) -> Bool {
            Authorizer.decide(AccessRequest(action: action, property: property), key: key, user: user, groups: groups, now: DelegationTests.now).allowed
        }

        var description: String { "\(rights)" }
    }

    static func randomPrincipal(_ rng: inout SplitMix64) -> Principal {
        func some(max: Int, _ make: (inout SplitMix64) -> String) -> [String] { (0..<Int.random(in: 0...max, using: &rng)).map { _ in make(&rng) } }
        func props(_ rng: inout SplitMix64) -> [String] {
            [["*"], ["*"], ["hotel-1"], ["hotel-2"], ["hotel-1", "hotel-2"], []].randomElement(using: &rng)!
        }
        let groups = ["g": PermissionGroup(id: "g", name: "g", permissions: some(max: 2, randomPattern), createdAt: now, updatedAt: now)]
        let u = user(some(max: 3, randomPattern), groups: Bool.random(using: &rng) ? ["g"] : [], properties: props(&rng))
        switch Int.random(in: 0..<4, using: &rng) {
        case 0: return Principal(rights: Rights(user: u, groups: groups), key: key(), user: u, groups: groups)
        case 1: return Principal(rights: Rights(group: groups["g"]!), key: key(), user: user([], groups: ["g"]), groups: groups)
        default:
            let rules = some(max: 3) { rng in (Bool.random(using: &rng) ? "!" : "") + randomPattern(&rng) }
            let k = key(scopes: some(max: 2, randomPattern), properties: props(&rng), rules: rules, group: Int.random(in: 0..<4, using: &rng) == 0 ? "g" : nil)
            return Principal(rights: Rights(key: k, user: u, groups: groups), key: k, user: u, groups: groups)
        }
    }

    /// The invariant behind every admin write: whatever an actor is found to cover, it covers.
    @Test func coveredRightsNeverExceedTheActor() {
        var rng = SplitMix64(seed: 13)
        var covered = 0
        for _ in 0..<20_000 {
            let actor = Self.randomPrincipal(&rng), target = Self.randomPrincipal(&rng)
            guard actor.rights.missing(from: target.rights) == nil else { continue }
            covered += 1
            for action in Self.actions {
                for property in Self.properties where target.allows(action, property) {
                    #expect(actor.allows(action, property), "\(actor) covers \(target) but not \(action) on \(property ?? "-")")
                }
            }
        }
        #expect(covered > 2000, "only \(covered) pairs covered")
    }

    /// What upstreams are told: every pattern returned is allowed in full (checked on the sampled
    /// actions it matches), so their union never exceeds the rights.
    @Test func patternsAllowedInFullNeverExceedTheRights() {
        var rng = SplitMix64(seed: 17)
        var told = 0
        for _ in 0..<5000 {
            let principal = Self.randomPrincipal(&rng)
            let rights = principal.rights
            for pattern in rights.patternsAllowedInFull() {
                told += 1
                for action in Self.actions where Authorizer.matches(pattern, action) {
                    // On every property the rights reach, the action is allowed.
                    for property in Self.properties where Self.reaches(rights, property) {
                        #expect(principal.allows(action, property), "\(rights) tells \(pattern) but not \(action) on \(property ?? "-")")
                    }
                }
            }
        }
        #expect(told > 2000, "only \(told) patterns told")
    }

    /// True when `rights` reach `property` (nil: every property, as a property-less request needs).
    static func reaches(_ rights: Rights, _ property: String?) -> Bool {
        guard let property else { return rights.properties.allSatisfy { $0.contains("*") } }
        return rights.properties.allSatisfy { Authorizer.reaches($0, property) }
    }

    // MARK: - The issue's cases

    static let fullAdmin = rights(["admin:*"])

    @Test func aHelpDeskCannotActForTheAdministrator() {
        let helpDesk = Self.rights(["admin:keys.*", "pms:*"])
        let adminUser = Rights(user: Self.user(["admin:*"]), groups: [:])
        #expect(Delegation.decide(actor: helpDesk, touches: [.init("the key's user", adminUser)]) != .allowed)
        // A device user within the help desk's rights is fine.
        #expect(Delegation.decide(actor: helpDesk, touches: [.init("the key's user", Rights(user: Self.user(["pms:checkIn"]), groups: [:]))]) == .allowed)
    }

    @Test func nobodyWidensThemselvesOrTheirGroup() {
        let userAdmin = Self.rights(["admin:users.*"])
        #expect(Delegation.decide(actor: userAdmin, touches: [.init("the edited user", Rights(user: Self.user(["admin:*"]), groups: [:]))]) != .allowed)
        let member = Rights(key: Self.key(), user: Self.user([], groups: ["g"]),
                            groups: ["g": PermissionGroup(id: "g", name: "g", permissions: ["admin:groups.*"], createdAt: Self.now, updatedAt: Self.now)])
        let widened = PermissionGroup(id: "g", name: "g", permissions: ["admin:*"], createdAt: Self.now, updatedAt: Self.now)
        #expect(Delegation.decide(actor: member, touches: [.init("the edited group", Rights(group: widened))]) != .allowed)
    }

    @Test func propertiesBoundWhatAnActorGrants() {
        let hotelDesk = Self.rights(["admin:keys.*", "pms:*"], properties: ["hotel-1"])
        #expect(Delegation.decide(actor: hotelDesk, touches: [.init("the key", Self.rights(["pms:*"], properties: ["hotel-1"]))]) == .allowed)
        #expect(Delegation.decide(actor: hotelDesk, touches: [.init("the key", Self.rights(["pms:*"], properties: ["hotel-2"]))]) != .allowed)
        #expect(Delegation.decide(actor: hotelDesk, touches: [.init("the key", Self.rights(["pms:*"]))]) != .allowed)
    }

    @Test func rulesBoundWhatAnActorGrants() {
        let noRefunds = Self.rights(["admin:keys.*", "pms:*"], rules: ["!pms:refund", "*", "admin:*"])
        #expect(Delegation.decide(actor: noRefunds, touches: [.init("the key", Self.rights(["pms:checkIn"]))]) == .allowed)
        #expect(Delegation.decide(actor: noRefunds, touches: [.init("the key", Self.rights(["pms:*"]))]) != .allowed)
        // The same deny first in the target's rules takes the refund out.
        #expect(Delegation.decide(actor: noRefunds, touches: [.init("the key", Self.rights(["pms:*"], rules: ["!pms:refund", "pms:*"]))]) == .allowed)
    }

    @Test func aKeysOwnFieldsBoundWhatItMayGrowInto() {
        let reader = Self.user(["pms:read"])
        let trap = Self.key(scopes: ["pms:*", "admin:*"])
        let desk = Self.rights(["admin:keys.*", "pms:*"])
        // Today the key can do no more than its user…
        #expect(desk.missing(from: Rights(key: trap, user: reader, groups: [:])) == nil)
        // …but its own fields reach admin:*, which a widened user would wake.
        #expect(desk.missing(from: Rights(declaredBy: trap, user: reader, groups: [:])) != nil)
        #expect(desk.missing(from: Rights(declaredBy: Self.key(scopes: ["pms:*"]), user: reader, groups: [:])) == nil)
        // A key without scopes follows its user: bounded by the user's patterns; "*" by the user's properties.
        #expect(desk.missing(from: Rights(declaredBy: Self.key(), user: Self.user(["admin:*"]), groups: [:])) != nil)
        let hotelDesk = Self.rights(["admin:keys.*", "pms:*"], properties: ["hotel-1"])
        #expect(hotelDesk.missing(from: Rights(declaredBy: Self.key(scopes: ["pms:*"], properties: ["hotel-1"]), user: reader, groups: [:])) == nil)
        #expect(hotelDesk.missing(from: Rights(declaredBy: Self.key(scopes: ["pms:*"]), user: Self.user(["pms:read"], properties: ["hotel-1"]), groups: [:])) == nil)
        #expect(hotelDesk.missing(from: Rights(declaredBy: Self.key(scopes: ["pms:*"]), user: reader, groups: [:])) != nil)
    }

    @Test func aFullAdministratorIsBoundedByNothing() {
        #expect(Delegation.decide(actor: Self.fullAdmin, touches: [.init("the user", Rights(user: Self.user(["*", "admin:*"]), groups: [:]))]) == .allowed)
        // …but a read-only one is no full administrator.
        let readOnly = Self.rights(["admin:*"], rules: ["!*:*.write", "admin:*"])
        #expect(Delegation.decide(actor: readOnly, touches: [.init("the user", Rights(user: Self.user(["pms:*"]), groups: [:]))]) != .allowed)
    }

    @Test func denyRulesApplyToAdminActions() {
        let k = Self.key(rules: ["!*:*.write", "admin:*"])
        let decision = Authorizer.decide(AccessRequest(action: "admin:keys.write"), key: k, user: Self.user(["admin:*"]), groups: [:], now: Self.now)
        #expect(decision == AccessDecision(allowed: false, reason: .deniedByRule, decidedBy: "!*:*.write", ruleIndex: 0))
        #expect(Authorizer.decide(AccessRequest(action: "admin:keys.read"), key: k, user: Self.user(["admin:*"]), groups: [:], now: Self.now).allowed)
        // An allow rule still needs the service spelled out.
        #expect(!Authorizer.decide(AccessRequest(action: "admin:keys.read"), key: Self.key(rules: ["*:*"]), user: Self.user(["admin:*"]), groups: [:], now: Self.now).allowed)
    }
}
