// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatewayCore

/// The JSON object a request body must be: its fields, each one's type and rule. The one
/// description both checks bodies (a 400 naming the field) and becomes the OpenAPI schema, so
/// the document cannot promise what the server refuses, nor the server take what it does not list.
///
/// Strict on purpose: unknown fields and `null` are refused (a typo such as `expiresat` must not
/// silently do nothing).
struct BodySchema: Sendable {
    enum FieldType: Sendable {
        case text(FieldRule)
        case list(FieldRule, maxItems: Int)
        case flag
        case dateTime
        case number(ClosedRange<Double>)
        /// A key's or group's rate limits: an object of optional numbers (`{}` removes them).
        case limits
    }

    struct Field: Sendable {
        var name: String
        var type: FieldType
        var required = false
        var description: String?
    }

    /// The component name in the OpenAPI document.
    let name: String
    let fields: [Field]
    /// True when the body may be left out altogether (every field then absent).
    var optional = false
    /// A better message than "unknown field" for fields people are likely to try.
    var hints: [String: String] = [:]

    /// Parses and checks a body.
    /// - Throws: 400 `invalid_field`, `field` naming the culprit (`body` when it is not a JSON object).
    func parse(_ bytes: [UInt8]) throws(AdminError) -> ParsedBody {
        if bytes.isEmpty {
            guard optional else { throw .invalid("body", "a JSON object is required") }
            return ParsedBody(values: [:])
        }
        let value: JSONValue
        do {
            value = try JSONDecoder().decode(JSONValue.self, from: Data(bytes))
        } catch {
            throw .invalid("body", "the body is not valid JSON (UTF-8)")
        }
        guard case .object(let object) = value else { throw .invalid("body", "the body must be a JSON object") }
        for key in object.keys.sorted() where !fields.contains(where: { $0.name == key }) {
            throw .invalid(key, hints[key] ?? "unknown field; \(name) takes \(fields.map(\.name).joined(separator: ", "))")
        }
        var values: [String: ParsedBody.Value] = [:]
        for field in fields {
            guard let raw = object[field.name] else {
                if field.required { throw .invalid(field.name, "\(field.name) is required") }
                continue
            }
            values[field.name] = try Self.check(raw, field)
        }
        return ParsedBody(values: values)
    }

    private static func check(_ raw: JSONValue, _ field: Field) throws(AdminError) -> ParsedBody.Value {
        let name = field.name
        if case .null = raw { throw .invalid(name, "must not be null (leave the field out instead)") }
        switch field.type {
        case .text(let rule):
            guard case .string(let s) = raw else { throw .invalid(name, "must be a string") }
            return .text(try checked(s, rule, name))
        case .list(let rule, let maxItems):
            guard case .array(let items) = raw else { throw .invalid(name, "must be an array of strings") }
            guard items.count <= maxItems else { throw .invalid(name, "at most \(maxItems) entries") }
            var out: [String] = []
            for (i, item) in items.enumerated() {
                guard case .string(let s) = item else { throw .invalid("\(name)[\(i)]", "must be a string") }
                out.append(try checked(s, rule, "\(name)[\(i)]"))
            }
            return .list(out)
        case .flag:
            guard case .bool(let b) = raw else { throw .invalid(name, "must be true or false") }
            return .flag(b)
        case .dateTime:
            guard case .string(let s) = raw, let date = RFC3339.parse(s) else {
                throw .invalid(name, "must be an RFC 3339 date-time, e.g. 2026-03-01T09:30:00Z")
            }
            return .date(date)
        case .number(let range):
            guard case .number(let n) = raw else { throw .invalid(name, "must be a number") }
            guard range.contains(n) else { throw .invalid(name, "must be \(Self.spell(range.lowerBound)) to \(Self.spell(range.upperBound))") }
            return .number(n)
        case .limits:
            guard case .object(let object) = raw else { throw .invalid(name, "must be an object of rates and bursts") }
            var numbers: [String: Double] = [:]
            for (key, value) in object {
                guard RateLimits.fieldNames.contains(key) else {
                    throw .invalid("\(name).\(key)", "unknown field; limits take \(RateLimits.fieldNames.joined(separator: ", "))")
                }
                guard case .number(let n) = value, n.isFinite, (0...Self.maxRate).contains(n) else {
                    throw .invalid("\(name).\(key)", "must be a number from 0 to \(Int(Self.maxRate)) (0 = no limit)")
                }
                numbers[key] = n
            }
            return .limits(numbers.isEmpty ? nil : RateLimits(
                messagesPerSecond: numbers["messagesPerSecond"], messageBurst: numbers["messageBurst"],
                callsPerSecond: numbers["callsPerSecond"], callBurst: numbers["callBurst"],
                handshakesPerSecond: numbers["handshakesPerSecond"], handshakeBurst: numbers["handshakeBurst"]))
        }
    }

