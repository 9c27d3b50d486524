// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatewayCore
import GatewayStore
public import Logging
public import Transport
public import WebSocketServer

/// A running gateway: the engine with the gateway's routes, the store and the admin API.
public final class Gateway: Sendable {
    public let config: GatewayConfig
    public let server: WebSocketServer
    private let pool: BlockingPool
    private let usage: KeyUsageRecorder?
    /// The admin key made on first start, to be printed once (nil on later starts).
    public let bootstrapSecret: String?
    /// The TLS listener's certificates, when configured.
    public let certificates: TLSContextBox?
    private let logger: Logger
    /// This node's part in a cluster (PostgreSQL), and what starts its feed once the loops run.
    let cluster: ClusterNode?
    private let clusterStart: (@Sendable () -> Void)?
    /// On one node: reloads the cache after a failed refresh.
    private let reloader: CacheReloader?

    /// Validates `config`, opens the store (bootstrapping an empty one), binds and starts serving.
    /// - Parameter announceBootstrap: told the admin key the moment an empty store gets it, before
    ///   anything else can fail (a port taken, a bad upstream): the key is shown even when this
    ///   first start then fails, and the next start (which makes none) is not locked out.
    public convenience init(config: GatewayConfig, logger: Logger, announceBootstrap: ((String) -> Void)? = nil) throws {
        try self.init(config: config, logger: logger, wrapStore: nil, announceBootstrap: announceBootstrap)
    }

    /// `wrapStore` stands between the gateway and its store (tests inject store failures).
    init(config: GatewayConfig, logger: Logger, wrapStore: (@Sendable (any IdentityStore) -> any IdentityStore)?,
         announceBootstrap: ((String) -> Void)? = nil) throws {
        try config.validate()
        self.config = config
        self.logger = logger
        // Certificates first: a bad file stops the start before anything is opened or bound.
        if let chain = config.tlsCertificate, let key = config.tlsKey {
            certificates = try TLSContextBox(certificateChainFile: chain, privateKeyFile: key)
        } else {
            certificates = nil
        }
        pool = BlockingPool(threads: config.poolThreads)
        var admin: AdminAPI?
        var secret: String?
        var usage: KeyUsageRecorder?
        var sessions: SessionServices?
        var clusterNode: ClusterNode?
        var startFeed: (@Sendable () -> Void)?
        var cacheReloader: CacheReloader?
        if !config.echo {
            // One PostgreSQL connection per pool thread and one for the cluster feed's reads:
            // store calls run only there.
            let location = StoreLocation(config.database)
            let nodeName = config.nodeName ?? "\(SessionServices.hostName):\(config.server.port)"
            let cluster: ClusterNode?
            var base: any IdentityStore
            if case .postgres(let url) = location {
                let instance = nodeName + "#" + AdminService.makeID("run")
                base = try location.makeStore(connections: config.poolThreads + 1, node: instance)
                let shared = PostgresCluster(url: url, node: nodeName, instance: instance)
                try shared.claimName()
                let store = base
                secret = try shared.withSetupLock { try Self.bootstrap(store, key: config.bootstrapKey, logger: logger) }
                if let secret { announceBootstrap?(secret) }
                cluster = try ClusterNode(shared: shared, instance: instance, bound: config.feedBound, logger: logger)
            } else {
                cluster = nil
                base = try location.makeStore(connections: config.poolThreads)
                secret = try Self.bootstrap(base, key: config.bootstrapKey, logger: logger)
                if let secret { announceBootstrap?(secret) }
            }
            if let wrapStore { base = wrapStore(base) }
            logger.info("store opened", metadata: ["store": "\(location)", "node": "\(nodeName)"])
            let cache = IdentityCache()
            try cache.load(from: base)
            usage = KeyUsageRecorder(store: base, pool: pool, logger: logger)
            let loops = config.server.loops > 0 ? config.server.loops : LoopGroup.defaultCount
            let calls = config.upstreams.isEmpty ? nil : CallService(upstreams: config.upstreams, policy: config.calls, loops: loops, logger: logger)
            let services = SessionServices(cache: cache, policy: config.sessions, server: config.server, logger: logger, usage: usage, calls: calls,
                                           nodeName: nodeName, cluster: cluster)
            // Every committed change, made here or (through the cluster's feed) on another node:
            // refresh the cache first, then let every loop's sessions feel it.
            let feedStore = base
            let reloader = CacheReloader(cache: cache, store: base, logger: logger)
            cacheReloader = reloader
            let store = NotifyingStore(base) { [cluster] change, auditSeq in
                do {
                    try cache.refresh(after: change, from: feedStore)
                } catch {
                    // The keys the change touched are unusable here until it is read back (the
                    // cache fails closed). In a cluster the feed applies this change again, in
                    // order, and retries until it can; on one node the whole cache is read again,
                    // and again every second until that works.
                    logger.error("cache refresh failed", metadata: ["error": "\(error)", "then": "\(cluster == nil ? "reloading" : "left to the feed")"])
                    if cluster == nil { reloader.reload() }
                }
                ChangeReceipts.add(Self.propagate(change, to: services), auditSeq: auditSeq)
            }
            clusterNode = cluster
            if let cluster {
                // The feed's own path: a refresh that fails throws, so the change is not passed.
                startFeed = {
                    cluster.start(services: services, store: feedStore) { change throws(StoreError) in
                        do throws(StoreError) {
                            try cache.refresh(after: change, from: feedStore)
                        } catch {
                            // Fail closed at once: the keys the change touched end their sessions
                            // here (the cache marked them) while the feed retries the change.
                            _ = Self.propagate(change, to: services)
                            throw error
                        }
                        return Self.propagate(change, to: services)
                    }
                }
            }
            let service = AdminService(store: store, policy: config.keyPolicy)
            var api = AdminAPI(service: service, usage: usage)
            api.sessions = services
            admin = api
            sessions = services
        }
        cluster = clusterNode
        clusterStart = startFeed
        reloader = cacheReloader
        bootstrapSecret = secret
        self.usage = usage
        let application = GatewayApplication(config: config, admin: admin, pool: admin == nil ? nil : pool, sessions: sessions)
        do {
            server = try WebSocketServer(configuration: config.server, application: application, tls: certificates, logger: logger)
        } catch {
            pool.shutdown()
            throw error
        }
        application.attach(server)
        sessions?.attach(loops: server.loops)
        clusterStart?()
    }

