// SPDX-License-Identifier: Apache-2.0
import COpenSSL
import Glibc

/// Server-side TLS for one connection, as a byte transform: ciphertext in, plaintext out, and
/// plaintext in, ciphertext out. It never touches a socket.
///
///                     receive(ciphertext)                         plaintext callback
///     socket bytes ──▶ input (borrowed) ──BIO read──▶ SSL ──SSL_read──▶ (scratch, per loop)
///                                                      │
///     send(plaintext) ─────────────SSL_write─────────▶ │ ──BIO write──▶ output ──takeOutput──▶ socket
///                                  handshake, alerts, close_notify ─┘
///
/// The BIO is our own (`BIO_meth_new`): its read callback serves the bytes of the current
/// `receive` call straight from the caller's buffer, and its write callback appends to `output`.
/// Nothing is buffered in a BIO between events, and with `SSL_MODE_RELEASE_BUFFERS` OpenSSL
/// frees its record buffers once they are empty, so an idle session holds only the `SSL` object
/// and its negotiated keys. (A memory-BIO pair would keep two 4 KiB+ `BUF_MEM`s per connection.)
///
/// Not `Sendable`: a session lives on one loop thread, like its connection. OpenSSL's error
/// queue is per thread, so every call clears it before and empties it after a failure: one
/// connection's error never shows up in another's.
///
/// After a thrown error, send what `takeOutput` returns (usually a TLS alert) and close.
public final class TLSSession {
    /// Plaintext per `SSL_read` is at most one record (RFC 8446 §5.1: 2^14 bytes), so a scratch
    /// buffer of this size never splits a record's plaintext.
    public static let recommendedScratchBytes = 16 * 1024

    /// The `SSL*`; owns the BIO. Freed in `deinit`.
    private let ssl: OpaquePointer
    private let bio: OpaquePointer
    /// The ciphertext of the `receive` call in progress; empty between calls. Read by the BIO.
    fileprivate var input = UnsafeRawBufferPointer(start: nil, count: 0)
    /// Ciphertext for the peer that the caller has not taken yet. Written by the BIO.
    fileprivate var output: [UInt8] = []

    /// True once the handshake finished; `send` is allowed from then on.
    public private(set) var isHandshakeComplete = false
    /// True once the peer sent close_notify: no more plaintext will come. Answer with `shutdown()`.
    public private(set) var peerClosed = false
    /// True once `shutdown()` queued our close_notify.
    public private(set) var closeNotifyQueued = false
    /// True after a fatal error: the session can only be discarded.
    public private(set) var hasFailed = false

    /// A server session using `context`'s certificate and policy. The session keeps the
    /// context's `SSL_CTX` alive for its whole life, even if the context is replaced meanwhile.
    /// - Throws: `.setupFailed` when OpenSSL cannot allocate the session.
    public init(context: TLSContext) throws(TLSError) {
        OpenSSLErrors.clear()
        guard let ssl = SSL_new(context.handle) else {
            throw .setupFailed(reason: OpenSSLErrors.drain(fallback: "SSL_new failed"))
        }
        guard let bio = BIO_new(callbackBIOMethod) else {
            SSL_free(ssl)
            throw .setupFailed(reason: OpenSSLErrors.drain(fallback: "BIO_new failed"))
        }
        // The same BIO reads and writes; SSL_set_bio takes the one reference.
        SSL_set_bio(ssl, bio, bio)
        SSL_set_accept_state(ssl)
        self.ssl = ssl
        self.bio = bio
        // Unretained: the BIO dies with `ssl` in our deinit, so it never outlives `self`.
        BIO_set_data(bio, Unmanaged.passUnretained(self).toOpaque())
    }

    deinit {
        BIO_set_data(bio, nil)
        SSL_free(ssl)
    }

    // MARK: - Reading

