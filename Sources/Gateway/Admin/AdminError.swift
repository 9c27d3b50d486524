// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatewayCore
import WireCodec

/// An admin API failure: HTTP status, a stable code, a message, and the offending field for 400s.
struct AdminError: Error, Equatable {
    var status: Int
    var code: String
    var message: String
    var field: String?
    /// Extra response headers (`Allow` on a 405).
    var headers: [HTTPHeader] = []

    static func invalid(_ field: String, _ message: String) -> AdminError {
        AdminError(status: 400, code: "invalid_field", message: message, field: field)
    }
    /// 404: the object a path names, or one a body refers to (then `field` names the reference).
    static func notFound(_ what: String, field: String? = nil) -> AdminError {
        AdminError(status: 404, code: "not_found", message: "no such \(what)", field: field)
    }
    static func conflict(_ code: String, _ message: String) -> AdminError { AdminError(status: 409, code: code, message: message) }

    init(status: Int, code: String, message: String, field: String? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.field = field
    }

    init(_ error: StoreError) {
        switch error {
        case .notFound(let what): self = .notFound(what)
        case .conflict(let what):
            self = .conflict(what == StoreError.keyRevoked ? "key_revoked" : what == StoreError.staleWrite ? "stale_write" : "conflict", what)
        case .unavailable: self.init(status: 503, code: "store_unavailable", message: "the store cannot be reached; nothing was changed")
        }
    }

    var response: HTTPResponse {
        var body: [String: String] = ["error": code, "message": message]
        if let field { body["field"] = field }
        let data = (try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return HTTPResponse(status: status, headers: [HTTPHeader("Content-Type", "application/json"), HTTPHeader("Cache-Control", "no-store")] + headers,
                            body: Array(data))
    }
}
