// SPDX-License-Identifier: Apache-2.0

import Testing
import WireCodec

// MARK: - Helpers shared by the codec tests

extension FrameParser {
    /// A server-side parser: every frame it reads must be masked.
    static func server(_ limits: FrameLimits = FrameLimits()) -> FrameParser {
        FrameParser(role: .server, limits: limits)
    }

    /// A client-side parser: every frame it reads must be unmasked.
    static func client(_ limits: FrameLimits = FrameLimits()) -> FrameParser {
        FrameParser(role: .client, limits: limits)
    }
}

/// RFC 6455 §5.7's masking key, as it appears on the wire.
let rfcMaskBytes: [UInt8] = [0x37, 0xfa, 0x21, 0x3d]
/// The same key as `FrameEncoder` and `applyMask` take it: first wire byte in the lowest byte.
let rfcMaskKey: UInt32 = 0x3d21_fa37

let helloBytes: [UInt8] = [0x48, 0x65, 0x6c, 0x6c, 0x6f]

/// Byte-at-a-time masking straight from RFC 6455 §5.3: `j = i MOD 4; out[i] = in[i] XOR key[j]`.
func naiveMask(_ bytes: [UInt8], key: [UInt8], offset: Int = 0) -> [UInt8] {
    bytes.enumerated().map { i, b in b ^ key[(i + offset) % 4] }
}

/// Payload bytes that differ from their neighbours, so a misplaced byte shows.
func patternBytes(_ count: Int) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) }
}

/// The ways P6 feeds a vector: whole, byte by byte, and in two at each of `cuts`.
func chunkings(_ wire: [UInt8], cuts: [Int]) -> [(String, [ArraySlice<UInt8>])] {
    var ways: [(String, [ArraySlice<UInt8>])] = [("whole", [wire[...]])]
    ways.append(("byte by byte", wire.indices.map { wire[$0...$0] }))
    for cut in cuts { ways.append(("cut at \(cut)", [wire[..<cut], wire[cut...]])) }
    return ways
}

/// Every cut for small vectors; for large ones, every cut in the header region and near the end,
/// and a stride through the payload (every cut of 64 KiB would copy ~8 GiB in a debug build).
func cuts(for wire: [UInt8]) -> [Int] {
    guard wire.count > 1024 else { return Array(0...wire.count) }
    return Array(0...40) + Array(stride(from: 41, to: wire.count - 40, by: 257)) + Array((wire.count - 40)...wire.count)
}

/// Wire bytes of one masked frame: header bytes as given, then `payload` masked with the RFC key.
func maskedFrame(_ header: [UInt8], _ payload: [UInt8]) -> [UInt8] {
    header + rfcMaskBytes + naiveMask(payload, key: rfcMaskBytes)
}

/// A named wire vector and the frames it must decode to.
struct FrameVector: Sendable, CustomTestStringConvertible {
    var name: String
    var role: WebSocketRole
    var wire: [UInt8]
    var frames: [WebSocketFrame]
    var testDescription: String { "\(name) (\(role))" }
}

// MARK: - RFC 6455 §5.7 vectors

enum RFCVectors {
    static let bin256 = patternBytes(256)
    static let bin64K = patternBytes(65536)

    static let helloFrames: [WebSocketFrame] = [.text("Hello")]
    static let fragmentedFrames: [WebSocketFrame] = [
        WebSocketFrame(fin: false, opcode: .text, payload: [0x48, 0x65, 0x6c]),
        WebSocketFrame(fin: true, opcode: .continuation, payload: [0x6c, 0x6f]),
    ]

    /// Unmasked, as a server sends them: what a client-role parser reads.
    static let client: [FrameVector] = [
        FrameVector(
            name: "single-frame unmasked text", role: .client,
            wire: [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f], frames: helloFrames),
        FrameVector(
            name: "fragmented unmasked text", role: .client,
            wire: [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f], frames: fragmentedFrames),
        FrameVector(
            name: "unmasked ping", role: .client,
            wire: [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f], frames: [WebSocketFrame(opcode: .ping, payload: helloBytes)]),
        FrameVector(
            name: "unmasked pong", role: .client,
            wire: [0x8a, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f], frames: [WebSocketFrame(opcode: .pong, payload: helloBytes)]),
        FrameVector(
            name: "256-byte binary, 16-bit length", role: .client,
            wire: [0x82, 0x7e, 0x01, 0x00] + bin256, frames: [.binary(bin256)]),
        FrameVector(
            name: "64 KiB binary, 64-bit length", role: .client,
            wire: [0x82, 0x7f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00] + bin64K, frames: [.binary(bin64K)]),
    ]

