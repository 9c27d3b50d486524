// SPDX-License-Identifier: Apache-2.0
import Glibc
import Testing
import WebSocketServer
import WireCodec

/// Slow readers must not make the server queue without bound.
@Suite struct BackpressureTests {
    @Test func closesAThousandReadersThatNeverReadAndKeepsServingOthers() throws {
        let queueLimit = 64 * 1024
        let server = try TestServer { $0.maxWriteQueueBytes = queueLimit; $0.maxConnections = 5000; $0.closeTimeout = 1
            $0.maxUnfinishedPerAddress = 5000   // all 1,000 connect (from one address) before any upgrades
        }
        // Tiny receive windows, so the kernel absorbs little and the server's queue must fill.
        let readers = try (0..<1000).map { _ in try TestClient(port: server.port, receiveBuffer: 4096) }
        for r in readers { #expect(r.upgrade()?.hasPrefix("HTTP/1.1 101") == true) }
        #expect(server.eventually { server.server.activeConnections == 1000 })
        let message = TestClient.frame(.binary, [UInt8](repeating: 7, count: 16 * 1024))
        // Each reader sends more than the queue limit plus what the kernel can hold, and never reads.
        for r in readers {
            var nonBlocking = fcntl(r.fd, F_GETFL) | O_NONBLOCK
            _ = fcntl(r.fd, F_SETFL, nonBlocking)
            for _ in 0..<64 { _ = message.withUnsafeBytes { Glibc.send(r.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } }
            nonBlocking &= ~O_NONBLOCK
            _ = fcntl(r.fd, F_SETFL, nonBlocking)
        }
        // Another client is served promptly meanwhile.
        let fresh = try TestClient(port: server.port)
        #expect(fresh.upgrade()?.hasPrefix("HTTP/1.1 101") == true)
        fresh.sendFrame(.text, Array("alive".utf8))
        #expect(fresh.readFrame() == .text("alive"))
        // Every slow reader is closed (slow consumer, then the close timeout), none is kept.
        #expect(server.eventually(20) { server.server.activeConnections == 1 })
    }
}
