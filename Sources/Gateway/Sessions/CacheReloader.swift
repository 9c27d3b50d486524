// SPDX-License-Identifier: Apache-2.0
import Dispatch
import GatewayCore
import Logging
import Synchronization

/// On one node, reads the whole identity cache again after a refresh failed, then once a second
/// until that works (the keys the failed change touched stay unusable meanwhile). One retry
/// chain at a time; `stop()` ends it at shutdown.
final class CacheReloader: Sendable {
    private struct State {
        var pending = false
        var stopped = false
    }

    private let cache: IdentityCache
    private let store: any IdentityStore
    private let logger: Logger
    private let state = Mutex(State())

    init(cache: IdentityCache, store: any IdentityStore, logger: Logger) {
        self.cache = cache
        self.store = store
        self.logger = logger
    }

    /// Loads now; on failure, again in a second (unless a retry is already waiting).
    func reload() {
        do {
            try cache.load(from: store)
        } catch {
            let schedule = state.withLock { s -> Bool in
                guard !s.pending, !s.stopped else { return false }
                s.pending = true
                return true
            }
            guard schedule else { return }
            logger.warning("cache reload failed; retrying every second", metadata: ["error": "\(error)"])
            DispatchQueue.global().asyncAfter(deadline: .now() + 1) { [self] in
                let go = state.withLock { s -> Bool in
                    s.pending = false
                    return !s.stopped
                }
                if go { reload() }
            }
        }
    }

    func stop() { state.withLock { $0.stopped = true } }
}
