// SPDX-License-Identifier: Apache-2.0
import WebSocketServer
import WireCodec

/// A refused key told after the upgrade, to a client that sent it as a subprotocol (browsers and
/// Node cannot read a refused handshake's status): the notice and close code a live session would
/// get, at once; anything the client sends meanwhile is ignored.
final class RefusedSession: WebSocketSession {
    private let frames: [UInt8]
    private let code: CloseCode

    init(frames: [UInt8], code: CloseCode) {
        self.frames = frames
        self.code = code
    }

    func opened(_ connection: Connection) { connection.send(finalFrames: frames, closeCode: code) }
    func received(_ message: WebSocketMessage, on connection: Connection) {}
    func closed(_ connection: Connection, code: CloseCode?) {}
}
