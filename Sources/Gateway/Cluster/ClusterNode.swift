// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatewayCore
import GatewayStore
import Logging
import Synchronization
import Transport

/// This node's part in a cluster of nodes sharing one PostgreSQL database.
///
/// A feed thread holds a connection that LISTENs. On every notification, and four times a second
/// regardless, it reads the change feed and the publishes after the last seqs it applied, and
/// applies them in seq order: changes refresh the identity cache and reach live sessions here
/// (for another node's change, a receipt row then says how many sessions it ended); publishes go to
/// this node's subscribers (its own too: every node delivers in the same order). Once a second
/// it beats (`nodes`), syncs its live sessions to `live_sessions` and reads the other nodes'
/// session counts.
///
/// When the connection fails it reconnects with backoff (0.1 s doubling, at most a quarter of
/// the bound) and replays everything after the last applied seqs before it counts as caught up.
///
/// The rule, with `bound` = `--feed-bound` (10 s by default) and the feed's age = time since the
/// node last read the feed to its end:
/// - age ≤ bound: normal.
/// - age > bound: new handshakes, HTTP calls and publishes are refused with 503 `feed_lost`
///   (no key can be re-verified), and /readyz answers 503 so load balancers move new clients on.
/// - age > 2 × bound: every live session here is ended with 4200 `cluster_feed_lost` (reconnect now:
///   the client lands on a node that can vouch for its key).
/// - caught up again: normal at once.
final class ClusterNode: Sendable {
    let shared: PostgresCluster
    /// This process: written with its changes, so the feed thread skips what it already applied
    /// (unique per start even when two nodes are given one name by mistake).
    let instance: String
    let bound: Double
    private let logger: Logger
    private let metrics: Metrics
    private let state: Mutex<FeedState>
    private let remoteCounts = Mutex<[String: Int]>([:])
    private let stopping = Atomic<Bool>(false)
    private let stopped = Atomic<Bool>(false)
    /// Publishes leave in the order they were made on this node: those that wait while one
    /// transaction runs go together in the next.
    private let publishQueue = DispatchQueue(label: "doorman.cluster.publish")
    private let waitingPublishes = Mutex<[(event: PostgresCluster.Event, stored: @Sendable (Bool) -> Void)]>([])

    private struct FeedState {
        var lastChange: Int64
        var lastPublish: Int64
    }
    /// Monotonic time the feed was last read to its end (read by every handshake: no lock).
    private let lastGood = Atomic<UInt64>(monotonicNanoseconds())