    private static func checked(_ text: String, _ rule: FieldRule, _ field: String) throws(AdminError) -> String {
        switch rule.check(text) {
        case .success(let value): return value
        case .failure(let problem): throw .invalid(field, problem.message)
        }
    }

    static let maxRate = 1_000_000.0

    /// The JSON Schema of a `limits` object (request and response alike).
    static var limitsSchema: [String: Any] {
        let number: [String: Any] = ["type": "number", "minimum": 0, "maximum": maxRate]
        return ["type": "object", "additionalProperties": false,
                "properties": Dictionary(uniqueKeysWithValues: RateLimits.fieldNames.map { ($0, number) }),
                "description": "per-key token buckets (rates per second, bursts in tokens; 0 = no limit); a field left out falls back to the group's, then the server's"]
    }

    private static func spell(_ n: Double) -> String { n == n.rounded() ? String(Int(n)) : String(n) }

    /// The OpenAPI (JSON Schema) form: `additionalProperties: false`, every rule spelled out.
    var jsonSchema: [String: Any] {
        var properties: [String: Any] = [:]
        for field in fields {
            var schema: [String: Any]
            switch field.type {
            case .text(let rule): schema = rule.jsonSchema
            case .list(let rule, let maxItems): schema = ["type": "array", "maxItems": maxItems, "items": rule.jsonSchema]
            case .flag: schema = ["type": "boolean"]
            case .dateTime: schema = ["type": "string", "format": "date-time"]
            case .number(let range): schema = ["type": "number", "minimum": range.lowerBound, "maximum": range.upperBound]
            case .limits: schema = Self.limitsSchema
            }
            if let description = field.description { schema["description"] = description }
            properties[field.name] = schema
        }
        var out: [String: Any] = ["type": "object", "properties": properties, "additionalProperties": false]
        let required = fields.filter(\.required).map(\.name)
        if !required.isEmpty { out["required"] = required }
        return out
    }
}

/// A body that passed its `BodySchema`: typed access to the fields that were given.
struct ParsedBody {
    enum Value {
        case text(String)
        case list([String])
        case flag(Bool)
        case date(Date)
        case number(Double)
        case limits(RateLimits?)
    }

    let values: [String: Value]

    func text(_ name: String) -> String? { if case .text(let v) = values[name] { v } else { nil } }
    func list(_ name: String) -> [String]? { if case .list(let v) = values[name] { v } else { nil } }
    func flag(_ name: String) -> Bool? { if case .flag(let v) = values[name] { v } else { nil } }
    func date(_ name: String) -> Date? { if case .date(let v) = values[name] { v } else { nil } }
    func number(_ name: String) -> Double? { if case .number(let v) = values[name] { v } else { nil } }
    /// nil: not given; .some(nil): given empty (remove).
    func limits(_ name: String) -> RateLimits?? { if case .limits(let v) = values[name] { .some(v) } else { nil } }
}

/// Any JSON value. Decoding tries `null`, then booleans before numbers, so `true` never becomes 1.
enum JSONValue: Decodable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null; return }
        if let b = try? c.decode(Bool.self) { self = .bool(b); return }
        if let n = try? c.decode(Double.self) { self = .number(n); return }
        if let s = try? c.decode(String.self) { self = .string(s); return }
        if let a = try? c.decode([JSONValue].self) { self = .array(a); return }
        self = .object(try c.decode([String: JSONValue].self))
    }
}