    /// Feeds bytes read from the socket: advances the handshake and hands over decrypted
    /// application data. Whatever OpenSSL wants to send back (handshake flights, tickets,
    /// alerts) is queued for `takeOutput`.
    ///
    /// All of `ciphertext` is consumed: a partial record stays inside OpenSSL until the rest
    /// arrives. Bytes after the peer's close_notify are ignored.
    ///
    /// - Parameters:
    ///   - ciphertext: bytes just read from the socket; borrowed for this call only.
    ///   - scratch: where plaintext is decrypted to, shared per loop (`recommendedScratchBytes`).
    ///     It must not overlap `ciphertext`.
    ///   - plaintext: called with each decrypted chunk, valid only during the call. It may call
    ///     `send` and `shutdown`.
    /// - Throws: `.handshakeFailed` for a bad or refused handshake (garbage, plain HTTP, old
    ///   versions, no shared cipher), `.protocolError` for a broken record stream afterwards.
    public func receive(
        _ ciphertext: UnsafeRawBufferPointer,
        scratch: UnsafeMutableRawBufferPointer,
        plaintext: (UnsafeRawBufferPointer) -> Void
    ) throws(TLSError) {
        precondition(scratch.count > 0, "TLSSession.receive needs a scratch buffer")
        guard !hasFailed else { throw .protocolError(reason: "session already failed") }
        guard !peerClosed else { return }
        input = ciphertext
        defer { input = UnsafeRawBufferPointer(start: nil, count: 0) }

        if !isHandshakeComplete {
            guard try advanceHandshake() else { return }
        }
        let chunk = Int32(clamping: scratch.count)
        while true {
            OpenSSLErrors.clear()
            let n = SSL_read(ssl, scratch.baseAddress, chunk)
            if n > 0 {
                plaintext(UnsafeRawBufferPointer(rebasing: scratch[..<Int(n)]))
                if hasFailed { return }
                continue
            }
            switch SSL_get_error(ssl, n) {
            case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
                // Input used up (any partial record is kept inside OpenSSL).
                return
            case SSL_ERROR_ZERO_RETURN:
                // RFC 8446 §6.1: close_notify; no more data will come on this connection.
                peerClosed = true
                OpenSSLErrors.clear()
                return
            default:
                hasFailed = true
                throw .protocolError(reason: OpenSSLErrors.drain(fallback: "record layer failure"))
            }
        }
    }

    /// Runs the handshake over the current input. Returns true once it has completed.
    private func advanceHandshake() throws(TLSError) -> Bool {
        OpenSSLErrors.clear()
        let result = SSL_do_handshake(ssl)
        if result == 1 {
            isHandshakeComplete = true
            return true
        }
        switch SSL_get_error(ssl, result) {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
            return false
        default:
            hasFailed = true
            throw .handshakeFailed(reason: OpenSSLErrors.drain(fallback: "peer sent no valid TLS handshake"))
        }
    }

    // MARK: - Writing

    /// Encrypts `plaintext` into records queued for `takeOutput`. Empty input writes nothing.
    /// - Precondition: the handshake is complete (a server has nothing to say before that).
    /// - Throws: `.protocolError` after `shutdown()` or a fatal error.
    public func send(_ plaintext: UnsafeRawBufferPointer) throws(TLSError) {
        precondition(isHandshakeComplete, "TLSSession.send before the handshake completed")
        guard !hasFailed, !closeNotifyQueued else { throw .protocolError(reason: "session is closed") }
        var rest = plaintext
        while !rest.isEmpty {
            // SSL_write takes an Int32 count. Our BIO never refuses a write, so without
            // SSL_MODE_ENABLE_PARTIAL_WRITE each call writes everything it was given.
            let count = min(rest.count, 1 << 30)
            OpenSSLErrors.clear()
            let n = SSL_write(ssl, rest.baseAddress, Int32(count))
            guard n > 0 else {
                hasFailed = true
                throw .protocolError(reason: OpenSSLErrors.drain(fallback: "SSL_write failed"))
            }
            rest = UnsafeRawBufferPointer(rebasing: rest[Int(n)...])
        }
    }

    /// Queues our close_notify (RFC 8446 §6.1). Call when closing, or to answer `peerClosed`;
    /// then send `takeOutput`'s bytes and close the socket. Does nothing before the handshake
    /// completed (there is nobody to notify) or a second time.
    public func shutdown() {
        guard isHandshakeComplete, !closeNotifyQueued, !hasFailed else { return }
        closeNotifyQueued = true
        OpenSSLErrors.clear()
        // 0 means "sent, the peer's close_notify not seen yet": we do not wait for it.
        _ = SSL_shutdown(ssl)
        OpenSSLErrors.clear()
    }

    // MARK: - Output

    /// True when ciphertext is waiting for the socket.
    public var hasOutput: Bool { !output.isEmpty }

