// SPDX-License-Identifier: Apache-2.0

/// Per-key token buckets, set on a key or on its permission group; what neither sets comes from
/// the server's defaults. Rates are per second, bursts in tokens; a rate of 0 means no limit.
public struct RateLimits: Codable, Equatable, Sendable {
    public var messagesPerSecond: Double?
    public var messageBurst: Double?
    public var callsPerSecond: Double?
    public var callBurst: Double?
    public var handshakesPerSecond: Double?
    public var handshakeBurst: Double?

    public init(messagesPerSecond: Double? = nil, messageBurst: Double? = nil, callsPerSecond: Double? = nil, callBurst: Double? = nil,
                handshakesPerSecond: Double? = nil, handshakeBurst: Double? = nil) {
        self.messagesPerSecond = messagesPerSecond
        self.messageBurst = messageBurst
        self.callsPerSecond = callsPerSecond
        self.callBurst = callBurst
        self.handshakesPerSecond = handshakesPerSecond
        self.handshakeBurst = handshakeBurst
    }

    public static let fieldNames = ["messagesPerSecond", "messageBurst", "callsPerSecond", "callBurst", "handshakesPerSecond", "handshakeBurst"]

    /// Each field from the first of `layers` that sets it (key, then group, then server).
    public static func effective(_ layers: RateLimits?...) -> RateLimits {
        func pick(_ field: KeyPath<RateLimits, Double?>) -> Double? { layers.lazy.compactMap { $0?[keyPath: field] }.first }
        return RateLimits(messagesPerSecond: pick(\.messagesPerSecond), messageBurst: pick(\.messageBurst),
                          callsPerSecond: pick(\.callsPerSecond), callBurst: pick(\.callBurst),
                          handshakesPerSecond: pick(\.handshakesPerSecond), handshakeBurst: pick(\.handshakeBurst))
    }

    /// A problem with a value (negative, not finite), or nil.
    public var problem: String? {
        let values: [(String, Double?)] = zip(Self.fieldNames, [messagesPerSecond, messageBurst, callsPerSecond, callBurst, handshakesPerSecond, handshakeBurst]).map { ($0, $1) }
        for (name, value) in values { if let value, !(value.isFinite && value >= 0 && value <= 1_000_000) { return "\(name) must be between 0 and 1000000" } }
        return nil
    }
}
