// SPDX-License-Identifier: Apache-2.0

/// Decodes a `Transfer-Encoding: chunked` body incrementally (RFC 9112 §7.1): sizes, data,
/// extensions (ignored) and trailers (discarded). Input arrives in any split.
public struct ChunkedDecoder: Sendable {
    public enum Failure: Error, Equatable, Sendable {
        case malformed
        case chunkTooLarge
    }

    private enum State: Sendable {
        case size(value: Int, digits: Int, inExtension: Bool)
        case sizeLF(size: Int)
        case data(remaining: Int)
        case dataCR
        case dataLF
        /// Trailer lines; `lineLength` counts the current line's bytes before its CR.
        case trailer(lineLength: Int, sawCR: Bool)
        case done
    }

    private var state = State.size(value: 0, digits: 0, inExtension: false)
    /// Longest line of extensions or trailers accepted (a peer cannot make us buffer; we skip).
    private static let maxLine = 8192

    public init() {}

    /// True once the last chunk and trailers have been read.
    public var isDone: Bool { if case .done = state { return true } else { return false } }

    /// Consumes bytes from `input`; appends body data to `output`. Returns how many input bytes
    /// were used (fewer than given only when the body ended; the rest belongs to what follows).
    public mutating func decode(_ input: UnsafeRawBufferPointer, into output: inout [UInt8]) throws(Failure) -> Int {
        var i = 0
        while i < input.count {
            switch state {
            case .size(let value, let digits, let inExtension):
                let b = input[i]
                i += 1
                if b == 0x0d {
                    guard digits > 0 else { throw .malformed }
                    state = .sizeLF(size: value)
                } else if inExtension {
                    // chunk-ext: skipped, but bounded.
                    guard digits < Self.maxLine else { throw .malformed }
                    state = .size(value: value, digits: digits + 1, inExtension: true)
                } else if b == UInt8(ascii: ";") || b == 0x20 || b == 0x09 {
                    guard digits > 0 else { throw .malformed }
                    state = .size(value: value, digits: digits, inExtension: true)
                } else if let d = Self.hexValue(b) {
                    guard digits < 15 else { throw .chunkTooLarge }
                    state = .size(value: value << 4 | d, digits: digits + 1, inExtension: false)
                } else {
                    throw .malformed
                }
            case .sizeLF(let size):
                guard input[i] == 0x0a else { throw .malformed }
                i += 1
                state = size == 0 ? .trailer(lineLength: 0, sawCR: false) : .data(remaining: size)
            case .data(let remaining):
                let take = min(remaining, input.count - i)
                output.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[i..<i + take]))
                i += take
                state = take == remaining ? .dataCR : .data(remaining: remaining - take)
            case .dataCR:
                guard input[i] == 0x0d else { throw .malformed }
                i += 1
                state = .dataLF
            case .dataLF:
                guard input[i] == 0x0a else { throw .malformed }
                i += 1
                state = .size(value: 0, digits: 0, inExtension: false)
            case .trailer(let length, let sawCR):
                let b = input[i]
                i += 1
                if sawCR {
                    guard b == 0x0a else { throw .malformed }
                    if length == 0 {
                        state = .done
                        return i
                    }
                    state = .trailer(lineLength: 0, sawCR: false)
                } else if b == 0x0d {
                    state = .trailer(lineLength: length, sawCR: true)
                } else {
                    guard length < Self.maxLine else { throw .malformed }
                    state = .trailer(lineLength: length + 1, sawCR: false)
                }
            case .done:
                return i
            }
        }
        return i
    }

    private static func hexValue(_ b: UInt8) -> Int? {
        switch b {
        case 0x30...0x39: return Int(b - 0x30)
        case 0x41...0x46: return Int(b - 0x37)
        case 0x61...0x66: return Int(b - 0x57)
        default: return nil
        }
    }
}
