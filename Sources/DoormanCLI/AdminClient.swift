// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Foundation
import Glibc
import Transport

/// Exit codes a script can rely on.
enum ExitStatus {
    /// The server refused the request (4xx): bad input, unknown id, conflict, forbidden.
    static let refused: Int32 = 1
    /// The question was answered "no" (`keys explain`: the key may not do that).
    static let denied: Int32 = 2
    /// The server could not be reached, or failed (5xx).
    static let unavailable: Int32 = 3
}

/// Options every admin subcommand shares.
struct AdminOptions: ParsableArguments {
    @Option(help: "The gateway's URL, http:// or https://. [env: DOORMAN_SERVER] (default: http://127.0.0.1:8080)")
    var server: String?
    @Option(help: """
        For https://: the certificates to trust (PEM), e.g. a self-signed gateway's own; else the \
        system's. The certificate must name the URL's host. [env: DOORMAN_CA_FILE]
        """)
    var caFile: String?
    @Option(help: "An admin key. Prefer the environment: flags show up in `ps`. [env: DOORMAN_ADMIN_KEY]")
    var adminKey: String?
    @Flag(help: "Print the server's JSON instead of a table.")
    var json = false

    func client() throws -> AdminClient {
        // A server that closes early is an error to report (exit 3), not a reason to die.
        signal(SIGPIPE, SIG_IGN)
        let env = ProcessInfo.processInfo.environment
        guard let key = adminKey ?? env["DOORMAN_ADMIN_KEY"], !key.isEmpty else {
            throw ValidationError("an admin key is needed: set DOORMAN_ADMIN_KEY or pass --admin-key")
        }
        return try AdminClient(url: server ?? env["DOORMAN_SERVER"] ?? "http://127.0.0.1:8080", key: key, json: json,
                               caFile: caFile ?? env["DOORMAN_CA_FILE"].flatMap { $0.isEmpty ? nil : $0 })
    }
}

/// A blocking HTTP/1.1 client for the admin API (one request per connection), over TLS for
/// `https://` URLs (the server's certificate checked: see `TLSClientConnection`).
struct AdminClient {
    let host: String
    let port: Int
    let key: String
    /// nil: plain http://.
    let tls: TLS?
    /// Errors go to stdout as JSON too (`--json`): a script reads one format whatever happened.
    let json: Bool

    struct TLS {
        var caFile: String?
    }

    init(url: String, key: String, json: Bool = false, caFile: String? = nil) throws {
        let secure = url.hasPrefix("https://")
        guard secure || url.hasPrefix("http://") else { throw ValidationError("--server must be an http:// or https:// URL (got \(url))") }
        let authority = url.drop(while: { $0 != "/" }).dropFirst(2).prefix(while: { $0 != "/" })
        var host = Substring(authority)
        var port = secure ? 443 : 80
        if authority.hasPrefix("["), let close = authority.firstIndex(of: "]") {   // [::1]:8443
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") { guard let p = Int(after.dropFirst()) else { throw ValidationError("bad port in \(url)") }; port = p }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            guard let p = Int(authority[authority.index(after: colon)...]) else { throw ValidationError("bad port in \(url)") }
            port = p
        }
        guard !host.isEmpty, (1...65535).contains(port) else { throw ValidationError("--server needs a host and port (got \(url))") }
        self.host = String(host)
        self.port = port
        self.key = key
        self.json = json
        tls = secure ? TLS(caFile: caFile) : nil
    }

