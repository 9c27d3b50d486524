// SPDX-License-Identifier: Apache-2.0

/// A read position in bytes the caller owns for the duration of one parse call.
///
/// Valid only inside the `withUnsafeBytes` (or read-buffer) scope that made it; parsers copy
/// what they keep.
public struct ByteCursor {
    public let bytes: UnsafeRawBufferPointer
    public var index: Int

    public init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
        self.index = 0
    }

    public var remaining: Int { bytes.count - index }
    public var isAtEnd: Bool { index >= bytes.count }

    /// The unread bytes.
    public var rest: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: bytes[index...]) }
}