// MARK: - The admin API's bodies

extension BodySchema {
    private static func patterns(_ name: String, _ rule: FieldRule, _ description: String) -> Field {
        Field(name: name, type: .list(rule, maxItems: FieldRule.maxPatterns), description: description)
    }
    private static let userPermissions = patterns("permissions", .permission, "permission patterns the user holds directly")
    private static let userGroups = Field(name: "groups", type: .list(.reference, maxItems: FieldRule.maxPatterns),
                                          description: "ids of groups whose permissions the user also holds (404 if one does not exist)")
    private static let properties = Field(name: "properties", type: .list(.property, maxItems: FieldRule.maxProperties),
                                          description: "properties (hotels, buildings) within reach; [\"*\"] = all (the default)")
    private static let keyDescription = Field(name: "description", type: .text(.text(maxLength: 2000)))
    private static let keyGroup = Field(name: "groupID", type: .text(.reference),
                                        description: "a permission group narrowing the key (404 if it does not exist)")
    private static let keyScopes = patterns("scopes", .permission, "permission patterns narrowing the key")
    private static let keyRules = patterns("rules", .rule, "ordered rules; the first match decides, ! denies")
    private static let limits = Field(name: "limits", type: .limits,
                                      description: "rate limits; {} removes them (the group's, then the server's apply)")
    private static let keyExpiry = Field(name: "expiresAt", type: .dateTime,
                                         description: "when the key stops working (a time already past expires it at once); the server may require one and cap it (400)")

    static let userCreate = BodySchema(name: "UserCreate", fields: [
        Field(name: "name", type: .text(.name), required: true), userPermissions, userGroups, properties,
    ])
    static let userUpdate = BodySchema(name: "UserUpdate", fields: [
        Field(name: "name", type: .text(.name)), userPermissions, userGroups, properties,
    ])
    static let groupCreate = BodySchema(name: "GroupCreate", fields: [
        Field(name: "name", type: .text(.name), required: true), Field(name: "description", type: .text(.text(maxLength: 2000))),
        patterns("permissions", .permission, "permission patterns the group grants"), limits,
    ])
    static let groupUpdate = BodySchema(name: "GroupUpdate", fields: [
        Field(name: "name", type: .text(.name)), Field(name: "description", type: .text(.text(maxLength: 2000))),
        patterns("permissions", .permission, "permission patterns the group grants"), limits,
    ])
    static let keyCreate = BodySchema(name: "KeyCreate", fields: [
        Field(name: "name", type: .text(.name), required: true), keyDescription,
        Field(name: "userID", type: .text(.reference), required: true, description: "the user the key emulates (404 if it does not exist)"),
        keyGroup, keyScopes, properties, keyRules, keyExpiry, limits,
    ])
    static let keyUpdate = BodySchema(name: "KeyUpdate", fields: [
        Field(name: "name", type: .text(.name)), keyDescription,
        keyGroup, Field(name: "clearGroup", type: .flag, description: "true removes the group (applied before groupID)"),
        keyScopes, properties, keyRules, limits,
        keyExpiry, Field(name: "clearExpiry", type: .flag, description: "true removes the expiry (applied before expiresAt)"),
    ], hints: ["userID": "a key's user cannot change; create a new key"])
    static let rotate = BodySchema(name: "RotateInput", fields: [
        Field(name: "graceSeconds", type: .number(0...AdminService.maxGraceSeconds), description: "seconds the old secret keeps working; 0 (the default) = none"),
    ], optional: true)
    static let explain = BodySchema(name: "ExplainInput", fields: [
        Field(name: "action", type: .text(.text(maxLength: 2000)), required: true, description: "<service>:<api_name>; anything else is denied as invalid_action"),
        Field(name: "property", type: .text(.text(maxLength: 2000))),
    ])
}
