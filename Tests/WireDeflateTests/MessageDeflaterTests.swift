// SPDX-License-Identifier: Apache-2.0
import Testing
import WireCodec
@testable import WireDeflate

/// Text with repeats near and far, so every window size matters.
private let sample: [UInt8] = {
    var text: [UInt8] = []
    var state: UInt32 = 1
    for i in 0..<40_000 {
        state = state &* 1_103_515_245 &+ 12_345
        text.append(i % 97 < 60 ? UInt8(ascii: "a") + UInt8(truncatingIfNeeded: (state >> 16) % 26) : UInt8(truncatingIfNeeded: i % 251))
    }
    return text + text.prefix(20_000)
}()

@Suite struct MessageDeflaterTests {
    @Test func compressesHelloToTheRFCVector() throws {   // RFC 7692 §7.2.3.1
        let deflater = MessageDeflater(contextTakeover: false)
        #expect(try deflater.compress(Array("Hello".utf8)) == Vector.hello)
        #expect(try deflater.compress(Array("Hello".utf8)) == Vector.hello)
    }

    @Test func compressesASecondHelloAgainstTheSharedWindow() throws {   // RFC 7692 §7.2.3.2
        let deflater = MessageDeflater(contextTakeover: true)
        #expect(try deflater.compress(Array("Hello".utf8)) == Vector.hello)
        #expect(try deflater.compress(Array("Hello".utf8)) == Vector.helloAgain)
    }

    @Test(arguments: [true, false])
    func compressesTheEmptyMessageToOneZeroByte(takeover: Bool) throws {   // RFC 7692 §7.2.3.6
        let deflater = MessageDeflater(contextTakeover: takeover)
        #expect(try deflater.compress([UInt8]()) == [0x00])
        _ = try deflater.compress(Array("Hello".utf8))
        #expect(try deflater.compress([UInt8]()) == [0x00])
        let inflater = MessageInflater(contextTakeover: takeover, maxMessageBytes: 16)
        #expect(try inflater.inflateMessage([[0x00]]) == [])
    }

    @Test(arguments: 9...15, [true, false])
    func roundTripsAtEveryWindowSize(windowBits: Int, takeover: Bool) throws {
        let deflater = MessageDeflater(windowBits: windowBits, memLevel: windowBits % 2 == 0 ? 8 : 1, contextTakeover: takeover)
        let inflater = MessageInflater(windowBits: windowBits, contextTakeover: takeover, maxMessageBytes: 1 << 20)
        let messages = [sample, Array(sample.prefix(300)), [], sample.reversed(), Array("Hello".utf8), sample]
        for message in messages {
            let payload = try deflater.compress(message)
            #expect(try inflater.inflateMessage([payload]) == message)
            // And split into frames, as a fragmenting sender would.
            let fragments = payload.chunks(count: 5)
            if takeover { continue }   // the window already moved on; one form per message
            #expect(try inflater.inflateMessage(fragments) == message)
        }
    }

    @Test func takeoverMakesARepeatedMessageSmaller() throws {
        let message = Array(sample.prefix(2_000))
        let fresh = MessageDeflater(contextTakeover: false)
        let takeover = MessageDeflater(contextTakeover: true)
        let first = try fresh.compress(message)
        #expect(try fresh.compress(message) == first)
        _ = try takeover.compress(message)
        #expect(try takeover.compress(message).count < first.count / 4)
    }

    @Test func followsTheAgreedParametersForEachRole() {
        let agreed = DeflateParameters(serverNoContextTakeover: true, clientNoContextTakeover: false,
                                       serverMaxWindowBits: 10, clientMaxWindowBits: 8)
        let server = MessageDeflater(parameters: agreed, role: .server)
        #expect(server.windowBits == 10 && !server.contextTakeover)
        let client = MessageDeflater(parameters: agreed, role: .client)
        #expect(client.windowBits == 9 && client.contextTakeover)
        let serverInflater = MessageInflater(parameters: agreed, role: .server, maxMessageBytes: 1)
        #expect(serverInflater.windowBits == 9 && serverInflater.contextTakeover)
        let clientInflater = MessageInflater(parameters: agreed, role: .client, maxMessageBytes: 1)
        #expect(clientInflater.windowBits == 10 && !clientInflater.contextTakeover)
    }

    @Test func measuresItsZlibStateAndReleasesItWhenIdle() throws {
        let deflater = MessageDeflater(windowBits: 15, memLevel: 8, contextTakeover: false)
        #expect(deflater.allocatedBytes == 0)
        _ = try deflater.compress(Array("Hello".utf8))
        // zlib 1.2.13: 268,096 bytes at windowBits 15, memLevel 8.
        #expect((250_000...300_000).contains(deflater.allocatedBytes), "\(deflater.allocatedBytes)")
        #expect(deflater.releaseIfIdle())
        #expect(deflater.allocatedBytes == 0)

        let lean = MessageDeflater(windowBits: 9, memLevel: 1, contextTakeover: true)
        _ = try lean.compress(Array("Hello".utf8))
        #expect((8_000...12_000).contains(lean.allocatedBytes), "\(lean.allocatedBytes)")
        #expect(!lean.releaseIfIdle(), "the peer's inflater refers to this window")
    }

    @Test func compressesLargeIncompressibleInput() throws {
        var state: UInt64 = 0x9e37_79b9_7f4a_7c15
        let noise = (0..<300_000).map { _ -> UInt8 in
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return UInt8(truncatingIfNeeded: state)
        }
        let payload = try MessageDeflater(level: 9, contextTakeover: false).compress(noise)
        #expect(payload.count < noise.count + noise.count / 100)
        #expect(try MessageInflater(contextTakeover: false, maxMessageBytes: noise.count).inflateMessage([payload]) == noise)
    }

    @Test func decidesWhatIsWorthCompressing() {
        let configuration = DeflateConfiguration()
        #expect(!configuration.shouldCompress(63))
        #expect(configuration.shouldCompress(64))
        #expect(configuration.invalidField == nil)
        #expect(DeflateConfiguration(serverMaxWindowBits: 8).invalidField == "serverMaxWindowBits")
        #expect(DeflateConfiguration(memLevel: 0).invalidField == "memLevel")
    }
}
