// SPDX-License-Identifier: Apache-2.0
import COpenSSL
import Foundation
import Glibc
import Testing
import Transport

/// TLSContext loading and policy, TLSSession over memory against an OpenSSL client, reload.
/// Serialized: the memory test reads process-wide malloc statistics.
@Suite(.serialized) struct TLSTests {
    let files = TLSFixtures.shared

    private func context(_ cert: String? = nil, _ key: String? = nil) throws -> TLSContext {
        try TLSContext(certificateChainFile: cert ?? files.selfSignedCert, privateKeyFile: key ?? files.selfSignedKey)
    }

    private func loadError(_ cert: String, _ key: String) -> TLSError? {
        do {
            _ = try TLSContext(certificateChainFile: cert, privateKeyFile: key)
            return nil
        } catch {
            return error
        }
    }

    // MARK: - Loading certificates

    @Test func loadsASelfSignedCertificateAndReportsItsSubject() throws {
        let context = try context()
        #expect(context.subject == "/CN=self.test")
        #expect(context.notAfter.hasSuffix("Z"))
    }

    @Test func servesTheIntermediateSoTheClientVerifiesAgainstTheRoot() throws {
        let context = try context(files.chainFile, files.leafKey)
        let pair = try TLSPair(context: context, client: TLSTestClient(trustedRoot: files.rootCert))
        try pair.handshake()
        #expect(pair.client.failure == nil)
        #expect(pair.client.verifyResult == Int(X509_V_OK))
        #expect(pair.client.peerSubject == "/CN=localhost")
    }

    @Test func reportsAMissingFileAsUnreadable() {
        let missing = files.directory + "/missing.pem"
        let error = loadError(missing, files.selfSignedKey)
        #expect(error == .unreadableFile(path: missing, reason: "No such file or directory"))
        #expect(error?.description == "cannot read \(missing): No such file or directory")
    }

    @Test func reportsADirectoryAsUnreadable() {
        #expect(loadError(files.selfSignedCert, files.directory) == .unreadableFile(path: files.directory, reason: "not a regular file"))
    }

    @Test func rejectsACertificateFileThatIsNotPEM() {
        guard case .invalidPEM(let path, let what, let reason)? = loadError(files.garbage, files.selfSignedKey) else {
            Issue.record("expected invalidPEM")
            return
        }
        #expect(path == files.garbage)
        #expect(what == "certificate chain")
        #expect(reason.contains("no start line"))
    }

    @Test func rejectsAKeyFileThatIsNotPEMWithoutEchoingIt() throws {
        let secretish = files.directory + "/secretish.key"
        try "-----BEGIN PRIVATE KEY-----\nTOP-SECRET-BYTES\n-----END PRIVATE KEY-----\n"
            .write(toFile: secretish, atomically: true, encoding: .utf8)
        let error = loadError(files.selfSignedCert, secretish)
        guard case .invalidPEM(let path, let what, _)? = error else {
            Issue.record("expected invalidPEM, got \(String(describing: error))")
            return
        }
        #expect(path == secretish)
        #expect(what == "private key")
        #expect(error?.description.contains("TOP-SECRET") == false)
    }

    @Test func rejectsAKeyThatDoesNotMatchTheCertificate() {
        let error = loadError(files.selfSignedCert, files.otherKey)
        #expect(error == .keyMismatch(certificatePath: files.selfSignedCert, keyPath: files.otherKey))
    }

    @Test func rejectsAnExpiredCertificateNamingTheDate() {
        let error = loadError(files.expiredCert, files.expiredKey)
        #expect(error == .certificateExpired(path: files.expiredCert, notAfter: "2021-01-01T00:00:00Z"))
        #expect(error?.description == "the certificate in \(files.expiredCert) expired on 2021-01-01T00:00:00Z")
    }

    @Test func rejectsACertificateThatIsNotYetValid() {
        #expect(loadError(files.futureCert, files.futureKey) == .certificateNotYetValid(path: files.futureCert, notBefore: "2099-01-01T00:00:00Z"))
    }

    // MARK: - Handshake and data

    @Test func completesATLS13HandshakeAndCarriesDataBothWays() throws {
        let pair = try TLSPair(context: try context())
        try pair.handshake()
        #expect(pair.server.isHandshakeComplete)
        #expect(pair.server.protocolVersion == "TLSv1.3")
        #expect(pair.server.cipherName == "TLS_AES_128_GCM_SHA256")
        #expect(pair.server.applicationProtocol == "http/1.1")

        pair.client.write(Array("GET / HTTP/1.1\r\n\r\n".utf8))
        try pair.pump()
        #expect(pair.serverReceived == Array("GET / HTTP/1.1\r\n\r\n".utf8))

        try Array("HTTP/1.1 101\r\n\r\n".utf8).withUnsafeBytes { try pair.server.send($0) }
        try pair.pump()
        #expect(pair.client.received == Array("HTTP/1.1 101\r\n\r\n".utf8))
    }

