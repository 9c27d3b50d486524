// SPDX-License-Identifier: Apache-2.0
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing
@testable import DoormanClient

/// Why the scenario could not run at all (a clear message instead of a hang).
struct ScenarioUnavailable: Error, CustomStringConvertible {
    let description: String
}

/// The shared scenario harness (`clients/scenario/harness.py`): the real gateway binary and the
/// reference upstream, steered over its control API. Ended with `stop()` (POST /stop, then
/// SIGINT to the process we started, by its PID, if it lingers).
final class ScenarioHarness: @unchecked Sendable {
    // @unchecked Sendable: `process` is only started in `start` and ended in `stop`, both awaited
    // in order by the one test that owns this harness; `output` is guarded by its lock.
    let control: URL
    private let process: Process
    private let output: Locked<String>

    struct Info: Sendable {
        var url: URL
        var key: String
        var keyID: String
        var channel: String
        var property: String
        var call: String
    }

    private init(control: URL, process: Process, output: Locked<String>) {
        self.control = control
        self.process = process
        self.output = output
    }

    /// The package root, from this file's path (Tests/DoormanClientTests/ScenarioHarness.swift).
    static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// `DOORMAN_BIN`, else the package's `.build/debug/doorman` (the test command builds it).
    static var binaryPath: String {
        ProcessInfo.processInfo.environment["DOORMAN_BIN"] ?? packageRoot.appendingPathComponent(".build/debug/doorman").path
    }

    /// Starts the harness and waits for its "harness ready URL" line.
    static func start(timeout: Duration = .seconds(60)) async throws -> ScenarioHarness {
        let binary = binaryPath
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw ScenarioUnavailable(description: "no gateway binary at \(binary): build it (swift build --product doorman) or set DOORMAN_BIN")
        }
        guard let python = findExecutable("python3") else {
            throw ScenarioUnavailable(description: "python3 is missing: the scenario harness (clients/scenario/harness.py) needs it; install python3")
        }
        let script = packageRoot.appendingPathComponent("clients/scenario/harness.py").path
        guard FileManager.default.fileExists(atPath: script) else {
            throw ScenarioUnavailable(description: "the scenario harness is missing at \(script)")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [script, "--binary", binary, "--limit", "300"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        let output = Locked("")
        let (lines, sink) = AsyncStream.makeStream(of: String.self)
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if data.isEmpty { handle.readabilityHandler = nil; sink.finish(); return }
            let text = String(decoding: data, as: UTF8.self)
            output.withLock { $0 += text }
            sink.yield(text)
        }
        process.terminationHandler = { _ in sink.finish() }
        try process.run()

        // Await the ready line (a signal with a deadline, not a sleep).
        let ready = await withTaskGroup(of: URL?.self) { group in
            group.addTask {
                var seen = ""
                for await text in lines {
                    seen += text
                    if let range = seen.range(of: #"harness ready (http://\S+)"#, options: .regularExpression) {
                        return URL(string: String(seen[range].dropFirst("harness ready ".count)))
                    }
                }
                return nil
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        let harness = ScenarioHarness(control: ready ?? URL(string: "http://127.0.0.1:1")!, process: process, output: output)
        guard ready != nil else {
            await harness.stop()
            throw ScenarioUnavailable(description: "the harness did not become ready: \(output.withLock { $0 })")
        }
        return harness
    }

    static func findExecutable(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// POST /stop, then wait for the process; SIGINT (its `finally` ends the gateway) if it lingers.
    func stop() async {
        if process.isRunning { _ = try? await post("/stop") }
        for _ in 0..<100 where process.isRunning { try? await Task.sleep(for: .milliseconds(100)) }
        if process.isRunning { process.interrupt() }
        for _ in 0..<100 where process.isRunning { try? await Task.sleep(for: .milliseconds(100)) }
        if process.isRunning { process.terminate() }
    }

    /// What the harness printed (for failure messages).
    var log: String { output.withLock { $0 } }

    // MARK: - Control API

    func info() async throws -> Info {
        let m = try await get("/info")
        guard let url = m["url"]?.stringValue.flatMap(URL.init(string:)), let key = m["key"]?.stringValue else {
            throw ScenarioUnavailable(description: "bad /info: \(m)")
        }
        return Info(url: url, key: key, keyID: m["keyID"]?.stringValue ?? "", channel: m["channel"]?.stringValue ?? "",
                    property: m["property"]?.stringValue ?? "", call: m["call"]?.stringValue ?? "")
    }

    func handshakes() async throws -> Int {
        guard let total = try await get("/handshakes")["total"]?.intValue else { throw ScenarioUnavailable(description: "bad /handshakes") }
        return total
    }

    func get(_ path: String) async throws -> JSONValue {
        try await send(URLRequest(url: control.appendingPathComponent(path)))
    }

    @discardableResult
    func post(_ path: String, _ body: JSONValue = [:]) async throws -> JSONValue {
        var request = URLRequest(url: control.appendingPathComponent(path))
        request.httpMethod = "POST"
        request.httpBody = Data(body.jsonText.utf8)
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.timeoutInterval = 60
        return try await send(request)
    }

    private func send(_ request: URLRequest) async throws -> JSONValue {
        let (data, response) = try await URLSession.shared.data(for: request)
        let text = String(decoding: data, as: UTF8.self)
        guard let status = (response as? HTTPURLResponse)?.statusCode, status < 300 else {
            throw ScenarioUnavailable(description: "\(request.httpMethod ?? "GET") \(request.url!.path): \(text)")
        }
        return JSONValue(parsing: text) ?? .null
    }
}

/// Collects a client's events so a test can await one with a deadline.
actor EventLog {
    private(set) var events: [DoormanEvent] = []
    private var waiters: [(predicate: @Sendable (DoormanEvent) -> Bool, continuation: CheckedContinuation<DoormanEvent?, Never>, id: Int)] = []
    private var nextID = 0

    /// Reads `stream` to its end in a task of its own.
    nonisolated func follow(_ stream: AsyncStream<DoormanEvent>) {
        Task { for await event in stream { await self.append(event) } }
    }

    private func append(_ event: DoormanEvent) {
        events.append(event)
        let ready = waiters.filter { $0.predicate(event) }
        waiters.removeAll { $0.predicate(event) }
        for waiter in ready { waiter.continuation.resume(returning: event) }
    }

    /// The first event after index `after` matching `predicate`, waiting up to `timeout`.
    func next(after: Int = 0, within timeout: Duration = .seconds(20), where predicate: @escaping @Sendable (DoormanEvent) -> Bool) async -> DoormanEvent? {
        if let found = events.dropFirst(after).first(where: predicate) { return found }
        nextID += 1
        let id = nextID
        return await withCheckedContinuation { continuation in
            waiters.append((predicate, continuation, id))
            Task {
                try? await Task.sleep(for: timeout)
                self.expire(id)
            }
        }
    }

    private func expire(_ id: Int) {
        guard let index = waiters.firstIndex(where: { $0.id == id }) else { return }
        waiters.remove(at: index).continuation.resume(returning: nil)
    }

    var count: Int { events.count }
}
