// SPDX-License-Identifier: Apache-2.0

import Testing
import TestSupport
import WireCodec

/// Whole-input verdict: no bad byte and no character left open.
private func validates(_ bytes: [UInt8]) -> Bool {
    var validator = UTF8Validator()
    return validator.validate(bytes) && validator.isComplete
}

/// Feeds `chunks` to one validator, stopping at the first `false`; returns each verdict.
private func verdicts(_ chunks: [[UInt8]]) -> [Bool] {
    var validator = UTF8Validator()
    var out: [Bool] = []
    for chunk in chunks {
        out.append(validator.validate(chunk))
        if out.last == false { break }
    }
    return out
}

/// Swift's own decoder, the reference.
private func swiftAccepts(_ bytes: [UInt8]) -> Bool {
    String(validating: bytes, as: UTF8.self) != nil
}

/// A named byte sequence and whether it is valid UTF-8.
struct UTF8Case: Sendable, CustomTestStringConvertible {
    var name: String
    var bytes: [UInt8]
    var valid: Bool
    init(_ name: String, _ bytes: [UInt8], _ valid: Bool) {
        self.name = name
        self.bytes = bytes
        self.valid = valid
    }
    var testDescription: String { name }
}

@Suite struct UTF8ValidatorTests {
    /// Tricky sequences and whether they are valid UTF-8 (RFC 3629 §4, Unicode Table 3-7).
    static let tricky: [UTF8Case] = [
        UTF8Case("empty", [], true),
        UTF8Case("ASCII", Array("Hello, world! 0123456789".utf8), true),
        UTF8Case("NUL", [0x00], true),
        UTF8Case("2-byte é", [0xc3, 0xa9], true),
        UTF8Case("3-byte €", [0xe2, 0x82, 0xac], true),
        UTF8Case("4-byte 𝄞", [0xf0, 0x9d, 0x84, 0x9e], true),
        UTF8Case("U+0080", [0xc2, 0x80], true),
        UTF8Case("U+07FF", [0xdf, 0xbf], true),
        UTF8Case("U+0800", [0xe0, 0xa0, 0x80], true),
        UTF8Case("U+D7FF, last before surrogates", [0xed, 0x9f, 0xbf], true),
        UTF8Case("U+E000, first after surrogates", [0xee, 0x80, 0x80], true),
        UTF8Case("U+FFFF", [0xef, 0xbf, 0xbf], true),
        UTF8Case("U+10000", [0xf0, 0x90, 0x80, 0x80], true),
        UTF8Case("U+10FFFF", [0xf4, 0x8f, 0xbf, 0xbf], true),
        UTF8Case("ASCII run then é at offset 8", Array("abcdefgh".utf8) + [0xc3, 0xa9], true),
        UTF8Case("overlong / (C0 AF)", [0xc0, 0xaf], false),
        UTF8Case("overlong NUL (C0 80)", [0xc0, 0x80], false),
        UTF8Case("overlong C1 BF", [0xc1, 0xbf], false),
        UTF8Case("overlong 3-byte (E0 80 AF)", [0xe0, 0x80, 0xaf], false),
        UTF8Case("overlong 3-byte U+07FF (E0 9F BF)", [0xe0, 0x9f, 0xbf], false),
        UTF8Case("overlong 4-byte (F0 80 80 AF)", [0xf0, 0x80, 0x80, 0xaf], false),
        UTF8Case("overlong 4-byte U+FFFF (F0 8F BF BF)", [0xf0, 0x8f, 0xbf, 0xbf], false),
        UTF8Case("surrogate U+D800 (ED A0 80)", [0xed, 0xa0, 0x80], false),
        UTF8Case("surrogate U+DFFF (ED BF BF)", [0xed, 0xbf, 0xbf], false),
        UTF8Case("surrogate pair (ED A0 80 ED B0 80)", [0xed, 0xa0, 0x80, 0xed, 0xb0, 0x80], false),
        UTF8Case("above U+10FFFF (F4 90 80 80)", [0xf4, 0x90, 0x80, 0x80], false),
        UTF8Case("F5 lead", [0xf5, 0x80, 0x80, 0x80], false),
        UTF8Case("FE", [0xfe], false),
        UTF8Case("FF", [0xff], false),
        UTF8Case("lone continuation 80", [0x80], false),
        UTF8Case("lone continuation BF after ASCII", [0x61, 0xbf], false),
        UTF8Case("truncated 2-byte", [0xc3], false),
        UTF8Case("truncated 3-byte", [0xe2, 0x82], false),
        UTF8Case("truncated 4-byte", [0xf0, 0x9d, 0x84], false),
        UTF8Case("truncated then ASCII", [0xe2, 0x82, 0x61], false),
        UTF8Case("5-byte form (F8 88 80 80 80)", [0xf8, 0x88, 0x80, 0x80, 0x80], false),
        UTF8Case("ASCII run then FF at offset 9", Array("abcdefghi".utf8) + [0xff], false),
        UTF8Case("Autobahn 6.3.1 (κόσμε + ED A0 80 + edited)", [0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80, 0x65, 0x64, 0x69, 0x74, 0x65, 0x64], false),
    ]

    @Test(arguments: tricky)
    func agreesWithSwiftOnTrickySequences(_ sample: UTF8Case) {
        let (name, bytes, valid) = (sample.name, sample.bytes, sample.valid)
        #expect(validates(bytes) == valid, "\(name)")
        #expect(swiftAccepts(bytes) == valid, "reference disagrees on \(name)")
    }

