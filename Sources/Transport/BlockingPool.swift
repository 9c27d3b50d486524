// SPDX-License-Identifier: Apache-2.0
import Glibc

/// A few threads for blocking work (SQLite, libpq, fsync) so the event loops never block.
/// Results go back to a loop with `loop.execute`.
///
/// `@unchecked Sendable`: `jobs` and `stopping` are only touched with `mutex` held; the mutex and
/// condition live at fixed heap addresses for their whole lifetime.
public final class BlockingPool: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>
    private var jobs: [@Sendable () -> Void] = []
    private var head = 0
    private var stopping = false
    private var threads: [LoopThread] = []

    /// - Parameter threads: worker threads (at least 1).
    public init(threads count: Int) {
        mutex = .allocate(capacity: 1)
        condition = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
        threads = (0..<max(1, count)).map { i in LoopThread(name: "doorman-pool-\(i)") { [self] in work() } }
    }

    deinit {
        pthread_mutex_destroy(mutex)
        pthread_cond_destroy(condition)
        mutex.deallocate()
        condition.deallocate()
    }

    /// Runs `job` on a pool thread.
    public func submit(_ job: @escaping @Sendable () -> Void) {
        pthread_mutex_lock(mutex)
        jobs.append(job)
        pthread_cond_signal(condition)
        pthread_mutex_unlock(mutex)
    }

    /// Finishes queued jobs, then ends the threads.
    public func shutdown() {
        pthread_mutex_lock(mutex)
        stopping = true
        pthread_cond_broadcast(condition)
        pthread_mutex_unlock(mutex)
        for thread in threads { thread.join() }
        threads = []
    }

    private func work() {
        while true {
            pthread_mutex_lock(mutex)
            while head == jobs.count && !stopping { pthread_cond_wait(condition, mutex) }
            if head == jobs.count {
                pthread_mutex_unlock(mutex)
                return
            }
            let job = jobs[head]
            head += 1
            if head == jobs.count {
                jobs.removeAll(keepingCapacity: true)
                head = 0
            }
            pthread_mutex_unlock(mutex)
            job()
        }
    }
}
