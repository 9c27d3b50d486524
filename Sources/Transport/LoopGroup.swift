// SPDX-License-Identifier: Apache-2.0
import CLinux
import Glibc

/// N event loops, one thread each, started together.
public final class LoopGroup: Sendable {
    public let loops: [EventLoop]
    private let threads: [LoopThread]

    /// Loops made for a count of 0: one per CPU this process may use.
    public static var defaultCount: Int { Int(doorman_cpu_count()) }

    /// - Parameter count: loops to run; 0 means one per CPU this process may use.
    public init(count: Int) throws(SystemError) {
        let n = count > 0 ? count : Self.defaultCount
        var loops: [EventLoop] = []
        for i in 0..<n { loops.append(try EventLoop(index: i)) }
        self.loops = loops
        threads = loops.map { loop in LoopThread(name: "doorman-loop-\(loop.index)") { loop.run() } }
    }

    /// Stops every loop and waits for its thread to end.
    public func shutdown() {
        for loop in loops { loop.stop() }
        for thread in threads { thread.join() }
    }
}

/// A pthread running one closure (Foundation's Thread is not available at this layer).
final class LoopThread: Sendable {
    private final class Box {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    // Written once in init, read in join (on another thread after the create call returned).
    nonisolated(unsafe) private var thread = pthread_t()

    init(name: String, _ body: @escaping @Sendable () -> Void) {
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        var tid = pthread_t()
        let rc = pthread_create(&tid, nil, { arg in
            let box = Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue()
            box.body()
            return nil
        }, box)
        precondition(rc == 0, "pthread_create failed: \(rc)")
        _ = doorman_set_thread_name(tid, String(name.prefix(15)))
        thread = tid
    }

    func join() {
        _ = pthread_join(thread, nil)
    }
}
