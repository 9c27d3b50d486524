// SPDX-License-Identifier: Apache-2.0
import CLinux
import Glibc
import Testing
import WireCodec

/// The real `doorman` binary: signals, environment, start-up errors, descriptor exhaustion.
@Suite struct BinaryTests {
    /// A `doorman` process we started; ended by its PID.
    final class Process {
        let pid: pid_t
        let stdout: Int32
        let stderr: Int32

        /// Runs `/bin/sh -c "<prefix> exec doorman <arguments>"` with extra environment.
        init(_ arguments: [String], environment: [String: String] = [:], shellPrefix: String = "") throws {
            let binary = Self.binaryPath()
            guard access(binary, X_OK) == 0 else { throw BinaryMissing(path: binary) }
            var out: [Int32] = [0, 0]
            var err: [Int32] = [0, 0]
            _ = pipe(&out)
            _ = pipe(&err)
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            posix_spawn_file_actions_adddup2(&actions, out[1], 1)
            posix_spawn_file_actions_adddup2(&actions, err[1], 2)
            posix_spawn_file_actions_addclose(&actions, out[0])
            posix_spawn_file_actions_addclose(&actions, err[0])
            let command = shellPrefix + " exec '\(binary)' " + arguments.map { "'\($0)'" }.joined(separator: " ")
            let argv = ["/bin/sh", "-c", command]
            var env = environment.map { "\($0.key)=\($0.value)" }
            env.append("PATH=/usr/bin:/bin")
            var pid: pid_t = 0
            let cArgs = argv.map { strdup($0) } + [nil]
            let cEnv = env.map { strdup($0) } + [nil]
            let rc = posix_spawn(&pid, "/bin/sh", &actions, nil, cArgs, cEnv)
            cArgs.forEach { free($0) }
            cEnv.forEach { free($0) }
            posix_spawn_file_actions_destroy(&actions)
            close(out[1])
            close(err[1])
            guard rc == 0 else { throw BinaryMissing(path: "posix_spawn failed: \(rc)") }
            self.pid = pid
            stdout = out[0]
            stderr = err[0]
        }

        deinit {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            close(stdout)
            close(stderr)
        }

        static func binaryPath() -> String {
            // Tests/WebSocketServerTests/BinaryTests.swift → package root → .build/debug/doorman
            var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
            parts.removeLast(3)
            return parts.joined(separator: "/") + "/.build/debug/doorman"
        }

        /// Reads a stream until EOF or `seconds`.
        func read(_ fd: Int32, seconds: Double = 10, until stop: (String) -> Bool = { _ in false }) -> String {
            var text = ""
            let limit = doorman_monotonic_ns() + UInt64(seconds * 1e9)
            var buffer = [UInt8](repeating: 0, count: 4096)
            while doorman_monotonic_ns() < limit {
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&p, 1, 100) >= 0 else { break }
                if p.revents == 0 { continue }
                let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                if n <= 0 { break }
                text += String(decoding: buffer[..<n], as: UTF8.self)
                if stop(text) { break }
            }
            return text
        }

        /// The port from the "doorman listening on host:port" line.
        func port() -> Int? {
            let line = read(stdout) { $0.contains("\n") }
            return line.split(separator: ":").last.flatMap { Int($0.filter(\.isNumber)) }
        }

        /// Exit status, waiting at most `seconds`.
        func exitStatus(seconds: Double = 10) -> Int32? {
            let limit = doorman_monotonic_ns() + UInt64(seconds * 1e9)
            var status: Int32 = 0
            while doorman_monotonic_ns() < limit {
                if waitpid(pid, &status, WNOHANG) == pid { return (status >> 8) & 0xff }
                usleep(10_000)
            }
            return nil
        }