    /// How many ciphertext bytes are waiting.
    public var outputCount: Int { output.count }

    /// Appends the waiting ciphertext to `out` and forgets it. When `out` is empty the buffer
    /// moves instead of being copied. The session keeps no buffer afterwards (idle sessions
    /// stay small).
    public func takeOutput(into out: inout [UInt8]) {
        guard !output.isEmpty else { return }
        if out.isEmpty {
            out = output
        } else {
            out.append(contentsOf: output)
        }
        output = []
    }

    // MARK: - Facts for logs

    /// The negotiated protocol ("TLSv1.3"), or nil before the handshake completed.
    public var protocolVersion: String? {
        guard isHandshakeComplete, let name = SSL_get_version(ssl) else { return nil }
        return String(cString: name)
    }

    /// The negotiated cipher in OpenSSL's naming ("TLS_AES_128_GCM_SHA256"), or nil.
    public var cipherName: String? {
        guard isHandshakeComplete, let cipher = SSL_get_current_cipher(ssl),
              let name = SSL_CIPHER_get_name(cipher) else { return nil }
        return String(cString: name)
    }

    /// The ALPN protocol agreed on ("http/1.1"), or nil when the client offered none we speak.
    public var applicationProtocol: String? {
        var data: UnsafePointer<UInt8>?
        var length: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &data, &length)
        guard let data, length > 0 else { return nil }
        return String(decoding: UnsafeBufferPointer(start: data, count: Int(length)), as: UTF8.self)
    }

    // MARK: - BIO callbacks

    /// The session behind a BIO, or nil for a BIO that is being torn down.
    fileprivate static func owner(of bio: OpaquePointer?) -> TLSSession? {
        guard let bio, let raw = BIO_get_data(bio) else { return nil }
        return Unmanaged<TLSSession>.fromOpaque(raw).takeUnretainedValue()
    }
}

/// The BIO type behind every session, made once per process. OpenSSL only reads a BIO_METHOD
/// after setup, so sharing the pointer across loop threads is safe; `nonisolated(unsafe)`
/// because `OpaquePointer` is not `Sendable` (Swift initializes the global once, thread-safely).
nonisolated(unsafe) private let callbackBIOMethod: OpaquePointer = {
    guard let method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "doorman callback BIO") else {
        fatalError("BIO_meth_new failed: out of memory at startup")
    }
    _ = BIO_meth_set_read(method, bioRead)
    _ = BIO_meth_set_write(method, bioWrite)
    _ = BIO_meth_set_ctrl(method, bioControl)
    _ = BIO_meth_set_create(method, { bio in
        BIO_set_init(bio, 1)
        return 1
    })
    _ = BIO_meth_set_destroy(method, { _ in 1 })
    return method
}()

/// Serves bytes from the current `receive` call's input; "retry" when it is used up, which
/// OpenSSL reports as SSL_ERROR_WANT_READ.
private let bioRead: @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>?, Int32) -> Int32 = { bio, destination, length in
    guard let bio, let destination, length > 0 else { return 0 }
    doorman_BIO_clear_retry_flags(bio)
    guard let session = TLSSession.owner(of: bio), let source = session.input.baseAddress, !session.input.isEmpty else {
        doorman_BIO_set_retry_read(bio)
        return -1
    }
    let n = min(session.input.count, Int(length))
    memcpy(destination, source, n)
    session.input = UnsafeRawBufferPointer(rebasing: session.input[n...])
    return Int32(n)
}

/// Appends records to the session's output; never refuses, so SSL_write never sees WANT_WRITE.
private let bioWrite: @convention(c) (OpaquePointer?, UnsafePointer<CChar>?, Int32) -> Int32 = { bio, source, length in
    guard let bio, let source, length > 0 else { return 0 }
    doorman_BIO_clear_retry_flags(bio)
    guard let session = TLSSession.owner(of: bio) else { return -1 }
    session.output.append(contentsOf: UnsafeRawBufferPointer(start: source, count: Int(length)))
    return length
}

/// Flush succeeds (the output is already "sent" as far as OpenSSL knows); every other control
/// (kTLS, pending counts, DTLS) is "not supported".
private let bioControl: @convention(c) (OpaquePointer?, Int32, Int, UnsafeMutableRawPointer?) -> Int = { _, command, _, _ in
    command == BIO_CTRL_FLUSH ? 1 : 0
}
