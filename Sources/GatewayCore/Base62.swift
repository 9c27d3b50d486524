// SPDX-License-Identifier: Apache-2.0

/// Base62 (0-9, A-Z, a-z) with a fixed width, for key bodies and checksums: no characters a
/// shell, URL or header would mangle.
public enum Base62 {
    static let alphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)

    /// Encodes a big-endian unsigned number into exactly `width` digits (leading zeros kept).
    public static func encode(_ bytes: [UInt8], width: Int) -> String {
        var number = bytes
        var digits = [UInt8](repeating: alphabet[0], count: width)
        var i = width - 1
        while i >= 0 {
            // number /= 62, remainder is the next digit (schoolbook division, base 256).
            var remainder = 0
            for j in 0..<number.count {
                let acc = remainder << 8 | Int(number[j])
                number[j] = UInt8(acc / 62)
                remainder = acc % 62
            }
            digits[i] = alphabet[remainder]
            i -= 1
        }
        return String(decoding: digits, as: UTF8.self)
    }

    /// A 32-bit value as 6 digits (62^6 > 2^32).
    public static func encode(_ value: UInt32) -> String {
        encode([UInt8(value >> 24), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff)], width: 6)
    }

    /// True if every character is a base62 digit.
    public static func isDigits<S: StringProtocol>(_ text: S) -> Bool {
        text.utf8.allSatisfy(isDigit)
    }

    @inline(__always)
    static func isDigit(_ byte: UInt8) -> Bool {
        (0x30...0x39).contains(byte) || (0x41...0x5a).contains(byte) || (0x61...0x7a).contains(byte)
    }
}
