// SPDX-License-Identifier: Apache-2.0
import GatewayCore
import Testing

@Suite struct WildcardTests {
    @Test(arguments: [
        ("pms:checkIn*", "pms:checkIn", true),
        ("pms:checkIn*", "pms:checkInGuest", true),
        ("pms:checkIn*", "pms:checkOut", false),
        ("pms:check??", "pms:checkIn", true),
        ("pms:check??", "pms:checkOut", false),
        ("*", "anything:at.all", true),
        ("*:read", "users:read", true),
        ("*:read", "users:write", false),
        ("PMS:CHECKIN", "pms:checkin", true),       // ASCII case folds
        ("a*b*c", "aXXbYYc", true),
        ("a*b*c", "aXXbYY", false),
        ("", "", true),
        ("", "x", false),
        ("?", "é", true),                            // one scalar
        ("é", "É", false),                           // non-ASCII is exact
        ("a**", "a", true),
        ("a*", "a*x", true),                          // found by the Rules fuzzer: `*` facing a literal `*`
        ("*b*", "a*b*c", true),
    ])
    func matchesLikeDOS(pattern: String, text: String, expected: Bool) {
        #expect(Wildcard(pattern).matches(text) == expected)
    }

    @Test func handlesPathologicalPatternsQuickly() {
        // Exponential backtracking would never finish this; the linear-space matcher does.
        let pattern = String(repeating: "a*", count: 50) + "b"
        let text = String(repeating: "a", count: 2000)
        #expect(!Wildcard(pattern).matches(text))
    }
}

@Suite struct ActionNameTests {
    @Test(arguments: ["pms:checkIn", "channel:subscribe.door-events", "svc:a/b.c", "a_b-c:x"])
    func acceptsCanonicalActions(_ action: String) {
        #expect(ActionName.validateAction(action) == nil)
    }

    @Test(arguments: [
        ("pms", ActionName.Problem.missingColon),
        (":x", .emptyService),
        ("pms:", .emptySegment),
        ("pms:a..b", .emptySegment),
        ("pms:a.", .emptySegment),
        ("pms:.a", .emptySegment),
        ("pms:a//b", .emptySegment),
        ("pms:check%49n", .invalidCharacter("%")),
        ("pms:check In", .invalidCharacter(" ")),
        ("pms:chéck", .invalidCharacter("é")),
        ("pms:check*", .invalidCharacter("*")),
    ])
    func rejectsAmbiguousActions(action: String, problem: ActionName.Problem) {
        #expect(ActionName.validateAction(action) == problem)
    }

    @Test func allowsWildcardsInPatternsAndBangInRules() {
        #expect(ActionName.validatePattern("pms:check*") == nil)
        #expect(ActionName.validatePattern("*:*") == nil)
        #expect(ActionName.validateRule("!pms:checkOut*") == nil)
        #expect(ActionName.validatePattern("!pms:x") == .invalidCharacter("!"))
    }
}
