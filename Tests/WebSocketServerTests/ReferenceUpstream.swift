// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatewayCore
import Glibc
import Synchronization
import WireCodec

/// The reference upstream of the call tests: a blocking HTTP/1.1 server on 127.0.0.1 (a thread per
/// connection, keep-alive) that verifies every request's Doorman signature and refuses replays,
/// as an upstream author would. It answers:
///
///     /status/NNN   that status
///     /slow?ms=N    after N ms
///     /big?bytes=N  N bytes, chunked, written as fast as the gateway takes them
///     /stall        a chunked head and one chunk, then nothing for 3 s
///     anything else 200 with the identity it verified and the body it got
final class ReferenceUpstream: @unchecked Sendable {
    let port: Int
    let secret: [UInt8]
    /// Our name in the gateway's configuration: a call signed for another upstream is refused.
    let name: String
    private let listener: Int32
    private let seen = Mutex<Set<String>>([])
    /// Requests that passed verification, and raw bytes of the last one (to replay or tamper with).
    let received = Mutex<[HTTPRequestHead]>([])
    let lastRaw = Mutex<[UInt8]>([])
    let rejected = Mutex<[String]>([])
    private let stopped = Atomic<Bool>(false)
    /// TCP connections accepted (keep-alive reuse shows as few).
    let accepted = Atomic<Int>(0)

    init(secret: String = "reference-upstream-secret", name: String = "pms") throws {
        self.secret = Array(secret.utf8)
        self.name = name
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        listen(fd, 128)
        var bound = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &bound) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        port = Int(UInt16(bigEndian: bound.sin_port))
        listener = fd
        let listener = listener
        Thread.detach { [self] in
            while !stopped.load(ordering: .relaxed) {
                let fd = accept(listener, nil, nil)
                guard fd >= 0 else { return }
                self.accepted.add(1, ordering: .relaxed)
                Thread.detach { self.serve(fd) }
            }
        }
    }

    func stop() {
        stopped.store(true, ordering: .relaxed)
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    deinit { stop() }

    /// Sends `bytes` as a request straight to this upstream (not through the gateway); returns the status.
    func sendRaw(_ bytes: [UInt8]) throws -> Int {
        let client = try TestClient(port: port)
        client.send(bytes)
        guard let (head, _) = client.readResponse() else { return 0 }
        return Int(head.split(separator: " ")[1]) ?? 0
    }

    private func serve(_ fd: Int32) {
        defer { close(fd) }
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        func fill() -> Bool {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { return false }
            buffer += chunk[..<n]
            return true
        }
        while true {
            var end: Int? = nil
            while true {
                end = buffer.withUnsafeBytes { HTTPHeadParser.findEnd($0) }
                if end != nil { break }
                guard fill() else { return }
            }
            let headEnd = end!
            guard let head = try? buffer.withUnsafeBytes({ raw throws(HTTPHeadError) in try HTTPHeadParser.parse(UnsafeRawBufferPointer(rebasing: raw[..<headEnd])) }) else { return }
            let length = Int(head.value("content-length") ?? "0") ?? 0
            while buffer.count < headEnd + length { guard fill() else { return } }
            let raw = Array(buffer[..<(headEnd + length)])
            let body = Array(buffer[headEnd..<(headEnd + length)])
            buffer.removeFirst(headEnd + length)
            if let refusal = verify(head, body: body) {
                rejected.withLock { $0.append(refusal) }
                write(fd, status: 401, body: Array(#"{"error":"\#(refusal)"}"#.utf8))
                continue
            }
            received.withLock { $0.append(head) }
            lastRaw.withLock { $0 = raw }
            guard answer(fd, head, body) else { return }
        }
    }

    /// nil if the request is signed by Doorman with our secret and new; else why not.
    private func verify(_ head: HTTPRequestHead, body: [UInt8]) -> String? {
        func h(_ name: String) -> String { head.value(name) ?? "" }
        guard h("x-doorman-upstream") == name else { return "wrong_upstream" }
        guard let timestamp = Int(h("x-doorman-timestamp")) else { return "bad_signature" }
        let signature = UpstreamSignature(method: head.method, target: head.target, upstream: name, timestamp: timestamp, requestID: h("x-doorman-request-id"),
                                          user: h("x-doorman-user"), key: h("x-doorman-key"), scopesHeader: h("x-doorman-scopes"),
                                          propertiesHeader: h("x-doorman-properties"), property: h("x-doorman-property"))
        guard signature.verify(h("x-doorman-signature"), body: body, secret: secret, now: Int(Date().timeIntervalSince1970)) else { return "bad_signature" }
        let fresh = seen.withLock { $0.insert(signature.requestID).inserted }
        return fresh ? nil : "replay"
    }

    /// Answers one verified request; false to close the connection.
    private func answer(_ fd: Int32, _ head: HTTPRequestHead, _ body: [UInt8]) -> Bool {
        let path = String(head.path)
        let query = head.target.split(separator: "?").dropFirst().first.map(String.init) ?? ""
        let args = Dictionary(query.split(separator: "&").compactMap { pair -> (String, String)? in
            let kv = pair.split(separator: "=", maxSplits: 1)
            return kv.count == 2 ? (String(kv[0]), String(kv[1])) : nil
        }, uniquingKeysWith: { $1 })
        if path.contains("/status/"), let status = Int(path.split(separator: "/").last ?? "") {
            write(fd, status: status, body: Array(#"{"status":\#(status)}"#.utf8))
            return true
        }
        if path.hasSuffix("/slow") {
            usleep(UInt32((Int(args["ms"] ?? "1000") ?? 1000) * 1000))
        }
        if path.hasSuffix("/stall") {
            guard send(fd, Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n".utf8)) else { return false }
            usleep(3_000_000)
            return false
        }
        if path.hasSuffix("/big") {
            var total = Int(args["bytes"] ?? "1048576") ?? 1_048_576
            guard send(fd, Array("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)) else { return false }
            let block = [UInt8](repeating: UInt8(ascii: "x"), count: 65536)
            while total > 0 {
                let n = min(total, block.count)
                guard send(fd, Array((String(n, radix: 16) + "\r\n").utf8) + block[..<n] + [0x0d, 0x0a]) else { return false }
                total -= n
            }
            return send(fd, Array("0\r\n\r\n".utf8))
        }
        let identity: [String: Any] = [
            "method": head.method, "target": head.target, "user": head.value("x-doorman-user") ?? "", "key": head.value("x-doorman-key") ?? "",
            "scopes": (try? JSONSerialization.jsonObject(with: Data((head.value("x-doorman-scopes") ?? "[]").utf8))) ?? [],
            "properties": (try? JSONSerialization.jsonObject(with: Data((head.value("x-doorman-properties") ?? "[]").utf8))) ?? [],
            "property": head.value("x-doorman-property") ?? "", "received": String(decoding: body, as: UTF8.self),
            "headers": head.headers.map(\.name), "forwardedFor": head.values("x-forwarded-for"),
        ]
        write(fd, status: 200, body: Array((try? JSONSerialization.data(withJSONObject: identity)) ?? Data()), headOnly: head.method == "HEAD")
        return true
    }

    private func write(_ fd: Int32, status: Int, body: [UInt8], headOnly: Bool = false) {
        _ = send(fd, Array("HTTP/1.1 \(status) X\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + (headOnly ? [] : body))
    }

    private func send(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return false }
            sent += n
        }
        return true
    }
}
