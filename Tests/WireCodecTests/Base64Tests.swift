// SPDX-License-Identifier: Apache-2.0

import Testing
import TestSupport
import WireCodec

@Suite struct Base64Tests {
    /// RFC 4648 §10.
    @Test(arguments: [
        ("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy"),
    ])
    func encodesAndDecodesRFCVectors(_ plain: String, _ encoded: String) {
        #expect(Base64.encode(Array(plain.utf8)) == encoded)
        #expect(Base64.decode(encoded) == Array(plain.utf8))
    }

    @Test func usesTheStandardAlphabet() {
        #expect(Base64.encode([0xfb, 0xff, 0xbf]) == "+/+/")
        #expect(Base64.decode("+/+/") == [0xfb, 0xff, 0xbf])
    }

    @Test(arguments: [
        "Zg", "Zg=", "Zg===", "Zm9vY", "====", "Z===", "Zg==Zg==", "Zg=a", "Zm9v\n", " Zm9v", "Zm9-", "Zm9_",
        // Non-zero padding bits: not canonical.
        "Zh==", "Zm9=",
    ])
    func refusesNonCanonicalInput(_ text: String) {
        #expect(Base64.decode(text) == nil)
    }

    @Test func roundTripsEveryLengthUpTo64() {
        var rng = SplitMix64(seed: 64)
        for count in 0...64 {
            let bytes = (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            let text = Base64.encode(bytes)
            #expect(text.utf8.count == (count + 2) / 3 * 4)
            #expect(Base64.decode(text) == bytes, "\(count) bytes")
        }
    }
}
