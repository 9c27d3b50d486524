// SPDX-License-Identifier: Apache-2.0

import Testing
import WireCodec

@Suite struct CloseCodeTests {
    @Test(arguments: [UInt16(0), 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535])
    func refusesCodesNotAllowedOnTheWire(_ code: UInt16) {
        #expect(!CloseCode(rawValue: code).isValidOnWire)
        #expect(throws: WireError.invalidCloseCode(code)) {
            try ClosePayload(decoding: [UInt8(code >> 8), UInt8(code & 0xff)])
        }
    }

    @Test(arguments: [UInt16(1000), 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999])
    func acceptsCodesAllowedOnTheWire(_ code: UInt16) throws {
        #expect(CloseCode(rawValue: code).isValidOnWire)
        #expect(try ClosePayload(decoding: [UInt8(code >> 8), UInt8(code & 0xff)]) == ClosePayload(code: CloseCode(rawValue: code)))
    }

    @Test func decodesCodeAndReason() throws {
        let payload: [UInt8] = [0x03, 0xe8] + Array("bye €".utf8)
        #expect(try ClosePayload(decoding: payload) == ClosePayload(code: .normal, reason: "bye €"))
    }

    @Test func decodesAnEmptyBodyAsNoCode() throws {
        #expect(try ClosePayload(decoding: []) == ClosePayload(code: nil))
    }

    @Test func refusesAOneByteBody() {
        #expect(throws: WireError.invalidClosePayload) { try ClosePayload(decoding: [0x03]) }
    }

    @Test func refusesAReasonThatIsNotUTF8() {
        #expect(throws: WireError.invalidUTF8) { try ClosePayload(decoding: [0x03, 0xe8, 0xc0, 0xaf]) }
        #expect(throws: WireError.invalidUTF8) { try ClosePayload(decoding: [0x03, 0xe8, 0xf0, 0x9d, 0x84]) }
    }

    @Test func encodesCodeThenReason() {
        #expect(ClosePayload(code: .messageTooBig, reason: "big").encoded == [0x03, 0xf1, 0x62, 0x69, 0x67])
        #expect(ClosePayload(code: nil, reason: "ignored").encoded == [])
        #expect(ClosePayload(code: .slowConsumer).encoded == [0x10, 0x04])
    }

    @Test func cutsALongReasonAtACharacterBoundaryWithin125Bytes() throws {
        let ascii = ClosePayload(code: .normal, reason: String(repeating: "a", count: 200)).encoded
        #expect(ascii.count == 125)
        // é is 2 bytes: 61 of them fill 122 of the 123 reason bytes; the 62nd does not fit.
        let accented = ClosePayload(code: .normal, reason: String(repeating: "é", count: 100))
        #expect(accented.encoded.count == 124)
        #expect(try ClosePayload(decoding: accented.encoded).reason == String(repeating: "é", count: 61))
        // 𝄞 is 4 bytes: 30 fit (120), the 31st would need 124.
        let clefs = ClosePayload(code: .normal, reason: String(repeating: "𝄞", count: 40)).encoded
        #expect(clefs.count == 122)
    }

    @Test(arguments: [
        (WireError.frameTooLarge, CloseCode.messageTooBig), (.messageTooLarge, .messageTooBig), (.tooManyFragments, .messageTooBig),
        (.invalidUTF8, .invalidPayload), (.reservedBitsSet, .protocolError), (.unknownOpcode(3), .protocolError),
        (.maskingViolation, .protocolError), (.controlFrameTooLarge, .protocolError), (.fragmentedControlFrame, .protocolError),
        (.lengthTopBitSet, .protocolError), (.unexpectedContinuation, .protocolError), (.expectedContinuation, .protocolError),
        (.invalidCloseCode(999), .protocolError), (.invalidClosePayload, .protocolError),
    ])
    func mapsEveryWireErrorToACloseCode(_ error: WireError, _ code: CloseCode) {
        #expect(CloseCode(error) == code)
        #expect(CloseCode(error).isValidOnWire)
    }

    @Test func namesTheStandardCodes() {
        #expect(CloseCode.normal.rawValue == 1000)
        #expect(CloseCode.protocolError.rawValue == 1002)
        #expect(CloseCode.noStatus.rawValue == 1005)
        #expect(CloseCode.invalidPayload.rawValue == 1007)
        #expect(CloseCode.messageTooBig.rawValue == 1009)
        #expect(CloseCode.internalError.rawValue == 1011)
        #expect(CloseCode.slowConsumer.description == "4100")
    }
}