    /// What a committed change does to live sessions, on every loop.
    static func propagate(_ change: IdentityChange, to services: SessionServices) -> ChangeReceipt {
        let cache = services.cache
        let start = monotonicNanoseconds()
        let metrics = services.metrics
        // Commit to the last close frame queued, when the change ended sessions.
        let done: @Sendable (Int) -> Void = { ended in
            if ended > 0 { metrics.revocationToClose.observe(Double(monotonicNanoseconds() - start) / 1e9) }
        }
        let receipt: ChangeReceipt
        switch change {
        case .putKey(let key, _):
            receipt = services.everyHub({ $0.recompute(keyIDs: [key.id], cache: cache) }, done: done)
        case .deleteKey(let id):
            receipt = services.everyHub({ $0.end(keyID: id, reason: .keyDeleted) }, done: done)
        case .putUser(let user):
            receipt = services.everyHub({ $0.recompute(keyIDs: $0.keyIDs(ofUser: user.id), cache: cache) }, done: done)
        case .deleteUser, .putGroup, .deleteGroup:
            receipt = services.everyHub({ $0.recompute(keyIDs: nil, cache: cache) }, done: done)
        }
        return receipt
    }

    public var port: Int { server.port }

    /// What the retry after a failed cache refresh runs (tests call it instead of waiting).
    func reloadCacheAfterFailure() { reloader?.reload() }

    /// SIGHUP: reads the TLS certificate and key again. New connections get them; live sessions
    /// keep theirs. On an error the old certificate stays in use.
    public func reloadCertificates() {
        guard let certificates else { return logger.info("SIGHUP: no TLS certificate to reload") }
        do {
            try certificates.reload()
            logger.info("TLS certificate reloaded", metadata: ["file": "\(certificates.certificateChainFile)"])
        } catch {
            logger.error("TLS certificate reload failed; keeping the current one", metadata: ["error": "\(error)"])
        }
    }

    /// Drains (1001 to every session) and stops.
    public func shutdown() {
        // The feed first, while the loops still run (it may be waiting on them); the node leaves
        // the cluster's tables, so no other node waits for its receipts.
        cluster?.stop()
        reloader?.stop()
        server.shutdown(drainTimeout: config.server.drainTimeout)
        pool.shutdown()
        usage?.flush()
    }

    /// First start: an admin user and its key. Returns the secret if one was generated.
    static func bootstrap(_ store: any IdentityStore, key presetKey: String?, logger: Logger) throws -> String? {
        guard try store.isEmpty() else { return nil }
        let now = Date()
        let secret = try presetKey.map { text throws(KeyFormatError) in try APIKeySecret(parsing: text) } ?? APIKeySecret.generate()
        let user = User(id: AdminService.makeID("usr"), name: "admin", permissions: ["admin:*"], createdAt: now, updatedAt: now)
        let key = APIKey(id: AdminService.makeID("key"), name: "bootstrap admin key", description: "created on first start",
                         userID: user.id, createdAt: now, updatedAt: now, createdBy: "bootstrap", displayStart: secret.displayStart)
        try store.apply(.putUser(user), audit: AuditEntry(time: now, actor: "bootstrap", action: "user.create", targetType: "user", targetID: user.id))
        try store.apply(.putKey(key, secrets: KeySecrets(current: KeyDigest(of: secret))),
                        audit: AuditEntry(time: now, actor: "bootstrap", action: "key.create", targetType: "key", targetID: key.id))
        logger.notice("bootstrapped an empty store", metadata: ["user.id": "\(user.id)", "key.id": "\(key.id)", "key.start": "\(secret.displayStart)"])
        return presetKey == nil ? secret.text : nil
    }
}
