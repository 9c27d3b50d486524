// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatewayCore
import Logging
import Synchronization
import Transport

/// Collects key uses (handshakes, admin calls) in memory and writes them to the store in one
/// batch at most every `interval` seconds, never one write per use. The newest use per key wins.
final class KeyUsageRecorder: Sendable {
    private struct State {
        var pending: [String: KeyUse] = [:]
        var lastFlush = Date.distantPast
        var flushing = false
    }
    private let state = Mutex(State())
    private let store: any IdentityStore
    private let pool: BlockingPool
    private let interval: TimeInterval
    private let logger: Logger

    init(store: any IdentityStore, pool: BlockingPool, interval: TimeInterval = 5, logger: Logger) {
        self.store = store
        self.pool = pool
        self.interval = interval
        self.logger = logger
    }

    /// Notes a use; schedules a batch write if the last one is `interval` old.
    func record(_ use: KeyUse) {
        let due = state.withLock { s -> Bool in
            if let known = s.pending[use.keyID], known.time >= use.time { return false }
            s.pending[use.keyID] = use
            guard !s.flushing, use.time.timeIntervalSince(s.lastFlush) >= interval else { return false }
            s.flushing = true
            return true
        }
        if due { pool.submit { [self] in flush() } }
    }

    /// Writes what is pending (blocking; on the pool, or at shutdown).
    func flush() {
        let batch = state.withLock { s -> [KeyUse] in
            defer { s.pending = [:]; s.lastFlush = Date() }
            return Array(s.pending.values)
        }
        do {
            try store.recordUses(batch)
        } catch {
            // Last-used is informational: keep the newest uses for the next batch rather than fail anything.
            logger.warning("could not record key uses", metadata: ["error": "\(error)", "count": "\(batch.count)"])
            state.withLock { s in for use in batch where s.pending[use.keyID] == nil { s.pending[use.keyID] = use } }
        }
        state.withLock { $0.flushing = false }
    }
}
