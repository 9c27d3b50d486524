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

    /// ASCII bytes, letters folded.
    private static func matchASCII(_ p: UnsafeBufferPointer<UInt8>, _ t: UnsafeBufferPointer<UInt8>) -> Bool {
        @inline(__always) func fold(_ b: UInt8) -> UInt8 { b >= 65 && b <= 90 ? b | 0x20 : b }
        return glob(p, t, star: UInt8(ascii: "*"), one: UInt8(ascii: "?")) { fold($0) == fold($1) }
    }

    /// Unicode scalars, ASCII letters folded.
    private func matchScalars(_ text: String) -> Bool {
        Self.glob(pattern.unicodeScalars.map(Self.fold), text.unicodeScalars.map(Self.fold), star: "*", one: "?", same: ==)
    }

    /// Greedy with one backtrack point: the classic linear-space glob match. A pattern `*` is
    /// always a wildcard, even facing a literal `*` in the text.
    @inline(__always)
    private static func glob<C: RandomAccessCollection>(_ p: C, _ t: C, star: C.Element, one: C.Element,
                                                       same: (C.Element, C.Element) -> Bool) -> Bool where C.Index == Int, C.Element: Equatable {
        var ti = t.startIndex, pi = p.startIndex
        var starAt = -1, mark = 0
        while ti < t.endIndex {
            if pi < p.endIndex, p[pi] == star {
                starAt = pi
                mark = ti
                pi += 1
            } else if pi < p.endIndex, p[pi] == one || same(p[pi], t[ti]) {
                ti += 1
                pi += 1
            } else if starAt >= 0 {
                pi = starAt + 1
                mark += 1
                ti = mark
            } else {
                return false
            }
        }
        while pi < p.endIndex, p[pi] == star { pi += 1 }
        return pi == p.endIndex
    }

    @inline(__always)
    static func fold(_ s: Unicode.Scalar) -> Unicode.Scalar {
        (65...90).contains(s.value) ? Unicode.Scalar(s.value + 32)! : s
    }
}
