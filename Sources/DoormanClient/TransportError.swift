// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a connection attempt or an open connection failed below the session protocol. All of
/// these lead to a backoff and another attempt (never to a stop).
enum TransportError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The host name did not resolve (`getaddrinfo`'s message).
    case resolve(String)
    /// A system call failed.
    case system(call: String, errno: Int32)
    /// Connect, handshake or pong did not come within its deadline.
    case timedOut(String)
    /// The server closed the TCP connection without a close frame (RFC 6455 §7.1.5: code 1006).
    case closedByPeer
    /// The server broke RFC 6455 (a bad frame, a bad 101).
    case protocolViolation(String)
    /// The app aborted the connection.
    case aborted
    /// TLS failed: the server's certificate could not be trusted, or a record was broken.
    case tls(String)

    var description: String {
        switch self {
        case .resolve(let message): return "cannot resolve host: \(message)"
        case .system(let call, let errno): return "\(call) failed: \(String(cString: strerror(errno)))"
        case .timedOut(let what): return "\(what) timed out"
        case .closedByPeer: return "connection closed without a close frame"
        case .protocolViolation(let what): return "protocol violation: \(what)"
        case .aborted: return "aborted"
        case .tls(let why): return "TLS: \(why)"
        }
    }
}
