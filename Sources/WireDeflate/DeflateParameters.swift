// SPDX-License-Identifier: Apache-2.0

/// The permessage-deflate parameters both ends agreed on in the handshake (RFC 7692 §7.1), with
/// absent parameters filled in by their defaults: takeover allowed, 15-bit windows.
///
/// "server" and "client" name the direction, as on the wire: `server…` govern what the server
/// compresses and the client inflates, `client…` the reverse.
public struct DeflateParameters: Equatable, Sendable, CustomStringConvertible {
    /// §7.1.1.1: the server starts every message it sends with an empty window.
    public var serverNoContextTakeover: Bool
    /// §7.1.1.2: the client starts every message it sends with an empty window, so the server
    /// may inflate each one with a fresh (or shared) inflater.
    public var clientNoContextTakeover: Bool
    /// §7.1.2.1: the largest window the server compresses with, 9...15 (zlib cannot do 8).
    public var serverMaxWindowBits: Int
    /// §7.1.2.2: the largest window the client compresses with, 8...15.
    public var clientMaxWindowBits: Int

    public init(
        serverNoContextTakeover: Bool = false, clientNoContextTakeover: Bool = false,
        serverMaxWindowBits: Int = 15, clientMaxWindowBits: Int = 15
    ) {
        precondition((9...15).contains(serverMaxWindowBits), "serverMaxWindowBits outside 9...15")
        precondition((8...15).contains(clientMaxWindowBits), "clientMaxWindowBits outside 8...15")
        self.serverNoContextTakeover = serverNoContextTakeover
        self.clientNoContextTakeover = clientNoContextTakeover
        self.serverMaxWindowBits = serverMaxWindowBits
        self.clientMaxWindowBits = clientMaxWindowBits
    }

    /// Whether a server can inflate this connection's messages with the loop's shared inflater
    /// (`MessageInflater.inflateMessage(_:)`): no client window survives between messages.
    public var serverInflaterIsShareable: Bool { clientNoContextTakeover }

    /// Whether a server can compress for this connection with the loop's shared deflater, and so
    /// send one compressed fan-out message to many connections.
    public var serverDeflaterIsShareable: Bool { serverNoContextTakeover }

    public var description: String {
        "server(\(serverNoContextTakeover ? "no takeover" : "takeover"), \(serverMaxWindowBits) bits) "
            + "client(\(clientNoContextTakeover ? "no takeover" : "takeover"), \(clientMaxWindowBits) bits)"
    }
}
