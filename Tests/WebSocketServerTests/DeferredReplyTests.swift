// SPDX-License-Identifier: Apache-2.0
import Logging
import Testing
import Transport
import WebSocketServer
import WireCodec

/// Replies that come later, from another thread, as the admin API's store calls do.
@Suite struct DeferredReplyTests {
    /// Answers each request from a pool thread with the request's path.
    final class PoolApplication: ServerApplication {
        let pool = BlockingPool(threads: 2)
        func upgrade(_ head: HTTPRequestHead, _ upgrade: WebSocketUpgrade, on connection: Connection) -> UpgradeDecision {
            .reject(HTTPResponse(status: 404))
        }
        func respond(to request: HTTPRequest, on connection: Connection, reply: HTTPReply) {
            let path = String(request.head.path)
            let body = request.body
            pool.submit {
                reply.send(HTTPResponse(status: 200, body: Array("\(path) \(body.count)".utf8)))
            }
        }
    }

    @Test func answersPipelinedRequestsInOrderFromAnotherThread() throws {
        var config = ServerConfiguration()
        config.port = 0
        config.loops = 1
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let application = PoolApplication()
        let server = try WebSocketServer(configuration: config, application: application, logger: logger)
        defer {
            server.shutdown(drainTimeout: 0.2)
            application.pool.shutdown()
        }
        let client = try TestClient(port: server.port)
        var pipeline = ""
        for i in 0..<20 { pipeline += "POST /r\(i) HTTP/1.1\r\nHost: x\r\nContent-Length: \(i)\r\n\r\n" + String(repeating: "b", count: i) }
        client.send(pipeline)
        for i in 0..<20 {
            let response = try #require(client.readResponse())
            #expect(response.head.hasPrefix("HTTP/1.1 200"))
            #expect(response.body == "/r\(i) \(i)")
        }
    }
}
