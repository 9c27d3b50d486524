// SPDX-License-Identifier: Apache-2.0
import Testing
import WireCodec
@testable import WireDeflate

/// RFC 7692 §7.2.3 payloads (the frames without their 2-byte headers).
enum Vector {
    /// §7.2.3.1: "Hello" in one compressed DEFLATE block (frame `c1 07 f2 48 cd c9 c9 07 00`).
    static let hello: [UInt8] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]
    /// §7.2.3.2: the second "Hello", a back-reference into the first message's window.
    static let helloAgain: [UInt8] = [0xf2, 0x00, 0x11, 0x00, 0x00]
    /// §7.2.3.3: "Hello" in a DEFLATE block with no compression.
    static let stored: [UInt8] = [0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00]
    /// §7.2.3.4: "Hello" in a block with BFINAL set, then the empty stored block §7.2.1 adds.
    static let final: [UInt8] = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00]
    /// §7.2.3.5: "He" and "llo" in two DEFLATE blocks.
    static let twoBlocks: [UInt8] = [0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00]
    /// §7.2.3.6: the empty message.
    static let empty: [UInt8] = [0x00]

    static let all: [(name: String, payload: [UInt8], message: String)] = [
        ("7.2.3.1 one block", hello, "Hello"), ("7.2.3.3 stored", stored, "Hello"),
        ("7.2.3.4 BFINAL", final, "Hello"), ("7.2.3.5 two blocks", twoBlocks, "Hello"),
        ("7.2.3.6 empty", empty, ""),
    ]
}

extension MessageInflater {
    /// Feeds `chunks` as the frames of one message.
    func inflate(chunks: [ArraySlice<UInt8>]) throws(DeflateError) -> [UInt8] {
        var output: [UInt8] = []
        if chunks.isEmpty { try inflate([UInt8](), isFinal: true, appendingTo: &output) }
        for (i, chunk) in chunks.enumerated() {
            try inflate(chunk, isFinal: i == chunks.count - 1, appendingTo: &output)
        }
        return output
    }
}

@Suite struct MessageInflaterTests {
    @Test(arguments: Vector.all.map(\.name))
    func inflatesRFCVectorWholeByteByByteAndSplitAtEveryPoint(_ name: String) throws {
        let vector = Vector.all.first { $0.name == name }!
        let expected = Array(vector.message.utf8)
        let inflater = MessageInflater(contextTakeover: false, maxMessageBytes: 1 << 16)
        #expect(try inflater.inflateMessage([vector.payload]) == expected)
        #expect(try inflater.inflate(chunks: vector.payload.map { [$0][...] }) == expected)
        for cut in 0...vector.payload.count {
            let parts = [vector.payload[..<cut], vector.payload[cut...]]
            #expect(try inflater.inflate(chunks: parts) == expected, "cut at \(cut)")
        }
        #expect(!inflater.isMidMessage)
    }

    @Test func inflatesSecondHelloFromTheSharedWindow() throws {   // RFC 7692 §7.2.3.2
        let inflater = MessageInflater(contextTakeover: true, maxMessageBytes: 1024)
        #expect(try inflater.inflateMessage([Vector.hello]) == Array("Hello".utf8))
        #expect(try inflater.inflateMessage([Vector.helloAgain]) == Array("Hello".utf8))
    }

    @Test func refusesAReferenceIntoAWindowItDoesNotKeep() {
        let inflater = MessageInflater(contextTakeover: false, maxMessageBytes: 1024)
        _ = try? inflater.inflateMessage([Vector.hello])
        #expect(throws: DeflateError.invalidData) { try inflater.inflateMessage([Vector.helloAgain]) }
    }

    @Test func keepsTheWindowAcrossAMessageThatEndedWithBFINAL() throws {   // §7.2.3.4, then §7.2.3.2
        let inflater = MessageInflater(contextTakeover: true, maxMessageBytes: 1024)
        #expect(try inflater.inflateMessage([Vector.final]) == Array("Hello".utf8))
        #expect(try inflater.inflateMessage([Vector.helloAgain]) == Array("Hello".utf8))
    }

    @Test func takesAMessageWithNoPayloadAsEmpty() throws {
        let inflater = MessageInflater(contextTakeover: true, maxMessageBytes: 1024)
        #expect(try inflater.inflateMessage([[UInt8]()]) == [])
        #expect(try inflater.inflateMessage([Vector.hello]) == Array("Hello".utf8))
    }

    @Test func rejectsCorruptData() throws {
        let inflater = MessageInflater(contextTakeover: false, maxMessageBytes: 1024)
        // BTYPE 11 is reserved (RFC 1951 §3.2.3).
        #expect(throws: DeflateError.invalidData) { try inflater.inflateMessage([[0xff, 0xff, 0xff]]) }
        // A stored block whose NLEN is not the complement of LEN.
        #expect(throws: DeflateError.invalidData) { try inflater.inflateMessage([[0x00, 0x05, 0x00, 0x00, 0x00]]) }
        // Still usable afterwards: an error drops only the message.
        #expect(try inflater.inflateMessage([Vector.hello]) == Array("Hello".utf8))
    }

