// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Foundation

/// A length of time on the command line: `90s`, `15m`, `2h`, `1d`, or a bare number of seconds.
struct TimeSpan: ExpressibleByArgument, Equatable {
    var seconds: Double

    init(seconds: Double) { self.seconds = seconds }

    init?(argument: String) {
        let text = argument.trimmingCharacters(in: .whitespaces).lowercased()
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
        var number = Substring(text)
        var unit = 1.0
        if let last = text.last, let factor = units[last] {
            number = text.dropLast()
            unit = factor
        }
        guard let value = Double(number), value.isFinite, value >= 0 else { return nil }
        seconds = value * unit
    }

    var defaultValueDescription: String { seconds == 0 ? "0 (the old secret stops at once)" : "\(seconds)s" }
}
