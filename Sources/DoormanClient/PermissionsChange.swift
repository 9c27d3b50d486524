// SPDX-License-Identifier: Apache-2.0
public import Foundation

/// Rights changed under a live session (`permissions_changed`): it goes on with these.
public struct PermissionsChange: Sendable, Equatable {
    public var scopes: [String]
    public var properties: [String]
    public var rules: [String]
    public var expiresAt: Date?
    /// Subscriptions the server dropped because the session may no longer hold them; the client
    /// has forgotten them too (no resubscribe after a reconnect).
    public var removedSubscriptions: [ChannelAddress]

    init(_ m: [String: JSONValue]) {
        scopes = m["scopes"].strings
        properties = m["properties"].strings
        rules = m["rules"].strings
        expiresAt = m["expiresAt"]?.stringValue.flatMap(Date.init(rfc3339:))
        removedSubscriptions = (m["removedSubscriptions"]?.arrayValue ?? []).compactMap { entry in
            entry["channel"]?.stringValue.map { ChannelAddress(channel: $0, property: entry["property"]?.stringValue) }
        }
    }
}
