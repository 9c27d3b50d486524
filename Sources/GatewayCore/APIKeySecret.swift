// SPDX-License-Identifier: Apache-2.0

/// An API key as the client holds it: `dmk_` + 43 base62 digits (256 random bits) + 6 base62
/// digits of CRC-32 over the random part — the pattern secret scanners recognise (as GitHub's
/// tokens do).
///
///     dmk_ 3kX9…(43)…Qz 0a1B2c
///     ──── ──────────── ──────
///     prefix   random    checksum
///
/// `description` never shows the secret: only the prefix and its first 4 random characters.
public struct APIKeySecret: Hashable, Sendable, CustomStringConvertible {
    public static let prefix = "dmk_"
    static let randomDigits = 43
    static let checksumDigits = 6
    public static let length = 4 + 43 + 6

    /// The full key text. Handle with care: never log it.
    public let text: String

    /// Parses and checks format and checksum. No store is consulted.
    /// - Throws: `KeyFormatError` naming what is wrong.
    public init(parsing text: String) throws(KeyFormatError) {
        var text = text
        // One pass over contiguous UTF-8, no intermediate strings: this runs on every handshake.
        if let error = text.withUTF8(Self.formatError) { throw error }
        self.text = text
    }

    /// Why `bytes` is not a well-formed key (nil: it is one).
    static func formatError(_ bytes: UnsafeBufferPointer<UInt8>) -> KeyFormatError? {
        guard bytes.count >= 4, bytes[0] == UInt8(ascii: "d"), bytes[1] == UInt8(ascii: "m"),
              bytes[2] == UInt8(ascii: "k"), bytes[3] == UInt8(ascii: "_") else { return .wrongPrefix }
        guard bytes.count == length else { return .wrongLength }
        for byte in bytes[4...] where !Base62.isDigit(byte) { return .invalidCharacters }
        // The last six digits are the CRC-32 of the random digits, big-endian base 62.
        var crc = CRC32.checksum(UnsafeBufferPointer(rebasing: bytes[4..<(4 + randomDigits)]))
        for index in stride(from: length - 1, through: length - checksumDigits, by: -1) {
            guard bytes[index] == Base62.alphabet[Int(crc % 62)] else { return .checksumMismatch }
            crc /= 62
        }
        return nil
    }

    public static func generate() -> APIKeySecret {
        var rng = SystemRandomNumberGenerator()
        return generate(using: &rng)
    }

    /// A new key from `rng` (tests pass a seeded one; production uses the system CSPRNG).
    public static func generate<R: RandomNumberGenerator>(using rng: inout R) -> APIKeySecret {
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let random = Base62.encode(bytes, width: randomDigits)
        let text = prefix + random + Base62.encode(CRC32.checksum(random.utf8))
        return try! APIKeySecret(parsing: text)   // well-formed by construction
    }

    /// What may be shown and stored in the clear: prefix plus the first 4 random characters.
    public var displayStart: String { String(text.prefix(8)) }

    public var description: String { displayStart + "…" }
}

/// Why a string is not a Doorman key.
public enum KeyFormatError: Error, Equatable, Sendable {
    case wrongPrefix
    case wrongLength
    case invalidCharacters
    case checksumMismatch
}
