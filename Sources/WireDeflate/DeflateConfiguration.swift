// SPDX-License-Identifier: Apache-2.0

/// The server's permessage-deflate policy: what it answers to offers, and how it compresses.
///
/// | field | unit | default | meaning |
/// |---|---|---|---|
/// | `contextTakeover` | – | `false` | `false`: answer every accepted offer with both `server_no_context_takeover` and `client_no_context_takeover`, so no zlib window outlives a message and one inflater and one deflater per loop serve every connection. `true`: keep takeover in each direction the client did not rule out. |
/// | `minimumSize` | bytes | 64 | messages shorter than this go out uncompressed (RSV1 clear); 0 compresses everything |
/// | `serverMaxWindowBits` | log2 bytes | 15 | the largest window we compress with, 9...15; below 15 it is announced as `server_max_window_bits` |
/// | `clientMaxWindowBits` | log2 bytes | 15 | the window we ask clients to compress with, 9...15; sent only to clients that offered `client_max_window_bits` (RFC 7692 §7.1.2.2) |
/// | `memLevel` | zlib | 8 | deflate memory, 1...9: 268 KiB per deflater at 8, 138 KiB at 1 (15-bit window) |
/// | `compressionLevel` | zlib | 6 | 0 (store) ... 9 (smallest) |
public struct DeflateConfiguration: Equatable, Sendable {
    public var contextTakeover: Bool
    public var minimumSize: Int
    public var serverMaxWindowBits: Int
    public var clientMaxWindowBits: Int
    public var memLevel: Int
    public var compressionLevel: Int

    public init(
        contextTakeover: Bool = false, minimumSize: Int = 64, serverMaxWindowBits: Int = 15,
        clientMaxWindowBits: Int = 15, memLevel: Int = 8, compressionLevel: Int = 6
    ) {
        self.contextTakeover = contextTakeover
        self.minimumSize = minimumSize
        self.serverMaxWindowBits = serverMaxWindowBits
        self.clientMaxWindowBits = clientMaxWindowBits
        self.memLevel = memLevel
        self.compressionLevel = compressionLevel
    }

    /// The name of the first field outside its range, for a config error that names the bad key.
    public var invalidField: String? {
        if minimumSize < 0 { return "minimumSize" }
        // zlib refuses a raw 8-bit window when deflating, and zlib clients asked for 8 use 9.
        if !(9...15).contains(serverMaxWindowBits) { return "serverMaxWindowBits" }
        if !(9...15).contains(clientMaxWindowBits) { return "clientMaxWindowBits" }
        if !(1...9).contains(memLevel) { return "memLevel" }
        if !(0...9).contains(compressionLevel) { return "compressionLevel" }
        return nil
    }

    /// Whether a message of `count` bytes is worth compressing.
    public func shouldCompress(_ count: Int) -> Bool { count >= minimumSize }
}
