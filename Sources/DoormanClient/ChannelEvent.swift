// SPDX-License-Identifier: Apache-2.0

/// Where an event is published: a channel within a property (nil: no property).
public struct ChannelAddress: Sendable, Hashable, CustomStringConvertible {
    public var channel: String
    public var property: String?

    public init(channel: String, property: String?) {
        self.channel = channel
        self.property = property
    }

    public var description: String { property.map { "\(channel)@\($0)" } ?? channel }
}

/// One event published on a channel the client subscribed to.
public struct ChannelEvent: Sendable, Equatable {
    public var channel: String
    public var property: String?
    public var data: JSONValue
}
