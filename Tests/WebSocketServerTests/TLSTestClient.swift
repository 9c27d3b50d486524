// SPDX-License-Identifier: Apache-2.0
import COpenSSL
import Foundation
import TestSupport
import Glibc
import Transport

/// Self-signed test certificates, made with the `openssl` command once per test run in a
/// temporary directory (TransportTests has the full chain set; these tests need only two leaves).
///
///     first.pem / first.key    CN=first.test     (the listener's certificate)
///     second.pem / second.key  CN=second.test    (what a reload switches to)
struct TestCertificates: Sendable {
    let directory: String
    let firstCert: String, firstKey: String
    let secondCert: String, secondKey: String

    /// Made on first use; later tests reuse the files.
    static let shared: TestCertificates = {
        do { return try TestCertificates() } catch { fatalError("cannot make TLS test certificates: \(error)") }
    }()

    private init() throws {
        directory = NSTemporaryDirectory() + "doorman-itest-tls-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        (firstCert, firstKey) = try Self.selfSigned(commonName: "first.test", in: directory)
        (secondCert, secondKey) = try Self.selfSigned(commonName: "second.test", in: directory)
    }

    /// A P-256 key and a self-signed certificate for `commonName`, valid for 30 days.
    /// - Parameter altName: the subjectAltName (default `DNS:<commonName>`; `IP:127.0.0.1` for an address).
    static func selfSigned(commonName: String, altName: String? = nil, in directory: String) throws -> (cert: String, key: String) {
        let key = directory + "/" + commonName + ".key"
        let cert = directory + "/" + commonName + ".pem"
        try openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key])
        try openssl(["req", "-x509", "-new", "-key", key, "-subj", "/CN=\(commonName)", "-days", "30",
                     "-addext", "subjectAltName=\(altName ?? "DNS:" + commonName)", "-out", cert])
        return (cert, key)
    }

    /// A fresh directory holding a copy of the first certificate as `cert.pem` / `key.pem`, for a
    /// test that rewrites the files.
    func scratchCopy() throws -> (directory: String, cert: String, key: String) {
        let dir = directory + "/scratch-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let cert = dir + "/cert.pem", key = dir + "/key.pem"
        try FileManager.default.copyItem(atPath: firstCert, toPath: cert)
        try FileManager.default.copyItem(atPath: firstKey, toPath: key)
        return (dir, cert, key)
    }

    static func openssl(_ arguments: [String]) throws { try OpenSSLCommand.run(arguments) }

    struct CertificateError: Error { let message: String }

    /// The box the server starts with.
    func box() throws -> TLSContextBox {
        try TLSContextBox(certificateChainFile: firstCert, privateKeyFile: firstKey)
    }
}

/// TLS for `TestClient`: OpenSSL straight on the connected blocking socket (SSL_set_fd), so the
/// SO_RCVTIMEO deadline still bounds every read.
extension TestClient {
    /// Runs the client handshake on this socket.
    /// - Parameters:
    ///   - versions: the protocol range offered.
    ///   - cipherList: TLS 1.2-and-older cipher string (to let a TLS 1.1 client try at all).
    /// - Returns: nil once the handshake is done (reads and writes then go through TLS), or
    ///   OpenSSL's reason for the failure (the socket is then left plain).
    func startTLS(versions: ClosedRange<Int32> = TLS1_2_VERSION...TLS1_3_VERSION, cipherList: String? = nil) -> String? {
        precondition(ssl == nil, "TLS already started")
        guard let ctx = SSL_CTX_new(TLS_client_method()) else { return "SSL_CTX_new failed" }
        defer { SSL_CTX_free(ctx) }   // the SSL keeps its own reference
        _ = doorman_SSL_CTX_set_min_proto_version(ctx, versions.lowerBound)
        _ = doorman_SSL_CTX_set_max_proto_version(ctx, versions.upperBound)
        if let cipherList { _ = SSL_CTX_set_cipher_list(ctx, cipherList) }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nil)
        guard let session = SSL_new(ctx) else { return "SSL_new failed" }
        _ = SSL_set_fd(session, fd)
        _ = doorman_SSL_set_tlsext_host_name(session, "localhost")
        ERR_clear_error()
        let rc = SSL_connect(session)
        guard rc == 1 else {
            let reason = Self.openSSLReason(session, rc)
            SSL_free(session)
            return reason
        }
        ssl = session
        return nil
    }

    /// The negotiated protocol ("TLSv1.3"), or "" without TLS.
    var tlsVersion: String {
        guard let ssl else { return "" }
        return String(cString: SSL_get_version(ssl))
    }

    /// The server certificate's subject, one line ("/CN=first.test"), or "" without TLS.
    var peerSubject: String {
        guard let ssl, let cert = SSL_get1_peer_certificate(ssl) else { return "" }
        defer { X509_free(cert) }
        var line = [CChar](repeating: 0, count: 256)
        _ = X509_NAME_oneline(X509_get_subject_name(cert), &line, Int32(line.count))
        return String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Sends TLS close_notify (RFC 8446 §6.1); the socket stays open for the server's answer.
    func sendCloseNotify() {
        if let ssl { _ = SSL_shutdown(ssl) }
    }

    func sendTLS(_ ssl: OpaquePointer, _ bytes: [UInt8]) {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { SSL_write(ssl, $0.baseAddress, Int32($0.count)) }
            if n <= 0 { return }
            sent += Int(n)
        }
    }

    /// True when the server ends the TLS stream (close_notify, EOF or reset) before the deadline.
    func awaitsEndOfTLSStream(_ ssl: OpaquePointer) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            ERR_clear_error()
            let n = SSL_read(ssl, &buffer, Int32(buffer.count))
            if n > 0 { continue }
            switch SSL_get_error(ssl, n) {
            case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE: return false   // the receive deadline passed
            default: return true   // ZERO_RETURN (close_notify), SYSCALL (EOF, reset), SSL (unexpected EOF)
            }
        }
    }

    private static func openSSLReason(_ ssl: OpaquePointer, _ rc: Int32) -> String {
        let kind = SSL_get_error(ssl, rc)
        var text = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(ERR_get_error(), &text, text.count)
        ERR_clear_error()
        return "SSL_get_error \(kind): " + String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// A real ClientHello (the client's whole first flight), taken from a client `SSL` over memory
/// BIOs without any server.
func recordedClientHello() -> [UInt8] {
    let ctx = SSL_CTX_new(TLS_client_method())!
    defer { SSL_CTX_free(ctx) }
    let ssl = SSL_new(ctx)!
    defer { SSL_free(ssl) }
    let input = BIO_new(BIO_s_mem())!
    let output = BIO_new(BIO_s_mem())!
    SSL_set_bio(ssl, input, output)   // the SSL owns both now
    SSL_set_connect_state(ssl)
    _ = doorman_SSL_set_tlsext_host_name(ssl, "localhost")
    _ = SSL_do_handshake(ssl)   // WANT_READ: the hello is written, the answer never comes
    let pending = Int(doorman_BIO_ctrl_pending(output))
    var bytes = [UInt8](repeating: 0, count: pending)
    let n = BIO_read(output, &bytes, Int32(pending))
    return Array(bytes.prefix(Int(max(n, 0))))
}
