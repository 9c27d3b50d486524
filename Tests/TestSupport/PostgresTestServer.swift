// SPDX-License-Identifier: Apache-2.0
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A private, throwaway PostgreSQL server for tests: `initdb` into a temporary folder (trust
/// authentication, superuser `doorman`), `pg_ctl start` on a free 127.0.0.1 port with its socket
/// in that folder, one database per `createDatabase()`, and `stop()` (pg_ctl, then the folder
/// goes).
///
/// PostgreSQL refuses to run as root (initdb and postgres both check). Under root the server
/// commands run as the `postgres` system user (created by Debian's postgresql package) through
/// `runuser -u postgres --`, and the folder is handed to that user first; the client commands
/// (`createdb`) run as we are. Other users run everything directly.
public final class PostgresTestServer: Sendable {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String

        public init(description: String) { self.description = description }
    }

    /// The folder holding `initdb`, `pg_ctl` and `createdb`, or nil when the server is not installed.
    /// `DOORMAN_PG_BIN` overrides; else Debian's `/usr/lib/postgresql/<newest>/bin`; else `PATH`.
    public static let binaries: String? = {
        let hasServer = { (dir: String) in
            ["initdb", "pg_ctl", "postgres", "createdb"].allSatisfy { FileManager.default.isExecutableFile(atPath: "\(dir)/\($0)") }
        }
        if let dir = ProcessInfo.processInfo.environment["DOORMAN_PG_BIN"] { return hasServer(dir) ? dir : nil }
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).compactMap(Int.init).sorted(by: >)
        if let dir = versions.map({ "\(root)/\($0)/bin" }).first(where: hasServer) { return dir }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        return path.split(separator: ":").map(String.init).first(where: hasServer)
    }()

    /// The superuser initdb creates (trust authentication: no password).
    public static let user = "doorman"

    public let folder: String
    public let port: Int
    private let bin: String
    private let runAs: [String]
    private let databases = Atomic<Int>(0)

    /// Creates and starts a server.
    /// - Throws: `Failure` naming the step and quoting its output.
    public static func start() throws -> PostgresTestServer {
        guard let bin = binaries else {
            throw Failure(description: "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: apt-get install postgresql, or set DOORMAN_PG_BIN")
        }
        var template = Array("/tmp/doorman-pg-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw Failure(description: "mkdtemp: errno \(errno)") }
        let folder = String(cString: made)
        var runAs: [String] = []
        if getuid() == 0 {
            guard let postgres = getpwnam("postgres") else {
                try? FileManager.default.removeItem(atPath: folder)
                throw Failure(description: "running as root and there is no postgres user to run the server as (initdb refuses root)")
            }
            guard chown(folder, postgres.pointee.pw_uid, postgres.pointee.pw_gid) == 0 else {
                try? FileManager.default.removeItem(atPath: folder)
                throw Failure(description: "chown \(folder) to postgres: errno \(errno)")
            }
            runAs = ["/usr/sbin/runuser", "-u", "postgres", "--"]
        }
        do {
            try run(runAs + ["\(bin)/initdb", "-D", "\(folder)/data", "-U", user, "-A", "trust", "--no-locale", "-E", "UTF8", "--no-sync"],
                    log: "\(folder)/initdb.log")
            // A free port can be taken between our probe and the server's bind: try a few.
            var lastError: (any Error)?
            for _ in 0..<3 {
                let port = try freePort()
                do {
                    try run(runAs + ["\(bin)/pg_ctl", "-D", "\(folder)/data", "-l", "\(folder)/server.log", "-w", "-t", "60",
                                     "-o", "-p \(port) -k \(folder) -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
                                     "start"],
                            log: "\(folder)/pg_ctl.log")
                    return PostgresTestServer(folder: folder, port: port, bin: bin, runAs: runAs)
                } catch {
                    lastError = error
                }
            }
            throw lastError ?? Failure(description: "pg_ctl start failed")
        } catch {
            let serverLog = (try? String(contentsOfFile: "\(folder)/server.log", encoding: .utf8)) ?? ""
            try? FileManager.default.removeItem(atPath: folder)
            throw Failure(description: "\(error)\(serverLog.isEmpty ? "" : "\nserver.log:\n\(serverLog.suffix(2000))")")
        }
    }

    private init(folder: String, port: Int, bin: String, runAs: [String]) {
        self.folder = folder
        self.port = port
        self.bin = bin
        self.runAs = runAs
    }

    /// Creates a new, empty database and returns its URL (`postgres://doorman@127.0.0.1:<port>/<name>`).
    public func createDatabase() throws -> String {
        let name = "doorman_test_\(databases.add(1, ordering: .relaxed).newValue)"
        try Self.run(["\(bin)/createdb", "-h", "127.0.0.1", "-p", String(port), "-U", Self.user, name], log: "\(folder)/createdb-\(name).log")
        return url(database: name)
    }

    /// The URL of database `name` on this server.
    public func url(database name: String) -> String { "postgres://\(Self.user)@127.0.0.1:\(port)/\(name)" }

    /// Stops the server (fast shutdown, without waiting for clients) and removes its folder.
    public func stop() {
        try? Self.run(runAs + ["\(bin)/pg_ctl", "-D", "\(folder)/data", "-m", "immediate", "-w", "stop"], log: "/dev/null")
        try? FileManager.default.removeItem(atPath: folder)
    }

    /// Runs a command to its end with stdout and stderr in `log`; fails with the log's tail.
    ///
    /// posix_spawn and waitpid, not Foundation's `Process`: `pg_ctl start` leaves the server
    /// running in the background, and that daemon inherits the socket `Process` watches for the
    /// child's end, so `waitUntilExit()` would never return.
    private static func run(_ command: [String], log: String) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv: [UnsafeMutablePointer<CChar>?] = command.map { strdup($0) } + [nil]
        defer { for arg in argv { free(arg) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, command[0], &actions, nil, argv, environ)
        let program = command.firstIndex(of: "--").map { command[$0 + 1] } ?? command[0]
        let name = URL(fileURLWithPath: program).lastPathComponent
        guard spawned == 0 else { throw Failure(description: "\(name): posix_spawn failed with errno \(spawned)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { throw Failure(description: "\(name): waitpid: errno \(errno)") }
        }
        // WIFEXITED(status) && WEXITSTATUS(status) == 0, spelled out (the macros are not imported).
        guard status & 0x7f == 0, (status >> 8) & 0xff == 0 else {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            throw Failure(description: "\(name) failed (wait status \(status)): \(text.suffix(2000))")
        }
    }

    /// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, read back, closed).
    private static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: errno \(errno)") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else { throw Failure(description: "bind 127.0.0.1:0: errno \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