        /// utime + stime from /proc, in clock ticks.
        func cpuTicks() -> Int {
            guard let f = fopen("/proc/\(pid)/stat", "r") else { return 0 }
            defer { fclose(f) }
            var buffer = [CChar](repeating: 0, count: 1024)
            guard fgets(&buffer, 1024, f) != nil else { return 0 }
            let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            guard let close = text.lastIndex(of: ")") else { return 0 }
            let fields = text[text.index(after: close)...].split(separator: " ")
            return (Int(fields[11]) ?? 0) + (Int(fields[12]) ?? 0)   // fields 14 and 15 of stat(5)
        }
    }

    struct BinaryMissing: Error, CustomStringConvertible {
        var path: String
        var description: String { "doorman binary not found at \(path): run `swift build` first" }
    }

    @Test func drainsSessionsWithGoingAwayOnSIGTERM() throws {
        let process = try Process(["serve", "--echo", "--port", "0", "--loops", "2"])
        let port = try #require(process.port())
        let client = try TestClient(port: port)
        #expect(client.upgrade()?.hasPrefix("HTTP/1.1 101") == true)
        kill(process.pid, SIGTERM)
        #expect(client.readCloseCode() == 1001)
        client.sendFrame(.close, [0x03, 0xE9])
        #expect(client.awaitsEndOfStream())
        #expect(process.exitStatus() == 0)
    }

    @Test func readsItsSettingsFromTheEnvironment() throws {
        let process = try Process(["serve"], environment: ["DOORMAN_PORT": "0", "DOORMAN_PATH": "/devices", "DOORMAN_ECHO": "1"])
        let port = try #require(process.port())
        let client = try TestClient(port: port)
        client.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(client.readResponse()?.head.hasPrefix("HTTP/1.1 200") == true)
        kill(process.pid, SIGTERM)
        #expect(process.exitStatus() == 0)
    }

    @Test func namesTheBadSettingAndDoesNotStart() throws {
        let process = try Process(["serve", "--port", "0"], environment: ["DOORMAN_MAX_FRAGMENTS": "lots"])
        let status = process.exitStatus()
        let error = process.read(process.stderr, seconds: 2)
        #expect(status != nil && status != 0)
        #expect(error.contains("max-fragments"))
    }

    @Test func shedsConnectionsAtTheDescriptorLimitWithoutSpinning() throws {
        // 64 descriptors: a few for the process, the rest for connections.
        let process = try Process(["serve", "--echo", "--port", "0", "--loops", "1"], shellPrefix: "ulimit -n 64;")
        let port = try #require(process.port())
        var clients: [TestClient] = []
        for _ in 0..<80 { if let c = try? TestClient(port: port) { clients.append(c) } }
        // The server holds what it can; the rest are accepted and closed, not left pending.
        let before = process.cpuTicks()
        for c in clients.suffix(10) { c.setTimeout(2) }
        let shed = clients.suffix(10).filter { $0.awaitsEndOfStream() }.count
        #expect(shed > 0)
        // A busy loop at EMFILE would burn a whole core; over the waits above we used little.
        let used = process.cpuTicks() - before
        #expect(used < Int(sysconf(Int32(_SC_CLK_TCK))) / 2, "server CPU ticks while at the limit: \(used)")
        // Free descriptors; the server serves again (once it has seen those connections close).
        clients.removeAll()
        var ok = false
        let limit = doorman_monotonic_ns() + 10_000_000_000
        while !ok, doorman_monotonic_ns() < limit {
            if let c = try? TestClient(port: port) {
                c.setTimeout(1)
                c.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                ok = c.readResponse()?.head.hasPrefix("HTTP/1.1 200") == true
            }
            if !ok { usleep(20_000) }
        }
        #expect(ok)
    }
}


extension BinaryTests {
    /// Runs `doorman <arguments>` to completion; returns exit status and stdout.
    func run(_ arguments: [String], environment: [String: String]) throws -> (Int32?, String) {
        let process = try Process(arguments, environment: environment)
        let out = process.read(process.stdout, seconds: 20)
        return (process.exitStatus(), out)
    }

