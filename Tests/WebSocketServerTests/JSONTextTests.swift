// SPDX-License-Identifier: Apache-2.0
import Foundation
@testable import Gateway
import Testing

/// The hand-written JSON of server messages must parse back to what was written.
@Suite struct JSONTextTests {
    @Test(arguments: ["plain", "quote \" and \\ backslash", "line\nbreak\ttab\r", "\u{0}\u{1f}\u{7f}", "héllo ✓ 🚪", "</script>", ""])
    func escapesStringsSoThatTheyParseBack(_ text: String) throws {
        let bytes = JSONText.object([("s", .string(text)), ("n", .int(-42)), ("b", .bool(true)), ("z", .null),
                                     ("a", .array([.string(text), .int(1)])), ("r", .raw(Array(#"{"x":[1,2]}"#.utf8)))]).bytes
        let object = try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
        #expect(object["s"] as? String == text)
        #expect(object["n"] as? Int == -42)
        #expect(object["b"] as? Bool == true)
        #expect(object["z"] is NSNull)
        #expect((object["a"] as? [Any])?.first as? String == text)
        #expect(((object["r"] as? [String: Any])?["x"] as? [Int]) == [1, 2])
    }

    @Test func keepsTheOrderMembersAreGivenIn() {
        let text = String(decoding: JSONText.object([("type", .string("welcome")), ("a", .int(1))]).bytes, as: UTF8.self)
        #expect(text == #"{"type":"welcome","a":1}"#)
    }
}
