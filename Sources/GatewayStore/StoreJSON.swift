// SPDX-License-Identifier: Apache-2.0
import Foundation
import GatewayCore

/// The JSON bodies both stores keep for users, groups and keys (dates as seconds since 1970).
enum StoreJSON {
    static func encode<T: Encodable>(_ value: T) throws(StoreError) -> String {
        do {
            let encoder = JSONEncoder()
            encoder.dateEncodingStrategy = .secondsSince1970
            return String(decoding: try encoder.encode(value), as: UTF8.self)
        } catch {
            throw .unavailable("cannot encode: \(error)")
        }
    }

    static func decode<T: Decodable>(_ text: String) throws(StoreError) -> T {
        do {
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .secondsSince1970
            return try decoder.decode(T.self, from: Data(text.utf8))
        } catch {
            throw .unavailable("corrupt row: \(error)")
        }
    }
}
