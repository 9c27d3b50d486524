// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatewayCore
import Testing

@Suite struct AuthorizerTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    func user(_ permissions: [String], properties: [String] = ["*"], groups: [String] = [], state: UserState = .active) -> User {
        User(id: "u1", name: "kiosk user", state: state, permissions: permissions, groups: groups, properties: properties,
             createdAt: now, updatedAt: now)
    }

    func key(scopes: [String] = [], group: String? = nil, properties: [String] = ["*"], rules: [String] = [],
             state: KeyState = .active, expires: Date? = nil) -> APIKey {
        APIKey(id: "k1", name: "kiosk", userID: "u1", groupID: group, scopes: scopes, properties: properties, rules: rules,
               state: state, expiresAt: expires, createdAt: now, updatedAt: now, createdBy: "admin", displayStart: "dmk_abcd")
    }

    func decide(_ action: String, _ property: String? = nil, key: APIKey, user: User, groups: [String: PermissionGroup] = [:]) -> AccessDecision {
        Authorizer.decide(AccessRequest(action: action, property: property), key: key, user: user, groups: groups, now: now)
    }

    @Test func aKeyWithoutNarrowingHasItsUsersRights() {
        let d = decide("pms:checkIn", key: key(), user: user(["pms:*"]))
        #expect(d == AccessDecision(allowed: true, reason: .allowed, decidedBy: "pms:*"))
    }

    @Test func leavingThePropertyOutNeverEscapesAPropertyList() {
        let limitedKey = key(properties: ["hotel-1"])
        #expect(decide("channel:subscribe.alerts", key: limitedKey, user: user(["channel:*"])).reason == .invalidProperty)
        #expect(decide("channel:subscribe.alerts", key: key(), user: user(["channel:*"], properties: ["hotel-1"])).reason == .invalidProperty)
        #expect(decide("pms:checkIn", key: limitedKey, user: user(["pms:*"])).reason == .invalidProperty)
        #expect(decide("channel:subscribe.alerts", "hotel-1", key: limitedKey, user: user(["channel:*"])).allowed)
        // Property-less channels and calls belong to sessions that reach every property.
        #expect(decide("channel:subscribe.alerts", key: key(), user: user(["channel:*"])).allowed)
        // The same scalars, not canonically equivalent text: a Kelvin sign is not a K.
        #expect(decide("channel:subscribe.alerts", "\u{212A}-1", key: key(properties: ["K-1"]), user: user(["channel:*"])).reason == .propertyNotAllowedForKey)
        // Admin actions carry no property.
        #expect(decide("admin:keys.read", key: limitedKey, user: user(["admin:*"])).allowed)
    }

    @Test func refusalsMapToOneStatusAndCode() {
        #expect(AccessDecision.Reason.invalidProperty.refusalStatus == 400 && AccessDecision.Reason.invalidProperty.refusalCode == "invalid_property")
        #expect(AccessDecision.Reason.invalidAction.refusalStatus == 400)
        #expect(AccessDecision.Reason.keyRevoked.refusalStatus == 401 && AccessDecision.Reason.keyRevoked.refusalCode == "forbidden")
        #expect(AccessDecision.Reason.propertyNotAllowedForKey.refusalStatus == 403)
    }

    @Test func readsAPropertyFieldAsANameNothingOrInvalid() {
        #expect(PropertyName.parse(json: nil) == .success(nil))
        #expect(PropertyName.parse(json: NSNull()) == .success(nil))
        #expect(PropertyName.parse(json: "hotel-1") == .success("hotel-1"))
        for bad: Any in [7, ["hotel-2"], ["p": "hotel-1"], true, "", "a b", "tab\there", String(repeating: "x", count: 201)] {
            #expect(PropertyName.parse(json: bad) == .failure(PropertyName.Invalid()), "\(bad)")
        }
        #expect(PropertyName.parse(header: nil) == .success(nil))
        #expect(PropertyName.parse(header: "") == .failure(PropertyName.Invalid()))
    }

    @Test func aKeyNeverExceedsItsUser() {
        let d = decide("pms:refund", key: key(scopes: ["pms:*"]), user: user(["pms:checkIn*"]))
        #expect(d.reason == .notPermittedForUser)
    }

    @Test func scopesAndGroupsNarrow() {
        let groups = ["g": PermissionGroup(id: "g", name: "kiosk", permissions: ["pms:checkIn*"], createdAt: now, updatedAt: now)]
        #expect(decide("pms:checkInGuest", key: key(group: "g"), user: user(["pms:*"]), groups: groups).allowed)
        #expect(decide("pms:checkOut", key: key(group: "g"), user: user(["pms:*"]), groups: groups).reason == .notInKeyScopes)
        #expect(decide("pms:checkOut", key: key(scopes: ["pms:checkOut"], group: "g"), user: user(["pms:*"]), groups: groups).allowed)
    }

    @Test func usersInheritTheirGroupsPermissions() {
        let groups = ["ops": PermissionGroup(id: "ops", name: "ops", permissions: ["rms:*"], createdAt: now, updatedAt: now)]
        #expect(decide("rms:book", key: key(), user: user([], groups: ["ops"]), groups: groups).allowed)
    }

    @Test func firstMatchingRuleDecides() {
        let k = key(rules: ["!pms:checkInVIP", "pms:checkIn*", "!pms:*"])
        let u = user(["pms:*"])
        #expect(decide("pms:checkInVIP", key: k, user: u) == AccessDecision(allowed: false, reason: .deniedByRule, decidedBy: "!pms:checkInVIP", ruleIndex: 0))
        #expect(decide("pms:checkInGuest", key: k, user: u) == AccessDecision(allowed: true, reason: .allowed, decidedBy: "pms:checkIn*", ruleIndex: 1))
        #expect(decide("pms:refund", key: k, user: u).ruleIndex == 2)
        #expect(decide("pms:refund", key: key(rules: ["pms:checkIn*"]), user: u).reason == .noRuleMatched)
    }

    @Test func propertiesNarrowToBoth() {
        let u = user(["*"], properties: ["hotel-1", "hotel-2"])
        #expect(decide("pms:checkIn", "hotel-1", key: key(properties: ["hotel-1"]), user: u).allowed)
        #expect(decide("pms:checkIn", "hotel-2", key: key(properties: ["hotel-1"]), user: u).reason == .propertyNotAllowedForKey)
        #expect(decide("pms:checkIn", "hotel-3", key: key(), user: u).reason == .propertyNotAllowedForUser)
        #expect(decide("pms:checkIn", "Hotel-1", key: key(), user: u).reason == .propertyNotAllowedForUser)   // exact
    }

    @Test func stateAndExpiryComeFirst() {
        let u = user(["*"])
        #expect(decide("a:b", key: key(state: .revoked), user: u).reason == .keyRevoked)
        #expect(decide("a:b", key: key(state: .suspended), user: u).reason == .keySuspended)
        #expect(decide("a:b", key: key(expires: now), user: u).reason == .keyExpired)
        #expect(decide("a:b", key: key(expires: now.addingTimeInterval(1)), user: u).allowed)
        #expect(decide("a:b", key: key(), user: user(["*"], state: .disabled)).reason == .userDisabled)
    }

    @Test func wildcardsNeverGrantTheReservedAdminService() {
        for grant in ["*", "*:*", "a*:*", "?????:*"] {
            #expect(decide("admin:keys.write", key: key(), user: user([grant])).reason == .notPermittedForUser, "\(grant)")
        }
        #expect(decide("admin:keys.write", key: key(), user: user(["admin:*"])).allowed)
        #expect(decide("admin:keys.write", key: key(scopes: ["*"]), user: user(["admin:*"])).reason == .notInKeyScopes)
        #expect(decide("admin:keys.write", key: key(rules: ["*"]), user: user(["admin:*"])).reason == .noRuleMatched)
    }

    @Test(arguments: ["pms:check%49n", "pms:checkIn.", "pms:a..b", "pms:", "pms:chéck", "pms:check In", "pmscheckIn"])
    func refusesNonCanonicalActionsEvenForAnAllPowerfulKey(_ action: String) {
        #expect(decide(action, key: key(), user: user(["*"])).reason == .invalidAction)
    }
}
