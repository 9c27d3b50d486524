// SPDX-License-Identifier: Apache-2.0
import COpenSSL
import Glibc
import Synchronization

/// A server's TLS settings and certificate: one OpenSSL `SSL_CTX`, shared by every connection
/// on every loop.
///
/// Policy (Mozilla "intermediate", server-side TLS guideline):
///
///     versions        TLS 1.2, TLS 1.3 (SSLv3, 1.0, 1.1 refused with a protocol_version alert)
///     TLS 1.2 ciphers ECDHE + AES-GCM / ChaCha20-Poly1305 only (forward secret, AEAD)
///     TLS 1.3 suites  TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256
///     groups          X25519, P-256, P-384, in that order; the server's order wins
///     renegotiation   off (RFC 5746 attacks, client-initiated CPU exhaustion)
///     compression     off (CRIME)
///     resumption      stateless tickets only (one per TLS 1.3 handshake); no server-side cache
///     ALPN            "http/1.1" when the client offers it, otherwise no ALPN
///
/// The DHE-RSA suites of the older intermediate list are left out: without configured DH
/// parameters OpenSSL never picks them, and finite-field DHE costs the server far more CPU per
/// handshake than ECDHE (a cheap lever for handshake floods).
///
/// Resumption: a server-side session cache would keep up to 20,480 sessions (about 1 KiB each)
/// alive in the process to save clients a handshake they make once per long-lived WebSocket.
/// Tickets cost the server nothing between connections; their key is random per context, so a
/// certificate reload also retires old tickets (clients simply do a full handshake).
///
/// Thread safety: `SSL_CTX` is reference counted and safe to share once configured; OpenSSL
/// locks its internals (ticket keys, reference counts) itself. This class never changes the
/// context after `init`, so it is `@unchecked Sendable`. A reload builds a new `TLSContext`
/// (see `TLSContextBox`); sessions keep the context they started with through `SSL_new`'s
/// reference.
public final class TLSContext: @unchecked Sendable {
    /// The TLS 1.2 cipher list, strongest-and-fastest first (the server's order wins).
    public static let cipherList =
        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" +
        "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" +
        "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
    /// The TLS 1.3 cipher suites, in Mozilla's order.
    public static let cipherSuites = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
    /// Key-exchange groups, in the server's order of preference.
    public static let groups = "X25519:prime256v1:secp384r1"

    /// The OpenSSL `SSL_CTX*`; owned, freed in `deinit`.
    let handle: OpaquePointer
    /// The leaf certificate's subject, one line ("/CN=example.org"), for logs.
    public let subject: String
    /// The leaf certificate's notAfter in ISO 8601 UTC ("2026-01-31T23:59:59Z"), for logs and alerts.
    public let notAfter: String

    /// Loads a PEM certificate chain and its private key and applies the server policy.
    ///
    /// - Parameters:
    ///   - certificateChainFile: PEM file: the leaf certificate first, then any intermediates.
    ///   - privateKeyFile: PEM file with the leaf's unencrypted private key (PKCS#8, PKCS#1 or SEC1).
    /// - Throws: `.unreadableFile`, `.invalidPEM`, `.keyMismatch`, `.certificateExpired`,
    ///   `.certificateNotYetValid`, or `.setupFailed` when OpenSSL refuses the policy itself.
    public init(certificateChainFile: String, privateKeyFile: String) throws(TLSError) {
        OpenSSLErrors.clear()
        guard let ctx = SSL_CTX_new(TLS_server_method()) else {
            throw .setupFailed(reason: OpenSSLErrors.drain(fallback: "SSL_CTX_new failed"))
        }
        do {
            try Self.applyPolicy(ctx)
            try Self.loadChain(ctx, path: certificateChainFile)
            try Self.loadKey(ctx, path: privateKeyFile, certificatePath: certificateChainFile)
            (subject, notAfter) = try Self.checkValidity(ctx, path: certificateChainFile)
        } catch {
            SSL_CTX_free(ctx)
            throw error
        }
        handle = ctx
    }

    deinit { SSL_CTX_free(handle) }

    // MARK: - Setup steps

