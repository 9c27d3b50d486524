// SPDX-License-Identifier: Apache-2.0
public import Foundation

/// "May this key do this action, on this property?" — and why.
public struct AccessRequest: Equatable, Sendable {
    /// `<service>:<api_name>`, e.g. `pms:checkIn` or `channel:subscribe.door-events`.
    public var action: String
    /// The property (hotel, building) the action is on, if any.
    public var property: String?

    public init(action: String, property: String? = nil) {
        self.action = action
        self.property = property
    }
}

/// The outcome of an access check, with what decided it.
public struct AccessDecision: Equatable, Sendable, Codable {
    /// Stable, machine-readable reasons.
    public enum Reason: String, Codable, Sendable {
        case allowed
        case invalidAction = "invalid_action"
        /// No property where the session's properties are limited (or one that is not a name): a
        /// request of a key that does not reach every property must name one of them.
        case invalidProperty = "invalid_property"
        case keyRevoked = "key_revoked"
        case keySuspended = "key_suspended"
        case keyExpired = "key_expired"
        case userDisabled = "user_disabled"
        case propertyNotAllowedForUser = "property_not_allowed_for_user"
        case propertyNotAllowedForKey = "property_not_allowed_for_key"
        case notPermittedForUser = "not_permitted_for_user"
        case notInKeyScopes = "not_in_key_scopes"
        case deniedByRule = "denied_by_rule"
        case noRuleMatched = "no_rule_matched"
    }

    public var allowed: Bool
    public var reason: Reason
    /// The permission pattern, scope or rule that decided, when one did.
    public var decidedBy: String?
    /// The index of the deciding rule in the key's rules.
    public var ruleIndex: Int?

    public init(allowed: Bool, reason: Reason, decidedBy: String? = nil, ruleIndex: Int? = nil) {
        self.allowed = allowed
        self.reason = reason
        self.decidedBy = decidedBy
        self.ruleIndex = ruleIndex
    }

    static func deny(_ reason: Reason, _ by: String? = nil, rule: Int? = nil) -> AccessDecision {
        AccessDecision(allowed: false, reason: reason, decidedBy: by, ruleIndex: rule)
    }
}

extension AccessDecision.Reason {
    /// The HTTP status of a refusal for this reason: 400 for a request that names no valid action
    /// or property, 401 for a key or user that may do nothing now, 403 otherwise.
    public var refusalStatus: Int {
        switch self {
        case .invalidAction, .invalidProperty: return 400
        case .keyRevoked, .keySuspended, .keyExpired, .userDisabled: return 401
        default: return 403
        }
    }

    /// The error code of a refusal on a session or in an HTTP answer (the reason goes beside it).
    public var refusalCode: String { self == .invalidProperty ? "invalid_property" : "forbidden" }
}

/// The one function that computes a key's effective rights:
///
///     user's permissions (own ∪ groups')  ∩  key's scopes ∪ key's group (if any)
///     ∩ user's properties ∩ key's properties (a request without a property: only when both
///       reach every property; admin actions carry none)
///     then the key's rules, in order, first match decides (`!` = deny); rules present, none
///     matching = denied; no rules = whatever the narrowed user may do.
///
/// A key can never exceed its user: every path to "allowed" passes the user's own permissions.
///
/// The `admin` service is reserved: only patterns that name it literally (`admin:…`) grant an
/// admin action, so a device given `*` or `*:*` never becomes an administrator by accident. A deny
/// rule needs no such spelling: `!*:*.write` refuses admin writes too.
///
/// Which admin writes an administrator may make (never beyond its own rights) is `Delegation`'s.
public enum Authorizer {
    /// The service whose actions only literal `admin:` patterns grant.
    public static let reservedService = "admin"

    public static func decide(
        _ request: AccessRequest, key: APIKey, user: User, groups: [String: PermissionGroup], now: Date
    ) -> AccessDecision {
        if ActionName.validateAction(request.action) != nil { return .deny(.invalidAction) }
        if let property = request.property, !PropertyName.isValid(property) { return .deny(.invalidProperty) }
        switch SessionEndReason.refusing(key, of: user, at: now) {
        case .keyRevoked?: return .deny(.keyRevoked)
        case .keyExpired?: return .deny(.keyExpired)
        case .keySuspended?: return .deny(.keySuspended)
        case .userDisabled?: return .deny(.userDisabled)
        case nil: break
        default: return .deny(.keyRevoked)   // refusing(_:of:at:) names only the four above
        }

        if let property = request.property {
            guard reaches(user.properties, property) else { return .deny(.propertyNotAllowedForUser, property) }
            guard reaches(key.properties, property) else { return .deny(.propertyNotAllowedForKey, property) }
        } else if !namesReservedService(request.action), !(user.properties.contains("*") && key.properties.contains("*")) {
            // Property-less channels and calls belong to sessions that reach every property: leaving
            // the property out never escapes a key's (or its user's) property list.
            return .deny(.invalidProperty)
        }

        let userPatterns = user.permissions + user.groups.flatMap { groups[$0]?.permissions ?? [] }
        guard let userGrant = firstMatch(userPatterns, request.action) else { return .deny(.notPermittedForUser) }

        var decidedBy = userGrant
        let keyPatterns = key.scopes + (key.groupID.flatMap { groups[$0]?.permissions } ?? [])
        if !key.scopes.isEmpty || key.groupID != nil {
            guard let scope = firstMatch(keyPatterns, request.action) else { return .deny(.notInKeyScopes) }
            decidedBy = scope
        }

        if !key.rules.isEmpty {
            for (index, rule) in key.rules.enumerated() {
                guard ruleMatches(rule, request.action) else { continue }
                return rule.hasPrefix("!") ? .deny(.deniedByRule, rule, rule: index)
                    : AccessDecision(allowed: true, reason: .allowed, decidedBy: rule, ruleIndex: index)
            }
            return .deny(.noRuleMatched)
        }
        return AccessDecision(allowed: true, reason: .allowed, decidedBy: decidedBy)
    }

    /// The first pattern matching `action`.
    public static func firstMatch(_ patterns: [String], _ action: String) -> String? {
        patterns.first { matches($0, action) }
    }

    /// A pattern matches an action; actions of the reserved service need the service spelled out.
    public static func matches(_ pattern: String, _ action: String) -> Bool {
        if namesReservedService(action), !namesReservedService(pattern) { return false }
        return Wildcard(pattern).matches(action)
    }

    /// A key's rule matches an action. A deny rule (`!…`) refuses whatever its pattern matches,
    /// admin actions included (`["!*:*.write", "admin:*"]` is a read-only admin); an allow rule
    /// grants as any pattern does (admin actions only when it names `admin:`).
    public static func ruleMatches(_ rule: String, _ action: String) -> Bool {
        rule.hasPrefix("!") ? Wildcard(String(rule.dropFirst())).matches(action) : matches(rule, action)
    }

    /// `admin:` at the start, ASCII letters in any case (no lowercased copy per match).
    static func namesReservedService(_ text: String) -> Bool {
        var it = text.utf8.makeIterator()
        for expected in "admin:".utf8 {
            guard let b = it.next(), (b >= 65 && b <= 90 ? b | 0x20 : b) == expected else { return false }
        }
        return true
    }

    /// `["*"]` reaches every property; otherwise an exact member: the same Unicode scalars, not just
    /// canonically equivalent text (an upstream is told the property as the client spelled it, and
    /// may compare bytes).
    public static func reaches(_ properties: [String], _ property: String) -> Bool {
        properties.contains("*") || properties.contains { $0.unicodeScalars.elementsEqual(property.unicodeScalars) }
    }
}
