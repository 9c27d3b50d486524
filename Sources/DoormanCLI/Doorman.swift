// SPDX-License-Identifier: Apache-2.0
import ArgumentParser

@main
struct Doorman: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doorman",
        abstract: "Doorman: a real-time auth gateway for WebSocket devices and dashboards.",
        discussion: """
            Devices hold WebSocket connections, present an API key at the handshake, and are closed \
            the moment the key stops being valid. Every option of a subcommand can also be set with \
            the DOORMAN_* environment variable named in its help; a flag beats the environment.
            """,
        subcommands: [Serve.self, Keys.self, Users.self, Groups.self, Audit.self, Sessions.self, Listen.self, StoreWriter.self],
        defaultSubcommand: nil)
}