    private static func applyPolicy(_ ctx: OpaquePointer) throws(TLSError) {
        func require(_ ok: Bool, _ what: String) throws(TLSError) {
            guard ok else { throw .setupFailed(reason: "\(what): " + OpenSSLErrors.drain(fallback: "refused")) }
        }
        try require(doorman_SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) == 1, "minimum version")
        try require(doorman_SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) == 1, "maximum version")
        try require(SSL_CTX_set_cipher_list(ctx, cipherList) == 1, "cipher list")
        try require(SSL_CTX_set_ciphersuites(ctx, cipherSuites) == 1, "TLS 1.3 cipher suites")
        try require(doorman_SSL_CTX_set1_groups_list(ctx, groups) == 1, "groups")
        _ = SSL_CTX_set_options(ctx, doorman_ssl_server_options())
        _ = doorman_SSL_CTX_set_mode(ctx, doorman_ssl_server_modes())
        _ = doorman_SSL_CTX_set_session_cache_mode(ctx, doorman_ssl_sess_cache_off())
        try require(SSL_CTX_set_num_tickets(ctx, 1) == 1, "ticket count")
        // A passphrase-protected key must fail to load, never prompt on the terminal.
        SSL_CTX_set_default_passwd_cb(ctx, refusePassphrase)
        SSL_CTX_set_alpn_select_cb(ctx, selectHTTP11, nil)
    }

    private static func loadChain(_ ctx: OpaquePointer, path: String) throws(TLSError) {
        try checkReadable(path)
        OpenSSLErrors.clear()
        guard SSL_CTX_use_certificate_chain_file(ctx, path) == 1 else {
            throw .invalidPEM(path: path, what: "certificate chain", reason: OpenSSLErrors.drain(fallback: "unknown"))
        }
    }

    private static func loadKey(_ ctx: OpaquePointer, path: String, certificatePath: String) throws(TLSError) {
        try checkReadable(path)
        OpenSSLErrors.clear()
        // Decode the key on its own first, so "not a key" and "not this certificate's key" differ.
        guard let bio = BIO_new_file(path, "r") else {
            throw .unreadableFile(path: path, reason: OpenSSLErrors.drain(fallback: "BIO_new_file failed"))
        }
        defer { BIO_free(bio) }
        guard let key = PEM_read_bio_PrivateKey(bio, nil, refusePassphrase, nil) else {
            throw .invalidPEM(path: path, what: "private key", reason: OpenSSLErrors.drain(fallback: "unknown"))
        }
        defer { EVP_PKEY_free(key) }
        // SSL_CTX_use_PrivateKey already fails when the key does not fit the certificate of its
        // type; check_private_key also catches a key of the other type (EC key, RSA certificate).
        guard SSL_CTX_use_PrivateKey(ctx, key) == 1, SSL_CTX_check_private_key(ctx) == 1 else {
            OpenSSLErrors.clear()
            throw .keyMismatch(certificatePath: certificatePath, keyPath: path)
        }
    }

    /// Rejects a leaf certificate outside its validity window; returns its subject and notAfter.
    private static func checkValidity(_ ctx: OpaquePointer, path: String) throws(TLSError) -> (String, String) {
        guard let leaf = SSL_CTX_get0_certificate(ctx) else {
            throw .invalidPEM(path: path, what: "certificate chain", reason: "no leaf certificate")
        }
        let notBefore = X509_get0_notBefore(leaf)
        let notAfter = X509_get0_notAfter(leaf)
        // X509_cmp_current_time: -1 when the time is now or earlier, 1 when later, 0 on a bad time.
        let afterCheck = X509_cmp_current_time(notAfter)
        let beforeCheck = X509_cmp_current_time(notBefore)
        guard afterCheck != 0, beforeCheck != 0 else {
            throw .invalidPEM(path: path, what: "certificate chain", reason: "unreadable validity dates")
        }
        if afterCheck < 0 { throw .certificateExpired(path: path, notAfter: isoDate(notAfter)) }
        if beforeCheck > 0 { throw .certificateNotYetValid(path: path, notBefore: isoDate(notBefore)) }
        var line = [CChar](repeating: 0, count: 256)
        _ = X509_NAME_oneline(X509_get_subject_name(leaf), &line, Int32(line.count))
        let subject = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return (subject, isoDate(notAfter))
    }

    /// Opens the file to tell "missing or forbidden" apart from "not PEM" in the error.
    private static func checkReadable(_ path: String) throws(TLSError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw .unreadableFile(path: path, reason: String(cString: strerror(errno)))
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            throw .unreadableFile(path: path, reason: "not a regular file")
        }
    }

    /// "2025-01-31T23:59:59Z" from an ASN1_TIME (UTCTime or GeneralizedTime).
    private static func isoDate(_ time: UnsafePointer<ASN1_TIME>?) -> String {
        var parts = tm()
        guard let time, ASN1_TIME_to_tm(time, &parts) == 1 else { return "an unreadable date" }
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))" +
            "T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))Z"
    }
}

