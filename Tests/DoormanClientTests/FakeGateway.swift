// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import WireCodec
@testable import DoormanClient

/// A scripted stand-in for the gateway on 127.0.0.1:0, for the answers the real one gives only
/// under conditions hard to arrange (429 with Retry-After, 4129, 4200, 4003). Each accepted
/// connection gets the next `Reply`; connections past the script are counted and dropped.
final class FakeGateway: @unchecked Sendable {
    // @unchecked Sendable: `state` is guarded by its lock; `listener` and `port` are set in init.
    enum Reply: Sendable {
        /// Refuse the handshake: status, extra header lines, JSON body.
        case refuse(Int, headers: [String], body: String)
        /// Upgrade, send a welcome and these text messages, then close with `code` and `reason`.
        case session(messages: [String], closeCode: UInt16, reason: String)
    }

    struct State {
        var script: [Reply]
        var accepted = 0
        var requests: [String] = []
        var closed = false
    }

    let port: Int
    private let listener: Int32
    private let state: Locked<State>

    static let welcome = #"{"type":"welcome","session":"1","user":{"id":"usr_1","name":"u"},"key":{"id":"key_1","name":"k"},"scopes":[],"properties":["hotel-1"],"rules":[],"expiresAt":null}"#

    init(script: [Reply]) throws {
        state = Locked(State(script: script))
        let fd = socket(AF_INET, streamType, 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound, listen(fd, 16) == 0 else { throw ScenarioUnavailable(description: "fake gateway: bind failed") }
        listener = fd
        port = Int(UInt16(bigEndian: address.sin_port))
        Thread { [self] in acceptLoop() }.start()
    }

    var url: URL { URL(string: "ws://127.0.0.1:\(port)/ws")! }
    var accepted: Int { state.withLock { $0.accepted } }
    var requests: [String] { state.withLock { $0.requests } }

    /// Stops accepting (shutdown wakes the blocked accept).
    func close() {
        state.withLock { $0.closed = true }
        _ = shutdown(listener, Int32(SHUT_RDWR))
    }

    private func acceptLoop() {
        while true {
            let fd = accept(listener, nil, nil)
            guard fd >= 0, !state.withLock({ $0.closed }) else { break }
            #if canImport(Darwin)
            var one: Int32 = 1
            _ = setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, socklen_t(MemoryLayout<Int32>.size))
            #endif
            let reply: Reply? = state.withLock { s in
                s.accepted += 1
                return s.script.isEmpty ? nil : s.script.removeFirst()
            }
            Thread { [self] in serve(fd, reply) }.start()
        }
        closeFD(listener)
    }

    private func serve(_ fd: Int32, _ reply: Reply?) {
        defer { closeFD(fd) }
        var request: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while request.withUnsafeBytes({ HTTPHeadParser.findEnd($0) }) == nil {
            let n = recv(fd, &buffer, buffer.count, 0)
            guard n > 0 else { return }
            request += buffer[..<n]
        }
        let text = String(decoding: request, as: UTF8.self)
        state.withLock { $0.requests.append(text) }
        guard let reply else { return }
        switch reply {
        case .refuse(let status, let headers, let body):
            let head = (["HTTP/1.1 \(status) Refused", "Content-Type: application/json", "Content-Length: \(body.utf8.count)", "Connection: close"]
                + headers).joined(separator: "\r\n")
            write(fd, Array((head + "\r\n\r\n" + body).utf8))
        case .session(let messages, let code, let reason):
            let nonce = text.split(separator: "\r\n").first { $0.lowercased().hasPrefix("sec-websocket-key:") }
                .map { String($0.dropFirst("sec-websocket-key:".count)).trimmingBlanks } ?? ""
            var out = Array(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Accept: \(WebSocketHandshake.acceptValue(for: nonce))\r\n\r\n").utf8)
            for message in [Self.welcome] + messages { FrameEncoder.append(.text(message), to: &out) }
            FrameEncoder.append(WebSocketFrame(opcode: .close, payload: ClosePayload(code: CloseCode(rawValue: code), reason: reason).encoded), to: &out)
            write(fd, out)
            // Wait for the client's close echo and its end of the connection.
            var deadline = 50
            while deadline > 0, recv(fd, &buffer, buffer.count, 0) > 0 { deadline -= 1 }
        }
    }

    private func write(_ fd: Int32, _ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, noSignal) }
            guard n > 0 else { return }
            offset += n
        }
    }
}

#if canImport(Darwin)
private let streamType = SOCK_STREAM
private let noSignal: Int32 = 0
private func closeFD(_ fd: Int32) { _ = Darwin.close(fd) }
#else
private let streamType = Int32(SOCK_STREAM.rawValue)
private let noSignal = Int32(MSG_NOSIGNAL)
private func closeFD(_ fd: Int32) { _ = Glibc.close(fd) }
#endif
