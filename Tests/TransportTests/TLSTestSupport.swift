// SPDX-License-Identifier: Apache-2.0
import COpenSSL
import Foundation
import TestSupport
import Transport

/// Certificates made with the `openssl` command once per test run, in a temporary directory.
///
///     root CA ──signs──▶ intermediate CA ──signs──▶ leaf (CN=localhost)   chain.pem = leaf + intermediate
///     self-signed (CN=self.test)   other.key (matches nothing)   expired (2020–2021)   future (2099)
struct TLSFixtures: Sendable {
    let directory: String
    let selfSignedCert: String, selfSignedKey: String
    let rootCert: String, chainFile: String, leafKey: String
    let expiredCert: String, expiredKey: String
    let futureCert: String, futureKey: String
    let otherKey: String
    let garbage: String

    /// Made on first use; later tests reuse the files (generation costs about a second).
    static let shared: TLSFixtures = {
        do { return try TLSFixtures() } catch { fatalError("cannot make TLS test certificates: \(error)") }
    }()

    private init() throws {
        directory = NSTemporaryDirectory() + "doorman-tls-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let d = directory
        func path(_ name: String) -> String { d + "/" + name }
        func key(_ name: String) throws -> String {
            try Self.openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path(name)], in: d)
            return path(name)
        }
        func extensions(_ name: String, _ lines: String) throws -> String {
            try lines.write(toFile: path(name), atomically: true, encoding: .utf8)
            return path(name)
        }

        selfSignedKey = try key("self.key")
        selfSignedCert = path("self.pem")
        try Self.openssl(["req", "-x509", "-new", "-key", selfSignedKey, "-subj", "/CN=self.test", "-days", "30",
                          "-addext", "subjectAltName=DNS:self.test", "-out", selfSignedCert], in: d)

        let rootKey = try key("root.key")
        rootCert = path("root.pem")
        try Self.openssl(["req", "-x509", "-new", "-key", rootKey, "-subj", "/CN=Doorman Test Root", "-days", "30",
                          "-addext", "basicConstraints=critical,CA:true",
                          "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", rootCert], in: d)
        let caExt = try extensions("ca.ext", "basicConstraints=critical,CA:true\nkeyUsage=critical,keyCertSign,cRLSign\n")
        let leafExt = try extensions("leaf.ext", "basicConstraints=CA:false\nsubjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n")
        let intermediateKey = try key("intermediate.key")
        try Self.openssl(["req", "-new", "-key", intermediateKey, "-subj", "/CN=Doorman Test Intermediate",
                          "-out", path("intermediate.csr")], in: d)
        try Self.openssl(["x509", "-req", "-in", path("intermediate.csr"), "-CA", rootCert, "-CAkey", rootKey,
                          "-CAcreateserial", "-days", "30", "-extfile", caExt, "-out", path("intermediate.pem")], in: d)
        leafKey = try key("leaf.key")
        try Self.openssl(["req", "-new", "-key", leafKey, "-subj", "/CN=localhost", "-out", path("leaf.csr")], in: d)
        try Self.openssl(["x509", "-req", "-in", path("leaf.csr"), "-CA", path("intermediate.pem"),
                          "-CAkey", intermediateKey, "-CAcreateserial", "-days", "30", "-extfile", leafExt,
                          "-out", path("leaf.pem")], in: d)
        chainFile = path("chain.pem")
        let chain = try String(contentsOfFile: path("leaf.pem"), encoding: .utf8)
            + String(contentsOfFile: path("intermediate.pem"), encoding: .utf8)
        try chain.write(toFile: chainFile, atomically: true, encoding: .utf8)

        // `openssl ca` is the 3.0 tool that takes explicit start and end dates.
        try "".write(toFile: path("index.txt"), atomically: true, encoding: .utf8)
        try "01\n".write(toFile: path("serial"), atomically: true, encoding: .utf8)
        let caConfig = try extensions("ca.cnf", """
            [ca]
            default_ca = test
            [test]
            database = \(path("index.txt"))
            new_certs_dir = \(d)
            serial = \(path("serial"))
            default_md = sha256
            policy = anything
            [anything]
            commonName = supplied

            """)
        func dated(_ name: String, from start: String, to end: String) throws -> (String, String) {
            let k = try key(name + ".key")
            try Self.openssl(["req", "-new", "-key", k, "-subj", "/CN=\(name).test", "-out", path(name + ".csr")], in: d)
            try Self.openssl(["ca", "-batch", "-config", caConfig, "-selfsign", "-keyfile", k, "-in", path(name + ".csr"),
                              "-startdate", start, "-enddate", end, "-notext", "-out", path(name + ".pem")], in: d)
            return (path(name + ".pem"), k)
        }
        (expiredCert, expiredKey) = try dated("expired", from: "20200101000000Z", to: "20210101000000Z")
        (futureCert, futureKey) = try dated("future", from: "20990101000000Z", to: "20991231000000Z")

        otherKey = try key("other.key")
        garbage = path("garbage.pem")
        try "this is not PEM at all\n".write(toFile: garbage, atomically: true, encoding: .utf8)
    }

    static func openssl(_ arguments: [String], in directory: String) throws { try OpenSSLCommand.run(arguments, in: directory) }

    struct FixtureError: Error { let message: String }
}

