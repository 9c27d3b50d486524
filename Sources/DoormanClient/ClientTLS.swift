// SPDX-License-Identifier: Apache-2.0
#if canImport(COpenSSL)
import COpenSSL

/// TLS for `wss://` on OpenSSL, over memory BIOs: the socket stays ours (non-blocking, no
/// SIGPIPE); OpenSSL only runs the handshake, encrypts and decrypts. The server must prove who it
/// is: a chain to the system's trust store (or to `caFile`), and a certificate naming `host`.
/// TLS 1.2 or 1.3. Thread-confined: one connection thread uses it.
final class ClientTLS {
    private let context: OpaquePointer
    private let ssl: OpaquePointer
    /// Network → OpenSSL, and OpenSSL → network. Owned by `ssl`.
    private let fromNetwork: OpaquePointer
    private let toNetwork: OpaquePointer

    init(host: String, caFile: String?) throws(TransportError) {
        ERR_clear_error()
        guard let context = SSL_CTX_new(TLS_client_method()) else { throw .tls("SSL_CTX_new failed") }
        SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nil)
        let trusted = caFile.map { SSL_CTX_load_verify_locations(context, $0, nil) == 1 } ?? (SSL_CTX_set_default_verify_paths(context) == 1)
        guard trusted, doorman_SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION) == 1,
              let ssl = SSL_new(context), let fromNetwork = BIO_new(BIO_s_mem()), let toNetwork = BIO_new(BIO_s_mem()) else {
            SSL_CTX_free(context)
            throw .tls("cannot set up TLS" + (caFile.map { " with the certificates in \($0)" } ?? ""))
        }
        SSL_set_bio(ssl, fromNetwork, toNetwork)
        SSL_set_connect_state(ssl)
        self.context = context
        self.ssl = ssl
        self.fromNetwork = fromNetwork
        self.toNetwork = toNetwork
        // The name or address the certificate must carry (OpenSSL 3 takes either); SNI for names.
        guard SSL_set1_host(ssl, host) == 1 else { throw .tls("cannot check the certificate against \(host)") }
        if !host.contains(":"), !host.allSatisfy({ $0.isNumber || $0 == "." }) { _ = doorman_SSL_set_tlsext_host_name(ssl, host) }
    }

    deinit {
        SSL_free(ssl)
        SSL_CTX_free(context)
    }

    /// Bytes read from the socket.
    func feed(_ bytes: ArraySlice<UInt8>) {
        bytes.withUnsafeBytes { _ = BIO_write(fromNetwork, $0.baseAddress, Int32($0.count)) }
    }

    /// Advances the handshake over what was fed: true once it is done.
    /// - Throws: `.tls` with the reason, e.g. "certificate verify failed: self-signed certificate".
    func handshake() throws(TransportError) -> Bool {
        ERR_clear_error()
        let rc = SSL_do_handshake(ssl)
        if rc == 1 { return true }
        switch SSL_get_error(ssl, rc) {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE: return false
        default:
            let verify = SSL_get_verify_result(ssl)
            let reason = verify != X509_V_OK ? "certificate verify failed: " + String(cString: X509_verify_cert_error_string(verify)) : Self.errors()
            throw .tls(reason)
        }
    }

    /// Decrypts all that was fed into `plaintext`. Returns false once the server sent close_notify.
    func decrypt(into plaintext: inout [UInt8]) throws(TransportError) -> Bool {
        var chunk = [UInt8](repeating: 0, count: 16_384)
        while true {
            ERR_clear_error()
            let n = chunk.withUnsafeMutableBytes { SSL_read(ssl, $0.baseAddress, Int32($0.count)) }
            if n > 0 {
                plaintext += chunk[..<Int(n)]
                continue
            }
            switch SSL_get_error(ssl, n) {
            case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE: return true
            case SSL_ERROR_ZERO_RETURN: return false
            default: throw .tls(Self.errors())
            }
        }
    }

    /// Encrypts all of `plaintext` (after the handshake).
    func encrypt(_ plaintext: [UInt8]) throws(TransportError) {
        var rest = plaintext[...]
        while !rest.isEmpty {
            ERR_clear_error()
            let n = rest.withUnsafeBytes { SSL_write(ssl, $0.baseAddress, Int32(min($0.count, 1 << 30))) }
            guard n > 0 else { throw .tls(Self.errors()) }
            rest = rest.dropFirst(Int(n))
        }
    }

    /// What OpenSSL has to send (handshake flights, records, alerts).
    func takeOutput() -> [UInt8] {
        let pending = Int(doorman_BIO_ctrl_pending(toNetwork))
        guard pending > 0 else { return [] }
        var out = [UInt8](repeating: 0, count: pending)
        let n = out.withUnsafeMutableBytes { BIO_read(toNetwork, $0.baseAddress, Int32(pending)) }
        return Array(out.prefix(Int(max(n, 0))))
    }

    private static func errors() -> String {
        var text = [CChar](repeating: 0, count: 256)
        let code = ERR_get_error()
        ERR_clear_error()
        guard code != 0 else { return "TLS failed" }
        ERR_error_string_n(code, &text, text.count)
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
#endif
