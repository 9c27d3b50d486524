// SPDX-License-Identifier: Apache-2.0
import DoormanClient
import Foundation

/// The examples of clients/swift/README.md, compiled with the tests so they stay true (not run).
enum ReadmeExamples {
    static func tablet(deviceKey: String, show: @escaping @Sendable (JSONValue) -> Void, showFullScreen: (String) -> Void) async throws {
        let client = DoormanClient(url: URL(string: "ws://gateway.hotel.example:8080/ws")!, key: deviceKey)
        let welcome = try await client.connect()                        // retries with backoff until it gets a session
        print("acting as \(welcome.user.name) on \(welcome.properties)")
        try await client.subscribe(channel: "door-events", property: "hotel-1") { event in show(event.data) }
        for await event in client.events {                              // ends after .stopped
            if case .stopped(let why) = event { showFullScreen(why.message) }  // "This device's key was revoked."
        }
    }

    static func kiosk(client: DoormanClient) async throws {
        do {
            let answer = try await client.call("pms:checkIn", body: ["room": 101, "guest": "Ada"], property: "hotel-1")
            print(answer.status, answer.body)                           // 200, the upstream's JSON
        } catch {                                                       // error: DoormanError
            guard error.code == .rateLimited else { throw error }
            try await Task.sleep(for: error.retryAfter ?? .seconds(1))  // then try again
        }
    }
}
