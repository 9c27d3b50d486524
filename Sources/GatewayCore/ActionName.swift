// SPDX-License-Identifier: Apache-2.0

/// The grammar of actions and permission patterns: `<service>:<api_name>`.
///
/// - service: ASCII letters, digits, `_`, `-`; not empty.
/// - api_name: segments of ASCII letters, digits, `_`, `-`, separated by `.` or `/`; no empty
///   segment (so no `..`, no leading or trailing separator). No percent-encoding, no spaces, no
///   non-ASCII: an action has exactly one spelling, so a rule cannot be side-stepped by another.
/// - patterns additionally allow `*` and `?` anywhere, and rules a leading `!` (deny).
public enum ActionName {
    /// Why an action or pattern is not well formed.
    public enum Problem: Error, Equatable, Sendable {
        case missingColon
        case emptyService
        case emptySegment
        case invalidCharacter(Character)
    }

    /// Checks a concrete action (no wildcards).
    public static func validateAction(_ text: String) -> Problem? { validate(text, wildcards: false) }

    /// Checks a permission pattern (wildcards allowed).
    public static func validatePattern(_ text: String) -> Problem? { validate(text, wildcards: true) }

    /// Checks a rule: a pattern with an optional leading `!`.
    public static func validateRule(_ text: String) -> Problem? {
        validate(text.hasPrefix("!") ? String(text.dropFirst()) : text, wildcards: true)
    }

    private static func validate(_ text: String, wildcards: Bool) -> Problem? {
        // The common case, a valid ASCII name, is checked on its bytes; any doubt takes the
        // character path below, which names the problem.
        if text.utf8.withContiguousStorageIfAvailable({ isValidASCII($0, wildcards: wildcards) }) == true { return nil }
        guard let colon = text.firstIndex(of: ":") else { return .missingColon }
        let service = text[..<colon]
        let api = text[text.index(after: colon)...]
        guard !service.isEmpty else { return .emptyService }
        for c in service where !(isWordCharacter(c) || (wildcards && (c == "*" || c == "?"))) {
            return .invalidCharacter(c)
        }
        var segmentLength = 0
        for c in api {
            if c == "." || c == "/" {
                guard segmentLength > 0 else { return .emptySegment }
                segmentLength = 0
            } else if isWordCharacter(c) || (wildcards && (c == "*" || c == "?")) {
                segmentLength += 1
            } else {
                return .invalidCharacter(c)
            }
        }
        return segmentLength > 0 ? nil : .emptySegment
    }

    private static func isValidASCII(_ bytes: UnsafeBufferPointer<UInt8>, wildcards: Bool) -> Bool {
        @inline(__always) func word(_ b: UInt8) -> Bool {
            (b >= 48 && b <= 57) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122) || b == UInt8(ascii: "_") || b == UInt8(ascii: "-")
                || (wildcards && (b == UInt8(ascii: "*") || b == UInt8(ascii: "?")))
        }
        guard let colon = bytes.firstIndex(of: UInt8(ascii: ":")), colon > 0 else { return false }
        for b in bytes[..<colon] where !word(b) { return false }
        var segment = 0
        for b in bytes[(colon + 1)...] {
            if b == UInt8(ascii: ".") || b == UInt8(ascii: "/") {
                guard segment > 0 else { return false }
                segment = 0
            } else if word(b) {
                segment += 1
            } else {
                return false
            }
        }
        return segment > 0
    }

    private static func isWordCharacter(_ c: Character) -> Bool {
        guard c.isASCII, let v = c.asciiValue else { return false }
        return (48...57).contains(v) || (65...90).contains(v) || (97...122).contains(v) || c == "_" || c == "-"
    }
}