    @Test func theCLIManagesKeysThroughTheAdminAPI() throws {
        let dir = "/tmp/doorman-cli-\(getpid())-\(doorman_monotonic_ns())"
        mkdir(dir, 0o700)
        let server = try Process(["serve", "--port", "0", "--db", dir + "/doorman.db"])
        let first = server.read(server.stdout, seconds: 10) { $0.contains("listening on") }
        let adminKey = try #require(first.split(separator: "\n").first { $0.hasPrefix("admin key: ") }?.dropFirst("admin key: ".count))
        let port = try #require(first.split(separator: ":").last.flatMap { Int($0.filter(\.isNumber)) })
        let env = ["DOORMAN_SERVER": "http://127.0.0.1:\(port)", "DOORMAN_ADMIN_KEY": String(adminKey)]

        let (s1, userJSON) = try run(["users", "create", "--name", "panel user", "--permission", "door:open*", "--json"], environment: env)
        #expect(s1 == 0)
        let userID = try #require(userJSON.firstMatch(of: /"id" : "(usr_[A-Za-z0-9]+)"/)?.1)
        let (s2, keyJSON) = try run(["keys", "create", "--user", String(userID), "--name", "door 12", "--json"], environment: env)
        #expect(s2 == 0)
        let keyID = try #require(keyJSON.firstMatch(of: /"id" : "(key_[A-Za-z0-9]+)"/)?.1)
        #expect(keyJSON.contains("\"secret\" : \"dmk_"))
        let (s3, table) = try run(["keys", "list"], environment: env)
        #expect(s3 == 0)
        #expect(table.contains("door 12") && table.hasPrefix("ID"))
        #expect(try run(["keys", "revoke", String(keyID)], environment: env).0 == 0)
        // Scripts can rely on: 1 = refused, 3 = unreachable.
        #expect(try run(["keys", "resume", String(keyID)], environment: env).0 == 1)
        #expect(try run(["keys", "show", "key_nope"], environment: env).0 == 1)
        #expect(try run(["users", "list"], environment: env.merging(["DOORMAN_ADMIN_KEY": "dmk_bad"]) { $1 }).0 == 1)
        #expect(try run(["users", "list"], environment: env.merging(["DOORMAN_SERVER": "http://127.0.0.1:1"]) { $1 }).0 == 3)
        let (s4, audit) = try run(["audit", "--target", String(keyID)], environment: env)
        #expect(s4 == 0)
        #expect(audit.contains("key.revoke") && audit.contains("key.create"))
        // Later starts never print a secret.
        kill(server.pid, SIGTERM)
        #expect(server.exitStatus() == 0)
        let again = try Process(["serve", "--port", "0", "--db", dir + "/doorman.db"])
        let second = again.read(again.stdout, seconds: 10) { $0.contains("listening on") }
        #expect(!second.contains("admin key") && !second.contains("dmk_"))
    }

    /// Issue 16, item 8: the CLI speaks https://, and only to a server whose certificate it trusts
    /// and that names the URL's host.
    @Test func theCLIReachesAnHTTPSGatewayItTrusts() throws {
        let dir = "/tmp/doorman-cli-tls-\(getpid())-\(doorman_monotonic_ns())"
        mkdir(dir, 0o700)
        let (cert, key) = try TestCertificates.selfSigned(commonName: "gateway.test", altName: "IP:127.0.0.1", in: dir)
        let other = try TestCertificates.selfSigned(commonName: "other.test", altName: "IP:127.0.0.1", in: dir)
        let server = try Process(["serve", "--port", "0", "--tls-port", "0", "--tls-cert", cert, "--tls-key", key, "--db", dir + "/doorman.db"])
        let banner = server.read(server.stdout, seconds: 10) { $0.contains("listening for TLS on") }
        let adminKey = try #require(banner.split(separator: "\n").first { $0.hasPrefix("admin key: ") }?.dropFirst("admin key: ".count))
        let tlsLine = try #require(banner.split(separator: "\n").first { $0.contains("listening for TLS on") })
        let tlsPort = try #require(tlsLine.split(separator: ":").last.flatMap { Int($0.filter(\.isNumber)) })
        let env = ["DOORMAN_SERVER": "https://127.0.0.1:\(tlsPort)", "DOORMAN_ADMIN_KEY": String(adminKey)]
        defer { kill(server.pid, SIGTERM); _ = server.exitStatus() }

        // Trusting the gateway's own certificate: the admin API answers over TLS.
        let (ok, users) = try run(["users", "list", "--ca-file", cert], environment: env)
        #expect(ok == 0 && users.contains("admin"), "\(users)")
        #expect(try run(["users", "list"], environment: env.merging(["DOORMAN_CA_FILE": cert]) { $1 }).0 == 0)
        // Not trusted (the system's store, or another certificate), or not naming the host: 3, nothing sent.
        #expect(try run(["users", "list"], environment: env).0 == 3)
        #expect(try run(["users", "list", "--ca-file", other.cert], environment: env).0 == 3)
        #expect(try run(["users", "list", "--ca-file", cert, "--server", "https://localhost:\(tlsPort)"], environment: env).0 == 3)
        // A bad URL is refused before anything is sent.
        #expect(try run(["users", "list", "--server", "ftp://127.0.0.1:\(tlsPort)"], environment: env).0 != 0)
    }

