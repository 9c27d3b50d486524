// SPDX-License-Identifier: Apache-2.0
import CLinux
import COpenSSL
import Gateway
import Glibc
import Logging
import Testing
import Transport
import WebSocketServer
import WireCodec

/// A blocking client over a real TCP socket on 127.0.0.1, speaking through our client-mode codec.
/// Every read waits with a deadline (SO_RCVTIMEO), never a sleep.
final class TestClient {
    let fd: Int32
    private var inbox: [UInt8] = []
    private var parser = FrameParser(role: .client, limits: FrameLimits(maxFrameBytes: 1 << 26, maxMessageBytes: 1 << 26, maxFragments: 1 << 20))
    /// Set by `startTLS` (TLSTestClient.swift): every read and write then goes through this `SSL*`.
    var ssl: OpaquePointer?

    init(port: Int, receiveBuffer: Int32? = nil) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw SystemError(call: "socket", errno: errno) }
        if var size = receiveBuffer {
            _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            let err = errno
            Glibc.close(fd)
            throw SystemError(call: "connect", errno: err)
        }
        setTimeout(5)
    }

    deinit {
        if let ssl { SSL_free(ssl) }
        Glibc.close(fd)
    }

    /// Accepts frames with RSV1 set (permessage-deflate was negotiated).
    func allowRSV1() { parser.allowedReservedBits = 0x4 }

    func setTimeout(_ seconds: Double) {
        var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1_000_000))
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    func send(_ bytes: [UInt8]) {
        if let ssl { return sendTLS(ssl, bytes) }
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            sent += n
        }
    }

    func send(_ text: String) { send(Array(text.utf8)) }

    /// Reads once into the inbox; false at end of stream, error or deadline.
    @discardableResult
    func readMore() -> Bool {
        var buffer = [UInt8](repeating: 0, count: 65536)
        let n = buffer.withUnsafeMutableBytes { raw in
            if let ssl { return Int(SSL_read(ssl, raw.baseAddress, Int32(raw.count))) }
            return Glibc.recv(fd, raw.baseAddress, raw.count, 0)
        }
        guard n > 0 else { return false }
        inbox += buffer[..<n]
        return true
    }

    /// Reads an HTTP response head (and keeps what follows it).
    func readResponseHead() -> String? {
        while true {
            if let end = inbox.withUnsafeBytes({ HTTPHeadParser.findEnd($0) }) {
                let head = String(decoding: inbox[..<end], as: UTF8.self)
                inbox.removeFirst(end)
                return head
            }
            guard readMore() else { return nil }
        }
    }

    /// Reads a whole HTTP response with a Content-Length body.
    func readResponse() -> (head: String, body: String)? {
        guard let head = readResponseHead() else { return nil }
        let length = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
            .flatMap { Int($0.split(separator: ":")[1].trimmingOWS) } ?? 0
        while inbox.count < length { guard readMore() else { return nil } }
        let body = String(decoding: inbox[..<length], as: UTF8.self)
        inbox.removeFirst(length)
        return (head, body)
    }

    /// Reads everything until the peer's end of stream (nil on a timeout first).
    func readToEnd() -> [UInt8]? {
        while true {
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = chunk.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { defer { inbox = [] }; return inbox }
            if n < 0 { return nil }
            inbox += chunk[..<n]
        }
    }

    /// Reads a `Transfer-Encoding: chunked` body to its end (after `readResponseHead`).
    func readChunkedBody() -> [UInt8]? {
        var decoder = ChunkedDecoder()
        var body: [UInt8] = []
        while !decoder.isDone {
            if inbox.isEmpty { guard readMore() else { return nil } }
            var failed = false
            let used = inbox.withUnsafeBytes { raw -> Int in
                do { return try decoder.decode(raw, into: &body) } catch { failed = true; return 0 }
            }
            if failed { return nil }
            inbox.removeFirst(used)
        }
        return body
    }

    /// Sends an upgrade request for `path` and returns the response head.
    func upgrade(path: String = "/ws", headers: [String] = [], extra: [UInt8] = []) -> String? {
        var request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        request += "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        for h in headers { request += h + "\r\n" }
        request += "\r\n"
        send(Array(request.utf8) + extra)
        return readResponseHead()
    }

    /// A masked frame as a client sends it.
    static func frame(_ opcode: WebSocketOpcode, _ payload: [UInt8], fin: Bool = true) -> [UInt8] {
        FrameEncoder.encode(WebSocketFrame(fin: fin, opcode: opcode, payload: payload), maskKey: UInt32.random(in: 1...UInt32.max))
    }

    func sendFrame(_ opcode: WebSocketOpcode, _ payload: [UInt8], fin: Bool = true) {
        send(Self.frame(opcode, payload, fin: fin))
    }

    /// The next frame from the server, or nil at end of stream / deadline.
    func readFrame() -> WebSocketFrame? {
        while true {
            if !inbox.isEmpty {
                var frame: WebSocketFrame?
                var used = 0
                inbox.withUnsafeBytes { raw in
                    var cursor = ByteCursor(raw)
                    if case .frame(let f)? = try? parser.parse(&cursor) { frame = f }
                    used = cursor.index
                }
                inbox.removeFirst(used)
                if let frame { return frame }
            }
            guard readMore() else { return nil }
        }
    }

    /// True if the server ends the stream (EOF or reset) before the deadline; frames before it are skipped.
    func awaitsEndOfStream() -> Bool {
        if let ssl { return awaitsEndOfTLSStream(ssl) }
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { return true }
            if n < 0 { return errno == ECONNRESET }
        }
    }

    /// The close frame's code, skipping other frames.
    func readCloseCode() -> UInt16? {
        while let frame = readFrame() {
            if frame.opcode == .close {
                return frame.payload.count >= 2 ? UInt16(frame.payload[0]) << 8 | UInt16(frame.payload[1]) : 1005
            }
        }
        return nil
    }
}

/// A server on 127.0.0.1:0 for one test.
final class TestServer {
    let server: WebSocketServer
    var port: Int { server.port }

    /// The TLS listener's port (with `tls:`).
    var tlsPort: Int { server.tlsPort ?? -1 }

    /// - Parameter tls: certificates for a second, TLS listener on 127.0.0.1:0.
    init(echo: Bool = true, tls: TLSContextBox? = nil, _ configure: (inout ServerConfiguration) -> Void = { _ in }) throws {
        raiseFileLimit()
        var config = GatewayConfig()
        config.echo = echo
        config.server.port = 0
        config.server.loops = 2
        if tls != nil { config.server.tlsPort = 0 }
        configure(&config.server)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let application = GatewayApplication(config: config)
        server = try WebSocketServer(configuration: config.server, application: application, tls: tls, logger: logger)
    }

    deinit { server.shutdown(drainTimeout: 0.2) }

    /// Polls a condition with a deadline (the server's counters change on its own threads).
    func eventually(_ seconds: Double = 5, _ condition: () -> Bool) -> Bool {
        let limit = doorman_monotonic_ns() + UInt64(seconds * 1e9)
        while doorman_monotonic_ns() < limit {
            if condition() { return true }
            usleep(2_000)
        }
        return condition()
    }
}

func raiseFileLimit() {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
    limit.rlim_cur = limit.rlim_max
    _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
}
