// SPDX-License-Identifier: Apache-2.0
import CLinux
import Glibc
import Synchronization
import Testing
import Transport

/// `Socket.drain` reports what became of a queue; `afterCurrentEvent` runs once the job at hand returns.
@Suite struct SocketDrainTests {
    /// What the loop's jobs did, in order, read by the test once a given line is in.
    final class Log: Sendable {
        private let entries = Mutex<[String]>([])
        func add(_ line: String) { entries.withLock { $0.append(line) } }
        /// The lines once `last` is among them (or after 5 s, whatever is there).
        func lines(once last: String) -> [String] {
            let limit = doorman_monotonic_ns() + 5_000_000_000
            while !entries.withLock({ $0.contains(last) }), doorman_monotonic_ns() < limit { usleep(1000) }
            return entries.withLock { $0 }
        }
    }

    private func pair() -> (Int32, Int32) {
        var fds: [Int32] = [0, 0]
        _ = socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0, &fds)
        return (fds[0], fds[1])
    }

    @Test func drainsAQueueTheKernelTakesAndEmptiesIt() {
        let (a, b) = pair()
        defer { close(a); close(b) }
        var queue = Array("hello".utf8)
        var start = 0
        guard case .drained = Socket.drain(&queue, from: &start, to: a) else { Issue.record("not drained"); return }
        #expect(queue.isEmpty && start == 0)
        var buffer = [UInt8](repeating: 0, count: 16)
        #expect(read(b, &buffer, 16) == 5)
    }

    @Test func reportsBlockedAndKeepsWhatIsLeft() {
        let (a, b) = pair()
        defer { close(a); close(b) }
        var queue = [UInt8](repeating: 7, count: 8 << 20)   // more than a socketpair buffers
        var start = 0
        guard case .blocked = Socket.drain(&queue, from: &start, to: a) else { Issue.record("not blocked"); return }
        #expect(start > 0 && start < queue.count)
        #expect(queue.count == 8 << 20)
    }

    @Test func reportsAFailureInsteadOfActingOnIt() {
        let (a, b) = pair()
        close(b)   // the peer is gone: EPIPE
        defer { close(a) }
        var queue = Array("late".utf8)
        var start = 0
        guard case .failed(let error) = Socket.drain(&queue, from: &start, to: a) else { Issue.record("no failure"); return }
        #expect(error.errno == EPIPE)
        #expect(queue == Array("late".utf8) && start == 0)   // untouched: the caller decides
    }

    @Test func runsDeferredJobsAfterTheCurrentJobInOrder() throws {
        let group = try LoopGroup(count: 1)
        defer { group.shutdown() }
        let loop = group.loops[0]
        let log = Log()
        loop.execute {
            loop.afterCurrentEvent { log.add("deferred 1") }
            loop.afterCurrentEvent {
                log.add("deferred 2")
                loop.afterCurrentEvent { log.add("deferred from deferred") }
            }
            log.add("job")
        }
        #expect(log.lines(once: "deferred from deferred") == ["job", "deferred 1", "deferred 2", "deferred from deferred"])
    }

    @Test func runsDeferredJobsBeforeTheNextTimerOfTheSameBatch() throws {
        let group = try LoopGroup(count: 1)
        defer { group.shutdown() }
        let loop = group.loops[0]
        let log = Log()
        loop.execute {
            let at = loop.now + 20_000_000   // both due in the same turn of the loop
            loop.schedule(at: at) {
                loop.afterCurrentEvent { log.add("deferred by the first") }
                log.add("first")
            }
            loop.schedule(at: at) { log.add("second") }
        }
        #expect(log.lines(once: "second") == ["first", "deferred by the first", "second"])
    }
}