    /// Issue 17, finding 2: a first start that fails after making the admin key (its port taken)
    /// still shows the key, and the next start, which makes none, is not locked out.
    @Test func theFirstStartsAdminKeyIsShownEvenWhenTheStartFails() throws {
        let dir = "/tmp/doorman-cli-boot-\(getpid())-\(doorman_monotonic_ns())"
        mkdir(dir, 0o700)
        let taken = try TestListener()
        let failed = try Process(["serve", "--host", "127.0.0.1", "--port", String(taken.port), "--db", dir + "/doorman.db"])
        let said = failed.read(failed.stdout, seconds: 10)
        #expect(failed.exitStatus() != 0, "the port was taken")
        withExtendedLifetime(taken) {}   // held until the failed start has ended
        let adminKey = try #require(said.split(separator: "\n").first { $0.hasPrefix("admin key: ") }?.dropFirst("admin key: ".count),
                                    "the first start must show the key it made: \(said)")

        let server = try Process(["serve", "--port", "0", "--db", dir + "/doorman.db"])
        let banner = server.read(server.stdout, seconds: 10) { $0.contains("listening on") }
        #expect(!banner.contains("admin key"))
        let port = try #require(banner.split(separator: ":").last.flatMap { Int($0.filter(\.isNumber)) })
        defer { kill(server.pid, SIGTERM); _ = server.exitStatus() }
        let env = ["DOORMAN_SERVER": "http://127.0.0.1:\(port)", "DOORMAN_ADMIN_KEY": String(adminKey)]
        let (status, users) = try run(["users", "list"], environment: env)
        #expect(status == 0 && users.contains("admin"), "\(users)")
    }
}

