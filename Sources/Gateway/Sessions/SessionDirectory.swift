// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatewayCore
import Glibc
import Synchronization
import Transport

/// A live session as the admin API shows it.
struct SessionInfo: Codable, Sendable, Equatable {
    var id: String
    var keyID: String
    var userID: String
    var address: String
    var userAgent: String?
    var since: Date
    var lastActivity: Date
    var node: String
    var subscriptions: Int
}

/// How many sessions one committed change ended, known once every loop has acted on it.
final class ChangeReceipt: Sendable {
    private let remaining: Atomic<Int>
    private let total = Atomic<Int>(0)

    init(loops: Int) { remaining = Atomic(loops) }

    /// Records one loop's count; true for the last loop to report.
    @discardableResult
    func loopDone(ended: Int) -> Bool {
        total.add(ended, ordering: .relaxed)
        return remaining.subtract(1, ordering: .acquiringAndReleasing).newValue == 0
    }

    var isComplete: Bool { remaining.load(ordering: .acquiring) <= 0 }
    var ended: Int { total.load(ordering: .relaxed) }

    /// Waits (on a pool thread, never a loop) until every loop has acted, at most `timeout` seconds.
    func wait(timeout: Double = 5) -> Bool {
        let limit = monotonicNanoseconds() + UInt64(timeout * 1e9)
        while !isComplete, monotonicNanoseconds() < limit { usleep(200) }
        return isComplete
    }
}

/// Collects the receipts of changes committed by the calling thread inside `collect`.
///
/// An admin request runs start to finish on one pool thread, and the store's observer runs
/// synchronously inside its commit; so "the changes this request made" are those observed on
/// this thread between the start and the end of `collect`.
enum ChangeReceipts {
    /// A change's receipt on this node, and the change's audit seq (other nodes' receipts name it).
    struct Entry {
        var receipt: ChangeReceipt
        var auditSeq: Int64
    }

    private static let open = Mutex<[UInt: [Entry]]>([:])

    private static var thread: UInt { UInt(bitPattern: Int(bitPattern: UInt(pthread_self()))) }

    /// Nests: an inner `collect` returns its own receipts and hands them on to the outer one.
    static func collect(_ body: () throws -> Void) rethrows -> [Entry] {
        let me = thread
        let outer = open.withLock { state -> [Entry]? in
            defer { state[me] = [] }
            return state[me]
        }
        defer {
            open.withLock { state in
                let inner = state[me] ?? []
                state[me] = outer.map { $0 + inner }
            }
        }
        try body()
        return open.withLock { $0[me] ?? [] }
    }

    /// Called by the observer: records a receipt if the calling thread is collecting.
    static func add(_ receipt: ChangeReceipt, auditSeq: Int64) {
        let me = thread
        open.withLock { if $0[me] != nil { $0[me]!.append(Entry(receipt: receipt, auditSeq: auditSeq)) } }
    }
}

extension SessionServices {
    /// Every live session on every node, optionally of one key or user (blocking: waits for
    /// every loop; other nodes' sessions as of their last sync, about a second ago).
    func list(keyID: String?, userID: String?) -> [SessionInfo] {
        var all = localList(keyID: keyID, userID: userID)
        if let cluster {
            all += cluster.remoteSessionInfos(keyID: keyID, userID: userID)
            all.sort { $0.since < $1.since }
        }
        return all
    }

    /// This node's live sessions (blocking: waits for every loop).
    func localList(keyID: String?, userID: String?) -> [SessionInfo] {
        let found = Mutex<[SessionInfo]>([])
        let node = nodeName
        _ = everyHub { hub in
            let infos = hub.sessions.values.filter { s in
                (keyID == nil || s.keyID == keyID) && (userID == nil || s.userID == userID) && s.isLive
            }.map { $0.info(node: node) }
            found.withLock { $0 += infos }
            return 0
        }.wait()
        return found.withLock { $0 }.sorted { $0.since < $1.since }
    }

    /// Ends one session (an administrator's kill). Blocking; true if it existed.
    func kill(sessionID: UInt64) -> Bool {
        let receipt = everyHub { $0.end(sessionID: sessionID, reason: .killed) ? 1 : 0 }
        _ = receipt.wait()
        return receipt.ended > 0
    }

    static let hostName: String = {
        var buffer = [CChar](repeating: 0, count: 256)
        gethostname(&buffer, 255)
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }()
}
