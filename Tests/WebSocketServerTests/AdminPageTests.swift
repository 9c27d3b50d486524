// SPDX-License-Identifier: Apache-2.0
import Foundation
@testable import Gateway
import Testing
import WebSocketServer
import WireCodec

/// The admin page's serving: what `/admin/…` answers and with which headers (the page itself is
/// tested in Chromium by scripts/admin-page-test.py).
@Suite struct AdminPageTests {
    func get(_ target: String, method: String = "GET", headers: [HTTPHeader] = []) -> HTTPResponse {
        AdminPage.response(to: HTTPRequest(head: HTTPRequestHead(method: method, target: target, headers: headers)))
    }

    func header(_ response: HTTPResponse, _ name: String) -> String? {
        response.headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    @Test func servesThePageWithAStrictPolicy() throws {
        let page = get("/admin/")
        #expect(page.status == 200)
        #expect(header(page, "Content-Type") == "text/html; charset=utf-8")
        #expect(header(page, "Cache-Control") == "no-store")
        #expect(header(page, "X-Content-Type-Options") == "nosniff")
        #expect(header(page, "Referrer-Policy") == "no-referrer")
        let csp = try #require(header(page, "Content-Security-Policy"))
        for directive in ["default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'",
                          "form-action 'none'", "frame-ancestors 'none'", "base-uri 'none'"] {
            #expect(csp.contains(directive), "\(directive)")
        }
        #expect(!csp.contains("unsafe"))
        let html = String(decoding: page.body, as: UTF8.self)
        #expect(html.hasPrefix("<!doctype html>"))
        #expect(html.contains(#"<script type="module" src="app.js"></script>"#))
    }

    @Test func pageHoldsNoInlineScriptOrStyle() throws {
        let html = String(decoding: get("/admin/").body, as: UTF8.self)
        #expect(!html.contains("<style"))
        #expect(!html.contains(" style="))
        #expect(html.components(separatedBy: "<script").dropFirst().allSatisfy { $0.hasPrefix(#" type="module" src="#) })
    }

    @Test(arguments: [
        ("app.js", "text/javascript; charset=utf-8"), ("api.js", "text/javascript; charset=utf-8"),
        ("admin.css", "text/css; charset=utf-8"), ("favicon.svg", "image/svg+xml"),
    ])
    func servesEachAssetWithItsTypeAndETag(name: String, type: String) throws {
        let asset = get("/admin/\(name)")
        #expect(asset.status == 200)
        #expect(header(asset, "Content-Type") == type)
        #expect(header(asset, "Cache-Control") == "no-cache")
        #expect(header(asset, "Content-Security-Policy") == AdminPage.contentSecurityPolicy)
        let etag = try #require(header(asset, "ETag"))
        #expect(etag.hasPrefix("\"sha256-") && etag.hasSuffix("\""))
        #expect(!asset.body.isEmpty)
        let again = get("/admin/\(name)", headers: [HTTPHeader("if-none-match", "\"other\", \(etag)")])
        #expect(again.status == 304)
        #expect(again.body.isEmpty)
        #expect(get("/admin/\(name)", headers: [HTTPHeader("if-none-match", "\"other\"")]).status == 200)
    }

    @Test func everyModuleTheScriptsImportIsServed() throws {
        for asset in AdminPageAsset.all where asset.name.hasSuffix(".js") {
            // `… from './api.js';` (imports may span lines).
            let text = String(decoding: asset.bytes, as: UTF8.self)
            for part in text.components(separatedBy: "from './").dropFirst() {
                let module = String(part.prefix { $0 != "'" })
                #expect(AdminPageAsset.named(module) != nil, "\(asset.name) imports \(module)")
            }
        }
    }

    @Test func redirectsTheBarePathToTheSlash() {
        let redirect = get("/admin")
        #expect(redirect.status == 308)
        #expect(header(redirect, "Location") == "/admin/")
        #expect(header(redirect, "Content-Security-Policy") != nil)
    }

    @Test(arguments: ["/admin/nope.js", "/admin/../Package.swift", "/admin/assets/app.js", "/admin//app.js", "/admin/app.js/"])
    func answers404ForAnythingButAnAsset(path: String) {
        let response = get(path)
        #expect(response.status == 404)
        #expect(header(response, "Content-Security-Policy") != nil)
    }

    @Test(arguments: ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
    func refusesMethodsButGetAndHead(method: String) {
        let response = get("/admin/", method: method)
        #expect(response.status == 405)
        #expect(header(response, "Allow") == "GET, HEAD")
    }

    @Test func servesThroughTheGateway() throws {
        let gw = try AdminAPITests.TestGateway()
        let client = try TestClient(port: gw.port)
        client.send(Array("GET /admin/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8))
        let response = try #require(client.readResponse())
        #expect(response.head.hasPrefix("HTTP/1.1 200"))
        #expect(response.head.contains("Content-Security-Policy: default-src 'none'"))
        #expect(response.body.contains("Doorman admin"))
        let head = try TestClient(port: gw.port)
        head.send(Array("HEAD /admin/admin.css HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8))
        let headResponse = try #require(head.readResponseHead())
        #expect(headResponse.hasPrefix("HTTP/1.1 200"))
        #expect(headResponse.contains("Content-Type: text/css"))
    }
}
