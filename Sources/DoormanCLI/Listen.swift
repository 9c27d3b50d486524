// SPDX-License-Identifier: Apache-2.0
import ArgumentParser
import DoormanClient
import Dispatch
import Foundation
import Synchronization

/// `doorman listen`: be a device for a moment, with the Swift client library — connect with a
/// key, subscribe, print each event's data as one JSON line. The quick start's device.
struct Listen: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Be a device: connect with a key, subscribe to a channel, print each event's data as a JSON line.",
        discussion: """
            Progress goes to stderr ("subscribed to …" once the subscription holds); events to stdout. \
            Exits 0 after --count events, 1 when the key stops (revoked, expired: the reason is on stderr), \
            3 when the gateway cannot be reached.
            """)

    @Option(help: "The gateway's URL, http:// (sessions use ws://HOST:PORT/ws). [env: DOORMAN_SERVER] (default: http://127.0.0.1:8080)")
    var server: String?
    @Option(help: "The device's key. Prefer the environment: flags show up in `ps`. [env: DOORMAN_DEVICE_KEY]")
    var key: String?
    @Option(help: "The channel to subscribe to.") var channel: String
    @Option(help: "The property, for a key limited to some.") var property: String?
    @Option(help: "Exit after this many events (0: until the key stops or Ctrl-C).") var count = 0
    @Option(help: "The gateway's WebSocket path (its --path).") var path = "/ws"

    func run() throws {
        let env = ProcessInfo.processInfo.environment
        guard let key = key ?? env["DOORMAN_DEVICE_KEY"], !key.isEmpty else {
            throw ValidationError("a device key is needed: set DOORMAN_DEVICE_KEY or pass --key")
        }
        let base = server ?? env["DOORMAN_SERVER"] ?? "http://127.0.0.1:8080"
        guard base.hasPrefix("http://"), path.hasPrefix("/"), let url = URL(string: "ws://" + base.dropFirst("http://".count).prefix { $0 != "/" } + path) else {
            throw ValidationError("--server must be an http:// URL for listen (got \(base))")
        }
        let outcome = Mutex<Int32>(0)
        let done = DispatchSemaphore(value: 0)
        let (channel, property, count) = (channel, property, count)
        Task {
            let status = await Self.listen(url: url, key: key, channel: channel, property: property, count: count)
            outcome.withLock { $0 = status }
            done.signal()
        }
        done.wait()
        let status = outcome.withLock { $0 }
        if status != 0 { throw ExitCode(status) }
    }

    /// The device's life: 0 after `count` events, 1 on a stop, 3 unreachable.
    private static func listen(url: URL, key: String, channel: String, property: String?, count: Int) async -> Int32 {
        let client = DoormanClient(url: url, key: key)
        let status = await listen(client, channel: channel, property: property, count: count)
        await client.close()
        return status
    }

    private static func listen(_ client: DoormanClient, channel: String, property: String?, count: Int) async -> Int32 {
        // A suspended key or a disabled user is not a stop (a device waits for the resume), so
        // connect only times out: remember the refusal to say it.
        let refusal = Mutex<String?>(nil)
        let follower = Task {
            for await event in client.events {
                if case .disconnected(let d) = event, ["suspended_key", "user_disabled", "key_suspended"].contains(d.reason) {
                    refusal.withLock { $0 = d.reason }
                }
            }
        }
        defer { follower.cancel() }
        let welcome: Welcome
        do {
            welcome = try await client.connect(timeout: .seconds(15))
        } catch {
            if let reason = refusal.withLock({ $0 }) {
                say("error: \(reason): the key is suspended or its user disabled; a device keeps trying and comes back after a resume")
                return ExitStatus.refused
            }
            say("error: \(error.stop?.message ?? "\(error)")")
            return error.stop == nil ? ExitStatus.unavailable : ExitStatus.refused
        }
        say("connected as \(welcome.user.name) with key \(welcome.key.name)")
        let (events, deliver) = AsyncStream.makeStream(of: ChannelEvent.self)
        do {
            try await client.subscribe(channel: channel, property: property) { deliver.yield($0) }
        } catch {
            say("error: \(error.message)")
            return ExitStatus.refused
        }
        say("subscribed to \(ChannelAddress(channel: channel, property: property)); waiting for events")
        // A stop (the key revoked, expired…) ends the wait too.
        let watcher = Task {
            let why = await client.stopped()
            if !Task.isCancelled { say("stopped: \(why.message)") }
            deliver.finish()
        }
        defer { watcher.cancel() }
        var seen = 0
        for await event in events {
            FileHandle.standardOutput.write(Data((event.data.jsonText + "\n").utf8))
            seen += 1
            if count > 0, seen >= count { return 0 }
        }
        return ExitStatus.refused
    }

    private static func say(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}