extension BinaryTests {
    /// Issue 17, findings 1, 4 and 6, through the real CLI and binary.
    @Test func theCLIDoesWhatItsHelpSays() throws {
        let dir = "/tmp/doorman-cli-hour-\(getpid())-\(doorman_monotonic_ns())"
        mkdir(dir, 0o700)
        let server = try Process(["serve", "--port", "0", "--db", dir + "/doorman.db", "--node-name", "n1"])
        let first = server.read(server.stdout, seconds: 10) { $0.contains("listening on") }
        let adminKey = try #require(first.split(separator: "\n").first { $0.hasPrefix("admin key: ") }?.dropFirst("admin key: ".count))
        let port = try #require(first.split(separator: ":").last.flatMap { Int($0.filter(\.isNumber)) })
        defer { kill(server.pid, SIGTERM); _ = server.exitStatus() }
        let env = ["DOORMAN_SERVER": "http://127.0.0.1:\(port)", "DOORMAN_ADMIN_KEY": String(adminKey)]
        func id(_ json: String, _ prefix: String) -> String? {
            json.firstMatch(of: try! Regex("\"id\" : \"(\(prefix)_[A-Za-z0-9]+)\"")).flatMap { $0.output[1].substring.map(String.init) }
        }

        let (_, userJSON) = try run(["users", "create", "--name", "panel user", "--permission", "door:*", "--json"], environment: env)
        let userID = try #require(id(userJSON, "usr"))
        // --name is required to create a key, and says so (not "[--name <name>]").
        let (noName, _) = try run(["keys", "create", "--user", userID], environment: env)
        #expect(noName != 0)
        let (_, help) = try run(["keys", "create", "--help"], environment: env)
        #expect(help.contains("--name <name>") && !help.contains("[--name <name>]"), "\(help)")
        let (_, keyJSON) = try run(["keys", "create", "--user", userID, "--name", "door 12", "--json"], environment: env)
        let keyID = try #require(id(keyJSON, "key"))
        let secret = try #require(keyJSON.firstMatch(of: /"secret" : "(dmk_[A-Za-z0-9]+)"/)?.1)

        // Finding 1: sessions list --key filters by the device key (the admin key comes from the
        // environment, or --admin-key); sessions kill takes --node.
        let device = try TestClient(port: port)
        #expect(device.upgrade(headers: ["X-API-Key: \(secret)"])?.hasPrefix("HTTP/1.1 101") == true)
        let (listed, sessions) = try run(["sessions", "list", "--key", keyID, "--json"], environment: env)
        #expect(listed == 0 && sessions.contains(keyID), "\(sessions)")
        let sessionID = try #require(sessions.firstMatch(of: /"id" : "([0-9]+)"/)?.1)
        let (table, _) = try run(["sessions", "list", "--key", keyID, "--admin-key", String(adminKey)], environment: ["DOORMAN_SERVER": env["DOORMAN_SERVER"]!])
        #expect(table == 0)
        #expect(try run(["sessions", "kill", String(sessionID), "--node", "elsewhere"], environment: env).0 == 1, "no such session on that node")
        #expect(try run(["sessions", "kill", String(sessionID), "--node", "n1"], environment: env).0 == 0)

        // Finding 6: --json covers errors; a denied explain is told from an unknown key.
        let (missing, errorJSON) = try run(["keys", "show", "key_nope", "--json"], environment: env)
        #expect(missing == 1 && errorJSON.contains("\"error\" : \"not_found\""), "\(errorJSON)")
        #expect(try run(["keys", "explain", keyID, "--action", "door:open"], environment: env).0 == 0)
        #expect(try run(["keys", "explain", keyID, "--action", "pms:checkIn"], environment: env).0 == 2)
        #expect(try run(["keys", "explain", "key_nope", "--action", "door:open"], environment: env).0 == 1)

        // Finding 4: an expired key is shown and listed as expired; a rotation's grace is shown.
        let (_, oldJSON) = try run(["keys", "create", "--user", userID, "--name", "old panel", "--expires", "2020-01-01T00:00:00Z", "--json"],
                                   environment: env)
        let oldID = try #require(id(oldJSON, "key"))
        let (_, shown) = try run(["keys", "show", oldID], environment: env)
        #expect(shown.contains("status: expired"), "\(shown)")
        let (expiredListed, expired) = try run(["keys", "list", "--state", "expired"], environment: env)
        #expect(expiredListed == 0 && expired.contains(oldID) && !expired.contains(keyID), "\(expired)")
        let (_, active) = try run(["keys", "list", "--state", "active"], environment: env)
        #expect(active.contains(keyID) && !active.contains(oldID), "\(active)")
        #expect(try run(["keys", "rotate", keyID, "--grace", "15m"], environment: env).0 == 0)
        let (_, rotated) = try run(["keys", "show", keyID, "--json"], environment: env)
        #expect(rotated.contains("\"previousUntil\""), "\(rotated)")
        #expect(try run(["keys", "rotate", keyID, "--grace", "soon"], environment: env).0 != 0, "a grace without a number is refused")
    }
}

/// A listening socket on 127.0.0.1 (a port some other program holds).
final class TestListener {
    let fd: Int32
    let port: Int

    struct ListenFailed: Error { let errno: Int32 }

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(fd, 8) == 0 else { throw ListenFailed(errno: errno) }
        var got = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &got) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        port = Int(UInt16(bigEndian: got.sin_port))
    }

    deinit { close(fd) }
}