    /// Masked, as a client sends them: what a server-role parser reads.
    static let server: [FrameVector] = [
        FrameVector(
            name: "single-frame masked text", role: .server,
            wire: [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58], frames: helloFrames),
        FrameVector(
            name: "fragmented masked text", role: .server,
            wire: [0x01, 0x83, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x80, 0x82, 0x37, 0xfa, 0x21, 0x3d, 0x5b, 0x95],
            frames: fragmentedFrames),
        FrameVector(
            name: "masked ping", role: .server,
            wire: [0x89, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58],
            frames: [WebSocketFrame(opcode: .ping, payload: helloBytes)]),
        FrameVector(
            name: "masked pong", role: .server,
            wire: [0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58],
            frames: [WebSocketFrame(opcode: .pong, payload: helloBytes)]),
        FrameVector(
            name: "256-byte binary, 16-bit length", role: .server,
            wire: maskedFrame([0x82, 0xfe, 0x01, 0x00], bin256), frames: [.binary(bin256)]),
        FrameVector(
            name: "64 KiB binary, 64-bit length", role: .server,
            wire: maskedFrame([0x82, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00], bin64K),
            frames: [.binary(bin64K)]),
    ]
}

// MARK: - Vectors

@Suite struct FrameParserVectorTests {
    @Test(arguments: RFCVectors.client + RFCVectors.server)
    func parsesRFCVectorWholeByteByByteAndAtEverySplit(_ vector: FrameVector) throws {
        for (way, chunks) in chunkings(vector.wire, cuts: cuts(for: vector.wire)) {
            var parser = FrameParser(role: vector.role)
            let frames = try parser.feed(chunks)
            // One failure is enough; a 64 KiB mismatch printed 300 times helps nobody.
            guard frames == vector.frames else {
                Issue.record("\(vector.name) fed \(way): got \(frames.count) frame(s), payload sizes \(frames.map(\.payload.count))")
                return
            }
            #expect(!parser.isMidMessage, "\(way)")
        }
    }

    @Test func parsesMaskedHelloAtEverySplit() throws {   // RFC 6455 §5.7, P6 verbatim
        let wire: [UInt8] = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        for cut in 0...wire.count {
            var parser = FrameParser.server()
            #expect(try parser.feed([wire[..<cut], wire[cut...]]) == [.text("Hello")])
        }
    }

    @Test(arguments: RFCVectors.client)
    func serverRejectsUnmaskedVector(_ vector: FrameVector) {
        var parser = FrameParser.server()
        #expect(throws: WireError.maskingViolation) { try parser.feed(vector.wire) }
    }

    @Test(arguments: RFCVectors.server)
    func clientRejectsMaskedVector(_ vector: FrameVector) {
        var parser = FrameParser.client()
        #expect(throws: WireError.maskingViolation) { try parser.feed(vector.wire) }
    }

    @Test func parsesAllVectorsBackToBackInOneStream() throws {
        var parser = FrameParser.server()
        let wire = RFCVectors.server.flatMap(\.wire)
        #expect(try parser.feed(wire) == RFCVectors.server.flatMap(\.frames))
    }

    @Test func reportsNeedMoreDataUntilTheLastByte() throws {
        let wire: [UInt8] = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        var parser = FrameParser.server()
        for i in 0..<(wire.count - 1) {
            let (result, consumed) = try parseOnce(&parser, [wire[i]])
            #expect(result == .needMoreData, "byte \(i)")
            #expect(consumed == 1)
            #expect(parser.isMidMessage)
        }
        let (result, consumed) = try parseOnce(&parser, [wire[wire.count - 1]])
        #expect(result == .frame(.text("Hello")))
        #expect(consumed == 1)
        #expect(!parser.isMidMessage)
    }

