// SPDX-License-Identifier: Apache-2.0

/// DOS-style wildcard patterns (Hornbill's rule language): `*` matches any run of characters
/// (including none), `?` exactly one; everything else matches itself, ASCII letters without
/// regard to case. Matching is on Unicode scalars and runs in O(pattern × text) at worst.
public struct Wildcard: Hashable, Sendable, CustomStringConvertible {
    public let pattern: String
    private let scalars: [Unicode.Scalar]

    public init(_ pattern: String) {
        self.pattern = pattern
        scalars = pattern.unicodeScalars.map(Self.fold)
    }

    public var description: String { pattern }

    public func matches(_ text: String) -> Bool {
        let t = text.unicodeScalars.map(Self.fold)
        let p = scalars
        var ti = 0, pi = 0
        var star = -1, mark = 0
        // Greedy with one backtrack point: the classic linear-space glob match.
        while ti < t.count {
            // A pattern `*` is always a wildcard, even facing a literal `*` in the text.
            if pi < p.count, p[pi] == "*" {
                star = pi
                mark = ti
                pi += 1
            } else if pi < p.count, p[pi] == "?" || p[pi] == t[ti] {
                ti += 1
                pi += 1
            } else if star >= 0 {
                pi = star + 1
                mark += 1
                ti = mark
            } else {
                return false
            }
        }
        while pi < p.count, p[pi] == "*" { pi += 1 }
        return pi == p.count
    }

    @inline(__always)
    static func fold(_ s: Unicode.Scalar) -> Unicode.Scalar {
        (65...90).contains(s.value) ? Unicode.Scalar(s.value + 32)! : s
    }
}
