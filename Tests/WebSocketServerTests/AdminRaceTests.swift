// SPDX-License-Identifier: Apache-2.0
import Dispatch
import Foundation
@testable import Gateway
import GatewayCore
import GatewayStore
import Synchronization
import TestSupport
import Testing

/// Two admins' writes to the same key or user, on two threads against the real stores: an edit
/// racing a suspend (or a disable) never brings the key (or user) back; the final state is the
/// last acknowledged state change and the audit trail has every change.
@Suite struct AdminRaceTests {
    /// Rounds per store (`DOORMAN_RACE_ROUNDS` overrides).
    static let rounds = ProcessInfo.processInfo.environment["DOORMAN_RACE_ROUNDS"].flatMap(Int.init) ?? 1000

    enum Kind: String, CaseIterable, Sendable { case sqlite, postgres }

    /// SQLite always; PostgreSQL when its server binaries are installed, and always under CI=true.
    static let kinds: [Kind] = {
        if PostgresTestServer.binaries != nil || ProcessInfo.processInfo.environment["CI"] == "true" { return Kind.allCases }
        FileHandle.standardError.write(Data("\n!!!!!!!! SKIPPING the PostgreSQL admin race: initdb/pg_ctl not found; it fails under CI=true !!!!!!!!\n\n".utf8))
        return [.sqlite]
    }()

    /// A fresh store of `kind` and what stops it.
    static func open(_ kind: Kind) throws -> (any IdentityStore, () -> Void) {
        switch kind {
        case .sqlite:
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("doorman-race-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            return (try SQLiteStore(path: dir.appendingPathComponent("doorman.db").path), { try? FileManager.default.removeItem(at: dir) })
        case .postgres:
            let server = try PostgresTestServer.start()
            return (try PostgresStore(url: try server.createDatabase(), connections: 2), { server.stop() })
        }
    }

    /// Runs both bodies at once on two threads; the errors they threw.
    static func race(_ first: @escaping @Sendable () throws -> Void, _ second: @escaping @Sendable () throws -> Void) -> [String] {
        let errors = Mutex<[String]>([])
        let bodies = [first, second]
        DispatchQueue.concurrentPerform(iterations: 2) { i in
            do { try bodies[i]() } catch { errors.withLock { $0.append("\(error)") } }
        }
        return errors.withLock { $0 }
    }

    @Test(arguments: kinds)
    func anEditNeverUndoesASuspensionOrADisable(_ kind: Kind) throws {
        let (store, close) = try Self.open(kind)
        defer { close() }
        let now = Date()
        let root = User(id: "usr_root", name: "root", permissions: ["admin:*"], createdAt: now, updatedAt: now)
        try store.apply(.putUser(root), audit: AuditEntry(time: now, actor: "t", action: "user.create", targetType: "user", targetID: root.id))
        let rootKey = APIKey(id: "key_root", name: "root", userID: root.id, createdAt: now, updatedAt: now, createdBy: "t", displayStart: "dmk_root")
        try store.apply(.putKey(rootKey, secrets: KeySecrets(current: KeyDigest(of: APIKeySecret.generate()))),
                        audit: AuditEntry(time: now, actor: "t", action: "key.create", targetType: "key", targetID: rootKey.id))
        let service = AdminService(store: store, policy: KeyPolicy())
        let actor = Actor(key: rootKey, user: root)
        let userID = try service.createUser(UserInput(name: "device", permissions: ["pms:*"]), actor: actor).id
        let keyID = try service.createKey(KeyInput(name: "panel", userID: userID), actor: actor).key.id

        for round in 0..<Self.rounds {
            let keyErrors = Self.race({ _ = try service.updateKey(keyID, KeyInput(name: "panel \(round)"), actor: actor) },
                                      { _ = try service.setKeyState(keyID, .suspended, actor: actor) })
            let userErrors = Self.race({ _ = try service.updateUser(userID, UserInput(name: "device \(round)"), actor: actor) },
                                       { _ = try service.setUserState(userID, .disabled, actor: actor) })
            let key = try service.key(keyID), user = try service.user(userID)
            #expect(keyErrors.isEmpty && userErrors.isEmpty, "round \(round): \(keyErrors + userErrors)")
            #expect(key.state == .suspended && key.name == "panel \(round)", "round \(round): \(key.state) \(key.name)")
            #expect(user.state == .disabled && user.name == "device \(round)", "round \(round): \(user.state) \(user.name)")
            if key.state != .suspended || user.state != .disabled || key.name != "panel \(round)" || user.name != "device \(round)"
                || !keyErrors.isEmpty || !userErrors.isEmpty { return }
            _ = try service.setKeyState(keyID, .active, actor: actor)
            _ = try service.setUserState(userID, .active, actor: actor)
        }

        // Every acknowledged change is in the trail: the create, then an edit, a suspend and a resume per round.
        var entries: [AuditEntry] = []
        var before: Int64?
        repeat {
            let page = try store.audit(AuditQuery(targetID: keyID, before: before, limit: 1000))
            entries += page.items
            before = page.next.flatMap { Int64($0) }
        } while before != nil
        #expect(entries.count == 1 + 3 * Self.rounds)
        #expect(entries.filter { $0.action == "key.suspend" }.count == Self.rounds)
        #expect(entries.filter { $0.action == "key.update" }.count == Self.rounds)
    }
}
