// SPDX-License-Identifier: Apache-2.0
import CLinux
import Glibc
import Synchronization
import Testing
import Transport

/// The loop with socketpairs: readiness, cross-thread jobs, ticks and generations.
@Suite struct EventLoopTests {
    final class Recorder: IOHandler, @unchecked Sendable {
        // Written on the loop thread, read by the test after `done` is signalled.
        var bytes: [UInt8] = []
        let fd: Int32
        let done: Mutex<Bool>
        init(fd: Int32) { self.fd = fd; done = Mutex(false) }
        func handleIO(_ events: UInt32) {
            var buffer = [UInt8](repeating: 0, count: 64)
            let result = buffer.withUnsafeMutableBytes { try? Socket.read(fd, into: $0) }
            if case .processed(let n)? = result, n > 0 {
                bytes += buffer[..<n]
                if bytes.count >= 5 { done.withLock { $0 = true } }
            }
        }
    }

    private func pair() -> (Int32, Int32) {
        var fds: [Int32] = [0, 0]
        _ = socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0, &fds)
        return (fds[0], fds[1])
    }

    private func wait(_ seconds: Double = 5, _ condition: () -> Bool) -> Bool {
        let limit = doorman_monotonic_ns() + UInt64(seconds * 1e9)
        while doorman_monotonic_ns() < limit {
            if condition() { return true }
            usleep(1000)
        }
        return false
    }

    @Test func deliversReadinessToTheRegisteredHandler() throws {
        let group = try LoopGroup(count: 1)
        defer { group.shutdown() }
        let loop = group.loops[0]
        let (a, b) = pair()
        defer { close(a); close(b) }
        let recorder = Recorder(fd: a)
        loop.execute { _ = try? loop.register(a, events: EventLoop.readable, handler: recorder) }
        _ = Array("hello".utf8).withUnsafeBytes { write(b, $0.baseAddress, 5) }
        #expect(wait { recorder.done.withLock { $0 } })
        #expect(recorder.bytes == Array("hello".utf8))
    }

    @Test func runsJobsFromManyThreadsInOrderPerThread() throws {
        let group = try LoopGroup(count: 1)
        defer { group.shutdown() }
        let loop = group.loops[0]
        let seen = Mutex<[Int: [Int]]>([:])
        let threads = 4
        let perThread = 2000
        DispatchLess.concurrentPerform(threads) { t in
            for i in 0..<perThread {
                loop.execute {
                    precondition(loop.isInLoop)
                    seen.withLock { $0[t, default: []].append(i) }
                }
            }
        }
        #expect(wait { seen.withLock { $0.values.reduce(0) { $0 + $1.count } } == threads * perThread })
        seen.withLock { all in
            for (_, list) in all { #expect(list == Array(0..<perThread)) }
        }
    }

    @Test func ticksOnItsOwnThread() throws {
        let group = try LoopGroup(count: 1)
        defer { group.shutdown() }
        let loop = group.loops[0]
        let ticks = Atomic<Int>(0)
        loop.execute {
            loop.tickInterval = 10_000_000
            loop.onTick = { precondition(loop.isInLoop); ticks.add(1, ordering: .relaxed) }
        }
        #expect(wait { ticks.load(ordering: .relaxed) >= 3 })
    }

    @Test func runsScheduledJobsInDeadlineOrderAndSkipsCancelledOnes() throws {
        let group = try LoopGroup(count: 1)
        defer { group.shutdown() }
        let loop = group.loops[0]
        let order = Mutex<[Int]>([])
        loop.execute {
            let base = loop.now
            for (i, ms) in [30, 10, 20, 5].enumerated() {
                loop.schedule(at: base + UInt64(ms) * 1_000_000) { order.withLock { $0.append(i) } }
            }
            let cancelled = loop.schedule(at: base + 15_000_000) { order.withLock { $0.append(99) } }
            loop.cancel(cancelled)
        }
        #expect(wait { order.withLock { $0.count == 4 } })
        #expect(order.withLock { $0 } == [3, 1, 2, 0])
    }

    /// Thousands of cancelled timeouts (one per upstream call) are dropped from the heap in bulk;
    /// the live ones still fire, in order, and a cancel after that is a no-op.
    @Test func dropsCancelledTimersInBulkAndKeepsTheLiveOnesInOrder() throws {
        let group = try LoopGroup(count: 1)
        defer { group.shutdown() }
        let loop = group.loops[0]
        let order = Mutex<[Int]>([])
        loop.execute {
            let base = loop.now
            var live: [UInt64] = []
            for i in 0..<5000 {
                let id = loop.schedule(at: base + UInt64(60 + (i * 7919) % 50) * 1_000_000) { order.withLock { $0.append(-1) } }
                if i % 1000 == 0 { live.append(id) } else { loop.cancel(id) }
            }
            for (i, ms) in [40, 10, 30, 20].enumerated() {
                loop.schedule(at: base + UInt64(ms) * 1_000_000) { order.withLock { $0.append(i) } }
            }
            loop.cancel(live[0])
            loop.cancel(live[0])
        }
        #expect(wait { order.withLock { $0.count == 8 } })
        #expect(order.withLock { $0 } == [1, 3, 2, 0, -1, -1, -1, -1])
    }

    @Test func givesAReusedDescriptorANewGeneration() throws {
        let group = try LoopGroup(count: 1)
        defer { group.shutdown() }
        let loop = group.loops[0]
        let generations = Mutex<[UInt32]>([])
        let (a, b) = pair()
        close(b)
        loop.execute {
            let first = try? loop.register(a, events: EventLoop.readable, handler: Recorder(fd: a))
            loop.deregister(a)
            let second = try? loop.register(a, events: EventLoop.readable, handler: Recorder(fd: a))
            loop.deregister(a)
            generations.withLock { $0 = [first ?? 0, second ?? 0] }
        }
        #expect(wait { generations.withLock { $0.count == 2 } })
        let g = generations.withLock { $0 }
        #expect(g[0] != 0 && g[1] != 0 && g[0] != g[1])
        close(a)
    }

    @Test func reportsWouldBlockAsAValue() throws {
        let (a, b) = pair()
        defer { close(a); close(b) }
        var buffer = [UInt8](repeating: 0, count: 16)
        let result = try buffer.withUnsafeMutableBytes { try Socket.read(a, into: $0) }
        guard case .wouldBlock = result else {
            Issue.record("expected wouldBlock, got \(result)")
            return
        }
    }
}

/// Runs a body on N pthreads and waits for all (no Foundation/Dispatch at this layer).
enum DispatchLess {
    private final class Box {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }

    static func concurrentPerform(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
        var threads: [pthread_t] = []
        for i in 0..<count {
            var tid = pthread_t()
            let box = Unmanaged.passRetained(Box { body(i) }).toOpaque()
            _ = pthread_create(&tid, nil, { arg in
                Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue().body()
                return nil
            }, box)
            threads.append(tid)
        }
        for t in threads { pthread_join(t, nil) }
    }
}
