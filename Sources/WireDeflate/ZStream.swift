// SPDX-License-Identifier: Apache-2.0
import CZlib

/// One zlib stream (raw DEFLATE, RFC 1951) and the bytes zlib holds for it.
///
/// `MessageInflater` and `MessageDeflater` each own at most one, create it on first use and drop
/// it to give the memory back. zlib allocates through the counting allocator in `CZlib/shim.h`,
/// so `allocatedBytes` is exact, not an estimate. Measured with zlib 1.2.13 on x86_64:
///
/// | stream | windowBits | memLevel | zlib bytes |
/// |---|---|---|---|
/// | inflate | 15 | – | 7,160 + 32,768 window (the window only once output is produced) = 39,928 |
/// | inflate | 9 | – | 7,160 + 512 = 7,672 |
/// | deflate | 15 | 8 | 268,096 (≈ 262 KiB) |
/// | deflate | 15 | 1 | 138,048 |
/// | deflate | 9 | 8 | 139,072 |
/// | deflate | 9 | 1 | 9,024 |
///
/// Deflate costs 5,952 + 2 × 2^(windowBits+1) (window, prev) + 2^(memLevel+8) (hash head) +
/// 2^(memLevel+8) (pending buffer); inflate 7,160 + 2^windowBits. Add 112 bytes for the `z_stream`
/// itself and 8 for the counter.
///
/// Not `Sendable`: a stream belongs to the loop thread that created it.
final class ZStream {
    enum Kind { case inflate, deflate }

    let kind: Kind
    /// The zlib stream; callers set `next_in`/`avail_in`/`next_out`/`avail_out` and call zlib.
    let stream: UnsafeMutablePointer<z_stream>
    /// Bytes zlib has allocated for this stream, maintained by `doorman_zalloc`/`doorman_zfree`.
    private let counter: UnsafeMutablePointer<Int>

    /// A raw inflate stream (negative windowBits: no zlib header, RFC 7692 §7.2.2).
    /// - Throws: `DeflateError.outOfMemory` when zlib cannot allocate its state.
    init(inflateWindowBits windowBits: Int) throws(DeflateError) {
        precondition((8...15).contains(windowBits), "inflate windowBits \(windowBits) outside 8...15")
        let (stream, counter) = Self.allocate()
        try Self.check(doorman_inflateInit2(stream, -Int32(windowBits), counter), stream: stream, counter: counter)
        // Stored only after a successful init: deinit, which calls inflateEnd, runs for any
        // instance whose properties are all set, even one whose init throws afterwards.
        (self.kind, self.stream, self.counter) = (.inflate, stream, counter)
    }

    /// A raw deflate stream (RFC 7692 §7.2.1). zlib refuses a raw window of 8 bits, so 9...15.
    /// - Throws: `DeflateError.outOfMemory` when zlib cannot allocate its state.
    init(deflateLevel level: Int, windowBits: Int, memLevel: Int) throws(DeflateError) {
        precondition((9...15).contains(windowBits), "deflate windowBits \(windowBits) outside 9...15")
        precondition((1...9).contains(memLevel), "memLevel \(memLevel) outside 1...9")
        precondition((-1...9).contains(level), "level \(level) outside -1...9")
        let (stream, counter) = Self.allocate()
        let rc = doorman_deflateInit2(stream, Int32(level), -Int32(windowBits), Int32(memLevel), counter)
        try Self.check(rc, stream: stream, counter: counter)
        (self.kind, self.stream, self.counter) = (.deflate, stream, counter)
    }

    deinit {
        switch kind {
        case .inflate: inflateEnd(stream)
        case .deflate: deflateEnd(stream)
        }
        stream.deallocate()
        counter.deallocate()
    }

    /// zlib's own allocations plus the `z_stream` struct and the counter.
    var allocatedBytes: Int {
        counter.pointee + MemoryLayout<z_stream>.size + MemoryLayout<Int>.size
    }

    /// Forgets the sliding window and any partial block: the next message starts afresh (cheap:
    /// no allocation, the window buffer is kept).
    func reset() {
        switch kind {
        case .inflate: inflateReset(stream)
        case .deflate: deflateReset(stream)
        }
    }

    private static func allocate() -> (UnsafeMutablePointer<z_stream>, UnsafeMutablePointer<Int>) {
        let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let counter = UnsafeMutablePointer<Int>.allocate(capacity: 1)
        counter.initialize(to: 0)
        return (stream, counter)
    }

    /// Turns an init result into an error; frees the memory when init failed (deinit won't run).
    private static func check(
        _ rc: Int32, stream: UnsafeMutablePointer<z_stream>, counter: UnsafeMutablePointer<Int>
    ) throws(DeflateError) {
        if rc == Z_OK { return }
        stream.deallocate()
        counter.deallocate()
        // Z_STREAM_ERROR (bad parameters) is ruled out by the preconditions; Z_VERSION_ERROR means
        // a header/library mismatch at build time. Both are our bugs.
        precondition(rc == Z_MEM_ERROR, "zlib init failed: \(rc)")
        throw .outOfMemory
    }
}
