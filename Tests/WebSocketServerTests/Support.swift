// SPDX-License-Identifier: Apache-2.0
import Glibc
import Synchronization

/// A flag set on one thread and read on another.
final class AsyncFlag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .releasing) }
    var isSet: Bool { value.load(ordering: .acquiring) }
}

/// A detached pthread for a blocking call (server shutdown) while the test thread acts as clients.
enum Thread {
    private final class Box {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }

    static func detach(_ body: @escaping @Sendable () -> Void) {
        var tid = pthread_t()
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        _ = pthread_create(&tid, nil, { arg in
            Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue().body()
            return nil
        }, box)
        pthread_detach(tid)
    }
}
