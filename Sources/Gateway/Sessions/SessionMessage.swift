// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatewayCore
import WireCodec

/// JSON messages of the session protocol (both ways). Requests carry an `id`; every request gets
/// exactly one `result` or `error` with that id.
///
///     client → {"id":"1","type":"subscribe","channel":"door-events","property":"hotel-1"}
///     server → {"type":"result","id":"1"}
///     server → {"type":"error","id":"1","error":"forbidden","message":"…"}
///     server → {"type":"event","channel":"door-events","property":"hotel-1","data":{…}}
///     server → {"type":"notice","reason":"key_revoked","code":4001,"message":"…"}  (then close 4001)
enum SessionMessage {
    /// Serialises any JSON value (a published event's `data`), once per publish.
    static func encodeAny(_ value: Any) -> [UInt8] {
        let data = try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed, .withoutEscapingSlashes])
        return data.map(Array.init) ?? Array("null".utf8)
    }

    /// A request's `id` as the client sent it (number or string), for the answer.
    static func id(_ value: Any?) -> JSONText? {
        switch value {
        case let s as String: return .string(s)
        case let n as Int: return .int(n)
        case nil: return nil
        default: return .raw(encodeAny(value!))
        }
    }

    static func result(_ id: Any?, _ extra: [(String, JSONText)] = []) -> [UInt8] {
        var members: [(String, JSONText)] = [("type", .string("result"))]
        if let id = Self.id(id) { members.append(("id", id)) }
        return JSONText.object(members + extra).bytes
    }

    static func error(_ id: Any?, _ code: String, _ message: String, _ extra: [(String, JSONText)] = []) -> [UInt8] {
        var members: [(String, JSONText)] = [("type", .string("error"))]
        if let id = Self.id(id) { members.append(("id", id)) }
        members += [("error", .string(code)), ("message", .string(message))]
        return JSONText.object(members + extra).bytes
    }

    static let invalidPropertyMessage = "property names one property (1 to 200 characters, no spaces); a key limited to properties must name one of them"

    /// A request whose `property` is not a property name, or missing where the key's properties are limited.
    static func invalidProperty(_ id: Any?) -> [UInt8] { error(id, "invalid_property", invalidPropertyMessage) }

    /// A request the `Authorizer` refused: its code (`forbidden`, `invalid_property`), the reason,
    /// and the rule that decided it, if one did.
    static func refusal(_ id: Any?, _ decision: AccessDecision, _ message: String) -> [UInt8] {
        var extra: [(String, JSONText)] = [("reason", .string(decision.reason.rawValue))]
        if let rule = decision.decidedBy, decision.reason == .deniedByRule { extra.append(("rule", .string(rule))) }
        return error(id, decision.reason.refusalCode, decision.reason == .invalidProperty ? invalidPropertyMessage : message, extra)
    }

    /// An event frame (encoded once, sent to every subscriber).
    /// An event as the text every subscriber receives (prepared once per publish).
    static func event(channel: String, property: String?, data: [UInt8]) -> [UInt8] {
        var members: [(String, JSONText)] = [("type", .string("event")), ("channel", .string(channel))]
        if let property { members.append(("property", .string(property))) }
        members.append(("data", .raw(data)))
        return JSONText.object(members).bytes
    }

    /// Per reason, encoded once: the notice message, then the close frame with the reason's code.
    /// A reversible end carries `retryAfterMs`: when the device should try again.
    static func endFrames(retryAfterMs: Int) -> [SessionEndReason: [UInt8]] {
        Dictionary(uniqueKeysWithValues: SessionEndReason.allCases.map { reason in
            var members: [(String, JSONText)] = [
                ("type", .string("notice")), ("reason", .string(reason.rawValue)), ("code", .int(Int(reason.closeCode.rawValue))),
                ("reconnect", .bool(reason.mayReconnect)),
            ]
            if reason.isReversible { members.append(("retryAfterMs", .int(retryAfterMs))) }
            members.append(("message", .string(reason.message)))
            var frames: [UInt8] = []
            JSONText.object(members).bytes.withUnsafeBytes { FrameEncoder.append(opcode: .text, payload: $0, to: &frames) }
            ClosePayload(code: reason.closeCode, reason: reason.rawValue).encoded.withUnsafeBytes {
                FrameEncoder.append(opcode: .close, payload: $0, to: &frames)
            }
            return (reason, frames)
        })
    }

    /// The key of a channel within a property.
    static func channelKey(_ channel: String, property: String?) -> String {
        (property ?? "") + "\u{0}" + channel
    }
}