    @Test func stopsAtTheEndOfEachFrame() throws {
        // Two frames in one buffer: one parse call takes the first and leaves the second untouched.
        let ping: [UInt8] = [0x89, 0x80] + rfcMaskBytes
        let pong: [UInt8] = [0x8a, 0x81] + rfcMaskBytes + [0x37 ^ 0x61]
        var parser = FrameParser.server()
        let (first, consumed) = try parseOnce(&parser, ping + pong)
        #expect(first == .frame(WebSocketFrame(opcode: .ping)))
        #expect(consumed == ping.count)
        #expect(try parseOnce(&parser, pong) == (.frame(WebSocketFrame(opcode: .pong, payload: [0x61])), pong.count))
    }
}

/// One `parse` call over `bytes`: its result and how many bytes it consumed.
func parseOnce(_ parser: inout FrameParser, _ bytes: [UInt8]) throws(WireError) -> (ParseResult, Int) {
    var outcome: Result<(ParseResult, Int), WireError> = .failure(.invalidClosePayload)
    bytes.withUnsafeBytes { raw in
        var cursor = ByteCursor(raw)
        do throws(WireError) {
            let result = try parser.parse(&cursor)
            outcome = .success((result, cursor.index))
        } catch {
            outcome = .failure(error)
        }
    }
    return try outcome.get()
}

// MARK: - Limits

@Suite struct FrameParserLimitTests {
    @Test func rejectsOversizeFrameOnItsHeader() throws {
        let limits = FrameLimits(maxFrameBytes: 1000, maxMessageBytes: 4000)
        // 1001 bytes declared: refused from the header alone, before any payload byte arrives.
        var parser = FrameParser.server(limits)
        #expect(throws: WireError.frameTooLarge) { try parser.feed([0x82, 0xfe, 0x03, 0xe9] + rfcMaskBytes) }
        // Exactly at the limit is fine.
        var atLimit = FrameParser.server(limits)
        let payload = patternBytes(1000)
        #expect(try atLimit.feed(maskedFrame([0x82, 0xfe, 0x03, 0xe8], payload)) == [.binary(payload)])
    }

    @Test func rejectsOversizeFrameWithSixtyFourBitLength() {
        var parser = FrameParser.server(FrameLimits(maxFrameBytes: 1 << 20))
        // 2^32 bytes declared.
        let header: [UInt8] = [0x82, 0xff, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00] + rfcMaskBytes
        #expect(throws: WireError.frameTooLarge) { try parser.feed(header) }
    }

    @Test(arguments: [WebSocketRole.server, .client])
    func rejectsSixtyFourBitLengthWithTopBitSet(_ role: WebSocketRole) {
        // RFC 6455 §5.2: "the most significant bit MUST be 0".
        let mask: UInt8 = role == .server ? 0x80 : 0
        let header: [UInt8] = [0x82, mask | 0x7f, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00] + (role == .server ? rfcMaskBytes : [])
        var parser = FrameParser(role: role, limits: FrameLimits(maxFrameBytes: .max, maxMessageBytes: .max))
        #expect(throws: WireError.lengthTopBitSet) { try parser.feed(header) }
        // Also when the header trickles in.
        var slow = FrameParser(role: role, limits: FrameLimits(maxFrameBytes: .max, maxMessageBytes: .max))
        #expect(throws: WireError.lengthTopBitSet) { try slow.feed(header.map { [$0] }) }
    }

    /// 1 opening frame, then `count` empty continuation frames, the last one final.
    static func emptyFragments(_ count: Int) -> [[UInt8]] {
        let open: [UInt8] = [0x01, 0x80] + rfcMaskBytes
        let more: [UInt8] = [0x00, 0x80] + rfcMaskBytes
        let last: [UInt8] = [0x80, 0x80] + rfcMaskBytes
        return [open] + Array(repeating: more, count: count - 1) + [last]
    }

    @Test func rejectsHundredThousandEmptyFragments() {
        var parser = FrameParser.server(FrameLimits(maxFragments: 1000))
        var accepted = 0
        var failure: WireError?
        for frame in Self.emptyFragments(100_000) {
            do throws(WireError) {
                accepted += try parser.feed(frame).count
            } catch {
                failure = error
                break
            }
        }
        #expect(failure == .tooManyFragments)
        #expect(accepted == 1000)
    }

    @Test func acceptsHundredThousandEmptyFragmentsUnderARaisedLimit() throws {
        var parser = FrameParser.server(FrameLimits(maxFragments: 200_000))
        let frames = try parser.feed(Self.emptyFragments(100_000))
        #expect(frames.count == 100_001)
        #expect(frames.first == WebSocketFrame(fin: false, opcode: .text))
        #expect(frames.last == WebSocketFrame(fin: true, opcode: .continuation))
        #expect(!parser.isMidMessage)
    }

