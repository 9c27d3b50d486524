// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import Foundation
import Glibc
import Transport

/// Exit codes a script can rely on.
enum ExitStatus {
    /// The server refused the request (4xx): bad input, unknown id, conflict, forbidden.
    static let refused: Int32 = 1
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
    var key: String?
    @Flag(help: "Print the server's JSON instead of a table.")
    var json = false

    func client() throws -> AdminClient {
        let env = ProcessInfo.processInfo.environment
        guard let key = key ?? env["DOORMAN_ADMIN_KEY"], !key.isEmpty else {
            throw ValidationError("an admin key is needed: set DOORMAN_ADMIN_KEY or pass --key")
        }
        return try AdminClient(url: server ?? env["DOORMAN_SERVER"] ?? "http://127.0.0.1:8080", key: key,
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

    struct TLS {
        var caFile: String?
    }

    init(url: String, key: String, caFile: String? = nil) throws {
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
        var response = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = stream.receive(into: &buffer)
            if n <= 0 { break }
            response += buffer[..<n]
        }
        guard let split = response.firstRange(of: Array("\r\n\r\n".utf8)) else { throw unreachable("no HTTP response") }
        let head = String(decoding: response[..<split.lowerBound], as: UTF8.self)
        let status = Int(head.split(separator: " ").dropFirst().first ?? "") ?? 0
        return (status, Data(response[split.upperBound...]))
    }

    /// Sends and decodes JSON, turning errors into messages and exit codes.
    func call(_ method: String, _ path: String, body: [String: Any]? = nil) throws -> Any? {
        let (status, data) = try send(method, path, body: body)
        let json = data.isEmpty ? nil : try? JSONSerialization.jsonObject(with: data)
        guard (200..<300).contains(status) else {
            let error = json as? [String: Any]
            var line = "error: \(error?["error"] as? String ?? "http_\(status)")"
            if let message = error?["message"] as? String { line += ": \(message)" }
            if let field = error?["field"] as? String { line += " (field: \(field))" }
            FileHandle.standardError.write(Data((line + "\n").utf8))
            throw ExitCode(status >= 500 ? ExitStatus.unavailable : ExitStatus.refused)
        }
        return json
    }

    private func unreachable(_ message: String) -> ExitCode {
        FileHandle.standardError.write(Data("error: \(message)\n".utf8))
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

    static func table(_ rows: [[String: Any]], _ columns: [(String, String)]) {
        let cells = rows.map { row in columns.map { text(row[$0.1]) } }
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
        case let b as Bool: return b ? "yes" : "no"
        case let s as String: return s
        case let n as NSNumber: return n.stringValue
        default: return "\(value!)"
        }
    }
}
