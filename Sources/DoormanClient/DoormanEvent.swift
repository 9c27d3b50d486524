// SPDX-License-Identifier: Apache-2.0
public import Foundation

/// What happened to the connection, in order, on `DoormanClient.events`.
public enum DoormanEvent: Sendable, Equatable {
    /// A session is open (first connect or a reconnect) and its subscriptions are restored
    /// (any that could not be are reported as `.subscriptionLost` first).
    case connected(Welcome)
    /// The session or an attempt ended; the client tries again after `retryIn`.
    case disconnected(Disconnect)
    /// The server's notice before it ends the session (a stop follows for 4000-4099).
    case notice(Notice)
    /// The session's rights changed; it goes on.
    case permissionsChanged(PermissionsChange)
    /// The key expires soon (the server's `expiry_warning`).
    case expiryWarning(expiresAt: Date?)
    /// A subscription could not be restored after a reconnect (e.g. now forbidden); it is forgotten.
    case subscriptionLost(ChannelAddress, DoormanError)
    /// Stopped for good: no more connection attempts. The last event.
    case stopped(StopReason)
}

/// A session or connection attempt that ended, and when the client tries again.
public struct Disconnect: Sendable, Equatable {
    /// The close code (1001, 4100, …), the refusing HTTP status (429, 503), or nil for a network
    /// failure (refused, reset, timeout).
    public var code: Int?
    /// The close reason, the refusal's `error`, or the network error.
    public var reason: String
    /// How long the client waits before the next attempt.
    public var retryIn: Duration
    /// How many attempts in a row have failed (0 after a session that lasted).
    public var attempt: Int
}
