// SPDX-License-Identifier: Apache-2.0
import GatewayCore

/// What a text field of the admin API accepts: one check used by the service and the body
/// parser, and the JSON Schema (length counted in Unicode scalars, as JSON Schema counts them;
/// character classes spelled out, so the schema's regex and this code agree on every scalar).
enum FieldRule: Sendable {
    /// A display name: 1–200 scalars, no control characters, not only spaces; stored without
    /// leading and trailing spaces.
    case name
    /// Free text of at most `maxLength` scalars.
    case text(maxLength: Int)
    /// The id of another object (a user, a group); whether it exists is checked later (404).
    case reference
    /// A permission pattern, `<service>:<api_name>` with `*` and `?` (see `ActionName`).
    case permission
    /// A key rule: a permission pattern, with a leading `!` to deny.
    case rule
    /// A property (hotel, building) id: 1–200 scalars, no spaces or control characters; `*` = all.
    case property

    /// Longest permission pattern or property id, in scalars.
    static let maxPatternLength = 200
    /// Most entries in a list of patterns, rules or group ids.
    static let maxPatterns = 256
    /// Most entries in a list of properties.
    static let maxProperties = 1024

    /// The value to store, or why `text` is not acceptable.
    func check(_ text: String) -> Result<String, Problem> {
        let scalars = text.unicodeScalars
        switch self {
        case .name:
            guard scalars.count <= 200 else { return .failure(.init("must be at most 200 characters")) }
            guard !scalars.contains(where: Self.isControl) else { return .failure(.init("must not contain control characters")) }
            guard scalars.contains(where: { !Self.isBlank($0) }) else { return .failure(.init("must not be empty or only spaces")) }
            return .success(Self.trimmingBlanks(text))
        case .text(let maxLength):
            guard scalars.count <= maxLength else { return .failure(.init("must be at most \(maxLength) characters")) }
            return .success(text)
        case .reference:
            guard (1...200).contains(scalars.count) else { return .failure(.init("must be 1 to 200 characters")) }
            return .success(text)
        case .permission, .rule:
            guard scalars.count <= Self.maxPatternLength + (self == .rule ? 1 : 0) else {
                return .failure(.init("must be at most \(Self.maxPatternLength) characters"))
            }
            let problem = self == .rule ? ActionName.validateRule(text) : ActionName.validatePattern(text)
            if let problem { return .failure(.init(Self.explain(problem))) }
            return .success(text)
        case .property:
            guard (1...Self.maxPatternLength).contains(scalars.count),
                  !scalars.contains(where: { Self.isControl($0) || Self.isBlank($0) }) else {
                return .failure(.init("a property is 1 to 200 characters without spaces or control characters"))
            }
            return .success(text)
        }
    }

    /// Why a value was refused (the message of a 400).
    struct Problem: Error, Equatable {
        var message: String
        init(_ message: String) { self.message = message }
    }

    /// The JSON Schema of one value.
    var jsonSchema: [String: Any] {
        switch self {
        case .name:
            return ["type": "string", "maxLength": 200, "pattern": "^[^\(Self.controlClass)]*[^\(Self.controlClass)\(Self.blankClass)][^\(Self.controlClass)]*$",
                    "description": "1 to 200 characters, not only spaces, no control characters; leading and trailing spaces are dropped"]
        case .text(let maxLength):
            return ["type": "string", "maxLength": maxLength]
        case .reference:
            return ["type": "string", "minLength": 1, "maxLength": 200]
        case .permission:
            return ["type": "string", "maxLength": Self.maxPatternLength, "pattern": "^\(Self.patternRegex)$",
                    "description": "<service>:<api_name>: ASCII letters, digits, _ and -, segments separated by . or /; * and ? are wildcards"]
        case .rule:
            return ["type": "string", "maxLength": Self.maxPatternLength + 1, "pattern": "^!?\(Self.patternRegex)$",
                    "description": "a permission pattern; a leading ! denies"]
        case .property:
            return ["type": "string", "minLength": 1, "maxLength": Self.maxPatternLength,
                    "pattern": "^[^\(Self.controlClass)\(Self.blankClass)]+$", "description": "a property id; * = all"]
        }
    }

    // MARK: - Character classes (the Swift checks and the regexes above must say the same)

    /// Unicode Cc (C0, DEL, C1) and the line and paragraph separators.
    static func isControl(_ s: Unicode.Scalar) -> Bool {
        s.value < 0x20 || (0x7F...0x9F).contains(s.value) || s.value == 0x2028 || s.value == 0x2029
    }
    static let controlClass = #"\u0000-\u001f\u007f-\u009f\u2028\u2029"#

    /// Unicode Zs (space separators).
    static func isBlank(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x20, 0xA0, 0x1680, 0x2000...0x200A, 0x202F, 0x205F, 0x3000: return true
        default: return false
        }
    }
    static let blankClass = #"\u0020\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000"#

    /// `ActionName`'s pattern grammar.
    static let patternRegex = #"[A-Za-z0-9_*?-]+:[A-Za-z0-9_*?-]+([./][A-Za-z0-9_*?-]+)*"#

    private static func explain(_ problem: ActionName.Problem) -> String {
        switch problem {
        case .missingColon: return "must be <service>:<api_name> (no colon)"
        case .emptyService: return "must be <service>:<api_name> (the service is empty)"
        case .emptySegment: return "must be <service>:<api_name> (an empty api_name segment)"
        case .invalidCharacter(let c):
            return "must be <service>:<api_name> (\(c.unicodeScalars.map { "U+" + String($0.value, radix: 16, uppercase: true) }.joined(separator: " ")) is not an ASCII letter, digit, _, -, *, ?, . or /)"
        }
    }

    static func trimmingBlanks(_ text: String) -> String {
        var scalars = Substring(text).unicodeScalars
        while let first = scalars.first, isBlank(first) { scalars.removeFirst() }
        while let last = scalars.last, isBlank(last) { scalars.removeLast() }
        return String(scalars)
    }
}

extension FieldRule: Equatable {}