    @Test func rejectsMessageTooLargeAcrossFragments() throws {
        var parser = FrameParser.server(FrameLimits(maxFrameBytes: 100, maxMessageBytes: 250))
        let chunk = patternBytes(100)
        #expect(try parser.feed(maskedFrame([0x02, 0xe4], chunk)).count == 1)
        #expect(try parser.feed(maskedFrame([0x00, 0xe4], chunk)).count == 1)
        // 300 > 250: refused on the third header, before its payload.
        #expect(throws: WireError.messageTooLarge) { try parser.feed([0x80, 0xe4] + rfcMaskBytes) }
    }

    @Test func countsOnlyTheCurrentMessageAgainstTheMessageLimit() throws {
        var parser = FrameParser.server(FrameLimits(maxFrameBytes: 100, maxMessageBytes: 150))
        let chunk = patternBytes(100)
        for _ in 0..<5 {
            #expect(try parser.feed(maskedFrame([0x82, 0xe4], chunk)) == [.binary(chunk)])
        }
    }

    @Test func acceptsMultiByteCharacterSplitAcrossFragments() throws {
        // "a€b" with € (E2 82 AC) cut into three frames.
        let wire = maskedFrame([0x01, 0x82], [0x61, 0xe2]) + maskedFrame([0x00, 0x81], [0x82])
            + maskedFrame([0x80, 0x82], [0xac, 0x62])
        for (way, chunks) in chunkings(wire, cuts: cuts(for: wire)) {
            var parser = FrameParser.server()
            let frames = try parser.feed(chunks)
            #expect(frames.map(\.opcode) == [.text, .continuation, .continuation], "\(way)")
            #expect(String(validating: frames.flatMap(\.payload), as: UTF8.self) == "a€b", "\(way)")
        }
    }

    @Test func rejectsInvalidUTF8OnTheFrameThatCarriesIt() throws {
        var parser = FrameParser.server()
        #expect(try parser.feed(maskedFrame([0x01, 0x82], [0x61, 0xe2])).count == 1)
        // 0x28 cannot continue E2: this frame fails although the message's final frame never came.
        #expect(throws: WireError.invalidUTF8) { try parser.feed(maskedFrame([0x00, 0x81], [0x28])) }
    }

    @Test func rejectsInvalidUTF8MidFrame() throws {
        // One 6-byte frame; the bad byte (FF) is the second. Feeding only the first 2 payload bytes fails.
        let wire = maskedFrame([0x81, 0x86], [0x61, 0xff, 0x61, 0x61, 0x61, 0x61])
        var parser = FrameParser.server()
        #expect(try parser.feed(Array(wire[..<7])).isEmpty)
        #expect(throws: WireError.invalidUTF8) { try parser.feed(Array(wire[7..<8])) }
    }

    @Test func rejectsMessageThatEndsInsideACharacter() throws {
        var parser = FrameParser.server()
        #expect(try parser.feed(maskedFrame([0x01, 0x82], [0x61, 0xe2])).count == 1)
        #expect(try parser.feed(maskedFrame([0x00, 0x81], [0x82])).count == 1)
        // The final frame is empty: the message ends with € missing its last byte.
        #expect(throws: WireError.invalidUTF8) { try parser.feed([0x80, 0x80] + rfcMaskBytes) }
    }

    @Test func doesNotValidateBinaryOrCompressedText() throws {
        var parser = FrameParser.server()
        #expect(try parser.feed(maskedFrame([0x82, 0x82], [0xff, 0xfe])) == [.binary([0xff, 0xfe])])
        var deflate = FrameParser.server()
        deflate.allowedReservedBits = 0x4
        #expect(
            try deflate.feed(maskedFrame([0xc1, 0x82], [0xff, 0xfe]))
                == [WebSocketFrame(rsv1: true, opcode: .text, payload: [0xff, 0xfe])])
    }
}

// MARK: - Protocol rules

@Suite struct FrameParserRuleTests {
    @Test(arguments: [UInt8(0x40), 0x20, 0x10, 0x70])
    func rejectsReservedBits(_ bits: UInt8) {
        var parser = FrameParser.server()
        #expect(throws: WireError.reservedBitsSet) { try parser.feed(maskedFrame([0x81 | bits, 0x85], helloBytes)) }
    }

