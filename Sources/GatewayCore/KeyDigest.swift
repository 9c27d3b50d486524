// SPDX-License-Identifier: Apache-2.0
import COpenSSL

/// SHA-256 of a key's full text: all that is stored of a secret. A key carries 256 random bits,
/// so the digest cannot be searched backwards; no salt or slow hash is needed (unlike passwords).
public struct KeyDigest: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init(of secret: APIKeySecret) {
        var out = [UInt8](repeating: 0, count: 32)
        let input = Array(secret.text.utf8)
        _ = input.withUnsafeBufferPointer { i in out.withUnsafeMutableBufferPointer { o in doorman_sha256(i.baseAddress, i.count, o.baseAddress) } }
        bytes = out
    }

    /// From stored hex.
    public init?(hex: String) {
        guard hex.utf8.count == 64 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(32)
        var it = hex.utf8.makeIterator()
        while let hi = it.next(), let lo = it.next() {
            guard let h = Self.nibble(hi), let l = Self.nibble(lo) else { return nil }
            out.append(h << 4 | l)
        }
        bytes = out
    }

    public var hex: String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 0xf)]) }
        return String(decoding: out, as: UTF8.self)
    }

    /// Compares in time independent of where the digests differ (OpenSSL's CRYPTO_memcmp).
    public func constantTimeEquals(_ other: KeyDigest) -> Bool {
        guard bytes.count == other.bytes.count else { return false }
        return bytes.withUnsafeBytes { a in other.bytes.withUnsafeBytes { b in CRYPTO_memcmp(a.baseAddress, b.baseAddress, a.count) == 0 } }
    }

    /// Never prints the digest in full (it identifies a key).
    public var description: String { "sha256:" + hex.prefix(8) + "…" }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case 48...57: return c - 48
        case 97...102: return c - 87
        default: return nil
        }
    }
}
