// SPDX-License-Identifier: Apache-2.0

/// An upstream's answer to a call (2xx).
public struct CallResult: Sendable, Equatable {
    /// The upstream's HTTP status.
    public var status: Int
    /// JSON as JSON, other text as a string, anything else base64 (see `bodyEncoding`).
    public var body: JSONValue
    /// `"base64"` when `body` is a base64 string of binary bytes; nil otherwise.
    public var bodyEncoding: String?
}
