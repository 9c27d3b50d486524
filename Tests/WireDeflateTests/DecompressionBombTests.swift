// SPDX-License-Identifier: Apache-2.0
import Testing
@testable import WireDeflate

/// A raw DEFLATE stream of `chunks` MiB of zeros, built from takeover deflater output so that
/// only one MiB of plain text ever exists. Each `compress` ends in a sync flush whose
/// `00 00 ff ff` was stripped (RFC 7692 §7.2.1); putting it back between the pieces makes them
/// one continuous stream, and the last piece keeps it stripped, as a message payload does.
///
/// DEFLATE cannot beat about 1032:1 (a 258-byte match in 1-2 bits), so 1 GiB of zeros needs
/// about 1 MiB, not 1 KiB: this bomb is ~1 MiB that inflates to 1 GiB.
func makeBomb(mebibytes chunks: Int) throws -> [UInt8] {
    let deflater = MessageDeflater(windowBits: 15, memLevel: 9, level: 9, contextTakeover: true)
    let zeros = [UInt8](repeating: 0, count: 1 << 20)
    var bomb: [UInt8] = []
    for i in 0..<chunks {
        if i > 0 { bomb += [0x00, 0x00, 0xff, 0xff] }
        bomb += try deflater.compress(zeros)
    }
    return bomb
}

/// Generated once for the whole suite: 1 GiB of zeros takes a few seconds to deflate.
let gibibyteBomb: [UInt8] = try! makeBomb(mebibytes: 1024)

@Suite struct DecompressionBombTests {
    static let limit = 1 << 20

    @Test func bombIsSmallAndReallyInflatesToOneGibibyte() throws {
        #expect(gibibyteBomb.count < 1_100_000, "\(gibibyteBomb.count) bytes")
        // Consume the output as it arrives so the check itself stays small; the limit still
        // counts the whole message.
        let inflater = MessageInflater(contextTakeover: false, maxMessageBytes: 1 << 30)
        var total = 0
        var output: [UInt8] = []
        let fragments = gibibyteBomb.chunks(count: 64)
        for (i, fragment) in fragments.enumerated() {
            try inflater.inflate(fragment, isFinal: i == fragments.count - 1, appendingTo: &output)
            total += output.count
            if i == 0 { #expect(!output.isEmpty && output.allSatisfy { $0 == 0 }) }
            output.removeAll(keepingCapacity: true)
        }
        #expect(total == 1 << 30)
    }

    @Test func stopsABombAtTheLimitWithoutGrowingPastIt() {
        let inflater = MessageInflater(contextTakeover: false, maxMessageBytes: Self.limit)
        var output: [UInt8] = []
        #expect(throws: DeflateError.messageTooLarge) {
            try inflater.inflate(gibibyteBomb, isFinal: true, appendingTo: &output)
        }
        #expect(output.count <= Self.limit)
        #expect(output.capacity <= Self.limit + 64, "capacity \(output.capacity)")
        #expect(!inflater.isMidMessage)
    }

    @Test func stopsABombFedInAThousandFragments() {
        let inflater = MessageInflater(contextTakeover: false, maxMessageBytes: Self.limit)
        var output: [UInt8] = []
        var failure: DeflateError?
        var fed = 0
        let fragments = gibibyteBomb.chunks(count: 1000)
        for (i, fragment) in fragments.enumerated() {
            do throws(DeflateError) {
                try inflater.inflate(fragment, isFinal: i == fragments.count - 1, appendingTo: &output)
                fed += 1
            } catch {
                failure = error
                break
            }
            #expect(output.count <= Self.limit)
        }
        #expect(failure == .messageTooLarge)
        #expect(fed < 5, "the limit falls within the first few KiB of input")
        #expect(output.capacity <= Self.limit + 64, "capacity \(output.capacity)")
    }

    @Test func limitsEachMessageWhenTheWindowCarriesOver() throws {
        // Takeover: message 1 fills the window with zeros, message 2 is a few bytes that copy
        // from it. Each message is measured on its own.
        let deflater = MessageDeflater(contextTakeover: true)
        let first = [UInt8](repeating: 0, count: 32 * 1024)
        let second = [UInt8](repeating: 0, count: 4 << 20)
        let payloads = [try deflater.compress(first), try deflater.compress(second)]
        #expect(payloads[1].count < 8 * 1024)

        let roomy = MessageInflater(contextTakeover: true, maxMessageBytes: 4 << 20)
        #expect(try roomy.inflateMessage([payloads[0]]) == first)
        #expect(try roomy.inflateMessage([payloads[1]]) == second)

        // The first message fits; the second is refused although both together were
        // allowed for one message above, and its payload alone is small.
        let tight = MessageInflater(contextTakeover: true, maxMessageBytes: 1 << 20)
        #expect(try tight.inflateMessage([payloads[0]]) == first)
        var output: [UInt8] = []
        #expect(throws: DeflateError.messageTooLarge) {
            try tight.inflate(payloads[1], isFinal: true, appendingTo: &output)
        }
        #expect(output.count <= 1 << 20)
        #expect(output.capacity <= (1 << 20) + 64)
    }

    @Test func limitsEveryMessageOfABombSpreadOverSeveralMessages() throws {
        // Ten messages of 512 KiB, compressed with takeover: each passes a 512 KiB limit, and
        // the same stream against a 511 KiB limit fails on the first message.
        let deflater = MessageDeflater(contextTakeover: true)
        let message = [UInt8](repeating: 0, count: 512 * 1024)
        let payloads = try (0..<10).map { _ throws(DeflateError) in try deflater.compress(message) }
        let exact = MessageInflater(contextTakeover: true, maxMessageBytes: message.count)
        for payload in payloads {
            #expect(try exact.inflateMessage([payload]).count == message.count)
        }
        let under = MessageInflater(contextTakeover: true, maxMessageBytes: message.count - 1)
        #expect(throws: DeflateError.messageTooLarge) { try under.inflateMessage([payloads[0]]) }
    }
}

extension Array {
    /// `count` consecutive slices of nearly equal size.
    func chunks(count parts: Int) -> [ArraySlice<Element>] {
        let size = (count + parts - 1) / parts
        return stride(from: 0, to: count, by: size).map { self[$0..<Swift.min($0 + size, count)] }
    }
}
