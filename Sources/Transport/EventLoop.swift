// SPDX-License-Identifier: Apache-2.0
import CLinux
import Glibc
import Synchronization

/// Something registered with a loop for readiness events. Called on the loop thread only.
public protocol IOHandler: AnyObject {
    /// - Parameter events: epoll event bits (`EventLoop.readable`, `.writable`, `.hangup`).
    func handleIO(_ events: UInt32)
}

/// One epoll instance driven by one thread, forever.
///
///     other threads ──execute(job)──▶ inbox (Mutex) ──eventfd──▶ ┐
///                                                                  ▼
///     sockets ─────────readiness─────────────────────────▶ epoll_wait ─▶ handlers[fd] (generation checked)
///                                                                  │
///                                                   every tick ─▶ onTick (timeouts)
///
/// Thread safety: `execute`, `wakeUp`, `stop` and `isInLoop` may be called from any thread. Every
/// other member is loop-thread only and checks it with `assertInLoop()`. That is why the class can
/// be `@unchecked Sendable`: the only state touched across threads sits behind `inbox`'s Mutex.
public final class EventLoop: @unchecked Sendable {
    public static let readable = UInt32(EPOLLIN.rawValue)
    public static let writable = UInt32(EPOLLOUT.rawValue)
    public static let hangup = UInt32(EPOLLHUP.rawValue) | UInt32(EPOLLERR.rawValue) | UInt32(EPOLLRDHUP.rawValue)
    /// The events epoll reports even for a descriptor watched for nothing: the peer is gone.
    public static let failure = UInt32(EPOLLHUP.rawValue) | UInt32(EPOLLERR.rawValue)

    /// This loop's number in its group.
    public let index: Int
    private let epfd: Int32
    private let wakeFD: Int32

    private struct Inbox {
        var jobs: [@Sendable () -> Void] = []
        var wakePending = false
        var stopping = false
    }
    private let inbox = Mutex(Inbox())
    private let threadID = Atomic<UInt>(0)

    private struct Registration {
        var generation: UInt32
        var handler: any IOHandler
    }
    // Loop thread only.
    private var handlers: [Registration?] = []
    private var nextGeneration: UInt32 = 1
    private var running = true
    /// Jobs queued by `afterCurrentEvent`, run once the handler, timer or job at hand has returned.
    private var deferred: [() -> Void] = []

    /// The loop's time, read once per wake-up (nanoseconds, CLOCK_MONOTONIC). Loop thread only.
    public private(set) var now: UInt64 = monotonicNanoseconds()
    /// How often `onTick` runs, in nanoseconds.
    public var tickInterval: UInt64 = 250_000_000
    /// Called on the loop thread every `tickInterval` (idle and handshake timeouts).
    public var onTick: (() -> Void)?

    /// Exact-time jobs (key expiry on live sessions), a binary min-heap on `deadline`. Loop thread only.
    private var timers: [Timer] = []
    private var nextTimerID: UInt64 = 1
    private var cancelledTimers: Set<UInt64> = []
    /// Ids of timers in the heap and not cancelled, so `cancel` never scans the heap.
    private var pendingTimers: Set<UInt64> = []

    private struct Timer {
        var deadline: UInt64
        var id: UInt64
        var job: () -> Void
    }

    public init(index: Int = 0) throws(SystemError) {
        self.index = index
        epfd = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epfd >= 0 else { throw SystemError(call: "epoll_create1", errno: doorman_errno()) }
        wakeFD = eventfd(0, Int32(EFD_NONBLOCK) | Int32(EFD_CLOEXEC))
        guard wakeFD >= 0 else { throw SystemError(call: "eventfd", errno: doorman_errno()) }
        // The wake-up fd is tagged with generation 0, which no handler ever gets.
        _ = doorman_epoll_ctl(epfd, EPOLL_CTL_ADD, wakeFD, EventLoop.readable, UInt64(UInt32(wakeFD)))
    }

    deinit {
        Glibc.close(epfd)
        Glibc.close(wakeFD)
    }

