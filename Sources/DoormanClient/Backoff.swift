// SPDX-License-Identifier: Apache-2.0

/// Exponential backoff with full jitter ("Exponential Backoff And Jitter", AWS Architecture Blog):
/// attempt n waits a uniformly random time in `0 ... min(maximum, initial × multiplier^n)`, so a
/// fleet of tablets that lost the same server does not come back in lockstep.
///
///     attempt:   0      1      2      3      4      5      6 …
///     ceiling: 0.5 s   1 s    2 s    4 s    8 s   16 s   30 s (maximum)
///     wait:    random in [0, ceiling]    (jitter: .none → exactly the ceiling)
public struct Backoff: Sendable, Equatable {
    public enum Jitter: Sendable, Equatable {
        /// Uniform in `0 ... ceiling`.
        case full
        /// Exactly the ceiling (tests, debugging).
        case none
    }

    /// The ceiling of the first retry.
    public var initial: Duration
    /// The largest ceiling.
    public var maximum: Duration
    /// Growth per failed attempt.
    public var multiplier: Double
    public var jitter: Jitter

    public init(initial: Duration = .milliseconds(500), maximum: Duration = .seconds(30), multiplier: Double = 2, jitter: Jitter = .full) {
        precondition(initial >= .zero && maximum >= initial && multiplier >= 1, "backoff: 0 ≤ initial ≤ maximum, multiplier ≥ 1")
        self.initial = initial
        self.maximum = maximum
        self.multiplier = multiplier
        self.jitter = jitter
    }

    /// The longest wait before attempt `attempt` (0-based): `min(maximum, initial × multiplier^attempt)`.
    public func ceiling(attempt: Int) -> Duration {
        let seconds = initial.seconds * pow(multiplier, max(0, attempt))
        return seconds >= maximum.seconds ? maximum : .seconds(seconds)
    }

    /// The wait before attempt `attempt`, drawn from `generator`.
    public func delay(attempt: Int, using generator: inout some RandomNumberGenerator) -> Duration {
        let ceiling = ceiling(attempt: attempt)
        switch jitter {
        case .none: return ceiling
        case .full: return .seconds(Double.random(in: 0...ceiling.seconds, using: &generator))
        }
    }

    /// The wait before attempt `attempt`, from the system's generator.
    public func delay(attempt: Int) -> Duration {
        var generator = SystemRandomNumberGenerator()
        return delay(attempt: attempt, using: &generator)
    }
}

extension Duration {
    /// The duration in seconds, as a Double.
    var seconds: Double {
        let (s, attoseconds) = components
        return Double(s) + Double(attoseconds) / 1e18
    }
}

/// `base^exponent` for a small whole exponent, without Foundation (stays within the maximum).
private func pow(_ base: Double, _ exponent: Int) -> Double {
    var result = 1.0
    for _ in 0..<min(exponent, 64) { result *= base }
    return result
}
