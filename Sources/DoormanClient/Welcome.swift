// SPDX-License-Identifier: Apache-2.0
public import Foundation

/// The server's first message on every session: who this device acts as and what it may do.
///
///     ← {"type":"welcome","session":"17","user":{"id":"usr_…","name":"Door panels"},
///        "key":{"id":"key_…","name":"door 12"},"scopes":[…],"properties":["hotel-1"],"rules":[],"expiresAt":null}
public struct Welcome: Sendable, Equatable {
    /// An id and a display name (the user, the key).
    public struct Identity: Sendable, Equatable {
        public var id: String
        public var name: String
    }

    /// The session id on the node that accepted it.
    public var session: String
    /// The user the key emulates.
    public var user: Identity
    /// The key itself (id and name; never the secret).
    public var key: Identity
    /// The session's effective rights.
    public var scopes: [String]
    public var properties: [String]
    public var rules: [String]
    /// When the key expires; nil for never.
    public var expiresAt: Date?

    init?(_ m: [String: JSONValue]) {
        guard let session = m["session"]?.stringValue,
              let user = m["user"].flatMap(Identity.init), let key = m["key"].flatMap(Identity.init) else { return nil }
        self.session = session
        self.user = user
        self.key = key
        scopes = m["scopes"].strings
        properties = m["properties"].strings
        rules = m["rules"].strings
        expiresAt = m["expiresAt"]?.stringValue.flatMap(Date.init(rfc3339:))
    }
}

extension Welcome.Identity {
    init?(_ value: JSONValue) {
        guard let id = value["id"]?.stringValue else { return nil }
        self.init(id: id, name: value["name"]?.stringValue ?? "")
    }
}

extension Optional where Wrapped == JSONValue {
    /// An array of strings (other elements skipped); empty when absent.
    var strings: [String] { (self?.arrayValue ?? []).compactMap(\.stringValue) }
}

extension Date {
    /// `2026-05-01T12:00:00Z` and other RFC 3339 timestamps, as the server writes them.
    init?(rfc3339 text: String) {
        // A formatter per call: ISO8601DateFormatter is not Sendable, and expiry dates are rare.
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        if let date = formatter.date(from: text) { self = date; return }
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        guard let date = formatter.date(from: text) else { return nil }
        self = date
    }
}
