// SPDX-License-Identifier: Apache-2.0

/// Comparing two patterns without enumerating texts: does one match everything the other matches,
/// and can both match the same text? Both answers are safe for authorization: `contains` says yes
/// only when it is true (it may say no to an unusual pair that is in fact contained, such as `a?*`
/// inside `a*?`), `overlaps` says no only when it is true.
extension Wildcard {
    /// True when every text `inner` matches, this pattern matches too.
    ///
    /// `inner` is read as a word of symbols: this pattern's `*` takes any run of them (its `*`s
    /// included), its `?` any one symbol but a `*` (which may stand for nothing or for many), and a
    /// letter only the same letter (ASCII case folded). If this pattern matches that word, every
    /// text `inner` matches is matched too.
    public func contains(_ inner: Wildcard) -> Bool {
        let outer = pattern.unicodeScalars.map(Self.fold), word = inner.pattern.unicodeScalars.map(Self.fold)
        let width = word.count + 1
        // reach[i * width + j]: outer's first i symbols match the word's first j.
        var reach = [Bool](repeating: false, count: (outer.count + 1) * width)
        reach[0] = true
        for (index, symbol) in outer.enumerated() {
            let i = index + 1
            for j in 0...word.count {
                let matched: Bool
                if symbol == "*" {
                    matched = reach[(i - 1) * width + j] || (j > 0 && reach[i * width + j - 1])
                } else if j > 0 {
                    let other = word[j - 1]
                    matched = reach[(i - 1) * width + j - 1] && (symbol == "?" ? other != "*" : other == symbol)
                } else {
                    matched = false
                }
                reach[i * width + j] = matched
            }
        }
        return reach[outer.count * width + word.count]
    }

    /// True when some text could match both patterns (the product of the two patterns' automata
    /// reaches both ends).
    public func overlaps(_ other: Wildcard) -> Bool {
        let a = pattern.unicodeScalars.map(Self.fold), b = other.pattern.unicodeScalars.map(Self.fold)
        let width = b.count + 1
        var seen = [Bool](repeating: false, count: (a.count + 1) * width)
        var pending = [(0, 0)]
        seen[0] = true
        while let (i, j) = pending.popLast() {
            if i == a.count, j == b.count { return true }
            var next: [(Int, Int)] = []
            // A `*` may match nothing.
            if i < a.count, a[i] == "*" { next.append((i + 1, j)) }
            if j < b.count, b[j] == "*" { next.append((i, j + 1)) }
            // Both read one character they can agree on.
            if i < a.count, j < b.count {
                let x = a[i], y = b[j]
                if x == "*" || y == "*" || x == "?" || y == "?" || x == y {
                    let step = (x == "*" ? i : i + 1, y == "*" ? j : j + 1)
                    if step != (i, j) { next.append(step) }
                }
            }
            for (ni, nj) in next where !seen[ni * width + nj] {
                seen[ni * width + nj] = true
                pending.append((ni, nj))
            }
        }
        return false
    }
}
