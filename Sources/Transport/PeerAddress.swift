// SPDX-License-Identifier: Apache-2.0
import Glibc

/// A peer's IP address as accept(2) reported it: 17 bytes kept per connection, text made only
/// when asked (no getpeername per handshake).
public struct PeerAddress: Sendable, Hashable, CustomStringConvertible {
    /// AF_INET or AF_INET6; 0 when unknown.
    let family: Int32
    /// The address bytes in network order (IPv4 in the first 4).
    let bytes: (UInt64, UInt64)

    public static let unknown = PeerAddress(family: 0, bytes: (0, 0))

    init(family: Int32, bytes: (UInt64, UInt64)) {
        self.family = family
        self.bytes = bytes
    }

    /// From the `sockaddr_storage` accept4 filled in.
    init(_ storage: sockaddr_storage) {
        var storage = storage
        switch Int32(storage.ss_family) {
        case AF_INET:
            let raw = withUnsafeBytes(of: &storage) { $0.load(fromByteOffset: MemoryLayout<sockaddr_in>.offset(of: \.sin_addr)!, as: UInt32.self) }
            self.init(family: AF_INET, bytes: (UInt64(raw), 0))
        case AF_INET6:
            let offset = MemoryLayout<sockaddr_in6>.offset(of: \.sin6_addr)!
            let (hi, lo) = withUnsafeBytes(of: &storage) {
                ($0.loadUnaligned(fromByteOffset: offset, as: UInt64.self), $0.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self))
            }
            self.init(family: AF_INET6, bytes: (hi, lo))
        default:
            self = .unknown
        }
    }

    public static func == (a: PeerAddress, b: PeerAddress) -> Bool {
        a.family == b.family && a.bytes == b.bytes
    }

    /// What a per-address limit counts: an IPv4 address as it is, an IPv6 address by its /64 (one
    /// host usually holds a whole /64, and could otherwise spread over 2^64 addresses).
    public var limitKey: PeerAddress {
        family == AF_INET6 ? PeerAddress(family: family, bytes: (bytes.0, 0)) : self
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(family)
        hasher.combine(bytes.0)
        hasher.combine(bytes.1)
    }

    /// "203.0.113.7", "2001:db8::1", or "" when unknown.
    public var description: String {
        guard family == AF_INET || family == AF_INET6 else { return "" }
        var raw = bytes
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let ok = withUnsafeBytes(of: &raw) { inet_ntop(family, $0.baseAddress, &text, socklen_t(text.count)) } != nil
        guard ok else { return "" }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