    /// Sends a request; returns status and body. Throws `ExitCode(3)` when the server is unreachable
    /// (or, over https://, cannot be trusted).
    func send(_ method: String, _ path: String, body: [String: Any]? = nil) throws -> (Int, Data) {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &list) == 0, let first = list else { throw unreachable("cannot resolve \(host)") }
        defer { freeaddrinfo(list) }
        let fd = socket(first.pointee.ai_family, first.pointee.ai_socktype, first.pointee.ai_protocol)
        guard fd >= 0 else { throw unreachable("socket failed") }
        defer { close(fd) }
        var tv = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        guard connect(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0 else {
            throw unreachable("cannot connect to \(host):\(port): \(String(cString: strerror(errno)))")
        }
        let stream: any ByteStream
        do {
            stream = try tls.map { tls throws(TLSError) in try TLSClientConnection(fd: fd, host: host, caFile: tls.caFile) } ?? PlainStream(fd: fd)
        } catch {
            throw unreachable("https://\(host):\(port): \(error)")
        }
        let authority = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        let payload = try body.map { try JSONSerialization.data(withJSONObject: $0) } ?? Data()
        var request = "\(method) \(path) HTTP/1.1\r\nHost: \(authority)\r\nX-API-Key: \(key)\r\nConnection: close\r\n"
        request += "Content-Type: application/json\r\nContent-Length: \(payload.count)\r\n\r\n"
        guard stream.sendAll(Array(request.utf8) + Array(payload)) else { throw unreachable("the connection broke while sending") }
        // The answer is whole when its Content-Length is in; anything less (a reset, a timeout, a
        // cut on the path) is an error, never a short body taken for the answer.
        var response = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65536)
        var expected: Int?
        while expected.map({ response.count < $0 }) ?? true {
            let n = stream.receive(into: &buffer)
            if n == 0, expected == nil { break }   // framed by the end of the stream
            guard n > 0 else { throw unreachable("the answer from \(host):\(port) was cut short") }
            response += buffer[..<n]
            if expected == nil, let split = response.firstRange(of: Array("\r\n\r\n".utf8)) {
                let head = String(decoding: response[..<split.lowerBound], as: UTF8.self).lowercased()
                if let line = head.split(separator: "\r\n").first(where: { $0.hasPrefix("content-length:") }),
                   let length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) {
                    expected = split.upperBound + length
                }
            }
        }
        guard let split = response.firstRange(of: Array("\r\n\r\n".utf8)) else { throw unreachable("no HTTP response") }
        let head = String(decoding: response[..<split.lowerBound], as: UTF8.self)
        let status = Int(head.split(separator: " ").dropFirst().first ?? "") ?? 0
        return (status, Data(response[split.upperBound..<(expected ?? response.count)]))
    }

    /// Sends and decodes JSON, turning errors into messages and exit codes.
    func call(_ method: String, _ path: String, body: [String: Any]? = nil) throws -> Any? {
        let (status, data) = try send(method, path, body: body)
        let json = data.isEmpty ? nil : try? JSONSerialization.jsonObject(with: data)
        guard (200..<300).contains(status) else {
            var error = json as? [String: Any] ?? [:]
            if error["error"] == nil { error["error"] = "http_\(status)" }
            var line = "error: \(error["error"] as? String ?? "?")"
            if let message = error["message"] as? String { line += ": \(message)" }
            if let field = error["field"] as? String { line += " (field: \(field))" }
            FileHandle.standardError.write(Data((line + "\n").utf8))
            if self.json {
                error["status"] = status
                Output.print(error, json: true, columns: [])
            }
            throw ExitCode(status >= 500 ? ExitStatus.unavailable : ExitStatus.refused)
        }
        return json
    }

    private func unreachable(_ message: String) -> ExitCode {
        FileHandle.standardError.write(Data("error: \(message)\n".utf8))
        if json { Output.print(["error": "unreachable", "message": message], json: true, columns: []) }
        return ExitCode(ExitStatus.unavailable)
    }
}

/// The connection a request goes over: the socket itself, or TLS on it.
protocol ByteStream {
    /// Writes all of `bytes`; false if the connection broke.
    func sendAll(_ bytes: [UInt8]) -> Bool
    /// Bytes read into `buffer`; 0 at the end of the stream, -1 on an error.
    func receive(into buffer: inout [UInt8]) -> Int
}

struct PlainStream: ByteStream {
    let fd: Int32

    func sendAll(_ bytes: [UInt8]) -> Bool {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { return false }
            sent += n
        }
        return true
    }

    func receive(into buffer: inout [UInt8]) -> Int {
        buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
    }
}

extension TLSClientConnection: ByteStream {
    func sendAll(_ bytes: [UInt8]) -> Bool {
        do { try write(bytes) } catch { return false }
        return true
    }

    func receive(into buffer: inout [UInt8]) -> Int {
        do { return try read(into: &buffer) } catch { return -1 }
    }
}

/// Prints JSON or a table.
enum Output {
    static func print(_ value: Any?, json: Bool, columns: [(String, String)], pageFlag: String = "--after") {
        if json {
            let data = (try? JSONSerialization.data(withJSONObject: value ?? NSNull(), options: [.prettyPrinted, .sortedKeys, .fragmentsAllowed])) ?? Data()
            Swift.print(String(decoding: data, as: UTF8.self))
            return
        }
        var rows: [[String: Any]] = []
        if let list = value as? [[String: Any]] { rows = list }
        else if let page = value as? [String: Any], let items = page["items"] as? [[String: Any]] { rows = items }
        else if let one = value as? [String: Any] { rows = [one] }
        table(rows, columns)
        if let page = value as? [String: Any], let next = page["next"] as? String { Swift.print("(more: \(pageFlag) \(next))") }
    }

    /// - Parameter columns: heading and field; `a|b` shows `a`, or `b` where `a` is absent.
    static func table(_ rows: [[String: Any]], _ columns: [(String, String)]) {
        let cells = rows.map { row in
            columns.map { column in text(column.1.split(separator: "|").lazy.compactMap { row[String($0)] }.first) }
        }
        let widths = columns.indices.map { i in max(columns[i].0.count, cells.map { $0[i].count }.max() ?? 0) }
        func line(_ values: [String]) -> String {
            zip(values, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
                .trimmingCharacters(in: .whitespaces)
        }
        Swift.print(line(columns.map(\.0)))
        for row in cells { Swift.print(line(row)) }
    }

    static func text(_ value: Any?) -> String {
        switch value {
        case nil, is NSNull: return "-"
        case let list as [Any]: return list.isEmpty ? "-" : list.map { text($0) }.joined(separator: ",")
        case let s as String: return s
        // JSON true/false (a number 1 is not "yes").
        case let n as NSNumber where String(cString: n.objCType) == "c": return n.boolValue ? "yes" : "no"
        case let b as Bool: return b ? "yes" : "no"
        case let n as NSNumber: return n.stringValue
        default: return "\(value!)"
        }
    }
}
