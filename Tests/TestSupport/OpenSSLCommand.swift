// SPDX-License-Identifier: Apache-2.0
import Foundation

/// The `openssl` command, for test certificates (shared by the test targets that need them).
public enum OpenSSLCommand {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// Runs /usr/bin/openssl (in `directory`, if given) and fails with its stderr when it exits non-zero.
    public static func run(_ arguments: [String], in directory: String? = nil) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let message = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw Failure(description: "openssl \(arguments.first ?? ""): " + String(decoding: message, as: UTF8.self))
        }
    }
}
