// SPDX-License-Identifier: Apache-2.0
import COpenSSL
import Glibc

/// A client's TLS over a connected blocking socket (the CLI's `https://` server URLs).
///
/// The server must prove who it is: its chain must lead to the system's trust store, or to the
/// certificates in `caFile` (a self-signed gateway: pass its own certificate), and the certificate
/// must name `host` (a DNS name, or an IP address in its subjectAltName). TLS 1.2 or 1.3 only.
/// There is no switch to skip the check: a CLI that sends an admin key to whoever answers is the
/// thing an attacker on the path wants.
public final class TLSClientConnection {
    private let context: OpaquePointer
    private let ssl: OpaquePointer

    /// Runs the handshake on `fd` (connected, blocking; it stays the caller's to close).
    /// - Throws: `.setupFailed` for an unreadable `caFile`, `.handshakeFailed` with OpenSSL's
    ///   reason (for example "certificate verify failed") when the server cannot be trusted.
    public init(fd: Int32, host: String, caFile: String?) throws(TLSError) {
        OpenSSLErrors.clear()
        guard let context = SSL_CTX_new(TLS_client_method()) else {
            throw .setupFailed(reason: OpenSSLErrors.drain(fallback: "SSL_CTX_new failed"))
        }
        guard doorman_SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION) == 1 else {
            SSL_CTX_free(context)
            throw .setupFailed(reason: OpenSSLErrors.drain(fallback: "cannot require TLS 1.2"))
        }
        SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nil)
        let trusted: Bool
        if let caFile {
            trusted = SSL_CTX_load_verify_locations(context, caFile, nil) == 1
        } else {
            trusted = SSL_CTX_set_default_verify_paths(context) == 1
        }
        guard trusted, let ssl = SSL_new(context) else {
            let reason = OpenSSLErrors.drain(fallback: "cannot load trusted certificates")
            SSL_CTX_free(context)
            throw .setupFailed(reason: caFile.map { "\($0): \(reason)" } ?? reason)
        }
        self.context = context
        self.ssl = ssl
        // The name (or address: OpenSSL 3 takes either) the certificate must carry; SNI for names.
        guard SSL_set1_host(ssl, host) == 1 else { throw .setupFailed(reason: "cannot check the certificate against \(host)") }
        if !host.contains(":"), !host.allSatisfy({ $0.isNumber || $0 == "." }) { _ = doorman_SSL_set_tlsext_host_name(ssl, host) }
        guard SSL_set_fd(ssl, fd) == 1 else { throw .setupFailed(reason: OpenSSLErrors.drain(fallback: "SSL_set_fd failed")) }
        let rc = SSL_connect(ssl)
        guard rc == 1 else {
            let verify = SSL_get_verify_result(ssl)
            let reason = verify != X509_V_OK
                ? String(cString: X509_verify_cert_error_string(verify))
                : OpenSSLErrors.drain(fallback: "SSL_connect failed (\(SSL_get_error(ssl, rc)))")
            OpenSSLErrors.clear()
            throw .handshakeFailed(reason: reason)
        }
    }

    deinit {
        SSL_free(ssl)
        SSL_CTX_free(context)
    }

    /// Writes all of `bytes`.
    public func write(_ bytes: [UInt8]) throws(TLSError) {
        var sent = 0
        while sent < bytes.count {
            OpenSSLErrors.clear()
            let n = bytes.withUnsafeBytes { SSL_write(ssl, $0.baseAddress! + sent, Int32(bytes.count - sent)) }
            guard n > 0 else { throw .protocolError(reason: OpenSSLErrors.drain(fallback: "SSL_write failed")) }
            sent += Int(n)
        }
    }

    /// Reads what is there into `buffer`: the count, or 0 at the end of the stream (the server's
    /// close_notify). A socket closed or reset without one, a timeout or a bad record throws: the
    /// caller cannot tell a whole answer from a cut one by the stream alone.
    public func read(into buffer: inout [UInt8]) throws(TLSError) -> Int {
        OpenSSLErrors.clear()
        let n = buffer.withUnsafeMutableBytes { SSL_read(ssl, $0.baseAddress, Int32($0.count)) }
        if n > 0 { return Int(n) }
        if SSL_get_error(ssl, n) == SSL_ERROR_ZERO_RETURN { return 0 }
        throw .protocolError(reason: OpenSSLErrors.drain(fallback: "the connection ended without close_notify"))
    }
}