    // MARK: - Any thread

    /// True on this loop's thread.
    public var isInLoop: Bool { threadID.load(ordering: .relaxed) == UInt(bitPattern: Int(bitPattern: UInt(pthread_self()))) }

    public func assertInLoop(file: StaticString = #fileID, line: UInt = #line) {
        assert(isInLoop, "not on event loop \(index)", file: file, line: line)
    }

    /// Runs `job` on the loop thread soon. The only way into a loop from another thread.
    public func execute(_ job: @escaping @Sendable () -> Void) {
        let mustWake = inbox.withLock { box -> Bool in
            box.jobs.append(job)
            defer { box.wakePending = true }
            return !box.wakePending
        }
        // Wake-up elision: one eventfd write per batch of jobs.
        if mustWake { wakeUp() }
    }

    /// Interrupts epoll_wait.
    public func wakeUp() {
        var one: UInt64 = 1
        _ = Glibc.write(wakeFD, &one, 8)
    }

    /// Asks the loop to return from `run()` after the current iteration.
    public func stop() {
        execute { [self] in running = false }
    }

    // MARK: - Loop thread

    /// Registers `fd` for `events`; returns the generation that tags its events.
    @discardableResult
    public func register(_ fd: Int32, events: UInt32, handler: any IOHandler) throws(SystemError) -> UInt32 {
        assertInLoop()
        let slot = Int(fd)
        if slot >= handlers.count { handlers.append(contentsOf: repeatElement(nil, count: slot + 1 - handlers.count + 64)) }
        let generation = nextGeneration
        nextGeneration = nextGeneration == UInt32.max ? 1 : nextGeneration + 1
        guard doorman_epoll_ctl(epfd, EPOLL_CTL_ADD, fd, events, Self.tag(fd, generation)) == 0 else {
            throw SystemError(call: "epoll_ctl(ADD)", errno: doorman_errno())
        }
        handlers[slot] = Registration(generation: generation, handler: handler)
        return generation
    }

    /// Changes the events `fd` is watched for.
    public func modify(_ fd: Int32, generation: UInt32, events: UInt32) {
        assertInLoop()
        _ = doorman_epoll_ctl(epfd, EPOLL_CTL_MOD, fd, events, Self.tag(fd, generation))
    }

    /// Stops watching `fd` (call before closing it).
    public func deregister(_ fd: Int32) {
        assertInLoop()
        _ = doorman_epoll_ctl(epfd, EPOLL_CTL_DEL, fd, 0, 0)
        if Int(fd) < handlers.count { handlers[Int(fd)] = nil }
    }

    /// Runs `job` on the loop thread at `deadline` (CLOCK_MONOTONIC nanoseconds), to the
    /// millisecond. Returns an id for `cancel`.
    @discardableResult
    public func schedule(at deadline: UInt64, _ job: @escaping () -> Void) -> UInt64 {
        assertInLoop()
        let id = nextTimerID
        nextTimerID += 1
        timers.append(Timer(deadline: deadline, id: id, job: job))
        pendingTimers.insert(id)
        var i = timers.count - 1
        while i > 0, timers[(i - 1) / 2].deadline > timers[i].deadline {
            timers.swapAt(i, (i - 1) / 2)
            i = (i - 1) / 2
        }
        return id
    }

    /// Runs `job` on the loop thread as soon as the event handler, timer or job that is running has
    /// returned, before the loop waits again. This is how a connection that closes itself tells its
    /// owners: never from inside the call that found the failure, which may hold a borrow of the
    /// connection's state or be an owner iterating its own tables.
    public func afterCurrentEvent(_ job: @escaping () -> Void) {
        assertInLoop()
        deferred.append(job)
    }

    private func runDeferred() {
        while !deferred.isEmpty {
            let jobs = deferred
            deferred = []
            for job in jobs { job() }
        }
    }

