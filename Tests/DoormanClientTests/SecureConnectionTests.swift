// SPDX-License-Identifier: Apache-2.0
import Foundation
import Testing
@testable import DoormanClient

/// Issue 17: the Swift client speaks wss:// against the gateway's TLS listener, and only to a
/// server whose certificate it trusts and that names the URL's host.
@Suite struct SecureConnectionTests {
    /// A gateway (the debug binary) with a TLS listener on a self-signed 127.0.0.1 certificate.
    final class TLSGateway {
        let process = Process()
        let directory: String
        let certificate: String
        let other: String
        var adminKey = ""
        var tlsPort = 0

        init() throws {
            directory = NSTemporaryDirectory() + "doorman-wss-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            certificate = directory + "/gateway.pem"
            other = directory + "/other.pem"
            for (name, cert) in [("gateway", certificate), ("other", other)] {
                try Self.run("/usr/bin/openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                                                  "-days", "2", "-subj", "/CN=\(name)", "-addext", "subjectAltName=IP:127.0.0.1",
                                                  "-keyout", directory + "/\(name).key", "-out", cert])
            }
            process.executableURL = URL(fileURLWithPath: ScenarioHarness.binaryPath)
            process.arguments = ["serve", "--port", "0", "--tls-port", "0", "--tls-cert", certificate, "--tls-key", directory + "/gateway.key",
                                 "--db", directory + "/doorman.db", "--log-level", "warning"]
            let out = Pipe()
            process.standardOutput = out
            process.standardError = FileHandle.nullDevice
            try process.run()
            var text = ""
            let deadline = Date().addingTimeInterval(20)
            while !text.contains("listening for TLS on"), Date() < deadline {
                let data = out.fileHandleForReading.availableData
                if data.isEmpty { break }
                text += String(decoding: data, as: UTF8.self)
            }
            for line in text.split(separator: "\n") {
                if line.hasPrefix("admin key: ") { adminKey = String(line.dropFirst("admin key: ".count)) }
                if line.contains("listening for TLS on"), let port = line.split(separator: ":").last.flatMap({ Int($0) }) { tlsPort = port }
            }
        }

        deinit {
            process.terminate()
            process.waitUntilExit()
            try? FileManager.default.removeItem(atPath: directory)
        }

        static func run(_ tool: String, _ arguments: [String]) throws {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: tool)
            p.arguments = arguments
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            p.waitUntilExit()
        }
    }

    static var enabled: Bool {
        FileManager.default.isExecutableFile(atPath: ScenarioHarness.binaryPath) && FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl")
    }

    @Test(.enabled(if: enabled), .timeLimit(.minutes(1)))
    func speaksWSSToAGatewayItTrustsOnly() async throws {
        let gateway = try TLSGateway()
        #expect(!gateway.adminKey.isEmpty && gateway.tlsPort > 0)
        let url = try #require(URL(string: "wss://127.0.0.1:\(gateway.tlsPort)/ws"))

        // Trusting the gateway's own certificate: a session over TLS.
        var trusting = DoormanClient.Options()
        trusting.trustedCertificatesFile = gateway.certificate
        let client = DoormanClient(url: url, key: gateway.adminKey, options: trusting)
        let welcome = try await client.connect(timeout: .seconds(10))
        #expect(welcome.user.name == "admin")
        try await client.ping()
        await client.close()

        // Another certificate, the system's store, or the right certificate for another name
        // (localhost: the certificate names only 127.0.0.1): no session, and the reason says why.
        for (file, host) in [(gateway.other, "127.0.0.1"), (nil, "127.0.0.1"), (gateway.certificate, "localhost")] as [(String?, String)] {
            let url = try #require(URL(string: "wss://\(host):\(gateway.tlsPort)/ws"))
            var options = DoormanClient.Options()
            options.trustedCertificatesFile = file
            options.backoff = Backoff(initial: .milliseconds(50), maximum: .milliseconds(100))
            let refused = DoormanClient(url: url, key: gateway.adminKey, options: options)
            var reason = ""
            let watcher = Task {
                for await event in refused.events {
                    if case .disconnected(let d) = event { return d.reason }
                }
                return ""
            }
            do {
                _ = try await refused.connect(timeout: .seconds(2))
                Issue.record("connected to a server it does not trust (\(file ?? "system store"))")
            } catch {}
            await refused.close()   // ends the events too, so the watcher always returns
            reason = await watcher.value
            #expect(reason.contains("certificate verify failed"), "\(host), \(file ?? "system store"): \(reason)")
        }
    }

    @Test func wssIsAcceptedAndDefaultsToPort443() throws {
        #if canImport(COpenSSL)
        let target = try ConnectionTarget(url: URL(string: "wss://gw.example/ws")!)
        #expect(target.secure && target.port == 443 && target.hostHeader == "gw.example")
        #else
        #expect(throws: DoormanError.self) { try ConnectionTarget(url: URL(string: "wss://gw.example/ws")!) }
        #endif
        #expect(try !ConnectionTarget(url: URL(string: "ws://gw.example/ws")!).secure)
    }
}
