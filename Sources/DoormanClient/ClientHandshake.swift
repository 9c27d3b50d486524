// SPDX-License-Identifier: Apache-2.0
import Foundation
import WireCodec

/// Where to connect: parsed once from the client's URL.
struct ConnectionTarget: Sendable, Equatable {
    var host: String
    var port: Int
    /// Path and query, as the request line carries them.
    var requestTarget: String
    /// The `Host` header (RFC 9112 §3.2): brackets around IPv6, the port unless the default.
    var hostHeader: String
    /// `wss://`: TLS, with the server's certificate checked.
    var secure: Bool

    /// - Throws: `.invalidURL` for anything but `ws://` or `wss://host[:port]/path` (`wss://`
    ///   needs OpenSSL: Linux builds have it).
    init(url: URL) throws(DoormanError) {
        guard let scheme = url.scheme?.lowercased(), let host = url.host, !host.isEmpty else {
            throw DoormanError(code: .invalidURL, message: "\(url) is not a ws:// or wss:// URL")
        }
        guard scheme == "ws" || scheme == "wss" else {
            throw DoormanError(code: .invalidURL, message: "\(scheme):// is not supported: use ws:// or wss://")
        }
        #if !canImport(COpenSSL)
        guard scheme == "ws" else {
            throw DoormanError(code: .invalidURL, message: "wss:// needs OpenSSL, which this platform's build does not have: use ws:// behind a TLS proxy")
        }
        #endif
        secure = scheme == "wss"
        let bare = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
        self.host = bare
        port = url.port ?? (secure ? 443 : 80)
        // As written (still percent-encoded): the request line carries it unchanged.
        let parts = URLComponents(url: url, resolvingAgainstBaseURL: false)
        let path = parts?.percentEncodedPath ?? ""
        requestTarget = (path.isEmpty ? "/" : path) + (parts?.percentEncodedQuery.map { "?\($0)" } ?? "")
        let shown = bare.contains(":") ? "[\(bare)]" : bare
        hostHeader = url.port.map { "\(shown):\($0)" } ?? shown
    }
}

/// The client's side of the RFC 6455 opening handshake (§4.1): the request and the checks on
/// the server's answer. Pure: no I/O.
///
///     GET /ws HTTP/1.1                     HTTP/1.1 101 Switching Protocols
///     Host: gw:8080                        Upgrade: websocket
///     Upgrade: websocket           →       Connection: Upgrade
///     Connection: Upgrade                  Sec-WebSocket-Accept: base64(SHA-1(nonce + GUID))
///     Sec-WebSocket-Key: <nonce>
///     Sec-WebSocket-Version: 13            or: HTTP/1.1 401 … {"error":"revoked_key"}
///     X-API-Key: dmk_…
struct ClientHandshake: Sendable {
    /// `Sec-WebSocket-Key`: 16 random bytes, base64 (§4.1 ¶7).
    let nonce: String

    init(nonce: [UInt8]) {
        self.nonce = Base64.encode(nonce)
    }

    init() {
        var generator = SystemRandomNumberGenerator()
        self.init(nonce: (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) })
    }

    /// The request head, with the key in `X-API-Key` and any extra headers.
    func request(_ target: ConnectionTarget, key: String, headers: [(String, String)]) -> [UInt8] {
        var text = "GET \(target.requestTarget) HTTP/1.1\r\n"
        text += "Host: \(target.hostHeader)\r\n"
        text += "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        text += "Sec-WebSocket-Key: \(nonce)\r\nSec-WebSocket-Version: 13\r\n"
        text += "X-API-Key: \(key)\r\n"
        for (name, value) in headers where !Self.reserved.contains(name.lowercased()) {
            // Header injection guard: no CR or LF from the app reaches the wire.
            guard !name.contains(where: \.isNewline), !value.contains(where: \.isNewline) else { continue }
            text += "\(name): \(value)\r\n"
        }
        text += "\r\n"
        return Array(text.utf8)
    }

    private static let reserved: Set<String> = [
        "host", "upgrade", "connection", "sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", "x-api-key",
    ]

    /// Checks a 101 answer (§4.1 ¶5 of the client requirements); nil when it is acceptable,
    /// otherwise what is wrong.
    func problem(with head: HTTPResponseHead) -> String? {
        guard head.status == 101 else { return "status \(head.status)" }
        guard head.hasToken("websocket", in: "upgrade") else { return "no Upgrade: websocket" }
        guard head.hasToken("upgrade", in: "connection") else { return "no Connection: Upgrade" }
        guard head.value("sec-websocket-accept") == WebSocketHandshake.acceptValue(for: nonce) else { return "wrong Sec-WebSocket-Accept" }
        // We offered no extension and no subprotocol, so the server must not pick one.
        guard head.value("sec-websocket-extensions") == nil else { return "an extension we did not offer" }
        guard head.value("sec-websocket-protocol") == nil else { return "a subprotocol we did not offer" }
        return nil
    }

    /// The `error` of a refusal's JSON body (`{"error":"revoked_key"}`), if it has one.
    static func refusalReason(body: [UInt8]) -> String? {
        JSONValue(parsing: String(decoding: body, as: UTF8.self))?["error"]?.stringValue
    }
}
