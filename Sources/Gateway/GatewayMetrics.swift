// SPDX-License-Identifier: Apache-2.0
import GatewayCore
import Synchronization

/// Counters and histograms for `/metrics` (Prometheus text format 0.0.4). Lock-free counters;
/// touched from any loop.
final class GatewayMetrics: Sendable {
    /// An atomic counter with reference identity (Atomic itself is non-copyable, so it cannot sit in collections).
    final class Counter: Sendable {
        private let value = Atomic<Int>(0)
        // Relaxed: these are statistics, read with no other memory depending on them.
        func add(_ n: Int = 1) { value.add(n, ordering: .relaxed) }
        func load() -> Int { value.load(ordering: .relaxed) }
    }

    /// A histogram with fixed upper bounds, in seconds.
    final class Histogram: Sendable {
        let bounds: [Double]
        private let counts: [Counter]
        private let sumMicros = Counter()
        private let total = Counter()

        init(bounds: [Double]) {
            self.bounds = bounds
            counts = bounds.map { _ in Counter() }
        }

        func observe(_ seconds: Double) {
            for (i, bound) in bounds.enumerated() where seconds <= bound { counts[i].add() }
            sumMicros.add(Int(seconds * 1e6))
            total.add()
        }

        func render(_ name: String, _ help: String, into out: inout String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) histogram\n"
            for (i, bound) in bounds.enumerated() { out += "\(name)_bucket{le=\"\(bound)\"} \(counts[i].load())\n" }
            out += "\(name)_bucket{le=\"+Inf\"} \(total.load())\n"
            out += "\(name)_sum \(Double(sumMicros.load()) / 1e6)\n\(name)_count \(total.load())\n"
        }
    }

    static let handshakeResults = ["accepted", "missing_key", "malformed_key", "unknown_key", "revoked_key", "suspended_key", "expired_key",
                                   "user_disabled", "origin_not_allowed", "address_not_allowed", "conflicting_keys", "handshake_rate", "too_many_sessions_for_key", "other"]
    private let handshakes: [String: Counter] = Dictionary(uniqueKeysWithValues: handshakeResults.map { ($0, Counter()) })
    /// Reasons a live session ends with (an unknown key never had one).
    static let endReasons = SessionEndReason.allCases.filter { $0 != .keyUnknown }
    private let ended: [SessionEndReason: Counter] = Dictionary(uniqueKeysWithValues: endReasons.map { ($0, Counter()) })
    let messagesIn = Counter()
    let messagesOut = Counter()
    let publishes = Counter()
    /// `POST /v1/publish` refused with 429 (a key over its publish rate).
    let publishesRateLimited = Counter()
    let deliveries = Counter()
    /// From a committed change to the last close frame written (handed to the kernel, or queued behind a full socket) for the sessions it ended, per change.
    let revocationToClose = Histogram(bounds: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5])
    /// From a publish to the last subscriber's frame written (or queued behind a full socket), per publish.
    let publishToLastWrite = Histogram(bounds: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1])

    static let callResults = ["answered", "forbidden", "unknown_service", "invalid_request", "invalid_property", "rate_limited", "too_many_calls", "overloaded",
                              "upstream_unavailable", "upstream_timeout", "upstream_error", "response_too_large", "cancelled"]
    private let callCounters: [String: Counter] = Dictionary(uniqueKeysWithValues: callResults.map { ($0, Counter()) })
    /// From a call's arrival to its answer's end (WebSocket) or head (HTTP), for answered calls.
    let callDuration = Histogram(bounds: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5])

    func call(_ result: String, count: Int = 1) {
        (callCounters[result] ?? callCounters["upstream_error"]!).add(count)
    }

    func handshake(_ result: String) {
        (handshakes[result] ?? handshakes["other"]!).add()
    }

    func sessionEnded(_ reason: SessionEndReason) {
        ended[reason]?.add()
    }

    /// The exposition text. `connections`, `slowConsumers` and `unfinishedRefused` come from the engine.
    func render(connections: Int, sessions: Int, slowConsumers: Int, unfinishedRefused: Int) -> String {
        var out = ""
        func gauge(_ name: String, _ help: String, _ value: Int) { out += "# HELP \(name) \(help)\n# TYPE \(name) gauge\n\(name) \(value)\n" }
        func counter(_ name: String, _ help: String, _ value: Int) { out += "# HELP \(name) \(help)\n# TYPE \(name) counter\n\(name) \(value)\n" }
        gauge("doorman_connections", "Open TCP connections (HTTP and WebSocket).", connections)
        gauge("doorman_sessions", "Live authenticated WebSocket sessions.", sessions)
        out += "# HELP doorman_handshakes_total WebSocket handshakes by result.\n# TYPE doorman_handshakes_total counter\n"
        for result in Self.handshakeResults { out += "doorman_handshakes_total{result=\"\(result)\"} \(handshakes[result]!.load())\n" }
        counter("doorman_messages_in_total", "Messages received from sessions.", messagesIn.load())
        counter("doorman_messages_out_total", "Replies and notices sent to sessions (events counted in deliveries).", messagesOut.load())
        counter("doorman_publishes_total", "Events published (HTTP or session).", publishes.load())
        counter("doorman_deliveries_total", "Event frames queued to subscribers.", deliveries.load())
        counter("doorman_publishes_rate_limited_total", "POST /v1/publish refused with 429: the key passed its publish rate.", publishesRateLimited.load())
        counter("doorman_unfinished_handshake_refusals_total", "Connections refused at accept: their address already held its cap of unfinished handshakes.", unfinishedRefused)
        counter("doorman_slow_consumer_closes_total", "Connections closed because their write queue passed the limit (drops).", slowConsumers)
        out += "# HELP doorman_sessions_ended_total Sessions the server ended, by reason (revocations and the like).\n# TYPE doorman_sessions_ended_total counter\n"
        for reason in Self.endReasons { out += "doorman_sessions_ended_total{reason=\"\(reason.rawValue)\"} \(ended[reason]!.load())\n" }
        out += "# HELP doorman_calls_total Calls to upstream services (WebSocket and HTTP), by result.\n# TYPE doorman_calls_total counter\n"
        for result in Self.callResults { out += "doorman_calls_total{result=\"\(result)\"} \(callCounters[result]!.load())\n" }
        callDuration.render("doorman_call_duration_seconds", "From a call's arrival to the upstream's answer (whole answer on WebSocket, head on HTTP).", into: &out)
        revocationToClose.render("doorman_revocation_to_close_seconds", "From a committed key or user change to the last close frame written for the sessions it ended.", into: &out)
        publishToLastWrite.render("doorman_publish_to_last_write_seconds", "From a publish to the last subscriber's event frame written.", into: &out)
        return out
    }
}
