// SPDX-License-Identifier: Apache-2.0
// The fuzz build (scripts/fuzz.sh) compiles WireCodec and WireDeflate into one module.
#if canImport(WireCodec)
public import WireCodec
#endif

/// Everything that can go wrong while inflating or deflating one message.
///
/// The connection maps each case to a close code in one place, `CloseCode.init(_:)` below.
/// After any of them the inflater has dropped the message (and, with context takeover, the
/// window the peer's next message would refer to), so the connection must close.
public enum DeflateError: Error, Equatable, Sendable {
    /// The inflated message would pass `maxMessageBytes`. Raised before a byte past the limit is
    /// stored, so a decompression bomb costs at most the limit.
    case messageTooLarge
    /// The payload is not valid raw DEFLATE (RFC 1951), or the message stops inside a DEFLATE
    /// block instead of after the empty stored block RFC 7692 §7.2.1 step 2 requires.
    case invalidData
    /// zlib could not allocate its state (about 40 KiB to inflate, up to 262 KiB to deflate).
    case outOfMemory
}

extension CloseCode {
    /// Maps an inflate/deflate error to the close code the connection sends (RFC 6455 §7.4.1).
    ///
    /// RFC 7692 names no code for undecodable data; 1007 ("data within a message that was not
    /// consistent with the type of the message") is what most servers send. Autobahn's cases 12.*
    /// and 13.* send only valid data, so they do not pin a choice.
    public init(_ error: DeflateError) {
        switch error {
        case .messageTooLarge: self = .messageTooBig    // 1009
        case .invalidData: self = .invalidPayload       // 1007
        case .outOfMemory: self = .internalError        // 1011
        }
    }
}
