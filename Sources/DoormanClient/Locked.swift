// SPDX-License-Identifier: Apache-2.0
import Foundation

/// A value guarded by an `NSLock`, shared between the connection thread and its callers.
///
/// `NSLock` rather than `Synchronization.Mutex`: Mutex needs iOS 18 / macOS 15, and tablets and
/// kiosks run older systems.
final class Locked<Value>: @unchecked Sendable {
    // @unchecked Sendable: `value` is read and written only inside `withLock`, under `lock`.
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) { self.value = value }

    func withLock<T>(_ body: (inout Value) throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
