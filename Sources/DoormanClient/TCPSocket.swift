// SPDX-License-Identifier: Apache-2.0
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// What one non-blocking read or write did (would-block is a value, not an error).
enum IOResult: Equatable {
    case processed(Int)
    case wouldBlock
}

/// Thin POSIX wrappers for a non-blocking TCP client socket (Linux and Apple platforms).
/// Every call here may block only up to a deadline; callers run them on the connection's own
/// thread, never on Swift's cooperative pool.
enum TCPSocket {
    /// Resolves `host` and connects to the first address that answers before `deadline`.
    /// The socket is non-blocking, close-on-exec, with Nagle off and no SIGPIPE.
    /// - Throws: `.resolve`, `.system(call:errno:)` of the last address tried, or `.timedOut`.
    static func connect(host: String, port: Int, deadline: ContinuousClock.Instant) throws(TransportError) -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        #if canImport(Darwin)
        hints.ai_socktype = SOCK_STREAM
        #else
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #endif
        var list: UnsafeMutablePointer<addrinfo>?
        // getaddrinfo blocks without a timeout of its own; it runs on the connection thread.
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0, let first = list else { throw .resolve(String(cString: gai_strerror(rc))) }
        defer { freeaddrinfo(first) }
        var failure = TransportError.resolve("no address for \(host)")
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let info = entry {
            entry = info.pointee.ai_next
            do {
                return try connect(info.pointee, deadline: deadline)
            } catch {
                failure = error
                if case .timedOut = error { throw error }
            }
        }
        throw failure
    }

    private static func connect(_ info: addrinfo, deadline: ContinuousClock.Instant) throws(TransportError) -> Int32 {
        let fd = socket(info.ai_family, info.ai_socktype, info.ai_protocol)
        guard fd >= 0 else { throw .system(call: "socket", errno: errno) }
        var ok = false
        defer { if !ok { _ = close(fd) } }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        var one: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        #if canImport(Darwin)
        _ = setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, socklen_t(MemoryLayout<Int32>.size))
        #endif
        if systemConnect(fd, info.ai_addr, info.ai_addrlen) != 0 {
            guard errno == EINPROGRESS || errno == EINTR else { throw .system(call: "connect", errno: errno) }
            // A non-blocking connect finishes when the socket becomes writable; SO_ERROR says how.
            guard try waitFor(fd, events: POLLOUT, deadline: deadline) else { throw .timedOut("connect") }
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            _ = getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
            guard error == 0 else { throw .system(call: "connect", errno: error) }
        }
        ok = true
        return fd
    }

    /// Waits until `fd` is ready for `events` (or has an error or hang-up); false at `deadline`.
    static func waitFor(_ fd: Int32, events: Int32, deadline: ContinuousClock.Instant) throws(TransportError) -> Bool {
        var entry = [pollfd(fd: fd, events: Int16(events), revents: 0)]
        return try poll(&entry, until: deadline) > 0
    }

    /// `poll(2)` until `deadline` (nil: no deadline), retrying EINTR. Returns the ready count.
    static func poll(_ fds: inout [pollfd], until deadline: ContinuousClock.Instant?) throws(TransportError) -> Int {
        while true {
            var timeout: Int32 = -1
            if let deadline {
                let left = ContinuousClock.now.duration(to: deadline)
                // Round up so a deadline is never reported early.
                timeout = left <= .zero ? 0 : Int32(min(left.milliseconds + 1, 60_000))
            }
            let n = fds.withUnsafeMutableBufferPointer { systemPoll($0.baseAddress, nfds_t($0.count), timeout) }
            if n >= 0 {
                if n == 0, let deadline, ContinuousClock.now < deadline { continue }   // woke before the deadline: keep waiting
                return Int(n)
            }
            guard errno == EINTR else { throw .system(call: "poll", errno: errno) }
        }
    }

    /// One non-blocking `recv`. 0 processed means the peer closed.
    static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(TransportError) -> IOResult {
        while true {
            let n = recv(fd, buffer.baseAddress, buffer.count, 0)
            if n >= 0 { return .processed(n) }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            default: throw .system(call: "recv", errno: errno)
            }
        }
    }

    /// One non-blocking `send` (no SIGPIPE on a closed peer).
    static func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws(TransportError) -> IOResult {
        #if canImport(Darwin)
        let flags: Int32 = 0                      // SO_NOSIGPIPE is set on the socket
        #else
        let flags = Int32(MSG_NOSIGNAL)
        #endif
        while true {
            let n = send(fd, bytes.baseAddress, bytes.count, flags)
            if n >= 0 { return .processed(n) }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            default: throw .system(call: "send", errno: errno)
            }
        }
    }
}

extension Duration {
    /// Whole milliseconds (truncated).
    var milliseconds: Int64 {
        let (s, attoseconds) = components
        return s * 1000 + attoseconds / 1_000_000_000_000_000
    }
}

// The libc functions whose names our wrappers shadow.
private func systemConnect(_ fd: Int32, _ address: UnsafeMutablePointer<sockaddr>?, _ length: socklen_t) -> Int32 {
    #if canImport(Darwin)
    Darwin.connect(fd, address, length)
    #elseif canImport(Musl)
    Musl.connect(fd, address, length)
    #else
    Glibc.connect(fd, address, length)
    #endif
}

private func systemPoll(_ fds: UnsafeMutablePointer<pollfd>?, _ count: nfds_t, _ timeout: Int32) -> Int32 {
    #if canImport(Darwin)
    Darwin.poll(fds, count, timeout)
    #elseif canImport(Musl)
    Musl.poll(fds, count, timeout)
    #else
    Glibc.poll(fds, count, timeout)
    #endif
}
