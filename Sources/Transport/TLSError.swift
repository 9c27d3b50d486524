// SPDX-License-Identifier: Apache-2.0
import COpenSSL

/// Why TLS setup or a TLS connection failed.
///
/// Certificate cases name the file and the problem, so a bad `--tls-cert`/`--tls-key` is fixed
/// from the first error line. Messages carry OpenSSL's reason text (from its error queue), never
/// key material: OpenSSL's reasons are fixed strings such as "no start line".
public enum TLSError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The file could not be opened or read (missing, permissions, a directory).
    case unreadableFile(path: String, reason: String)
    /// The file was read but holds no usable PEM `what` ("certificate chain", "private key").
    case invalidPEM(path: String, what: String, reason: String)
    /// The private key does not belong to the leaf certificate.
    case keyMismatch(certificatePath: String, keyPath: String)
    /// The leaf certificate's notAfter is in the past (`notAfter` in ISO 8601, UTC).
    case certificateExpired(path: String, notAfter: String)
    /// The leaf certificate's notBefore is in the future (`notBefore` in ISO 8601, UTC).
    case certificateNotYetValid(path: String, notBefore: String)
    /// OpenSSL refused a setting or could not allocate (a bug or out of memory).
    case setupFailed(reason: String)
    /// The peer's handshake was malformed, used a refused version or cipher, or was not TLS.
    case handshakeFailed(reason: String)
    /// The peer broke the record layer after the handshake (bad MAC, bad record, EOF mid-record).
    case protocolError(reason: String)

    public var description: String {
        switch self {
        case .unreadableFile(let path, let reason):
            return "cannot read \(path): \(reason)"
        case .invalidPEM(let path, let what, let reason):
            return "\(path) holds no usable PEM \(what): \(reason)"
        case .keyMismatch(let certificatePath, let keyPath):
            return "the private key in \(keyPath) does not match the certificate in \(certificatePath)"
        case .certificateExpired(let path, let notAfter):
            return "the certificate in \(path) expired on \(notAfter)"
        case .certificateNotYetValid(let path, let notBefore):
            return "the certificate in \(path) is not valid before \(notBefore)"
        case .setupFailed(let reason):
            return "TLS setup failed: \(reason)"
        case .handshakeFailed(let reason):
            return "TLS handshake failed: \(reason)"
        case .protocolError(let reason):
            return "TLS protocol error: \(reason)"
        }
    }
}

/// The calling thread's OpenSSL error queue.
///
/// OpenSSL keeps one queue per thread, and every loop thread serves many connections, so a
/// reason left behind would be blamed on the next connection's failure. TLS code clears the
/// queue before each call that can fail (`clear`) and empties it when reporting (`drain`).
enum OpenSSLErrors {
    /// Forgets whatever earlier calls on this thread left behind.
    @inline(__always)
    static func clear() { ERR_clear_error() }

    /// Empties the queue and returns its reasons, oldest first, joined with "; ".
    /// - Parameter fallback: the text to use when the queue is empty.
    static func drain(fallback: String) -> String {
        var reasons: [String] = []
        var buffer = [CChar](repeating: 0, count: 256)
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            // Keep the first few: a failing PEM read can queue a dozen nested reasons.
            guard reasons.count < 4 else { continue }
            // "error:0A00010B:SSL routines::wrong version number": library, code and reason.
            ERR_error_string_n(code, &buffer, buffer.count)
            let reason = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if !reasons.contains(reason) { reasons.append(reason) }
        }
        return reasons.isEmpty ? fallback : reasons.joined(separator: "; ")
    }
}
