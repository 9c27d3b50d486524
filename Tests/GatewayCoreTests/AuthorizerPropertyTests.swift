// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatewayCore
import Testing
import TestSupport

/// Thousands of random users, keys, rules and requests against a reference written the slow,
/// obvious way (recursive wildcard matching, sets, a linear rule scan).
@Suite struct AuthorizerPropertyTests {
    /// Reference wildcard match: recursive, ASCII case-folded.
    static func referenceMatch(_ p: [Character], _ t: [Character]) -> Bool {
        if p.isEmpty { return t.isEmpty }
        if p[0] == "*" { return referenceMatch(Array(p.dropFirst()), t) || (!t.isEmpty && referenceMatch(p, Array(t.dropFirst()))) }
        guard let c = t.first else { return false }
        return (p[0] == "?" || fold(p[0]) == fold(c)) && referenceMatch(Array(p.dropFirst()), Array(t.dropFirst()))
    }

    /// Only ASCII letters ignore case.
    static func fold(_ c: Character) -> String { c.isASCII ? c.lowercased() : String(c) }

    static func matches(_ pattern: String, _ text: String) -> Bool { referenceMatch(Array(pattern), Array(text)) }

    static func reference(_ action: String, _ property: String?, key: APIKey, user: User, groups: [String: PermissionGroup]) -> Bool {
        guard key.state == .active, user.state == .active else { return false }
        if let p = property {
            guard user.properties.contains("*") || user.properties.contains(p) else { return false }
            guard key.properties.contains("*") || key.properties.contains(p) else { return false }
        } else if !(user.properties.contains("*") && key.properties.contains("*")) {
            return false   // property-less requests only for sessions that reach every property
        }
        let userPatterns = Set(user.permissions + user.groups.flatMap { groups[$0]?.permissions ?? [] })
        guard userPatterns.contains(where: { matches($0, action) }) else { return false }
        let keyPatterns = key.scopes + (key.groupID.flatMap { groups[$0]?.permissions } ?? [])
        if !key.scopes.isEmpty || key.groupID != nil {
            guard keyPatterns.contains(where: { matches($0, action) }) else { return false }
        }
        if key.rules.isEmpty { return true }
        for rule in key.rules {
            if rule.hasPrefix("!") { if matches(String(rule.dropFirst()), action) { return false } }
            else if matches(rule, action) { return true }
        }
        return false
    }

    @Test func agreesWithTheReferenceOnRandomCases() {
        var rng = SplitMix64(seed: 20261122)
        let services = ["pms", "rms", "channel", "Pms"]
        let apis = ["checkIn", "checkInGuest", "checkOut", "book", "subscribe.door", "subscribe.room-1", "a/b", "x"]
        let properties = ["hotel-1", "hotel-2", "hotel-3"]
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        func pattern() -> String {
            let forms = ["*", "\(services.randomElement(using: &rng)!):*", "*:\(apis.randomElement(using: &rng)!)",
                         "\(services.randomElement(using: &rng)!):\(apis.randomElement(using: &rng)!)",
                         "\(services.randomElement(using: &rng)!):check*", "\(services.randomElement(using: &rng)!):check??",
                         "p?s:*In*", "*:subscribe.*", "*o*:*"]
            return forms.randomElement(using: &rng)!
        }
        func some<T>(_ make: () -> T, max: Int) -> [T] { (0..<Int.random(in: 0...max, using: &rng)).map { _ in make() } }
        func props() -> [String] { Int.random(in: 0..<4, using: &rng) > 0 ? ["*"] : some({ properties.randomElement(using: &rng)! }, max: 2) }

        var allowedCount = 0
        let cases = 5000
        for _ in 0..<cases {
            let groups = ["g1": PermissionGroup(id: "g1", name: "g1", permissions: some(pattern, max: 3), createdAt: now, updatedAt: now),
                          "g2": PermissionGroup(id: "g2", name: "g2", permissions: some(pattern, max: 3), createdAt: now, updatedAt: now)]
            let user = User(id: "u", name: "u", state: Int.random(in: 0..<20, using: &rng) == 0 ? .disabled : .active,
                            permissions: some(pattern, max: 4), groups: some({ ["g1", "g2"].randomElement(using: &rng)! }, max: 1),
                            properties: props(), createdAt: now, updatedAt: now)
            let rules = some({ (Bool.random(using: &rng) ? "!" : "") + pattern() }, max: 3)
            let key = APIKey(id: "k", name: "k", userID: "u", groupID: Bool.random(using: &rng) ? nil : "g2",
                             scopes: some(pattern, max: 2), properties: props(), rules: rules,
                             state: Int.random(in: 0..<20, using: &rng) == 0 ? .suspended : .active,
                             createdAt: now, updatedAt: now, createdBy: "t", displayStart: "dmk_xxxx")
            let action = "\(services.randomElement(using: &rng)!):\(apis.randomElement(using: &rng)!)"
            let property: String? = Int.random(in: 0..<4, using: &rng) > 0 ? properties.randomElement(using: &rng)! : nil
            let decision = Authorizer.decide(AccessRequest(action: action, property: property), key: key, user: user, groups: groups, now: now)
            let expected = Self.reference(action, property, key: key, user: user, groups: groups)
            #expect(decision.allowed == expected, "action \(action) property \(property ?? "-") user \(user.permissions) key scopes \(key.scopes) group \(key.groupID ?? "-") rules \(rules)")
            // The invariant, stated apart from the reference: nothing allowed escapes a property list.
            if decision.allowed {
                if let property {
                    #expect(Authorizer.reaches(user.properties, property) && Authorizer.reaches(key.properties, property))
                } else {
                    #expect(user.properties.contains("*") && key.properties.contains("*"), "a property-less request escaped \(key.properties) / \(user.properties)")
                }
            }
            if decision.allowed { allowedCount += 1 }
        }
        // The generator must exercise both outcomes substantially, or the test proves little.
        #expect(allowedCount > cases / 20 && allowedCount < cases * 19 / 20, "\(allowedCount) of \(cases) allowed")
    }

    @Test func wildcardAgreesWithTheReference() {
        var rng = SplitMix64(seed: 7)
        let alphabet: [Character] = ["a", "b", "A", ".", ":", "é", "É"]
        let patternAlphabet = alphabet + ["*", "?"]
        for _ in 0..<20_000 {
            let p = String((0..<Int.random(in: 0...6, using: &rng)).map { _ in patternAlphabet.randomElement(using: &rng)! })
            let t = String((0..<Int.random(in: 0...8, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! })
            #expect(Wildcard(p).matches(t) == Self.matches(p, t), "pattern \(p) text \(t)")
        }
    }
}