/// The client side, straight on OpenSSL with two memory BIOs (what a browser would do).
final class TLSTestClient {
    private let ctx: OpaquePointer
    private let ssl: OpaquePointer
    private let network: OpaquePointer   // bytes from the server, for SSL to read
    private let outbox: OpaquePointer    // bytes SSL wrote, for the server
    /// Plaintext received from the server so far.
    var received: [UInt8] = []
    /// True once the server's close_notify arrived.
    private(set) var sawCloseNotify = false
    /// The client's own failure, OpenSSL's reason.
    private(set) var failure: String?
    private(set) var isHandshakeComplete = false

    /// - Parameters:
    ///   - versions: the protocol range offered.
    ///   - cipherList: TLS 1.2-and-older cipher string (to let a TLS 1.1 client try at all).
    ///   - trustedRoot: verify the server against this root, or accept anything when nil.
    init(versions: ClosedRange<Int32> = TLS1_2_VERSION...TLS1_3_VERSION, cipherList: String? = nil,
         trustedRoot: String? = nil, alpn: [String] = ["http/1.1"]) {
        ctx = SSL_CTX_new(TLS_client_method())!
        _ = doorman_SSL_CTX_set_min_proto_version(ctx, versions.lowerBound)
        _ = doorman_SSL_CTX_set_max_proto_version(ctx, versions.upperBound)
        if let cipherList { _ = SSL_CTX_set_cipher_list(ctx, cipherList) }
        if let trustedRoot {
            _ = SSL_CTX_load_verify_locations(ctx, trustedRoot, nil)
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nil)
        } else {
            SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nil)
        }
        ssl = SSL_new(ctx)!
        network = BIO_new(BIO_s_mem())!
        outbox = BIO_new(BIO_s_mem())!
        SSL_set_bio(ssl, network, outbox)
        SSL_set_connect_state(ssl)
        _ = doorman_SSL_set_tlsext_host_name(ssl, "localhost")
        if !alpn.isEmpty {
            let wire = alpn.flatMap { [UInt8($0.utf8.count)] + Array($0.utf8) }
            _ = SSL_set_alpn_protos(ssl, wire, UInt32(wire.count))
        }
    }

    deinit {
        SSL_free(ssl)
        SSL_CTX_free(ctx)
    }

    /// Advances the handshake and reads whatever plaintext is available.
    func step() {
        guard failure == nil else { return }
        ERR_clear_error()
        if !isHandshakeComplete {
            let r = SSL_do_handshake(ssl)
            guard r == 1 else {
                let e = SSL_get_error(ssl, r)
                if e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE { fail() }
                return
            }
            isHandshakeComplete = true
        }
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let n = SSL_read(ssl, &buffer, Int32(buffer.count))
            if n > 0 { received += buffer[..<Int(n)]; continue }
            switch SSL_get_error(ssl, n) {
            case SSL_ERROR_WANT_READ: return
            case SSL_ERROR_ZERO_RETURN: sawCloseNotify = true; return
            default: fail(); return
            }
        }
    }

    private func fail() {
        var text = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(ERR_get_error(), &text, text.count)
        failure = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        ERR_clear_error()
    }

    /// Gives the client bytes from the server.
    func feed(_ bytes: [UInt8]) {
        guard !bytes.isEmpty else { return }
        _ = BIO_write(network, bytes, Int32(bytes.count))
    }

    /// Takes the bytes the client wants to send.
    func takeOutput() -> [UInt8] {
        let pending = Int(doorman_BIO_ctrl_pending(outbox))
        guard pending > 0 else { return [] }
        var bytes = [UInt8](repeating: 0, count: pending)
        let n = BIO_read(outbox, &bytes, Int32(pending))
        return Array(bytes.prefix(Int(max(n, 0))))
    }

    /// Encrypts application data (after the handshake).
    func write(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { SSL_write(ssl, $0.baseAddress, Int32($0.count)) }
            precondition(n > 0, "client SSL_write failed")
            offset += Int(n)
        }
    }

    /// Sends close_notify.
    func shutdown() { _ = SSL_shutdown(ssl) }

    /// X509_V_OK (0) when the chain verified against the trusted root.
    var verifyResult: Int { SSL_get_verify_result(ssl) }

    var protocolVersion: String { String(cString: SSL_get_version(ssl)) }

    /// The server certificate's subject, one line.
    var peerSubject: String {
        guard let cert = SSL_get1_peer_certificate(ssl) else { return "" }
        defer { X509_free(cert) }
        var line = [CChar](repeating: 0, count: 256)
        _ = X509_NAME_oneline(X509_get_subject_name(cert), &line, Int32(line.count))
        return String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// A server session and a client wired back to back through memory, with a loop-style scratch.
final class TLSPair {
    let server: TLSSession
    let client: TLSTestClient
    private let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: TLSSession.recommendedScratchBytes, alignment: 16)
    /// Plaintext the server decrypted so far.
    var serverReceived: [UInt8] = []

    init(context: TLSContext, client: TLSTestClient = TLSTestClient()) throws {
        server = try TLSSession(context: context)
        self.client = client
    }

    deinit { scratch.deallocate() }

    /// Hands `ciphertext` to the server, optionally split at the given sizes.
    func serverReceives(_ ciphertext: [UInt8], chunkSizes: [Int]? = nil) throws {
        var offset = 0
        var sizes = chunkSizes ?? [ciphertext.count]
        while offset < ciphertext.count {
            let size = min(sizes.isEmpty ? ciphertext.count : sizes.removeFirst(), ciphertext.count - offset)
            try ciphertext[offset..<(offset + size)].withUnsafeBytes { bytes in
                try server.receive(bytes, scratch: scratch) { serverReceived += $0 }
            }
            offset += size
        }
    }

    /// Moves bytes both ways until both sides are quiet.
    func pump(chunkSizes: [Int]? = nil) throws {
        for _ in 0..<64 {
            client.step()
            let toServer = client.takeOutput()
            try serverReceives(toServer, chunkSizes: chunkSizes)
            var toClient: [UInt8] = []
            server.takeOutput(into: &toClient)
            if toServer.isEmpty && toClient.isEmpty { return }
            client.feed(toClient)
        }
    }

    /// Runs the handshake to the end on both sides.
    func handshake() throws {
        try pump()
        client.step()
    }
}

/// xorshift64*: reproducible "random" chunk sizes.
struct TLSTestRandom {
    var state: UInt64
    mutating func next(upTo limit: Int) -> Int {
        state ^= state >> 12; state ^= state << 25; state ^= state >> 27
        return Int((state &* 2685821657736338717) % UInt64(limit)) + 1
    }
}
