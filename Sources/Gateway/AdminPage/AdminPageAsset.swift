// SPDX-License-Identifier: Apache-2.0

/// One file of the admin page, compiled into the binary. The sources live in `AdminPage/assets/`
/// (excluded from the target); `scripts/embed-admin-page.py` writes them into
/// `AdminPageAssets.swift` as raw string literals with their content type and a strong ETag
/// (a hash of the bytes), and `--check` fails the tests when that file is stale.
struct AdminPageAsset: Sendable {
    /// The file name under `/admin/`.
    let name: String
    let contentType: String
    /// `"sha256-…"`: changes whenever a byte does.
    let etag: String
    /// The file's text, byte for byte (the generator refuses CR and other control characters, so
    /// the literal cannot differ from the file).
    let text: StaticString

    var bytes: [UInt8] { text.withUTF8Buffer { Array($0) } }

    /// The HTML page itself (not stored by caches, see `AdminPage`).
    var isDocument: Bool { contentType.hasPrefix("text/html") }

    /// Assets by name, built once.
    private static let byName: [String: AdminPageAsset] = Dictionary(uniqueKeysWithValues: all.map { ($0.name, $0) })

    static func named(_ name: String) -> AdminPageAsset? { byName[name] }
}
