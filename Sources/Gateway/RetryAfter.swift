// SPDX-License-Identifier: Apache-2.0
import WireCodec

/// How long a refused client should wait, as the wire says it: whole seconds (at least 1) for the
/// `Retry-After` header, milliseconds for a session error's `retryAfterMs`. Both are capped at an
/// hour, so no configured rate, however small, can overflow an `Int`.
enum RetryAfter {
    static let longest = 3600.0

    static func seconds(_ wait: Double) -> Int { max(1, Int(min(wait, longest).rounded(.up))) }

    static func milliseconds(_ wait: Double) -> Int { Int((min(max(wait, 0), longest) * 1000).rounded(.up)) }

    /// The `Retry-After` header for `wait` seconds.
    static func header(_ wait: Double) -> HTTPHeader { HTTPHeader("Retry-After", String(seconds(wait))) }
}
