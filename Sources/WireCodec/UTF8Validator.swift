// SPDX-License-Identifier: Apache-2.0

/// Incremental UTF-8 validation (RFC 3629) that fails on the first byte that can never be part of
/// valid UTF-8, even when a character is split across frames or reads (RFC 6455 §8.1).
public struct UTF8Validator: Sendable {
    /// Continuation bytes still expected for the current character.
    private var needed: UInt8 = 0
    /// The allowed range of the next continuation byte (narrowed after E0, ED, F0, F4).
    private var lower: UInt8 = 0x80
    private var upper: UInt8 = 0xBF

    public init() {}

    /// True when no character is left half-finished.
    public var isComplete: Bool { needed == 0 }

    /// Feeds bytes; returns false as soon as they cannot be valid UTF-8.
    public mutating func validate<C: Collection>(_ bytes: C) -> Bool where C.Element == UInt8 {
        if let ok = bytes.withContiguousStorageIfAvailable({ validate(UnsafeRawBufferPointer($0)) }) {
            return ok
        }
        return validate(Array(bytes))
    }

    /// Feeds bytes; returns false as soon as they cannot be valid UTF-8.
    public mutating func validate(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var i = 0
        let count = bytes.count
        while i < count {
            if needed == 0 {
                // Performance: skip 8 ASCII bytes at a time; loadUnaligned is safe for any offset.
                while i + 8 <= count, bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self) & 0x8080_8080_8080_8080 == 0 {
                    i += 8
                }
                guard i < count else { break }
                let b = bytes[i]
                i += 1
                if b < 0x80 { continue }
                switch b {
                case 0xC2...0xDF: needed = 1; lower = 0x80; upper = 0xBF
                case 0xE0: needed = 2; lower = 0xA0; upper = 0xBF           // no overlongs
                case 0xE1...0xEC, 0xEE...0xEF: needed = 2; lower = 0x80; upper = 0xBF
                case 0xED: needed = 2; lower = 0x80; upper = 0x9F           // no surrogates
                case 0xF0: needed = 3; lower = 0x90; upper = 0xBF           // no overlongs
                case 0xF1...0xF3: needed = 3; lower = 0x80; upper = 0xBF
                case 0xF4: needed = 3; lower = 0x80; upper = 0x8F           // ≤ U+10FFFF
                default: return false
                }
            } else {
                let b = bytes[i]
                i += 1
                guard b >= lower, b <= upper else { return false }
                lower = 0x80
                upper = 0xBF
                needed -= 1
            }
        }
        return true
    }
}
