// SPDX-License-Identifier: Apache-2.0
import GatewayCore
import Testing

@Suite struct APIKeySecretTests {
    @Test func generatesKeysThatParseBack() throws {
        for _ in 0..<200 {
            let key = APIKeySecret.generate()
            #expect(key.text.count == 53)
            #expect(key.text.hasPrefix("dmk_"))
            #expect(try APIKeySecret(parsing: key.text) == key)
        }
    }

    @Test func neverRepeatsAndUsesTheWholeAlphabet() {
        let keys = (0..<1000).map { _ in APIKeySecret.generate().text }
        #expect(Set(keys).count == 1000)
        let characters = Set(keys.joined().dropFirst(4))
        #expect(characters.count > 60)   // 62 digits, all in use over 1000 keys
    }

    @Test func catchesEverySingleCharacterTypo() throws {
        let key = APIKeySecret.generate().text
        let alphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
        var chars = Array(key)
        for i in 4..<chars.count {
            let original = chars[i]
            for replacement in alphabet.prefix(8) where replacement != original {
                chars[i] = replacement
                #expect(throws: KeyFormatError.checksumMismatch) { try APIKeySecret(parsing: String(chars)) }
            }
            chars[i] = original
        }
    }

    @Test(arguments: [
        ("", KeyFormatError.wrongPrefix),
        ("ghp_abc", .wrongPrefix),
        ("dmk_short", .wrongLength),
        ("dmk_" + String(repeating: "-", count: 49), .invalidCharacters),
        ("dmk_" + String(repeating: "é", count: 49), .wrongLength),
    ])
    func rejectsMalformedKeys(text: String, error: KeyFormatError) {
        #expect(throws: error) { try APIKeySecret(parsing: text) }
    }

    @Test func neverPrintsTheSecret() {
        let key = APIKeySecret.generate()
        #expect(!"\(key)".contains(key.text))
        #expect("\(key)" == key.displayStart + "…")
        #expect(key.displayStart.count == 8)
    }

    @Test func computesTheStandardCRC32() {
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)   // the CRC-32 check value
        #expect(Base62.encode(0) == "000000")
        #expect(Base62.encode(UInt32.max) == "4gfFC3")
    }
}