    @Test(arguments: tricky)
    func givesTheSameVerdictAtEverySplit(_ sample: UTF8Case) {
        let (name, bytes, valid) = (sample.name, sample.bytes, sample.valid)
        for cut in 0...bytes.count {
            var validator = UTF8Validator()
            let ok = validator.validate(bytes[..<cut]) && validator.validate(bytes[cut...]) && validator.isComplete
            #expect(ok == valid, "\(name), cut at \(cut)")
        }
        var bytewise = UTF8Validator()
        let ok = bytes.allSatisfy { bytewise.validate([$0]) } && bytewise.isComplete
        #expect(ok == valid, "\(name), byte by byte")
    }

    @Test func failsOnTheFirstImpossibleByte() {
        // ED A0 80: A0 is the first byte that can never be right (surrogate).
        #expect(verdicts([[0xed], [0xa0], [0x80]]) == [true, false])
        // F4 90: beyond U+10FFFF as soon as 90 arrives.
        #expect(verdicts([[0xf4], [0x90], [0x80, 0x80]]) == [true, false])
        // E0 80: overlong as soon as 80 arrives.
        #expect(verdicts([[0x61, 0xe0], [0x80], [0x80]]) == [true, false])
        // C0 and F5 fail on their own.
        #expect(verdicts([[0xc0], [0x80]]) == [false])
        #expect(verdicts([[0x61], [0xf5]]) == [true, false])
        // A character split over three chunks stays open until its last byte.
        var validator = UTF8Validator()
        let first = validator.validate([0xf0, 0x9d])
        let openAfterFirst = !validator.isComplete
        let second = validator.validate([0x84])
        let openAfterSecond = !validator.isComplete
        let third = validator.validate([0x9e])
        #expect([first, openAfterFirst, second, openAfterSecond, third, validator.isComplete] == [true, true, true, true, true, true])
    }

    @Test func agreesWithSwiftOnEveryTwoByteSequence() {
        var disagreements: [[UInt8]] = []
        for a in 0...255 {
            for b in 0...255 {
                let bytes = [UInt8(a), UInt8(b)]
                if validates(bytes) != swiftAccepts(bytes) { disagreements.append(bytes) }
            }
        }
        #expect(disagreements.isEmpty)
    }

    @Test func agreesWithSwiftOnEveryLeadAndTwoContinuationBytes() {
        // Every E0-F4 lead with every second byte, a valid-range third byte, and (for 4-byte leads) a fourth.
        var disagreements: [[UInt8]] = []
        for lead in 0xe0...0xf4 {
            for second in 0...255 {
                for tail in [[0x80], [0xbf], [0x80, 0x80], [0xbf, 0xbf], [0x41]] as [[UInt8]] {
                    let bytes = [UInt8(lead), UInt8(second)] + tail
                    if validates(bytes) != swiftAccepts(bytes) { disagreements.append(bytes) }
                }
            }
        }
        #expect(disagreements.isEmpty)
    }

    @Test func agreesWithSwiftOnRandomHighByteSequences() {
        // Seeded, so a failure reproduces; bytes biased toward the lead/continuation ranges.
        var rng = SplitMix64(seed: 0x5eed)
        let alphabet: [UInt8] = [0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc2, 0xdf, 0xe0, 0xe1, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf4, 0xf5, 0xff]
        var disagreements: [[UInt8]] = []
        for _ in 0..<20_000 {
            let count = Int(rng.next() % 12)
            let bytes = (0..<count).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] }
            if validates(bytes) != swiftAccepts(bytes) { disagreements.append(bytes) }
        }
        #expect(disagreements.isEmpty)
    }

    @Test func failsInsideSwiftsMaximalInvalidSubparts() {
        // Unicode §3.9 D93b: Swift's parser reports each maximal invalid subpart. Between them the
        // validator must accept; inside one (or on the byte right after it) it must fail: fast, not early.
        var rng = SplitMix64(seed: 0xd93b)
        let alphabet: [UInt8] = [0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc2, 0xdf, 0xe0, 0xe1, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf4, 0xf5, 0xff]
        var problems: [String] = []
        for _ in 0..<20_000 {
            let count = Int(rng.next() % 12)
            let bytes = (0..<count).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] }
            if let problem = subpartProblem(bytes) { problems.append("\(bytes): \(problem)") }
        }
        #expect(problems.isEmpty, "\(problems.prefix(5))")
    }

    @Test func acceptsLongValidText() {
        let text = Array(String(repeating: "ASCII and 𝄞 and é and € ", count: 200).utf8)
        #expect(validates(text))
        #expect(validates(Array(repeating: 0x61, count: 1001)))
    }
}

/// nil when the validator fails exactly within each maximal invalid subpart Swift's parser reports.
private func subpartProblem(_ bytes: [UInt8]) -> String? {
    var parser = Unicode.UTF8.ForwardParser()
    var iterator = bytes.makeIterator()
    var start = 0   // where the current validator started
    var pos = 0     // bytes Swift has parsed
    while true {
        switch parser.parseScalar(from: &iterator) {
        case .valid(let scalar):
            pos += scalar.count
        case .emptyInput:
            var validator = UTF8Validator()
            return validator.validate(bytes[start..<pos]) && validator.isComplete ? nil : "rejected valid \(start)..<\(pos)"
        case .error(let length):
            var validator = UTF8Validator()
            var failure: Int?
            for i in start..<min(pos + length + 1, bytes.count) where !validator.validate(bytes[i...i]) {
                failure = i
                break
            }
            if let failure {
                if failure < pos || failure > pos + length { return "failed at \(failure), Swift's subpart is \(pos)..<\(pos + length)" }
            } else if pos + length != bytes.count || validator.isComplete {
                return "accepted invalid \(pos)..<\(pos + length)"
            }
            start = pos + length
            pos = start
        }
    }
}
