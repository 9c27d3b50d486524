// SPDX-License-Identifier: Apache-2.0
import Synchronization

/// How many of something each name holds, with a cap per name: reserve one (false at the cap),
/// release it later. Thread-safe; names at zero are forgotten, so the table holds only live names.
/// (Unfinished handshakes per client address; concurrent HTTP calls per key.)
public final class CappedCounts<Name: Hashable & Sendable>: Sendable {
    private let counts = Mutex<[Name: Int]>([:])

    public init() {}

    /// Counts one more for `name`; false, counting nothing, when it already holds `limit`.
    public func reserve(_ name: Name, limit: Int) -> Bool {
        counts.withLock { table in
            let n = table[name, default: 0]
            guard n < limit else { return false }
            table[name] = n + 1
            return true
        }
    }

    /// Gives back one of `name`'s (nothing when it holds none).
    public func release(_ name: Name) {
        counts.withLock { table in
            guard let n = table[name] else { return assertionFailure("released more than was reserved") }
            table[name] = n > 1 ? n - 1 : nil
        }
    }
}
