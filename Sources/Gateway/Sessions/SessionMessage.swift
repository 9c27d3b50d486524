// SPDX-License-Identifier: Apache-2.0
import Foundation

/// JSON messages of the session protocol (both ways). Requests carry an `id`; every request gets
/// exactly one `result` or `error` with that id.
///
///     client → {"id":"1","type":"subscribe","channel":"door-events","property":"hotel-1"}
///     server → {"type":"result","id":"1"}
///     server → {"type":"error","id":"1","error":"forbidden","message":"…"}
///     server → {"type":"event","channel":"door-events","property":"hotel-1","data":{…}}
///     server → {"type":"notice","reason":"key_revoked","code":4001,"message":"…"}  (then close 4001)
enum SessionMessage {
    /// Serialises a JSON object (sorted keys, no escaping of `/`).
    static func encode(_ object: [String: Any]) -> [UInt8] {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return Array(data)
    }

    static func result(_ id: Any?, _ extra: [String: Any] = [:]) -> [UInt8] {
        var object: [String: Any] = ["type": "result"]
        if let id { object["id"] = id }
        object.merge(extra) { $1 }
        return encode(object)
    }

    static func error(_ id: Any?, _ code: String, _ message: String, _ extra: [String: Any] = [:]) -> [UInt8] {
        var object: [String: Any] = ["type": "error", "error": code, "message": message]
        if let id { object["id"] = id }
        object.merge(extra) { $1 }
        return encode(object)
    }

    /// The key of a channel within a property.
    static func channelKey(_ channel: String, property: String?) -> String {
        (property ?? "") + "\u{0}" + channel
    }
}
