// SPDX-License-Identifier: Apache-2.0
import Transport
public import WireCodec

/// A complete HTTP request: head and body.
public struct HTTPRequest: Sendable {
    public var head: HTTPRequestHead
    public var body: [UInt8]

    public init(head: HTTPRequestHead, body: [UInt8] = []) {
        self.head = head
        self.body = body
    }
}

/// One complete WebSocket message.
public struct WebSocketMessage: Equatable, Sendable {
    public var isText: Bool
    public var payload: [UInt8]

    public init(isText: Bool, payload: [UInt8]) {
        self.isText = isText
        self.payload = payload
    }
}

/// What to do with a valid WebSocket handshake.
public enum UpgradeDecision {
    /// Answer 101 with `protocol` (one the client offered, or nil) and hand the connection to `session`.
    case accept(protocol: String?, session: any WebSocketSession)
    /// Answer with this response and close.
    case reject(HTTPResponse)
}

/// The code above the engine: decides upgrades and answers plain HTTP. Called on the
/// connection's loop thread; must not block.
public protocol ServerApplication: Sendable {
    func upgrade(_ head: HTTPRequestHead, _ upgrade: WebSocketUpgrade, on connection: Connection) -> UpgradeDecision
    /// Answers `request` by calling `reply.send` exactly once: at once on the loop thread, or
    /// later from any thread (after blocking work on a `BlockingPool`). The connection reads no
    /// further request until then.
    func respond(to request: HTTPRequest, on connection: Connection, reply: HTTPReply)
}

/// The way back to a connection waiting for its HTTP response. Safe to send from any thread.
public struct HTTPReply: Sendable {
    let context: LoopContext
    let connectionID: UInt64

    /// Sends the response (once). If the connection is gone meanwhile, nothing happens.
    public func send(_ response: HTTPResponse) {
        let context = context
        let id = connectionID
        if context.loop.isInLoop {
            context.deliver(response, to: id)
        } else {
            context.loop.execute { context.deliver(response, to: id) }
        }
    }
}

/// The per-connection handler of an open WebSocket. Called on the connection's loop thread.
public protocol WebSocketSession: AnyObject {
    /// The 101 is queued; the session may send.
    func opened(_ connection: Connection)
    func received(_ message: WebSocketMessage, on connection: Connection)
    /// The connection is gone. `code` is the close code exchanged, if any.
    func closed(_ connection: Connection, code: CloseCode?)
}
