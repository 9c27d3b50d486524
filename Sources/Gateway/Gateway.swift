// SPDX-License-Identifier: Apache-2.0
public import Logging
public import WebSocketServer

/// A running gateway: the engine with the gateway's routes.
public final class Gateway: Sendable {
    public let config: GatewayConfig
    public let server: WebSocketServer

    /// Validates `config`, binds and starts serving.
    public init(config: GatewayConfig, logger: Logger) throws {
        try config.validate()
        self.config = config
        let application = GatewayApplication(config: config)
        server = try WebSocketServer(configuration: config.server, application: application, logger: logger)
        application.attach(server)
    }

    public var port: Int { server.port }

    /// Drains (1001 to every session) and stops.
    public func shutdown() {
        server.shutdown(drainTimeout: config.server.drainTimeout)
    }
}
