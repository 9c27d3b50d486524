// SPDX-License-Identifier: Apache-2.0
import CLinux
import Foundation
import Logging
import GatewayCore
import Transport
import WebSocketServer
import WireCodec

/// One loop's live sessions: by id, by key, by user, and channel subscriptions.
///
/// `@unchecked Sendable` so `loop.execute` jobs can carry it to its loop: every member is used on
/// `loop`'s thread alone.
final class SessionHub: @unchecked Sendable {
    let loop: EventLoop
    private(set) var sessions: [UInt64: GatewaySession] = [:]
    private var byKey: [String: Set<UInt64>] = [:]
    private var byUser: [String: Set<UInt64>] = [:]
    /// channel key (property + NUL + channel) → subscribed session ids.
    private var channels: [String: Set<UInt64>] = [:]
    /// Per key with live sessions here: the welcome's text after the session id, and the identity
    /// cache generation it was made from.
    private var welcomeRests: [String: (generation: UInt64, bytes: [UInt8])] = [:]
    /// Connections to each upstream service from this loop, made on first call.
    var upstreamPools: [String: UpstreamPool] = [:]
    /// Kernel randomness fetched 4 KiB at a time (one getrandom(2) per 256 calls, not per call).
    private var random: [UInt8] = []
    private var randomUsed = 0

    init(loop: EventLoop) {
        self.loop = loop
    }

    /// 128 random bits as hex: a call's request id, unique, so an upstream can refuse a replay.
    func makeRequestID() -> String {
        if randomUsed + 16 > random.count {
            random = [UInt8](repeating: 0, count: 4096)
            guard random.withUnsafeMutableBytes({ doorman_random_fill($0.baseAddress, $0.count) }) == 0 else {
                fatalError("getrandom(2) failed: no kernel randomness for request ids")
            }
            randomUsed = 0
        }
        defer { randomUsed += 16 }
        return UpstreamSignature.hex(Array(random[randomUsed..<randomUsed + 16]))
    }

    func add(_ session: GatewaySession) {
        sessions[session.id] = session
        byKey[session.keyID, default: []].insert(session.id)
        byUser[session.userID, default: []].insert(session.id)
    }

    func remove(_ session: GatewaySession) {
        sessions[session.id] = nil
        byKey[session.keyID]?.remove(session.id)
        if byKey[session.keyID]?.isEmpty == true {
            byKey[session.keyID] = nil
            welcomeRests[session.keyID] = nil
        }
        byUser[session.userID]?.remove(session.id)
        if byUser[session.userID]?.isEmpty == true { byUser[session.userID] = nil }
        for channel in session.subscriptions { unsubscribe(session.id, from: channel) }
    }

    /// The welcome's text after the session id for a key, made by `make` only when this loop has
    /// none from the same cache generation (any change to keys, users or groups bumps it).
    func welcomeRest(keyID: String, generation: UInt64, make: () -> ArraySlice<UInt8>) -> [UInt8] {
        if let cached = welcomeRests[keyID], cached.generation == generation { return cached.bytes }
        let bytes = Array(make())
        welcomeRests[keyID] = (generation, bytes)
        return bytes
    }

    func subscribe(_ id: UInt64, to channel: String) { channels[channel, default: []].insert(id) }

    func unsubscribe(_ id: UInt64, from channel: String) {
        channels[channel]?.remove(id)
        if channels[channel]?.isEmpty == true { channels[channel] = nil }
    }

    /// Writes an event, encoded (and compressed) once for all loops, to this loop's subscribers.
    /// Returns deliveries.
    @discardableResult
    func deliver(_ message: PreparedMessage, to channel: String) -> Int {
        guard let ids = channels[channel] else { return 0 }
        var count = 0
        for id in ids {
            guard let session = sessions[id], session.isLive else { continue }
            session.connection?.send(prepared: message)
            count += 1
        }
        return count
    }

    /// Ends every session of a key (or, with `digest`, only those opened with that secret).
    func end(keyID: String, digest: KeyDigest? = nil, reason: SessionEndReason) -> Int {
        guard let ids = byKey[keyID] else { return 0 }
        var count = 0
        for id in ids {
            guard let session = sessions[id], digest == nil || session.digest == digest else { continue }
            session.end(reason)
            count += 1
        }
        return count
    }

    func end(userID: String, reason: SessionEndReason) -> Int {
        guard let ids = byUser[userID] else { return 0 }
        for id in ids { sessions[id]?.end(reason) }
        return ids.count
    }

    /// Ends every session here (the node can no longer vouch for any key).
    func endAll(reason: SessionEndReason) -> Int {
        var count = 0
        for session in sessions.values where session.isLive {
            session.end(reason)
            count += 1
        }
        return count
    }

    /// Ends one session by id (an administrator's kill).
    func end(sessionID: UInt64, reason: SessionEndReason) -> Bool {
        guard let session = sessions[sessionID], session.isLive else { return false }
        session.end(reason)
        return true
    }

    /// Re-evaluates the rights of the sessions of these keys (nil = every session).
    func recompute(keyIDs: Set<String>?, cache: IdentityCache) -> Int {
        var closed = 0
        let ids = keyIDs.map { keys in keys.flatMap { byKey[$0] ?? [] } } ?? Array(sessions.keys)
        // One cache read per key, not per session (a key may hold thousands).
        var current: [String: (APIKey, User, [String: PermissionGroup], KeySecrets)?] = [:]
        var unconfirmed: [String: SessionEndReason?] = [:]
        for id in ids {
            guard let session = sessions[id] else { continue }
            if unconfirmed[session.keyID] == nil { unconfirmed[session.keyID] = .some(cache.unconfirmedReason(keyID: session.keyID)) }
            // A change this node could not read back: fail closed with the change's reason.
            if let reason = unconfirmed[session.keyID]! {
                if session.end(reason) { closed += 1 }
                continue
            }
            if current[session.keyID] == nil { current[session.keyID] = .some(cache.current(keyID: session.keyID)) }
            if session.recompute(current[session.keyID]!) { closed += 1 }
        }
        return closed
    }

    /// Sessions of one user across this loop (for users whose groups changed).
    func keyIDs(ofUser userID: String) -> Set<String> {
        Set((byUser[userID] ?? []).compactMap { sessions[$0]?.keyID })
    }
}
