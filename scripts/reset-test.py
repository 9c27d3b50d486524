#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A peer that resets its connection closes that connection only: deterministic tests over real
sockets against the real binary, one per place a reset can land.

Every case builds the same trap. The server is frozen (SIGSTOP) at a chosen moment, usually with
bytes already queued for a client that stopped reading; the client then sends a little more (a
request head, a ClientHello, half a frame, a ping, TLS garbage) and resets (SO_LINGER 0, close).
The kernel takes both while the server sleeps, so when it is thawed (SIGCONT) it reads the last
bytes first (Linux returns data before the reset's error) and its next write fails with
ECONNRESET — in exactly the step the case names: the handshake's answer, a flush after a read, a
pong, a streamed reply, the close handshake, the TLS alert, the drain. No timing decides it.

Afterwards the server must still be alive, have released the connection (doorman_connections back
where it was), and welcome a fresh session that answers a ping.

    python3 scripts/reset-test.py .build/release/doorman
Prints "reset-test: N passed, M failed" last. Loopback only; every wait has a deadline; ends only
the processes it started, by PID.
"""
import http.client, json, os, re, shutil, signal, socket, ssl, struct, subprocess, sys, tempfile, threading, time, zlib

BIN = sys.argv[1]
SECRET = "reset-test-upstream-secret-0123456789"
passed = failed = 0


def check(name, ok, detail=""):
    global passed, failed
    passed, failed = passed + (1 if ok else 0), failed + (0 if ok else 1)
    print(f"{'ok  ' if ok else 'FAIL'} {name} {detail}", flush=True)


def until(predicate, seconds=10.0, every=0.02):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    return predicate()


# --- The upstream: one big streamed answer, counting what it has sent ---------------------------

class BigUpstream(threading.Thread):
    """Answers every request with a 4 MiB body, written as fast as the gateway takes it."""
    BODY = 4 * 1024 * 1024

    def __init__(self):
        super().__init__(daemon=True)
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.sent = 0
        self.stopped = False

    def run(self):
        self.listener.settimeout(0.5)
        while not self.stopped:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        conn.settimeout(30)
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                head += chunk
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n" % self.BODY)
            block = b"x" * 65536
            for _ in range(self.BODY // len(block)):
                conn.sendall(block)
                self.sent += len(block)
        except OSError:
            pass
        finally:
            conn.close()


# --- The server -------------------------------------------------------------------------------

class Server:
    def __init__(self, tls_dir, upstream_port, extra=()):
        self.config = (tls_dir, upstream_port, tuple(extra))
        self.crashes = []   # crash lines of servers replaced after a case killed them
        self.start()

    def start(self):
        tls_dir, upstream_port, extra = self.config
        self.dir = tempfile.mkdtemp()
        self.err = open(os.path.join(self.dir, "stderr.log"), "w+")
        args = [BIN, "serve", "--port", "0", "--db", os.path.join(self.dir, "d.db"), "--loops", "1", "--compression",
                "--tls-cert", os.path.join(tls_dir, "cert.pem"), "--tls-key", os.path.join(tls_dir, "key.pem"), "--tls-port", "0",
                "--upstream", f"big=http://127.0.0.1:{upstream_port}/", "--handshakes-per-second", "0", "--max-write-queue-bytes", str(16 << 20), "--log-level", "warning", *extra]
        self.proc = subprocess.Popen(args, env={**os.environ, "DOORMAN_UPSTREAM_SECRET_BIG": SECRET},
                                     stdout=subprocess.PIPE, stderr=self.err)
        self.admin = self.port = self.tls_port = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (self.admin and self.port and self.tls_port):
            line = self.proc.stdout.readline().decode()
            if not line:
                break
            if m := re.match(r"admin key: (\S+)", line): self.admin = m.group(1)
            if m := re.match(r"doorman listening on .*:(\d+)$", line): self.port = int(m.group(1))
            if m := re.match(r"doorman listening for TLS on .*:(\d+)$", line): self.tls_port = int(m.group(1))
        if not (self.admin and self.port and self.tls_port):
            raise SystemExit("the server did not start")
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()   # keep its stdout drained
        _, user = self.request("POST", "/v1/users", {"name": "devices", "permissions": ["channel:*", "big:*"], "properties": ["hotel-1"]})
        _, key = self.request("POST", "/v1/keys", {"name": "device", "userID": user["id"]})
        self.device, self.user = key["secret"], user["id"]

    def restart_if_dead(self):
        """A case that killed the server is reported; the next case gets a new one."""
        if not self.alive():
            self.crashes += self.crash_log()
            self.stop()
            self.start()

    def request(self, method, path, body=None, key=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        headers = {"X-API-Key": key or self.admin, "Content-Type": "application/json"}
        conn.request(method, path, json.dumps(body) if body is not None else None, headers)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        return response.status, (json.loads(data) if data.startswith(b"{") else data)

    def connections(self):
        try:
            _, text = self.request("GET", "/metrics")
            return int(re.search(rb"^doorman_connections (\d+)", text, re.M).group(1))
        except (OSError, AttributeError, http.client.HTTPException):
            return None

    def freeze(self):
        os.kill(self.proc.pid, signal.SIGSTOP)
        until(lambda: open(f"/proc/{self.proc.pid}/stat").read().rsplit(")", 1)[1].split()[0] == "T", 5, 0.005)

    def thaw(self):
        os.kill(self.proc.pid, signal.SIGCONT)

    def alive(self):
        return self.proc.poll() is None

    def crash_log(self):
        self.err.seek(0)
        text = self.err.read()
        return [line for line in text.splitlines() if re.search(r"Fatal|fatal error|Simultaneous accesses|Current stack trace", line)]

    def stop(self):
        if self.alive():
            self.thaw()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


# --- Clients ----------------------------------------------------------------------------------

def frame(opcode, payload=b"", fin=True):
    """A masked client frame (RFC 6455 §5.2)."""
    mask = os.urandom(4)
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126: head += bytes([0x80 | n])
    elif n < 65536: head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else: head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def upgrade_request(key, deflate=False):
    extension = "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover\r\n" if deflate else ""
    return (f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nX-API-Key: {key}\r\n{extension}\r\n").encode()


def tls_context():
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def raw_socket(port, tls, rcvbuf=None):
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)   # before connect: a small window
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    return tls_context().wrap_socket(s) if tls else s


def reset(s):
    """RST instead of FIN (and no close_notify for TLS)."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


class Session:
    """A WebSocket session, read only when asked to."""

    def __init__(self, server, key, tls=False, rcvbuf=None, deflate=False):
        self.sock = raw_socket(server.tls_port if tls else server.port, tls, rcvbuf)
        self.sock.sendall(upgrade_request(key, deflate))
        self.buffer = b""
        self.inflater = zlib.decompressobj(-15)
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.sock.recv(65536)
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head
        self.welcome = self.next_json()

    def next_message(self):
        while True:
            if len(self.buffer) >= 2:
                n, at = self.buffer[1] & 0x7F, 2
                if n == 126: n, at = struct.unpack("!H", self.buffer[2:4])[0], 4
                elif n == 127: n, at = struct.unpack("!Q", self.buffer[2:10])[0], 10
                if len(self.buffer) >= at + n:
                    first, payload, self.buffer = self.buffer[0], self.buffer[at:at + n], self.buffer[at + n:]
                    if first & 0x40:   # RFC 7692: RSV1 marks a compressed message
                        payload = self.inflater.decompress(payload + b"\x00\x00\xff\xff")
                    return first & 0x0F, payload
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("closed")
            self.buffer += chunk

    def next_json(self):
        while True:
            opcode, payload = self.next_message()
            if opcode == 1:
                return json.loads(payload)

    def send(self, obj):
        self.sock.sendall(frame(1, json.dumps(obj).encode()))


def probe(server):
    """A fresh session is welcomed and answers a ping."""
    try:
        s = Session(server, server.device)
        s.send({"id": 1, "type": "ping"})
        answer = s.next_json()
        s.sock.close()
        return answer.get("type") == "result"
    except (OSError, ConnectionError, AssertionError, ValueError):
        return False


# --- The trap ---------------------------------------------------------------------------------

EVENTS, EVENT_BYTES = 200, 32 * 1024


def stalled_subscriber(server, tls, deflate=False):
    """A subscriber that stopped reading with 6.4 MiB of events sent to it: more than the kernel's
    buffers hold (its receive window is tiny; the server's send buffer grows to tcp_wmem's 4 MiB
    at most), so the server's own write queue holds the rest (its limit is raised for this test).
    With one loop, the events have been written or queued for it once a reading subscriber has
    seen the last one. Each call publishes with a new key (a key's publish rate is limited)."""
    _, publisher = server.request("POST", "/v1/keys", {"name": "publisher", "userID": server.user})
    slow = Session(server, server.device, tls=tls, rcvbuf=4096, deflate=deflate)
    slow.send({"id": 1, "type": "subscribe", "channel": "flood", "property": "hotel-1"})
    fast = Session(server, server.device)
    fast.send({"id": 1, "type": "subscribe", "channel": "flood", "property": "hotel-1"})
    fast.next_json()
    data = "y" * EVENT_BYTES
    for i in range(EVENTS):
        status, _ = server.request("POST", "/v1/publish", {"channel": "flood", "property": "hotel-1", "data": {"n": i, "pad": data}}, key=publisher["secret"])
        assert status == 202, status
    seen = 0
    while seen < EVENTS:
        if fast.next_json().get("type") == "event":
            seen += 1
    fast.sock.close()
    return slow


def trap(server, name, prepare, last_bytes):
    """prepare() → a socket with the stage set; freeze; last bytes; reset; thaw; the server survives."""
    server.restart_if_dead()
    before = until(server.connections, 5)
    s = prepare()
    s = getattr(s, "sock", s)   # a Session's socket
    server.freeze()
    try:
        if last_bytes:
            s.sendall(last_bytes(s) if callable(last_bytes) else last_bytes)
        reset(s)
    finally:
        server.thaw()
    released = until(lambda: not server.alive() or server.connections() == before, 10)
    ok = server.alive() and released and probe(server)
    check(name, ok, "" if ok else f"alive={server.alive()} connections={server.connections()} (before {before}) {server.crash_log()[:2]}")


def client_hello():
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = tls_context().wrap_bio(incoming, outgoing, server_side=False)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def main():
    tls_dir = tempfile.mkdtemp()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-keyout", os.path.join(tls_dir, "key.pem"), "-out", os.path.join(tls_dir, "cert.pem")],
                   check=True, capture_output=True)
    upstream = BigUpstream()
    upstream.start()
    server = Server(tls_dir, upstream.port)
    try:
        check("probe session before the traps", probe(server))

        for tls in (False, True):
            scheme = "wss" if tls else "ws"
            port = lambda: server.tls_port if tls else server.port   # read per case: a crashed server is replaced
            # During the handshake: the 101 (or the ServerHello flight) meets the reset.
            trap(server, f"{scheme}: reset right after the request head",
                 lambda: raw_socket(port(), False), lambda s: client_hello() if tls else upgrade_request(server.device))
            if not tls:
                trap(server, "ws: reset in the middle of the request head",
                     lambda: raw_socket(port(), False), lambda s: upgrade_request(server.device)[:40])
            # An open session with ~800 KiB queued for it: whatever it sends last, the flush after the read fails.
            trap(server, f"{scheme}: reset with the write queue full, after a ping",
                 lambda: stalled_subscriber(server, tls), frame(0x9, b"p" * 125))
            trap(server, f"{scheme}: reset mid-frame with the write queue full",
                 lambda: stalled_subscriber(server, tls), frame(0x1, b"{" + b" " * 300 + b"}")[:100])
            trap(server, f"{scheme}: reset mid-message (a first fragment) with the write queue full",
                 lambda: stalled_subscriber(server, tls), frame(0x1, b'{"id":', fin=False))
            trap(server, f"{scheme}: reset with the write queue full, compressed (permessage-deflate)",
                 lambda: stalled_subscriber(server, tls, deflate=True), frame(0x9, b"p"))

            def flooded():   # the second way: pings without reading the pongs
                s = raw_socket(port(), tls, rcvbuf=4096)
                s.sendall(upgrade_request(server.device))
                s.sendall(frame(0x9, b"p" * 125) * 4000)   # ~500 KiB of pongs for a peer that does not read
                return s
            trap(server, f"{scheme}: reset during a ping flood", flooded, frame(0x9, b"p" * 125) * 100)

            def killed():   # the server's notice and close frame are queued behind the events
                s = stalled_subscriber(server, tls)
                status, _ = server.request("DELETE", f"/v1/sessions/{s.welcome['session']}")
                assert status == 204, status
                return s
            trap(server, f"{scheme}: reset during the close handshake (session killed, queue full)", killed, frame(0x9, b"p"))

            def streamed():   # a call's answer is streamed to a client that does not read
                s = raw_socket(port(), tls, rcvbuf=4096)
                upstream.sent = 0
                s.sendall(f"GET /big/file HTTP/1.1\r\nHost: x\r\nX-API-Key: {server.device}\r\nX-Doorman-Property: hotel-1\r\n\r\n".encode())
                assert until(lambda: upstream.sent >= 1024 * 1024, 10), upstream.sent   # more than the client's kernel can hold
                return s
            trap(server, f"{'https' if tls else 'http'}: reset while a streamed reply is in flight", streamed, b"GET /healthz HTTP/1.1\r\n")

        # A TLS error (a record that does not decrypt) while ciphertext is queued: the alert meets the reset.
        trap(server, "wss: TLS garbage then reset with the write queue full",
             lambda: stalled_subscriber(server, True), lambda s: b"\x17\x03\x03\x00\x20" + b"\x00" * 32)

        crashes = server.crashes + server.crash_log()
        check("no crash in the logs", not crashes, f"{len(crashes)} lines, first: {crashes[:2]}")
    finally:
        server.stop()

    # During drain: SIGTERM arrives while the server is frozen with a full queue and a reset pending.
    server = Server(tls_dir, upstream.port, extra=["--drain-timeout", "5", "--close-timeout", "2"])
    try:
        plain, secure, idle = stalled_subscriber(server, False), stalled_subscriber(server, True), Session(server, server.device)
        server.freeze()
        for s in (plain.sock, secure.sock):
            s.sendall(frame(0x9, b"p"))
            reset(s)
        server.proc.send_signal(signal.SIGTERM)
        server.thaw()
        # The idle session is told 1001 and answers; the server then exits by itself.
        code = None
        try:
            while True:
                opcode, payload = idle.next_message()
                if opcode == 8:
                    code = struct.unpack("!H", payload[:2])[0]
                    idle.sock.sendall(frame(8, payload[:2]))
                    break
        except (OSError, ConnectionError):
            pass
        try:
            status = server.proc.wait(20)
        except subprocess.TimeoutExpired:
            status = None
        check("ws + wss: reset during drain (SIGTERM): clean exit", status == 0 and code == 1001 and not server.crash_log(),
              f"exit={status} close={code} {server.crash_log()[:2]}")
    finally:
        server.stop()
        upstream.stopped = True
        shutil.rmtree(tls_dir, ignore_errors=True)
    print(f"reset-test: {passed} passed, {failed} failed")
    sys.exit(0 if failed == 0 else 1)


if __name__ == "__main__":
    main()
