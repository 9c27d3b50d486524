// SPDX-License-Identifier: Apache-2.0
import WebSocketServer
import WireCodec

/// The admin web page at `/admin/`: static files shipped inside the binary (`AdminPageAsset`),
/// talking only to the admin REST API with the key the administrator types in.
///
///     GET /admin            → 308 to /admin/ (relative asset URLs need the slash)
///     GET /admin/           → index.html (Cache-Control: no-store)
///     GET /admin/<asset>    → the asset (ETag; If-None-Match → 304)
///     GET /admin/<other>    → 404;  any method but GET and HEAD → 405
///
/// Nothing here reads the file system or takes a key: the page is public, the API behind it is not.
/// Every answer carries the same strict headers, 404s included, so no response from this path can
/// run inline script or be framed.
enum AdminPage {
    static func owns(_ path: Substring) -> Bool { path == "/admin" || path.hasPrefix("/admin/") }

    static func response(to request: HTTPRequest) -> HTTPResponse {
        let head = request.head
        guard head.method == "GET" || head.method == "HEAD" else {
            // RFC 9110 §15.5.6: a 405 lists the methods the resource has.
            return error(405, "method_not_allowed", extra: [HTTPHeader("Allow", "GET, HEAD")])
        }
        let path = head.path
        if path == "/admin" {
            // 308 keeps the method (RFC 9110 §15.4.9); the query, if any, goes along.
            let query = head.target.firstIndex(of: "?").map { String(head.target[$0...]) } ?? ""
            return HTTPResponse(status: 308, headers: securityHeaders + [HTTPHeader("Location", "/admin/" + query), HTTPHeader("Cache-Control", "no-store")])
        }
        let name = path.dropFirst("/admin/".count)
        guard let asset = AdminPageAsset.named(name.isEmpty ? "index.html" : String(name)) else {
            return error(404, "not_found")
        }
        let headers = securityHeaders + [
            HTTPHeader("Content-Type", asset.contentType),
            HTTPHeader("ETag", asset.etag),
            // The HTML is never stored (it is the page a key is typed into); the scripts and styles it
            // names are revalidated on every load, so a new binary's page never mixes with old assets.
            HTTPHeader("Cache-Control", asset.isDocument ? "no-store" : "no-cache"),
        ]
        if !asset.isDocument, matches(head.values("if-none-match"), asset.etag) {
            return HTTPResponse(status: 304, headers: headers)
        }
        return HTTPResponse(status: 200, headers: headers, body: asset.bytes)
    }

    /// The page's Content-Security-Policy: its own files only. No inline script or style (so no
    /// injected markup can run), no plug-ins, no forms posting anywhere (the page submits with
    /// fetch), never framed. `connect-src 'self'` covers same-origin `ws:`/`wss:` too (CSP 3
    /// §6.7.2.8), which the browser test checks.
    static let contentSecurityPolicy = [
        "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:", "connect-src 'self'",
        "form-action 'none'", "frame-ancestors 'none'", "base-uri 'none'",
    ].joined(separator: "; ")

    static let securityHeaders: [HTTPHeader] = [
        HTTPHeader("Content-Security-Policy", contentSecurityPolicy),
        HTTPHeader("X-Content-Type-Options", "nosniff"),
        HTTPHeader("Referrer-Policy", "no-referrer"),
        // For browsers older than frame-ancestors.
        HTTPHeader("X-Frame-Options", "DENY"),
        HTTPHeader("Cross-Origin-Opener-Policy", "same-origin"),
        HTTPHeader("Cross-Origin-Resource-Policy", "same-origin"),
        HTTPHeader("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()"),
    ]

    /// RFC 9110 §13.1.2: If-None-Match is a list of entity tags (or `*`), compared weakly.
    static func matches(_ fields: [String], _ etag: String) -> Bool {
        let ours = etag.hasPrefix("W/") ? String(etag.dropFirst(2)) : etag
        for field in fields {
            for candidate in field.split(separator: ",") {
                var tag = candidate.trimmingOWS
                if tag == "*" { return true }
                if tag.hasPrefix("W/") { tag = tag.dropFirst(2) }
                if tag == ours { return true }
            }
        }
        return false
    }

    private static func error(_ status: Int, _ code: String, extra: [HTTPHeader] = []) -> HTTPResponse {
        HTTPResponse(status: status,
                     headers: securityHeaders + [HTTPHeader("Content-Type", "application/json"), HTTPHeader("Cache-Control", "no-store")] + extra,
                     body: Array(#"{"error":"\#(code)"}"#.utf8))
    }
}