/// The PEM password callback: there is no passphrase, so decryption of an encrypted key fails.
private let refusePassphrase: @convention(c) (
    UnsafeMutablePointer<CChar>?, Int32, Int32, UnsafeMutableRawPointer?
) -> Int32 = { _, _, _, _ in 0 }

/// ALPN (RFC 7301 §3.2): pick "http/1.1" from the client's list, or carry on without ALPN
/// (SSL_TLSEXT_ERR_NOACK) rather than fail clients that offer only h2 or nothing we know.
private let selectHTTP11: @convention(c) (
    OpaquePointer?, UnsafeMutablePointer<UnsafePointer<UInt8>?>?, UnsafeMutablePointer<UInt8>?,
    UnsafePointer<UInt8>?, UInt32, UnsafeMutableRawPointer?
) -> Int32 = { _, out, outLength, offered, offeredLength, _ in
    guard let out, let outLength, let offered else { return SSL_TLSEXT_ERR_NOACK }
    // The list is a sequence of <1-byte length><name>; OpenSSL copies the chosen entry.
    let wanted: [UInt8] = Array("http/1.1".utf8)
    var i = 0
    let count = Int(offeredLength)
    while i < count {
        let length = Int(offered[i])
        let start = i + 1
        guard length > 0, start + length <= count else { break }
        if length == wanted.count, (0..<length).allSatisfy({ offered[start + $0] == wanted[$0] }) {
            out.pointee = offered + start
            outLength.pointee = UInt8(length)
            return SSL_TLSEXT_ERR_OK
        }
        i = start + length
    }
    return SSL_TLSEXT_ERR_NOACK
}

/// The context new connections use, replaceable at run time (certificate reload on SIGHUP).
///
///     SIGHUP ─▶ reload() ─▶ new TLSContext ──Mutex──▶ current
///                                                       │ accept: TLSSession(context: box.current)
///     live sessions keep the SSL_CTX they started with ─┘ (SSL_new holds a reference)
///
/// A failed reload leaves the current context in place and reports why, so a half-copied
/// certificate never takes the listener down.
public final class TLSContextBox: Sendable {
    /// The certificate chain file `reload()` reads.
    public let certificateChainFile: String
    /// The private key file `reload()` reads.
    public let privateKeyFile: String
    private let slot: Mutex<TLSContext>

    /// Loads the files once; fails as `TLSContext.init` does.
    public init(certificateChainFile: String, privateKeyFile: String) throws(TLSError) {
        self.certificateChainFile = certificateChainFile
        self.privateKeyFile = privateKeyFile
        slot = Mutex(try TLSContext(certificateChainFile: certificateChainFile, privateKeyFile: privateKeyFile))
    }

    /// The context for a new connection. Safe from any thread.
    public var current: TLSContext { slot.withLock { $0 } }

    /// Reads both files again and, if they are valid, makes them the context for new connections.
    /// Loading happens outside the lock, so accepts never wait on disk.
    /// - Returns: the new context.
    /// - Throws: the new files' problem; the old context stays in use.
    @discardableResult
    public func reload() throws(TLSError) -> TLSContext {
        let fresh = try TLSContext(certificateChainFile: certificateChainFile, privateKeyFile: privateKeyFile)
        replace(with: fresh)
        return fresh
    }

    /// Makes `context` the one new connections get.
    public func replace(with context: TLSContext) {
        slot.withLock { $0 = context }
    }
}