    /// Cancels a scheduled job (no-op if it already ran). O(1): the entry leaves the heap when it
    /// comes due, or when cancelled entries make up most of the heap (timeouts that rarely fire,
    /// like one per upstream call, would otherwise pile up until their deadlines).
    public func cancel(_ id: UInt64) {
        assertInLoop()
        guard pendingTimers.remove(id) != nil else { return }
        cancelledTimers.insert(id)
        if cancelledTimers.count > 1024, cancelledTimers.count * 2 > timers.count {
            timers.removeAll { cancelledTimers.contains($0.id) }
            cancelledTimers.removeAll(keepingCapacity: true)
            // Rebuild the heap (Floyd): sift down every parent, last first.
            var start = timers.count / 2 - 1
            while start >= 0 {
                siftDown(start)
                start -= 1
            }
        }
    }

    private func siftDown(_ start: Int) {
        var i = start
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < timers.count, timers[l].deadline < timers[m].deadline { m = l }
            if r < timers.count, timers[r].deadline < timers[m].deadline { m = r }
            if m == i { break }
            timers.swapAt(i, m)
            i = m
        }
    }

    private func popTimer() -> Timer {
        let top = timers[0]
        let last = timers.removeLast()
        if !timers.isEmpty {
            timers[0] = last
            siftDown(0)
        }
        return top
    }

    private func runDueTimers() {
        while let first = timers.first, first.deadline <= now {
            let timer = popTimer()
            if cancelledTimers.remove(timer.id) != nil { continue }
            pendingTimers.remove(timer.id)
            timer.job()
            if !deferred.isEmpty { runDeferred() }
        }
    }

    /// epoll user data: fd in the low half, generation in the high half, so a reused fd never
    /// receives a dead registration's events.
    @inline(__always)
    private static func tag(_ fd: Int32, _ generation: UInt32) -> UInt64 {
        UInt64(generation) << 32 | UInt64(UInt32(bitPattern: fd))
    }

    /// Runs the loop on the calling thread until `stop()`.
    public func run() {
        threadID.store(UInt(bitPattern: Int(bitPattern: UInt(pthread_self()))), ordering: .relaxed)
        let capacity = 256
        let events = UnsafeMutablePointer<UInt32>.allocate(capacity: capacity)
        let datas = UnsafeMutablePointer<UInt64>.allocate(capacity: capacity)
        defer {
            events.deallocate()
            datas.deallocate()
        }
        now = monotonicNanoseconds()
        var nextTick = now + tickInterval
        while running {
            let wake = min(nextTick, timers.first?.deadline ?? UInt64.max)
            let waitMs = wake > now ? Int32(min((wake - now + 999_999) / 1_000_000, 1000)) : 0
            let n = doorman_epoll_wait(epfd, events, datas, Int32(capacity), waitMs)
            now = monotonicNanoseconds()
            if n < 0 {
                precondition(doorman_errno() == EINTR, "epoll_wait: errno \(doorman_errno())")
                continue
            }
            for i in 0..<Int(n) {
                let data = datas[i]
                let generation = UInt32(truncatingIfNeeded: data >> 32)
                let fd = Int32(bitPattern: UInt32(truncatingIfNeeded: data))
                if generation == 0 {
                    drainInbox()
                    continue
                }
                guard Int(fd) < handlers.count, let registration = handlers[Int(fd)],
                      registration.generation == generation else { continue }
                registration.handler.handleIO(events[i])
                if !deferred.isEmpty { runDeferred() }
            }
            runDueTimers()
            if now >= nextTick {
                onTick?()
                nextTick = now + tickInterval
                runDeferred()
            }
        }
        drainInbox()
    }

    private func drainInbox() {
        var counter: UInt64 = 0
        _ = Glibc.read(wakeFD, &counter, 8)
        // Take everything and clear the flag under the lock; run the jobs outside it.
        let jobs = inbox.withLock { box -> [@Sendable () -> Void] in
            box.wakePending = false
            return box.jobs.isEmpty ? [] : { defer { box.jobs = [] }; return box.jobs }()
        }
        for job in jobs {
            job()
            if !deferred.isEmpty { runDeferred() }
        }
    }
}
