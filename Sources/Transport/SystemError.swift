// SPDX-License-Identifier: Apache-2.0
import CLinux
import Glibc

/// A failed system call: which one and its errno.
public struct SystemError: Error, CustomStringConvertible, Sendable {
    public var call: String
    public var errno: Int32

    public init(call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }

    public var description: String { "\(call): \(String(cString: strerror(errno))) (errno \(errno))" }
}

/// The outcome of a non-blocking call: done, or the kernel has nothing for us yet.
public enum IOResult<T: Sendable>: Sendable {
    case processed(T)
    case wouldBlock
}

/// Runs a system call: retries EINTR, turns EAGAIN into `.wouldBlock`, errno into `SystemError`.
/// EBADF and EFAULT mean we passed a bad descriptor or pointer: our bug, so they trap.
@inline(__always)
func retryingSyscall(_ call: StaticString, _ body: () -> Int) throws(SystemError) -> IOResult<Int> {
    while true {
        let n = body()
        if n >= 0 { return .processed(n) }
        let err = doorman_errno()
        switch err {
        case EINTR: continue
        case EAGAIN, EWOULDBLOCK: return .wouldBlock
        case EBADF, EFAULT: preconditionFailure("\(call): errno \(err)")   // our bug
        default: throw SystemError(call: "\(call)", errno: err)
        }
    }
}

/// The current CLOCK_MONOTONIC time in nanoseconds.
@inline(__always)
public func monotonicNanoseconds() -> UInt64 { doorman_monotonic_ns() }