    final class Metrics: Sendable {
        let replayed = GatewayMetrics.Counter()
        /// From another node's change (its audit time) to the last close frame written here, for
        /// changes that ended sessions here; and the latest such figure, in microseconds.
        let changeToClose = GatewayMetrics.Histogram(bounds: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10])
        let lastChangeToCloseMicros = Atomic<Int>(0)
        let remoteChanges = GatewayMetrics.Counter()
        let remotePublishes = GatewayMetrics.Counter()
    }

    /// Reads the feed's heads: the cache loaded after this misses nothing (a change in between is
    /// applied twice, which is harmless).
    init(shared: PostgresCluster, instance: String, bound: Double, logger: Logger) throws(StoreError) {
        self.shared = shared
        self.instance = instance
        self.bound = bound
        self.logger = logger
        self.metrics = Metrics()
        let heads = try shared.heads()
        state = Mutex(FeedState(lastChange: heads.changes, lastPublish: heads.publishes))
    }

    var node: String { shared.node }

    /// Seconds since the feed was last read to its end.
    var feedAge: Double { Double(monotonicNanoseconds() &- lastGood.load(ordering: .relaxed)) / 1e9 }

    /// True past the bound: handshakes and publishes are refused, /readyz says so.
    var isFeedLost: Bool { feedAge > bound }

    /// Live sessions of `keyID` on the other nodes (as of the last sync).
    func remoteSessions(of keyID: String) -> Int { remoteCounts.withLock { $0[keyID] ?? 0 } }

    /// Other nodes' live sessions, as they last wrote them.
    func remoteSessionInfos(keyID: String?, userID: String?) -> [SessionInfo] {
        do {
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .secondsSince1970
            return try shared.remoteSessions(keyID: keyID, userID: userID).compactMap { row in
                try? decoder.decode(SessionInfo.self, from: Data(row.body.utf8))
            }
        } catch {
            logger.warning("cannot list other nodes' sessions", metadata: ["error": "\(error)"])
            return []
        }
    }

    /// Writes an event to the shared feed, in this node's publish order; `stored` is told the outcome.
    func publish(channel: String, property: String?, data: String, stored: @escaping @Sendable (Bool) -> Void) {
        // While PostgreSQL is slow or away, at most this many wait; more are refused at once.
        let admitted = waitingPublishes.withLock { waiting -> Bool? in
            guard waiting.count < Self.maxWaitingPublishes else { return nil }
            waiting.append((PostgresCluster.Event(channel: channel, property: property, data: data), stored))
            return waiting.count == 1
        }
        guard let first = admitted else { return stored(false) }
        guard first else { return }   // a flush is already queued and will take this one
        publishQueue.async { [self] in
            // At most 500 events per transaction; what is left is taken by the next turn.
            while true {
                let batch = waitingPublishes.withLock { waiting in
                    let taken = Array(waiting.prefix(500))
                    waiting.removeFirst(taken.count)
                    return taken
                }
                guard !batch.isEmpty else { return }
                do {
                    try shared.publish(batch.map(\.event))
                    for entry in batch { entry.stored(true) }
                } catch {
                    logger.error("publishes not stored", metadata: ["count": "\(batch.count)", "error": "\(error)"])
                    for entry in batch { entry.stored(false) }
                }
            }
        }
    }

    static let maxWaitingPublishes = 10_000

    /// Asks another node to end one of its sessions.
    func requestKill(node target: String, sessionID: String) throws(StoreError) {
        try shared.requestKill(node: target, sessionID: sessionID)
    }

    /// Waits (on a pool thread) until every other node that may hold sessions has written its
    /// receipt for these changes, until `deadline` (monotonic). Returns what each answered and
    /// whether all did.
    ///
    /// - Parameter vouching: true to wait for every node that may still hold sessions — one that
    ///   beat within twice the feed bound (after that it has ended them itself) — so a silent node
    ///   makes the answer incomplete; false to wait only for nodes that beat in the last 5 s (read
    ///   your writes: a dead node must not slow every admin change for long).
    func remoteReceipts(auditSeqs: [Int64], until deadline: UInt64, vouching: Bool) -> (ended: [String: Int], complete: Bool) {
        guard !auditSeqs.isEmpty else { return ([:], true) }
        let window = vouching ? max(PostgresCluster.nodeTimeout, 2 * bound + 1) : PostgresCluster.nodeTimeout
        guard let others = try? shared.liveNodes(within: window).filter({ $0 != node }) else { return ([:], false) }
        var ended: [String: Int] = [:]
        var pending = auditSeqs
        while true {
            if let seq = pending.first, let found = try? shared.receipts(auditSeq: seq) {
                if others.allSatisfy({ found[$0] != nil }) {
                    for (name, n) in found where name != node { ended[name, default: 0] += n }
                    pending.removeFirst()
                    continue
                }
            }
            if pending.isEmpty { return (ended, true) }
            if monotonicNanoseconds() >= deadline { return (ended, false) }
            usleep(20_000)
        }
    }

    /// Prometheus lines for the feed.
    func renderMetrics() -> String {
        var out = """
        # HELP doorman_cluster_feed_age_seconds Seconds since this node last read the change feed to its end.
        # TYPE doorman_cluster_feed_age_seconds gauge
        doorman_cluster_feed_age_seconds \(String(format: "%.3f", feedAge))
        # HELP doorman_cluster_feed_lost 1 while the feed is older than the bound (handshakes refused).
        # TYPE doorman_cluster_feed_lost gauge
        doorman_cluster_feed_lost \(isFeedLost ? 1 : 0)
        # HELP doorman_cluster_remote_changes_total Changes made on other nodes and applied here.
        # TYPE doorman_cluster_remote_changes_total counter
        doorman_cluster_remote_changes_total \(metrics.remoteChanges.load())
        # HELP doorman_cluster_remote_publishes_total Events published on other nodes and delivered here.
        # TYPE doorman_cluster_remote_publishes_total counter
        doorman_cluster_remote_publishes_total \(metrics.remotePublishes.load())
        # HELP doorman_cluster_replayed_changes_total Changes applied while catching up after the feed was lost.
        # TYPE doorman_cluster_replayed_changes_total counter
        doorman_cluster_replayed_changes_total \(metrics.replayed.load())
        # HELP doorman_cluster_last_change_to_close_seconds The latest other node's change that ended sessions here: from its time on that node to the last close frame written here.
        # TYPE doorman_cluster_last_change_to_close_seconds gauge
        doorman_cluster_last_change_to_close_seconds \(Double(metrics.lastChangeToCloseMicros.load(ordering: .relaxed)) / 1e6)

        """
        metrics.changeToClose.render("doorman_cluster_change_to_close_seconds",
                                     "Other nodes' changes that ended sessions here: from the change (its node's clock) to the last close frame written here.", into: &out)
        return out
    }

    // MARK: - The feed thread

    /// Starts the feed thread. `apply` refreshes the cache for a change and acts on live
    /// sessions, returning its receipt; `store` reads what changed.
    func start(services: SessionServices, store: any IdentityStore, apply: @escaping @Sendable (IdentityChange) throws(StoreError) -> ChangeReceipt) {
        let thread = Thread { [self] in
            self.run(services: services, store: store, apply: apply)
            self.stopped.store(true, ordering: .releasing)
        }
        thread.name = "doorman-cluster-feed"
        thread.start()
        // The 2 × bound rule does not depend on the feed thread, which may be stuck in a call.
        let watchdog = Thread { [self] in
            while !self.stopping.load(ordering: .relaxed) {
                self.vouch(services)
                usleep(250_000)
            }
        }
        watchdog.name = "doorman-cluster-watchdog"
        watchdog.start()
    }

    /// Stops the feed thread (waits up to 5 s) and removes this node's rows, before the loops stop.
    func stop() {
        stopping.store(true, ordering: .relaxed)
        let limit = monotonicNanoseconds() + 5_000_000_000
        while !stopped.load(ordering: .acquiring), monotonicNanoseconds() < limit { usleep(10_000) }
        shared.leave()
    }

    private func run(services: SessionServices, store: any IdentityStore, apply: @escaping @Sendable (IdentityChange) throws(StoreError) -> ChangeReceipt) {
        var feed: FeedConnection?
        var backoff = 0.1
        var lostAt: UInt64?
        var synced: Set<String> = []
        var lastBeat: UInt64 = 0
        var lastCleanUp: UInt64 = 0
        var announcedLost = false
        let second: UInt64 = 1_000_000_000
        while !stopping.load(ordering: .relaxed) {
            do {
                if feed == nil {
                    let opened = try shared.openFeed()
                    try opened.join()
                    try opened.clearSessions()
                    synced = []
                    let replayed = try catchUp(opened, services: services, store: store, apply: apply)
                    feed = opened
                    backoff = 0.1
                    if let since = lostAt {
                        metrics.replayed.add(replayed)
                        logger.notice("cluster feed restored", metadata: [
                            "replayed": "\(replayed)", "missed.seconds": "\(String(format: "%.1f", Double(monotonicNanoseconds() - since) / 1e9))"])
                        lostAt = nil
                    }
                    lastBeat = 0
                }
                let feed = feed!
                let notes = try feed.wait(timeout: 0.25)
                for note in notes where note.channel == PostgresCluster.controlChannel { control(note.payload, services: services) }
                _ = try catchUp(feed, services: services, store: store, apply: apply)
                let now = monotonicNanoseconds()
                if now - lastBeat >= second, !stopping.load(ordering: .relaxed) {
                    lastBeat = now
                    try feed.heartbeat(appliedSeq: state.withLock { $0.lastChange })
                    let infos = services.localList(keyID: nil, userID: nil)
                    let ids = Set(infos.map(\.id))
                    let encoder = JSONEncoder()
                    encoder.dateEncodingStrategy = .secondsSince1970
                    let added = infos.filter { !synced.contains($0.id) }.compactMap { info -> SharedSession? in
                        guard let body = try? encoder.encode(info) else { return nil }
                        return SharedSession(node: node, id: info.id, keyID: info.keyID, userID: info.userID, body: String(decoding: body, as: UTF8.self))
                    }
                    try feed.syncSessions(added: added, removed: Array(synced.subtracting(ids)))
                    synced = ids
                    let counts = try feed.remoteSessionCounts()
                    remoteCounts.withLock { $0 = counts }
                }
                if now - lastCleanUp >= 30 * second {
                    lastCleanUp = now
                    try feed.cleanUp(retention: 120)
                }
            } catch {
                if lostAt == nil {
                    lostAt = monotonicNanoseconds()
                    logger.error("cluster feed interrupted; reconnecting", metadata: ["error": "\(error)", "bound.seconds": "\(bound)"])
                }
                feed = nil
                usleep(UInt32(backoff * 1e6))
                backoff = min(backoff * 2, max(0.1, bound / 4))
            }
            if isFeedLost, !announcedLost {
                announcedLost = true
                logger.error("cluster feed lost past the bound: refusing handshakes, calls and publishes (503), /readyz 503",
                             metadata: ["bound.seconds": "\(bound)"])
            }
            if !isFeedLost { announcedLost = false }
        }
    }

    /// Test hook: runs on the feed thread once the changes read have been applied, before the
    /// publishes are read (a test pauses the feed here to commit a change behind its back).
    let afterChanges = Mutex<(@Sendable () -> Void)?>(nil)

    /// Applies every change and publish after the last applied seqs; returns how many changes.
    ///
    /// A publish is delivered only once the change feed's head it was written at has been applied
    /// here: one published after a revocation committed finds this node having applied the
    /// revocation first (it reads the changes again, then delivers), so it never reaches the
    /// revoked key's sessions.
    private func catchUp(_ feed: FeedConnection, services: SessionServices, store: any IdentityStore,
                         apply: @Sendable (IdentityChange) throws(StoreError) -> ChangeReceipt) throws(StoreError) -> Int {
        var applied = 0
        var stalled = false
        while true {
            let before = state.withLock { $0.lastChange }
            applied += try applyChanges(feed, store: store, apply: apply)
            afterChanges.withLock { $0 }?()
            if stalled, state.withLock({ $0.lastChange }) == before {
                // A change once committed is read by the next query, and nothing deletes changes:
                // a publish waiting for one that does not show is not delivered (fail closed).
                // The feed reconnects and tries again; past the bound the feed-lost rules apply.
                logger.error("a publish waits for a change the feed does not show", metadata: ["applied.seq": "\(before)"])
                throw .unavailable("publish after change \(before) waits for a change that is not in the feed")
            }
            stalled = try !deliverPublishes(feed, services: services)
            if !stalled { break }
        }
        let wasLost = isFeedLost
        lastGood.store(monotonicNanoseconds(), ordering: .relaxed)
        if wasLost { logger.notice("cluster feed caught up; accepting handshakes again") }
        return applied
    }

    /// Applies the changes after the last applied seq, in seq order; returns how many.
    private func applyChanges(_ feed: FeedConnection, store: any IdentityStore,
                              apply: @Sendable (IdentityChange) throws(StoreError) -> ChangeReceipt) throws(StoreError) -> Int {
        var applied = 0
        while true {
            let changes = try feed.changes(after: state.withLock { $0.lastChange })
            for change in changes {
                // This node's own changes were applied at commit; they are applied again here, in
                // seq order, so that a change of this node and one of another node to the same
                // record end in the newest state whatever order they were first applied in
                // (applying is idempotent: sessions hear only of rights that differ).
                // A change that cannot be applied (the store failed mid-way) is not passed: the
                // error drops the connection, and after reconnecting the feed starts from it again.
                guard let meaning = try Self.identityChange(change, store: store) else {
                    logger.warning("skipping a change feed row this version does not know", metadata: ["seq": "\(change.seq)", "entity": "\(change.entity)"])
                    state.withLock { $0.lastChange = change.seq }
                    continue
                }
                let receipt = try apply(meaning)
                applied += 1
                if change.node != instance {
                    metrics.remoteChanges.add()
                    if let auditSeq = change.auditSeq {
                        _ = receipt.wait(timeout: 5)
                        if receipt.ended > 0 {
                            // Same clock only when the nodes share a machine or keep NTP time.
                            let seconds = max(0, Date().timeIntervalSince1970 - change.time)
                            metrics.changeToClose.observe(seconds)
                            metrics.lastChangeToCloseMicros.store(Int(seconds * 1e6), ordering: .relaxed)
                        }
                        try feed.writeReceipt(auditSeq: auditSeq, ended: receipt.ended)
                    }
                }
                state.withLock { $0.lastChange = change.seq }
            }
            if changes.count < 1000 { return applied }
        }
    }

    /// Delivers the publishes after the last delivered seq, in seq order. Stops (false) at one
    /// written after a change not applied here yet.
    private func deliverPublishes(_ feed: FeedConnection, services: SessionServices) throws(StoreError) -> Bool {
        while true {
            let publishes = try feed.publishes(after: state.withLock { $0.lastPublish })
            for publish in publishes {
                if publish.changeSeq > state.withLock({ $0.lastChange }) { return false }
                services.deliver(channel: publish.channel, property: publish.property, data: Array(publish.data.utf8))
                if publish.node != node { metrics.remotePublishes.add() }
                state.withLock { $0.lastPublish = publish.seq }
            }
            if publishes.count < 100 { return true }
        }
    }

    /// What a feed row means now: the current record, or its deletion.
    /// nil for an entity this version does not know (written by a newer node during an upgrade).
    private static func identityChange(_ change: FeedChange, store: any IdentityStore) throws(StoreError) -> IdentityChange? {
        switch change.entity {
        case "key": return try store.key(change.id).map { .putKey($0, secrets: nil) } ?? .deleteKey(id: change.id)
        case "user": return try store.user(change.id).map { .putUser($0) } ?? .deleteUser(id: change.id)
        case "group": return try store.group(change.id).map { .putGroup($0) } ?? .deleteGroup(id: change.id)
        default: return nil
        }
    }

    /// `kill NODE SESSION`: an administrator on another node ended one of this node's sessions.
    private func control(_ payload: String, services: SessionServices) {
        let parts = payload.split(separator: " ")
        guard parts.count == 3, parts[0] == "kill", parts[1] == node, let id = UInt64(parts[2]) else { return }
        _ = services.kill(sessionID: id)
    }

    /// Past twice the bound: ends the sessions this node can no longer vouch for.
    private func vouch(_ services: SessionServices) {
        let age = feedAge
        guard age > 2 * bound, services.liveSessions.load(ordering: .relaxed) > 0 else { return }
        let logger = logger
        services.everyHub({ $0.endAll(reason: .feedLost) }, done: { ended in
            if ended > 0 {
                logger.error("cluster feed missing past twice the bound; ended the sessions this node cannot vouch for",
                             metadata: ["ended": "\(ended)", "feed.age.seconds": "\(String(format: "%.1f", age))"])
            }
        })
    }
}
