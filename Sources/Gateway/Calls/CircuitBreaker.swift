// SPDX-License-Identifier: Apache-2.0
import Synchronization
import Transport

/// Per upstream, shared by all loops: after `threshold` consecutive failures the circuit opens
/// and calls fail at once (no connection attempts pile up against a dead service) for
/// `cooldown`; then one trial call is let through (half-open): success closes the circuit,
/// failure opens it again.
final class CircuitBreaker: Sendable {
    private struct State {
        var failures = 0
        var openUntil: UInt64 = 0
        var trialInFlight = false
    }
    private let state = Mutex(State())
    let threshold: Int
    let cooldown: UInt64

    init(threshold: Int, cooldownSeconds: Double) {
        self.threshold = max(1, threshold)
        cooldown = UInt64(max(0, cooldownSeconds) * 1e9)
    }

    /// nil: go ahead; else seconds until the circuit lets a trial through.
    func admit(now: UInt64 = monotonicNanoseconds()) -> Double? {
        state.withLock { s -> Double? in
            guard s.failures >= threshold else { return nil }
            if now < s.openUntil { return Double(s.openUntil - now) / 1e9 }
            // Half-open: one trial at a time.
            if s.trialInFlight { return Double(cooldown) / 1e9 }
            s.trialInFlight = true
            return nil
        }
    }

    func succeeded() {
        state.withLock { s in
            s.failures = 0
            s.trialInFlight = false
        }
    }

    func failed(now: UInt64 = monotonicNanoseconds()) {
        state.withLock { s in
            s.failures += 1
            s.trialInFlight = false
            if s.failures >= threshold { s.openUntil = now &+ cooldown }
        }
    }

    /// A call that was let through ended with no verdict (its caller went away).
    func abandoned() {
        state.withLock { $0.trialInFlight = false }
    }

    var isOpen: Bool { state.withLock { $0.failures >= threshold } }
}
