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

/// The one function that computes a key's effective rights:
///
///     user's permissions (own ∪ groups')  ∩  key's scopes ∪ key's group (if any)
///     ∩ user's properties ∩ key's properties
///     then the key's rules, in order, first match decides (`!` = deny); rules present, none
///     matching = denied; no rules = whatever the narrowed user may do.
///
/// A key can never exceed its user: every path to "allowed" passes the user's own permissions.
///
/// The `admin` service is reserved: only patterns that name it literally (`admin:…`) grant an
/// admin action, so a device given `*` or `*:*` never becomes an administrator by accident.
public enum Authorizer {
    /// The service whose actions only literal `admin:` patterns grant.
    public static let reservedService = "admin"

    public static func decide(
        _ request: AccessRequest, key: APIKey, user: User, groups: [String: PermissionGroup], now: Date
    ) -> AccessDecision {
        if ActionName.validateAction(request.action) != nil { return .deny(.invalidAction) }
        switch key.state {
        case .revoked: return .deny(.keyRevoked)
        case .suspended: return .deny(.keySuspended)
        case .active: break
        }
        if let expiry = key.expiresAt, expiry <= now { return .deny(.keyExpired) }
        guard user.state == .active else { return .deny(.userDisabled) }

        if let property = request.property {
            guard reaches(user.properties, property) else { return .deny(.propertyNotAllowedForUser, property) }
            guard reaches(key.properties, property) else { return .deny(.propertyNotAllowedForKey, property) }
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
                let deny = rule.hasPrefix("!")
                let pattern = deny ? String(rule.dropFirst()) : rule
                guard Self.matches(pattern, request.action) else { continue }
                return deny ? .deny(.deniedByRule, rule, rule: index)
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

    /// `admin:` at the start, ASCII letters in any case (no lowercased copy per match).
    private static func namesReservedService(_ text: String) -> Bool {
        var it = text.utf8.makeIterator()
        for expected in "admin:".utf8 {
            guard let b = it.next(), (b >= 65 && b <= 90 ? b | 0x20 : b) == expected else { return false }
        }
        return true
    }

    /// `["*"]` reaches every property; otherwise an exact (case-sensitive) member.
    public static func reaches(_ properties: [String], _ property: String) -> Bool {
        properties.contains("*") || properties.contains(property)
    }
}
