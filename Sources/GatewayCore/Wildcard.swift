// SPDX-License-Identifier: Apache-2.0

/// DOS-style wildcard patterns (Hornbill's rule language): `*` matches any run of characters
/// (including none), `?` exactly one; everything else matches itself, ASCII letters without
/// regard to case. Matching is on Unicode scalars and runs in O(pattern × text) at worst.
public struct Wildcard: Hashable, Sendable, CustomStringConvertible {
    public let pattern: String

    public init(_ pattern: String) {
        self.pattern = pattern
    }

    public var description: String { pattern }

    public func matches(_ text: String) -> Bool {
        // Actions and their patterns are ASCII (ActionName): match their bytes in place, with no
        // allocation. Anything else takes the scalar path.
        if let ascii = pattern.utf8.withContiguousStorageIfAvailable({ p -> Bool? in
            text.utf8.withContiguousStorageIfAvailable { t -> Bool? in
                guard p.allSatisfy({ $0 < 0x80 }), t.allSatisfy({ $0 < 0x80 }) else { return nil }
                return Self.matchASCII(p, t)
            } ?? nil
        }) ?? nil {
            return ascii
        }
        return matchScalars(text)
    }

    /// The same glob match over ASCII bytes, letters folded.
    private static func matchASCII(_ p: UnsafeBufferPointer<UInt8>, _ t: UnsafeBufferPointer<UInt8>) -> Bool {
        @inline(__always) func fold(_ b: UInt8) -> UInt8 { b >= 65 && b <= 90 ? b | 0x20 : b }
        var ti = 0, pi = 0
        var star = -1, mark = 0
        while ti < t.count {
            if pi < p.count, p[pi] == UInt8(ascii: "*") {
                star = pi
                mark = ti
                pi += 1
            } else if pi < p.count, p[pi] == UInt8(ascii: "?") || fold(p[pi]) == fold(t[ti]) {
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
        while pi < p.count, p[pi] == UInt8(ascii: "*") { pi += 1 }
        return pi == p.count
    }

    private func matchScalars(_ text: String) -> Bool {
        let t = text.unicodeScalars.map(Self.fold)
        let p = pattern.unicodeScalars.map(Self.fold)
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
