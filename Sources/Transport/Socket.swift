// SPDX-License-Identifier: Apache-2.0
import CLinux
import Glibc

/// What became of a queue handed to `Socket.drain`.
public enum WriteOutcome {
    /// Everything went to the kernel.
    case drained
    /// The kernel is full; wait for writability.
    case blocked
    /// The peer is gone (ECONNRESET, EPIPE, …): the caller closes.
    case failed(SystemError)
}

/// Non-blocking socket calls on raw descriptors.
public enum Socket {
    /// recv(2) into `buffer`; `.processed(0)` is end of stream. (recv/send skip write(2)'s file
    /// position lock and VFS layers: measurably cheaper per call when fanning out to many sockets.)
    @inline(__always)
    public static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(SystemError) -> IOResult<Int> {
        try retryingSyscall("recv") { Glibc.recv(fd, buffer.baseAddress, buffer.count, 0) }
    }

    /// send(2) from `bytes` (MSG_NOSIGNAL: a reset peer is an error, not SIGPIPE); may write fewer
    /// bytes than given.
    @inline(__always)
    public static func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws(SystemError) -> IOResult<Int> {
        try retryingSyscall("send") { Glibc.send(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Writes `queue[start...]` to `fd` until it is all out (`.drained`: the queue is emptied, a large
    /// buffer given back) or the kernel is full (`.blocked`: `start` marks what is left).
    ///
    /// It reports and never acts: it knows the bytes and the descriptor, not the connection that owns
    /// them, so it cannot close or re-enter its caller while the caller's queue is borrowed `inout`.
    /// The caller closes on `.failed` once the borrow has ended (STYLE.md P8).
    public static func drain(_ queue: inout [UInt8], from start: inout Int, to fd: Int32) -> WriteOutcome {
        while start < queue.count {
            let result = queue.withUnsafeBytes { raw in
                Result { () throws(SystemError) in try write(fd, UnsafeRawBufferPointer(rebasing: raw[start...])) }
            }
            switch result {
            case .success(.processed(let n)): start += n
            case .success(.wouldBlock): return .blocked
            case .failure(let error): return .failed(error)
            }
        }
        if queue.capacity > 16 * 1024 { queue = [] } else { queue.removeAll(keepingCapacity: true) }
        start = 0
        return .drained
    }

    /// accept4(2) with SOCK_NONBLOCK | SOCK_CLOEXEC, and the peer's address.
    @inline(__always)
    public static func accept(_ fd: Int32) throws(SystemError) -> IOResult<(Int32, PeerAddress)> {
        var storage = sockaddr_storage()
        switch try retryingSyscall("accept4", { Int(doorman_accept_peer(fd, &storage)) }) {
        case .processed(let n): return .processed((Int32(n), PeerAddress(storage)))
        case .wouldBlock: return .wouldBlock
        }
    }

    public static func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }

    /// Half-close: no more writes from us (the peer reads EOF after what we sent).
    public static func shutdownWrite(_ fd: Int32) {
        _ = Glibc.shutdown(fd, Int32(SHUT_WR))
    }

    public static func setNoDelay(_ fd: Int32) {
        _ = doorman_set_nodelay(fd)
    }

    /// A listening TCP socket bound to `host:port` (port 0: the kernel picks one).
    /// - Returns: the descriptor and the port actually bound.
    public static func listen(host: String, port: Int, backlog: Int32 = 4096) throws(SystemError) -> (fd: Int32, port: Int) {
        let isV6 = host.contains(":")
        let family = isV6 ? AF_INET6 : AF_INET
        let fd = Glibc.socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError(call: "socket", errno: doorman_errno()) }
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard let bound = withAddress(host, port, { Glibc.bind(fd, $0, $1) }) else {
            Glibc.close(fd)
            throw SystemError(call: "inet_pton(\(host))", errno: EINVAL)
        }
        guard bound == 0 else {
            let err = doorman_errno()
            Glibc.close(fd)
            throw SystemError(call: "bind(\(host):\(port))", errno: err)
        }
        guard Glibc.listen(fd, backlog) == 0 else {
            let err = doorman_errno()
            Glibc.close(fd)
            throw SystemError(call: "listen", errno: err)
        }
        return (fd, localPort(fd))
    }

    /// Starts a non-blocking TCP connection to an address literal (`127.0.0.1`, `::1`). The
    /// connection is made when the descriptor turns writable; `pendingError` then tells whether it
    /// succeeded. Nagle is off (requests are written whole).
    public static func connect(host: String, port: Int) throws(SystemError) -> Int32 {
        let isV6 = host.contains(":")
        let fd = Glibc.socket(isV6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError(call: "socket", errno: doorman_errno()) }
        _ = doorman_set_nodelay(fd)
        guard let result = withAddress(host, port, { Glibc.connect(fd, $0, $1) }) else {
            Glibc.close(fd)
            throw SystemError(call: "inet_pton(\(host))", errno: EINVAL)
        }
        if result != 0 {
            let err = doorman_errno()
            guard err == EINPROGRESS || err == EINTR else {
                Glibc.close(fd)
                throw SystemError(call: "connect(\(host):\(port))", errno: err)
            }
        }
        return fd
    }

    /// The error a non-blocking connect ended with (0: connected).
    public static func pendingError(_ fd: Int32) -> Int32 {
        var err: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 else { return doorman_errno() }
        return err
    }

    /// True if an idle connection we are not reading from is unusable: the peer closed it (an idle keep-alive
    /// connection the server gave up on): a non-blocking peek sees end of stream or an error.
    public static func idleIsUnusable(_ fd: Int32) -> Bool {
        var byte: UInt8 = 0
        let n = Glibc.recv(fd, &byte, 1, Int32(MSG_PEEK) | Int32(MSG_DONTWAIT))
        if n == 0 { return true }
        if n < 0 { let err = doorman_errno(); return err != EAGAIN && err != EWOULDBLOCK && err != EINTR }
        return true   // bytes nobody asked for: the connection is out of step, unusable too
    }

    /// The first IPv4 (else IPv6) address of `host`, as text; an address literal comes back as is.
    /// Blocks (DNS): call it while reading configuration, never on a loop.
    public static func resolve(_ host: String) -> String? {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &list) == 0, let first = list else { return nil }
        defer { freeaddrinfo(first) }
        var best: UnsafeMutablePointer<addrinfo>? = nil
        var p: UnsafeMutablePointer<addrinfo>? = first
        while let node = p {
            if node.pointee.ai_family == AF_INET { best = node; break }
            if best == nil, node.pointee.ai_family == AF_INET6 { best = node }
            p = node.pointee.ai_next
        }
        guard let chosen = best, let addr = chosen.pointee.ai_addr else { return nil }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        if chosen.pointee.ai_family == AF_INET6 {
            _ = addr.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { a in
                withUnsafePointer(to: a.pointee.sin6_addr) { inet_ntop(AF_INET6, $0, &text, socklen_t(text.count)) }
            }
        } else {
            _ = addr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { a in
                withUnsafePointer(to: a.pointee.sin_addr) { inet_ntop(AF_INET, $0, &text, socklen_t(text.count)) }
            }
        }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Calls `body` with the socket address of an address literal and port; nil if `host` is not one.
    private static func withAddress(_ host: String, _ port: Int, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Int32) -> Int32? {
        if host.contains(":") {
            var addr = sockaddr_in6()
            addr.sin6_family = sa_family_t(AF_INET6)
            addr.sin6_port = in_port_t(UInt16(port).bigEndian)
            guard inet_pton(AF_INET6, host, &addr.sin6_addr) == 1 else { return nil }
            return withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
        }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host, &addr.sin_addr) == 1 else { return nil }
        return withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    }

    /// The local port of a bound socket.
    public static func localPort(_ fd: Int32) -> Int {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        guard ok == 0 else { return 0 }
        return withUnsafePointer(to: &storage) { p -> Int in
            if Int32(p.pointee.ss_family) == AF_INET6 {
                return p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin6_port)) }
            }
            return p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
        }
    }

    /// The peer's address as text ("127.0.0.1" or "::1"), for logs and address checks.
    public static func peerAddress(_ fd: Int32) -> String {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &len) }
        }
        guard ok == 0 else { return "" }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        return withUnsafePointer(to: &storage) { p -> String in
            if Int32(p.pointee.ss_family) == AF_INET6 {
                _ = p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { a in
                    withUnsafePointer(to: a.pointee.sin6_addr) { inet_ntop(AF_INET6, $0, &text, socklen_t(text.count)) }
                }
            } else {
                _ = p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { a in
                    withUnsafePointer(to: a.pointee.sin_addr) { inet_ntop(AF_INET, $0, &text, socklen_t(text.count)) }
                }
            }
            return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }
}
