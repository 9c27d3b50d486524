// SPDX-License-Identifier: Apache-2.0
import Synchronization
import Transport
public import WebSocketServer
public import WireCodec

/// Routes requests: `/healthz`, WebSocket upgrades on the configured path, 404 elsewhere; in
/// echo mode, every upgrade on any path becomes an echo session.
public final class GatewayApplication: ServerApplication {
    public let config: GatewayConfig
    /// Set once the server is listening, for `/healthz`.
    private let server = Mutex<WebSocketServer?>(nil)
    /// The admin API and the pool its store calls run on (nil in echo mode).
    let admin: AdminAPI?
    let pool: BlockingPool?

    public convenience init(config: GatewayConfig) {
        self.init(config: config, admin: nil, pool: nil)
    }

    init(config: GatewayConfig, admin: AdminAPI?, pool: BlockingPool?) {
        self.config = config
        self.admin = admin
        self.pool = pool
    }

    func attach(_ server: WebSocketServer) {
        self.server.withLock { $0 = server }
    }

    public func upgrade(_ head: HTTPRequestHead, _ upgrade: WebSocketUpgrade, on connection: Connection) -> UpgradeDecision {
        if config.echo {
            // Echo mode answers the first offered protocol so that browsers offering one connect.
            return .accept(protocol: upgrade.protocols.first, session: EchoSession())
        }
        guard head.path == config.path[...] else {
            return .reject(HandshakeRejection(status: 404, reason: "not_found").response)
        }
        // No key can be valid until the identity core exists: every handshake is unauthenticated.
        return .reject(HandshakeRejection(status: 401, reason: "missing_key").response)
    }

    public func respond(to request: HTTPRequest, on connection: Connection, reply: HTTPReply) {
        if let admin, let pool, AdminAPI.owns(request.head.path) {
            let key: String?
            switch PresentedKey.find(in: request.head) {
            case .failure(let rejection): return reply.send(rejection.response)
            case .success(let found): key = found
            }
            // Store calls block: off the loop, back through `reply`.
            let peer = connection.peerAddress
            pool.submit { reply.send(admin.handle(request, presentedKey: key, peer: peer)) }
            return
        }
        reply.send(route(request))
    }

    func route(_ request: HTTPRequest) -> HTTPResponse {
        switch request.head.path {
        case "/healthz":
            guard request.head.method == "GET" || request.head.method == "HEAD" else {
                var r = HTTPResponse.json(status: 405, #"{"error":"method_not_allowed"}"#)
                r.headers.append(HTTPHeader("Allow", "GET, HEAD"))
                return r
            }
            let connections = server.withLock { $0?.activeConnections ?? 0 }
            return .json(status: 200, #"{"status":"ok","connections":\#(connections)}"#)
        default:
            return .json(status: 404, #"{"error":"not_found"}"#)
        }
    }
}

/// Echo mode's session: every message goes back as it came.
final class EchoSession: WebSocketSession {
    func opened(_ connection: Connection) {}

    func received(_ message: WebSocketMessage, on connection: Connection) {
        if message.isText {
            connection.send(text: message.payload)
        } else {
            connection.send(binary: message.payload)
        }
    }

    func closed(_ connection: Connection, code: CloseCode?) {}
}
