// SPDX-License-Identifier: Apache-2.0
// libFuzzer entry for the rule language and the key parser (GatewayCore's pure parts).
// Built by scripts/fuzz.sh with Sources/GatewayCore/{CRC32,Base62,APIKeySecret,Wildcard,ActionName}.swift.

/// A slow, obviously right matcher (exponential in stars: inputs are kept short).
func referenceMatch(_ p: ArraySlice<Unicode.Scalar>, _ t: ArraySlice<Unicode.Scalar>) -> Bool {
    guard let first = p.first else { return t.isEmpty }
    if first == "*" { return referenceMatch(p.dropFirst(), t) || (!t.isEmpty && referenceMatch(p, t.dropFirst())) }
    guard let c = t.first else { return false }
    return (first == "?" || Wildcard.fold(first) == Wildcard.fold(c)) && referenceMatch(p.dropFirst(), t.dropFirst())
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let text = String(decoding: bytes, as: UTF8.self)

    // The grammar: whatever it accepts has one spelling.
    if ActionName.validateAction(text) == nil {
        if text.contains("..") || text.contains("%") || text.contains(" ") || !text.allSatisfy(\.isASCII) || text.hasSuffix(".") {
            fatalError("accepted a non-canonical action: \(text.debugDescription)")
        }
    }
    _ = ActionName.validatePattern(text)
    _ = ActionName.validateRule(text)

    // The key parser: never crashes; what it accepts re-parses and keeps its shape.
    if let key = try? APIKeySecret(parsing: text) {
        guard key.text.utf8.count == APIKeySecret.length, (try? APIKeySecret(parsing: key.text)) == key,
              !"\(key)".contains(key.text) else { fatalError("key parser inconsistency: \(text.debugDescription)") }
    }

    // Wildcards against the reference: pattern and text split at the first 0x00, both short.
    if let split = bytes.firstIndex(of: 0) {
        let p = Array(String(decoding: bytes[..<split], as: UTF8.self).unicodeScalars.prefix(10))
        let t = Array(String(decoding: bytes[(split + 1)...], as: UTF8.self).unicodeScalars.prefix(12))
        let pattern = String(String.UnicodeScalarView(p))
        let subject = String(String.UnicodeScalarView(t))
        if Wildcard(pattern).matches(subject) != referenceMatch(p[...], t[...]) {
            fatalError("wildcard disagrees with the reference: \(pattern.debugDescription) vs \(subject.debugDescription)")
        }
    }
    return 0
}
