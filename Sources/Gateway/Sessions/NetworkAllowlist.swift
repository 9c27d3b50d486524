// SPDX-License-Identifier: Apache-2.0
import Glibc

/// Client networks allowed to open sessions, as CIDR blocks (`10.0.0.0/8`, `2001:db8::/32`, or a
/// single address). Empty = every address.
struct NetworkAllowlist: Sendable, Equatable {
    struct Block: Sendable, Equatable {
        var bytes: [UInt8]
        var prefix: Int
    }

    let blocks: [Block]

    /// Matches nothing (a configuration that failed validation never reaches here; this is the safe fallback).
    static let denyAll = NetworkAllowlist(blocks: [Block(bytes: [255, 255, 255, 255], prefix: 32)])

    private init(blocks: [Block]) { self.blocks = blocks }

    /// Parses `entries`; returns nil naming the first one that is not a CIDR block.
    init(_ entries: [String]) throws(NetworkAllowlistError) {
        blocks = try entries.map { entry throws(NetworkAllowlistError) in
            let parts = entry.split(separator: "/", maxSplits: 1)
            guard let address = parts.first, let bytes = Self.parse(String(address)) else { throw NetworkAllowlistError(entry: entry) }
            let prefix = parts.count == 2 ? Int(parts[1]) : bytes.count * 8
            guard let prefix, (0...(bytes.count * 8)).contains(prefix) else { throw NetworkAllowlistError(entry: entry) }
            return Block(bytes: bytes, prefix: prefix)
        }
    }

    /// True if `address` (as text) is inside some block, or there are no blocks.
    func allows(_ address: String) -> Bool {
        guard !blocks.isEmpty else { return true }
        guard var bytes = Self.parse(address) else { return false }
        // An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is checked as IPv4.
        if bytes.count == 16, bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff { bytes = Array(bytes[12...]) }
        return blocks.contains { block in
            guard block.bytes.count == bytes.count else { return false }
            var bits = block.prefix
            for i in 0..<bytes.count where bits > 0 {
                let mask: UInt8 = bits >= 8 ? 0xff : ~(0xff >> UInt8(bits))
                if bytes[i] & mask != block.bytes[i] & mask { return false }
                bits -= 8
            }
            return true
        }
    }

    static func parse(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: v6) { Array($0) } }
        return nil
    }
}

struct NetworkAllowlistError: Error, Equatable {
    var entry: String
}