    @Test func acceptsRSV1OnlyWhereTheExtensionAllowsIt() throws {
        var parser = FrameParser.server()
        parser.allowedReservedBits = 0x4
        // RSV1 on the first frame is fine; RSV2 is still not.
        #expect(try parser.feed(maskedFrame([0x41, 0x81], [0x61])) == [WebSocketFrame(fin: false, rsv1: true, opcode: .text, payload: [0x61])])
        // RFC 7692 §6.1: not on continuation frames ...
        var continuation = parser
        #expect(throws: WireError.reservedBitsSet) { try continuation.feed(maskedFrame([0xc0, 0x81], [0x61])) }
        // ... nor on control frames.
        var control = parser
        #expect(throws: WireError.reservedBitsSet) { try control.feed(maskedFrame([0xc9, 0x80], [])) }
        var rsv2 = FrameParser.server()
        rsv2.allowedReservedBits = 0x4
        #expect(throws: WireError.reservedBitsSet) { try rsv2.feed(maskedFrame([0xa1, 0x81], [0x61])) }
    }

    @Test func readsTheRFC7692CompressedHelloOnlyWithRSV1Claimed() throws {
        // RFC 7692 §7.2.3.1: "Hello" compressed, one unmasked frame. Inflating is WireDeflate's job;
        // the parser passes the payload through unvalidated.
        let wire: [UInt8] = [0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]
        var plain = FrameParser.client()
        #expect(throws: WireError.reservedBitsSet) { try plain.feed(wire) }
        var deflate = FrameParser.client()
        deflate.allowedReservedBits = 0x4
        #expect(
            try deflate.feed(wire)
                == [WebSocketFrame(rsv1: true, opcode: .text, payload: [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00])])
    }

    @Test(arguments: [UInt8(3), 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf])
    func rejectsUnknownOpcode(_ opcode: UInt8) {
        var parser = FrameParser.server()
        #expect(throws: WireError.unknownOpcode(opcode)) { try parser.feed(maskedFrame([0x80 | opcode, 0x80], [])) }
        var client = FrameParser.client()
        #expect(throws: WireError.unknownOpcode(opcode)) { try client.feed([0x80 | opcode, 0x00]) }
    }

    @Test func rejectsUnmaskedFrameFromClient() {
        var parser = FrameParser.server()
        #expect(throws: WireError.maskingViolation) { try parser.feed([0x81, 0x05] + helloBytes) }
        var empty = FrameParser.server()
        #expect(throws: WireError.maskingViolation) { try empty.feed([0x89, 0x00]) }
    }

    @Test func rejectsMaskedFrameFromServer() {
        var parser = FrameParser.client()
        #expect(throws: WireError.maskingViolation) { try parser.feed(maskedFrame([0x81, 0x85], helloBytes)) }
    }

    @Test(arguments: [UInt8(0x8), 0x9, 0xa])
    func rejectsControlFrameOver125Bytes(_ opcode: UInt8) throws {
        // 126 bytes in the 16-bit form, and 126 bytes in the 64-bit form.
        var short = FrameParser.server()
        #expect(throws: WireError.controlFrameTooLarge) { try short.feed([0x80 | opcode, 0xfe, 0x00, 0x7e] + rfcMaskBytes) }
        var long = FrameParser.server()
        #expect(throws: WireError.controlFrameTooLarge) {
            try long.feed([0x80 | opcode, 0xff, 0, 0, 0, 0, 0, 0, 0, 0x7e] + rfcMaskBytes)
        }
    }

    @Test func acceptsControlFrameOf125Bytes() throws {
        let payload = patternBytes(125)
        var parser = FrameParser.server()
        #expect(try parser.feed(maskedFrame([0x89, 0xfd], payload)) == [WebSocketFrame(opcode: .ping, payload: payload)])
    }

    @Test(arguments: [UInt8(0x8), 0x9, 0xa])
    func rejectsFragmentedControlFrame(_ opcode: UInt8) {
        var parser = FrameParser.server()
        #expect(throws: WireError.fragmentedControlFrame) { try parser.feed(maskedFrame([opcode, 0x80], [])) }
    }

    @Test func acceptsControlFramesBetweenFragments() throws {
        let wire = maskedFrame([0x01, 0x83], [0x48, 0x65, 0x6c])
            + maskedFrame([0x89, 0x82], [0x70, 0x31])
            + maskedFrame([0x8a, 0x80], [])
            + maskedFrame([0x80, 0x82], [0x6c, 0x6f])
        let expected: [WebSocketFrame] = [
            WebSocketFrame(fin: false, opcode: .text, payload: [0x48, 0x65, 0x6c]),
            WebSocketFrame(opcode: .ping, payload: [0x70, 0x31]),
            WebSocketFrame(opcode: .pong),
            WebSocketFrame(opcode: .continuation, payload: [0x6c, 0x6f]),
        ]
        for (way, chunks) in chunkings(wire, cuts: cuts(for: wire)) {
            var parser = FrameParser.server()
            #expect(try parser.feed(chunks) == expected, "\(way)")
        }
    }

    @Test func keepsUTF8StateAcrossAControlFrame() throws {
        // € split around a ping whose payload is not UTF-8: neither disturbs the other.
        let wire = maskedFrame([0x01, 0x81], [0xe2]) + maskedFrame([0x89, 0x81], [0xff])
            + maskedFrame([0x80, 0x82], [0x82, 0xac])
        var parser = FrameParser.server()
        #expect(try parser.feed(wire).count == 3)
    }

    @Test func rejectsContinuationWithoutStart() {
        var parser = FrameParser.server()
        #expect(throws: WireError.unexpectedContinuation) { try parser.feed(maskedFrame([0x80, 0x81], [0x61])) }
        // Nor after a message has ended.
        var after = FrameParser.server()
        #expect(throws: WireError.unexpectedContinuation) {
            try after.feed(maskedFrame([0x81, 0x81], [0x61]) + maskedFrame([0x80, 0x81], [0x61]))
        }
    }

    @Test(arguments: [UInt8(0x1), 0x2])
    func rejectsNewMessageWhileFragmented(_ opcode: UInt8) {
        var parser = FrameParser.server()
        #expect(throws: WireError.expectedContinuation) {
            try parser.feed(maskedFrame([0x02, 0x81], [0x61]) + maskedFrame([0x80 | opcode, 0x81], [0x61]))
        }
    }

    @Test func rejectsOneByteClosePayload() {
        var parser = FrameParser.server()
        #expect(throws: WireError.invalidClosePayload) { try parser.feed(maskedFrame([0x88, 0x81], [0x03])) }
    }

    @Test func acceptsEmptyClose() throws {
        var parser = FrameParser.server()
        #expect(try parser.feed(maskedFrame([0x88, 0x80], [])) == [WebSocketFrame(opcode: .close)])
    }

    @Test(arguments: [UInt16(0), 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000])
    func rejectsInvalidCloseCode(_ code: UInt16) {
        var parser = FrameParser.server()
        #expect(throws: WireError.invalidCloseCode(code)) {
            try parser.feed(maskedFrame([0x88, 0x82], [UInt8(code >> 8), UInt8(code & 0xff)]))
        }
    }

    @Test(arguments: [UInt16(1000), 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999])
    func acceptsValidCloseCode(_ code: UInt16) throws {
        let payload = [UInt8(code >> 8), UInt8(code & 0xff), 0x6f, 0x6b]
        var parser = FrameParser.server()
        #expect(try parser.feed(maskedFrame([0x88, 0x84], payload)) == [WebSocketFrame(opcode: .close, payload: payload)])
    }

    @Test func rejectsCloseReasonWithInvalidUTF8() {
        var parser = FrameParser.server()
        #expect(throws: WireError.invalidUTF8) { try parser.feed(maskedFrame([0x88, 0x84], [0x03, 0xe8, 0x61, 0xff])) }
        // A reason cut inside a character is invalid too.
        var truncated = FrameParser.server()
        #expect(throws: WireError.invalidUTF8) { try truncated.feed(maskedFrame([0x88, 0x84], [0x03, 0xe8, 0xe2, 0x82])) }
    }

    @Test func continuesAfterAControlFrameWithinACall() throws {
        // Close ends nothing at this layer: the parser reports it and keeps going.
        let wire = maskedFrame([0x88, 0x82], [0x03, 0xe8]) + maskedFrame([0x81, 0x81], [0x61])
        var parser = FrameParser.server()
        #expect(try parser.feed(wire) == [WebSocketFrame(opcode: .close, payload: [0x03, 0xe8]), .text("a")])
    }
}
