// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Foundation
import GatewayCore
import GatewayStore
import Glibc

/// `doorman store-writer` (hidden; for `scripts/crash-test.sh`): opens the SQLite store, then for
/// each i writes user `usr_crash_<i>` and its key `key_crash_<i>` (two durable transactions, each
/// with its audit entry) and, once both `apply` calls have returned, prints `ack <i>` with one
/// unbuffered write(2). Whatever was acknowledged must survive a SIGKILL at any instant.
struct StoreWriter: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store-writer",
        abstract: "Testing only: write numbered users and keys to a store, acknowledging each on stdout.",
        shouldDisplay: false)

    @Option(help: "The store: a SQLite file path or sqlite: URL.")
    var db: String
    @Option(help: "How many users (and keys) to write.")
    var count: Int
    @Option(help: "The first number (ids usr_crash_<start> …).")
    var start = 1

    func validate() throws {
        guard count >= 0 else { throw ValidationError("--count must be 0 or more") }
        guard start >= 0 else { throw ValidationError("--start must be 0 or more") }
    }

    func run() throws {
        let store = try SQLiteStore(path: SQLiteStore.path(fromURL: db))
        ack("open")
        for i in start..<start + count {
            let now = Date()
            let user = User(id: "usr_crash_\(i)", name: "crash \(i)", permissions: ["pms:*"], createdAt: now, updatedAt: now)
            try store.apply(.putUser(user), audit: AuditEntry(time: now, actor: "store-writer", action: "user.create",
                                                                targetType: "user", targetID: user.id))
            let secret = APIKeySecret.generate()
            let key = APIKey(id: "key_crash_\(i)", name: "crash \(i)", userID: user.id, createdAt: now, updatedAt: now,
                             createdBy: "store-writer", displayStart: secret.displayStart)
            try store.apply(.putKey(key, secrets: KeySecrets(current: KeyDigest(of: secret))),
                            audit: AuditEntry(time: now, actor: "store-writer", action: "key.create", targetType: "key", targetID: key.id))
            ack(String(i))
        }
    }

    /// `ack <what>\n` straight to fd 1: nothing waits in a buffer when the process is killed.
    private func ack(_ what: String) {
        let line = Array("ack \(what)\n".utf8)
        var sent = 0
        while sent < line.count {
            let n = line.withUnsafeBytes { Glibc.write(1, $0.baseAddress! + sent, line.count - sent) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { return }
            sent += n
        }
    }
}
