// SPDX-License-Identifier: Apache-2.0
import Foundation

/// The property (hotel, building) a request names, as the wire gave it. One owner for what a
/// property name is and how a request's `property` field is read, on every surface.
///
/// - Absent or JSON `null`: no property. Whether that is allowed is the `Authorizer`'s call: only a
///   session whose user and key both reach every property (`"*"`) may use property-less channels
///   and calls; any other gets `invalid_property`.
/// - A valid name: 1 to 200 characters, no whitespace or control characters (it travels in the
///   `X-Doorman-Property` header).
/// - Anything else (a number, an array, an object, `true`, an empty or malformed string): refused
///   as `invalid_property`, never read as "no property". (`Authorizer.decide` refuses a malformed
///   name too, so explain and every other caller judge a property the same way.)
public enum PropertyName {
    /// A `property` field that is present but names no property.
    public struct Invalid: Error, Equatable {
        public init() {}
    }

    public static func isValid(_ text: String) -> Bool {
        !text.isEmpty && text.unicodeScalars.count <= 200
            && !text.unicodeScalars.contains { $0.value < 0x21 || ($0.value >= 0x7f && $0.value < 0xa0) || $0.properties.isWhitespace }
    }

    /// A JSON request's `property` (as `JSONSerialization` decoded it).
    public static func parse(json value: Any?) -> Result<String?, Invalid> {
        switch value {
        case nil, is NSNull: return .success(nil)
        case let text as String where isValid(text): return .success(text)
        default: return .failure(Invalid())
        }
    }

    /// An `X-Doorman-Property` header: absent is no property, present must be a valid name.
    public static func parse(header value: String?) -> Result<String?, Invalid> {
        guard let value else { return .success(nil) }
        return isValid(value) ? .success(value) : .failure(Invalid())
    }
}
