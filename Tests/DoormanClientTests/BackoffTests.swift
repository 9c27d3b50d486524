// SPDX-License-Identifier: Apache-2.0
import Testing
import TestSupport
@testable import DoormanClient

@Suite struct BackoffTests {
    @Test func ceilingDoublesFromInitialUpToMaximum() {
        let backoff = Backoff(initial: .milliseconds(500), maximum: .seconds(30))
        let ceilings = (0..<9).map { backoff.ceiling(attempt: $0) }
        #expect(ceilings == [.milliseconds(500), .seconds(1), .seconds(2), .seconds(4), .seconds(8), .seconds(16),
                             .seconds(30), .seconds(30), .seconds(30)])
        #expect(backoff.ceiling(attempt: 10_000) == .seconds(30))
        #expect(backoff.ceiling(attempt: -1) == .milliseconds(500))
    }

    @Test func fullJitterStaysWithinZeroAndTheCeiling() {
        let backoff = Backoff(initial: .milliseconds(100), maximum: .seconds(5))
        var generator = SplitMix64(seed: 42)
        for attempt in 0..<12 {
            let ceiling = backoff.ceiling(attempt: attempt)
            for _ in 0..<200 {
                let delay = backoff.delay(attempt: attempt, using: &generator)
                #expect(delay >= .zero && delay <= ceiling)
            }
        }
    }

    @Test func fullJitterSpreadsOverTheWholeRange() {
        // Full jitter, not "ceiling/2 + jitter": some waits are short, some near the ceiling.
        let backoff = Backoff(initial: .seconds(8), maximum: .seconds(8))
        var generator = SplitMix64(seed: 7)
        let delays = (0..<1000).map { _ in backoff.delay(attempt: 0, using: &generator) }
        #expect(delays.contains { $0 < .seconds(1) })
        #expect(delays.contains { $0 > .seconds(7) })
        let mean = delays.map(\.seconds).reduce(0, +) / Double(delays.count)
        #expect(abs(mean - 4) < 0.5)
    }

    @Test func noJitterWaitsExactlyTheCeiling() {
        let backoff = Backoff(initial: .milliseconds(250), maximum: .seconds(1), multiplier: 3, jitter: .none)
        var generator = SplitMix64(seed: 1)
        #expect(backoff.delay(attempt: 0, using: &generator) == .milliseconds(250))
        #expect(backoff.delay(attempt: 1, using: &generator) == .milliseconds(750))
        #expect(backoff.delay(attempt: 2, using: &generator) == .seconds(1))
    }
}