    @Test func completesATLS12HandshakeWithTheServersFirstCipher() throws {
        let pair = try TLSPair(context: try context(), client: TLSTestClient(versions: TLS1_2_VERSION...TLS1_2_VERSION))
        try pair.handshake()
        #expect(pair.server.protocolVersion == "TLSv1.2")
        #expect(pair.server.cipherName == "ECDHE-ECDSA-AES128-GCM-SHA256")
        pair.client.write([1, 2, 3])
        try pair.pump()
        #expect(pair.serverReceived == [1, 2, 3])
    }

    @Test func completesTheHandshakeFedOneByteAtATime() throws {
        let pair = try TLSPair(context: try context())
        for _ in 0..<8 where !pair.server.isHandshakeComplete {
            try pair.pump(chunkSizes: Array(repeating: 1, count: 1 << 14))
        }
        pair.client.step()
        #expect(pair.server.isHandshakeComplete)
        #expect(pair.client.isHandshakeComplete)
    }

    @Test(arguments: [TLS1_2_VERSION, TLS1_3_VERSION])
    func carriesAMebibyteInRandomChunksBothWays(version: Int32) throws {
        let pair = try TLSPair(context: try context(), client: TLSTestClient(versions: version...version))
        try pair.handshake()
        var random = TLSTestRandom(state: 0x9E37_79B9_7F4A_7C15)
        let payload = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) }

        pair.client.write(payload)
        let wire = pair.client.takeOutput()
        let sizes = (0..<wire.count).map { _ in random.next(upTo: 40_000) }
        try pair.serverReceives(wire, chunkSizes: sizes)
        #expect(pair.serverReceived == payload)

        var offset = 0
        while offset < payload.count {
            let size = min(random.next(upTo: 70_000), payload.count - offset)
            try payload[offset..<(offset + size)].withUnsafeBytes { try pair.server.send($0) }
            offset += size
        }
        try pair.pump()
        #expect(pair.client.received == payload)
        #expect(!pair.server.hasOutput)
    }

    @Test func reportsThePeersCloseNotifyAndAnswersIt() throws {
        let pair = try TLSPair(context: try context())
        try pair.handshake()
        pair.client.write([42])
        pair.client.shutdown()
        try pair.pump()
        #expect(pair.serverReceived == [42])
        #expect(pair.server.peerClosed)
        pair.server.shutdown()
        #expect(pair.server.closeNotifyQueued)
        try pair.pump()
        #expect(pair.client.sawCloseNotify)
        #expect(throws: TLSError.self) { try [UInt8]([1]).withUnsafeBytes { try pair.server.send($0) } }
    }

    // MARK: - Refusals

    @Test func failsTheHandshakeOnPlainHTTP() throws {
        let pair = try TLSPair(context: try context())
        #expect {
            try pair.serverReceives(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        } throws: { error in
            guard case .handshakeFailed(let reason)? = error as? TLSError else { return false }
            return reason.contains("http request")
        }
        #expect(pair.server.hasFailed)
        #expect(throws: TLSError.self) { try pair.serverReceives([0x16]) }
    }

    @Test func failsTheHandshakeOnRandomBytes() throws {
        let pair = try TLSPair(context: try context())
        var random = TLSTestRandom(state: 7)
        let junk = (0..<512).map { _ in UInt8(random.next(upTo: 256) - 1) }
        #expect(throws: TLSError.self) { try pair.serverReceives([0x16, 0x03, 0x01, 0x00, 0x40] + junk) }
    }

    @Test func treatsATamperedRecordAsAProtocolError() throws {
        let pair = try TLSPair(context: try context())
        try pair.handshake()
        pair.client.write(Array(repeating: 7, count: 100))
        var wire = pair.client.takeOutput()
        wire[wire.count - 3] ^= 0x01   // inside the AEAD tag
        #expect {
            try pair.serverReceives(wire)
        } throws: { error in
            guard case .protocolError(let reason)? = error as? TLSError else { return false }
            return reason.contains("bad record mac") || reason.contains("decryption failed")
        }
        var alert: [UInt8] = []
        pair.server.takeOutput(into: &alert)
        #expect(alert.first == 0x17 || alert.first == 0x15)   // an (encrypted) alert record
    }

    @Test func refusesATLS11Client() throws {
        let client = TLSTestClient(versions: TLS1_1_VERSION...TLS1_1_VERSION, cipherList: "DEFAULT:@SECLEVEL=0")
        let pair = try TLSPair(context: try context(), client: client)
        client.step()
        let hello = client.takeOutput()
        #expect(!hello.isEmpty, "the client must really offer TLS 1.1")
        #expect {
            try pair.serverReceives(hello)
        } throws: { error in
            guard case .handshakeFailed(let reason)? = error as? TLSError else { return false }
            return reason.contains("unsupported protocol")
        }
        var alert: [UInt8] = []
        pair.server.takeOutput(into: &alert)
        #expect(Array(alert.prefix(1)) == [0x15])   // RFC 5246 §7.2: alert record (protocol_version)
    }

    @Test func keepsOneSessionsErrorAwayFromTheNext() throws {
        let context = try context()
        let broken = try TLSPair(context: context)
        #expect(throws: TLSError.self) { try broken.serverReceives(Array("garbage!garbage!".utf8)) }
        // Leave stray errors on this thread's queue, as unrelated OpenSSL code might.
        #expect(BIO_new_file(files.directory + "/nope.pem", "r") == nil)
        #expect(ERR_peek_error() != 0)
        let healthy = try TLSPair(context: context)
        try healthy.handshake()
        healthy.client.write([9, 9])
        try healthy.pump()
        #expect(healthy.serverReceived == [9, 9])
        #expect(ERR_peek_error() == 0)
    }

    // MARK: - Reload

    @Test func reloadGivesNewSessionsTheNewCertificateAndKeepsOldOnes() throws {
        let cert = files.directory + "/live.pem", key = files.directory + "/live.key"
        try install(files.selfSignedCert, files.selfSignedKey, as: cert, key)
        let box = try TLSContextBox(certificateChainFile: cert, privateKeyFile: key)
        let old = try TLSPair(context: box.current)
        try old.handshake()
        #expect(old.client.peerSubject == "/CN=self.test")

        try install(files.chainFile, files.leafKey, as: cert, key)
        let fresh = try box.reload()
        #expect(box.current === fresh)
        let new = try TLSPair(context: box.current)
        try new.handshake()
        #expect(new.client.peerSubject == "/CN=localhost")

        old.client.write([1])
        try old.pump()
        try [UInt8]([2]).withUnsafeBytes { try old.server.send($0) }
        try old.pump()
        #expect(old.serverReceived == [1])
        #expect(old.client.received == [2])
    }

    @Test func failedReloadKeepsTheCurrentContext() throws {
        let cert = files.directory + "/reload.pem", key = files.directory + "/reload.key"
        try install(files.selfSignedCert, files.selfSignedKey, as: cert, key)
        let box = try TLSContextBox(certificateChainFile: cert, privateKeyFile: key)
        let before = box.current
        try install(files.selfSignedCert, files.otherKey, as: cert, key)
        #expect(throws: TLSError.keyMismatch(certificatePath: cert, keyPath: key)) { try box.reload() }
        #expect(box.current === before)
    }

    private func install(_ cert: String, _ key: String, as certPath: String, _ keyPath: String) throws {
        for (from, to) in [(cert, certPath), (key, keyPath)] {
            try? FileManager.default.removeItem(atPath: to)
            try FileManager.default.copyItem(atPath: from, toPath: to)
        }
    }

    // MARK: - Memory

    /// Measures what an idle session keeps after its handshake and one message each way:
    /// resident memory (/proc/self/statm) before and after making 2,000 of them (their clients
    /// freed), divided by 2,000. Prints the figure.
    ///
    /// OpenSSL 3.0's `SSL` struct alone is 7.6 KB; the negotiated state (two AES-GCM contexts,
    /// the session, the handshake hash, the key shares) adds about 6 KB. The bound catches a
    /// retained 16 KiB record buffer or a BIO buffer, which would double the figure.
    @Test func idleSessionsReleaseTheirRecordBuffers() throws {
        let context = try context()
        let count = 2000
        var sessions: [TLSSession] = []
        sessions.reserveCapacity(count)
        // Warm up lazy globals (BIO method, OpenSSL tables, fixtures) before the baseline.
        do { let warm = try TLSPair(context: context); try warm.handshake() }
        let before = residentBytes()
        for _ in 0..<count {
            let pair = try TLSPair(context: context)
            try pair.handshake()
            pair.client.write(Array(repeating: 1, count: 2000))
            try pair.pump()
            try [UInt8](repeating: 2, count: 2000).withUnsafeBytes { try pair.server.send($0) }
            try pair.pump()
            #expect(pair.server.isHandshakeComplete && !pair.server.hasOutput)
            sessions.append(pair.server)
        }
        let perSession = (residentBytes() - before) / count
        print("TLS idle session: \(perSession) bytes resident each (\(count) sessions, RSS delta)")
        #expect(perSession < 20 * 1024)
        withExtendedLifetime(sessions) {}
    }

    /// Resident set size: statm's second field, in pages.
    private func residentBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        return fields.count > 1 ? (Int(fields[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE))) : 0
    }
}
