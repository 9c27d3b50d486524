// SPDX-License-Identifier: Apache-2.0
public import Foundation

/// Whether a user may act at all.
public enum UserState: String, Codable, Sendable, CaseIterable {
    case active
    case disabled
}

/// A key's lifecycle state. `revoked` is terminal.
public enum KeyState: String, Codable, Sendable, CaseIterable {
    case active
    case suspended
    case revoked
}

/// What a key is now, as people read it: its stored state, except that a key past its expiry is
/// `expired` unless revoked (it stays stored as it was: editing the expiry brings it back).
public enum KeyStatus: String, Codable, Sendable, CaseIterable {
    case active
    case suspended
    case revoked
    case expired
}

extension APIKey {
    /// The key's status at `now`: final before reversible — revoked, then expired, then suspended.
    public func status(at now: Date) -> KeyStatus {
        if state == .revoked { return .revoked }
        if expiresAt.map({ $0 <= now }) == true { return .expired }
        return state == .suspended ? .suspended : .active
    }
}

/// The identity a key emulates.
public struct User: Codable, Equatable, Sendable {
    public var id: String
    public var name: String
    public var state: UserState
    /// Permission patterns held directly (`<service>:<api_name>`, wildcards allowed).
    public var permissions: [String]
    /// Permission groups whose permissions the user also holds (group ids).
    public var groups: [String]
    /// Properties (hotels, buildings) the user may reach; `["*"]` = all.
    public var properties: [String]
    public var createdAt: Date
    public var updatedAt: Date

    public init(id: String, name: String, state: UserState = .active, permissions: [String] = [], groups: [String] = [],
                properties: [String] = ["*"], createdAt: Date, updatedAt: Date) {
        self.id = id
        self.name = name
        self.state = state
        self.permissions = permissions
        self.groups = groups
        self.properties = properties
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// A named, reusable set of permission patterns.
public struct PermissionGroup: Codable, Equatable, Sendable {
    public var id: String
    public var name: String
    public var description: String
    public var permissions: [String]
    /// Rate limits for keys with this group (a key's own override them).
    public var limits: RateLimits?
    public var createdAt: Date
    public var updatedAt: Date

    public init(id: String, name: String, description: String = "", permissions: [String], limits: RateLimits? = nil, createdAt: Date, updatedAt: Date) {
        self.id = id
        self.name = name
        self.description = description
        self.permissions = permissions
        self.limits = limits
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// An API key's record. The secret itself is never stored: only its SHA-256 digest and the
/// display start.
public struct APIKey: Codable, Equatable, Sendable {
    public var id: String
    public var name: String
    public var description: String
    /// The user this key emulates.
    public var userID: String
    /// Optional permission group narrowing the key.
    public var groupID: String?
    /// Explicit scopes (permission patterns) narrowing the key.
    public var scopes: [String]
    /// Properties the key may reach; `["*"]` = all the user's.
    public var properties: [String]
    /// Ordered rules (`<service>:<api_name>`, `*`/`?`; a leading `!` denies). First match decides.
    public var rules: [String]
    /// Rate limits of this key (over its group's and the server's).
    public var limits: RateLimits?
    public var state: KeyState
    public var expiresAt: Date?
    public var createdAt: Date
    public var updatedAt: Date
    public var lastUsedAt: Date?
    public var lastUsedAddress: String?
    public var createdBy: String
    /// `dmk_` and the first 4 random characters: safe to show.
    public var displayStart: String

    public init(id: String, name: String, description: String = "", userID: String, groupID: String? = nil,
                scopes: [String] = [], properties: [String] = ["*"], rules: [String] = [], limits: RateLimits? = nil, state: KeyState = .active,
                expiresAt: Date? = nil, createdAt: Date, updatedAt: Date, lastUsedAt: Date? = nil,
                lastUsedAddress: String? = nil, createdBy: String, displayStart: String) {
        self.id = id
        self.name = name
        self.description = description
        self.userID = userID
        self.groupID = groupID
        self.scopes = scopes
        self.properties = properties
        self.rules = rules
        self.limits = limits
        self.state = state
        self.expiresAt = expiresAt
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.lastUsedAt = lastUsedAt
        self.lastUsedAddress = lastUsedAddress
        self.createdBy = createdBy
        self.displayStart = displayStart
    }
}