    @Test func rejectsAMessageThatStopsInsideABlock() {
        let inflater = MessageInflater(contextTakeover: false, maxMessageBytes: 1024)
        // "Hello" without the end-of-block code and empty stored block.
        #expect(throws: DeflateError.invalidData) { try inflater.inflateMessage([Array(Vector.hello.prefix(4))]) }
    }

    @Test func acceptsAMessageOfExactlyTheLimitAndRefusesOneByteMore() throws {
        let message = [UInt8](repeating: 0x61, count: 100_000)
        let payload = try MessageDeflater(contextTakeover: false).compress(message)
        let exact = MessageInflater(contextTakeover: false, maxMessageBytes: message.count)
        #expect(try exact.inflateMessage([payload]) == message)
        let short = MessageInflater(contextTakeover: false, maxMessageBytes: message.count - 1)
        #expect(throws: DeflateError.messageTooLarge) { try short.inflateMessage([payload]) }
        #expect(try short.inflateMessage([Vector.hello]) == Array("Hello".utf8))
    }

    @Test func countsTheLimitPerMessageNotPerFragment() throws {
        let message = [UInt8](repeating: 0x62, count: 10_000)
        let payload = try MessageDeflater(contextTakeover: false).compress(message)
        let inflater = MessageInflater(contextTakeover: false, maxMessageBytes: 9_999)
        var output: [UInt8] = []
        var failure: DeflateError?
        for (i, byte) in payload.enumerated() {
            do throws(DeflateError) {
                try inflater.inflate([byte], isFinal: i == payload.count - 1, appendingTo: &output)
                output.removeAll(keepingCapacity: true)   // the caller may consume output early
            } catch {
                failure = error
                break
            }
        }
        #expect(failure == .messageTooLarge)
        #expect(!inflater.isMidMessage)
    }

    @Test func measuresItsZlibStateAndReleasesItWhenIdle() throws {
        let inflater = MessageInflater(windowBits: 15, contextTakeover: false, maxMessageBytes: 1024)
        #expect(inflater.allocatedBytes == 0)
        _ = try inflater.inflateMessage([Vector.hello])
        // zlib 1.2.13: 7,160 bytes of state + the 32 KiB window + z_stream and counter.
        #expect((32_768...48_000).contains(inflater.allocatedBytes), "\(inflater.allocatedBytes)")
        #expect(inflater.releaseIfIdle())
        #expect(inflater.allocatedBytes == 0)
        #expect(try inflater.inflateMessage([Vector.hello]) == Array("Hello".utf8))

        let small = MessageInflater(windowBits: 9, contextTakeover: false, maxMessageBytes: 1024)
        _ = try small.inflateMessage([Vector.hello])
        #expect((512...10_000).contains(small.allocatedBytes), "\(small.allocatedBytes)")
    }

    @Test func keepsATakeoverWindowThatHoldsData() throws {
        let inflater = MessageInflater(contextTakeover: true, maxMessageBytes: 1024)
        #expect(inflater.releaseIfIdle())   // nothing to keep yet
        _ = try inflater.inflateMessage([Vector.hello])
        #expect(!inflater.releaseIfIdle())
        #expect(try inflater.inflateMessage([Vector.helloAgain]) == Array("Hello".utf8))
    }

    @Test func doesNotReleaseMidMessage() throws {
        let inflater = MessageInflater(contextTakeover: false, maxMessageBytes: 1024)
        var output: [UInt8] = []
        try inflater.inflate(Vector.hello.prefix(3), isFinal: false, appendingTo: &output)
        #expect(inflater.isMidMessage)
        #expect(!inflater.releaseIfIdle())
        try inflater.inflate(Vector.hello.dropFirst(3), isFinal: true, appendingTo: &output)
        #expect(output == Array("Hello".utf8))
        #expect(inflater.releaseIfIdle())
    }

    @Test func inflatesWithAWindowOfNineWhenTheClientAgreedToEight() throws {
        let inflater = MessageInflater(parameters: DeflateParameters(clientMaxWindowBits: 8), maxMessageBytes: 1 << 20)
        #expect(inflater.windowBits == 9)
        // What a zlib client asked for 8 bits sends: data compressed with a 9-bit window.
        let message = (0..<20_000).map { UInt8(truncatingIfNeeded: $0 % 300 == 0 ? $0 / 7 : $0 % 11) }
        let payload = try MessageDeflater(windowBits: 9, contextTakeover: false).compress(message)
        #expect(try inflater.inflateMessage([payload]) == message)
    }

    @Test func mapsErrorsToCloseCodes() {
        #expect(CloseCode(DeflateError.messageTooLarge) == .messageTooBig)
        #expect(CloseCode(DeflateError.invalidData) == .invalidPayload)
        #expect(CloseCode(DeflateError.outOfMemory) == .internalError)
    }
}
