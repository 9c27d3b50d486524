# SPDX-License-Identifier: Apache-2.0
"""Shared pieces of the cluster test and benchmark (scripts/cluster-test.py, scripts/bench-cluster.py):

- `Postgres`: a private, throwaway PostgreSQL server (initdb in a temporary folder, trust auth,
  superuser `doorman`, database `doorman`, 127.0.0.1 on a free port), which can be stopped and
  started again on the same folder and port. Under root the server runs as the `postgres` user
  through `runuser -u postgres --` (initdb and postgres refuse root).
- `Node`: one `doorman serve` process on that database, its output in a log file.
- `http` / `ahttp`: the admin REST API over urllib (the async form runs in a thread, so the event
  loop keeps reading WebSocket frames meanwhile).
- `ws_connect` / `WebSocket`: a minimal RFC 6455 client on asyncio.Protocol (one object per
  connection, no task or thread per connection): handshake with the Sec-WebSocket-Accept check,
  masked text frames, server frames with fragmentation, ping → pong, close frames and their code.
- `wait_until` / `await_until`: polling with a deadline, never unbounded.

Python 3.11 standard library only. Loopback only. Cleans up at exit and ends only the processes it
started (each node by its Popen, the PostgreSQL server by its postmaster.pid).
"""
import asyncio
import atexit
import base64
import collections
import hashlib
import json
import math
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROPERTY = "hotel-1"
CHANNEL = "door-events"


def raise_fd_limit():
    """Raises this process's open-file soft limit to the hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# Cleanup: everything started here is registered and ended at exit (normal end, exception,
# SIGINT, SIGTERM), newest first.

_cleanups = []


def _run_cleanups():
    while _cleanups:
        fn = _cleanups.pop()
        try:
            fn()
        except Exception as e:  # keep cleaning the rest
            print(f"cleanup: {e}", file=sys.stderr)


atexit.register(_run_cleanups)


# SIGTERM ends the run as Ctrl-C does (under asyncio.run the main task is cancelled, so the tests'
# own finally blocks run in the loop), then the cleanups above.
signal.signal(signal.SIGTERM, lambda *_: signal.raise_signal(signal.SIGINT))


def on_exit(fn):
    _cleanups.append(fn)


# ---------------------------------------------------------------------------------------------
# PostgreSQL

def pg_bin():
    """The folder with initdb, pg_ctl, postgres and createdb, or None: $DOORMAN_PG_BIN, else the
    newest /usr/lib/postgresql/<v>/bin, else PATH."""
    def has_server(d):
        return all(os.access(os.path.join(d, n), os.X_OK) for n in ("initdb", "pg_ctl", "postgres", "createdb"))
    if os.environ.get("DOORMAN_PG_BIN"):
        d = os.environ["DOORMAN_PG_BIN"]
        return d if has_server(d) else None
    root = "/usr/lib/postgresql"
    versions = sorted((int(v) for v in os.listdir(root) if v.isdigit()), reverse=True) if os.path.isdir(root) else []
    for v in versions:
        if has_server(f"{root}/{v}/bin"):
            return f"{root}/{v}/bin"
    for d in os.environ.get("PATH", "").split(":"):
        if d and has_server(d):
            return d
    return None


def require_postgres():
    """The PostgreSQL bin folder; when missing, says so loudly and exits 0 (1 under CI=true)."""
    b = pg_bin()
    if b is None:
        ci = os.environ.get("CI", "").lower() == "true"
        print("=" * 72, file=sys.stderr)
        print("SKIPPED: PostgreSQL not installed (initdb/pg_ctl not found; apt-get install postgresql, "
              "or set DOORMAN_PG_BIN)" + (" — and CI=true, so this is a failure" if ci else ""), file=sys.stderr)
        print("=" * 72, file=sys.stderr)
        sys.exit(1 if ci else 0)
    return b


class Postgres:
    """A private PostgreSQL server. `start()` the first time runs initdb and creates the database;
    `stop()` then `start()` again reuse the same data folder and port."""

    USER = "doorman"
    DATABASE = "doorman"

    def __init__(self, bin_dir=None):
        self.bin = bin_dir or require_postgres()
        self.folder = tempfile.mkdtemp(prefix="doorman-cluster-pg-")
        self.data = os.path.join(self.folder, "data")
        self.port = None
        self.pid = None  # the postmaster we started, from postmaster.pid
        self.run_as = []
        if os.getuid() == 0:
            import pwd
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                shutil.rmtree(self.folder, ignore_errors=True)
                raise SystemExit("running as root and there is no postgres user to run the server as (initdb refuses root)")
            os.chown(self.folder, pw.pw_uid, pw.pw_gid)
            self.run_as = ["/usr/sbin/runuser", "-u", "postgres", "--"]
        on_exit(self.cleanup)

    @property
    def url(self):
        return f"postgres://{self.USER}@127.0.0.1:{self.port}/{self.DATABASE}"

    def _run(self, argv, name, server=True, timeout=120):
        # Output to a file, never a pipe: pg_ctl start leaves the server running with our fds.
        path = os.path.join(self.folder, f"{name}.log")
        with open(path, "wb") as out:
            r = subprocess.run((self.run_as if server else []) + argv, stdin=subprocess.DEVNULL, stdout=out,
                               stderr=subprocess.STDOUT, timeout=timeout)
        if r.returncode != 0:
            with open(path, "rb") as f:
                text = f.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"{os.path.basename(argv[0])} failed ({r.returncode}): {text}{self.server_log_tail()}")

    def server_log_tail(self, n=2000):
        try:
            with open(os.path.join(self.folder, "server.log"), "rb") as f:
                text = f.read().decode(errors="replace")
            return f"\nserver.log:\n{text[-n:]}" if text else ""
        except OSError:
            return ""

    def start(self):
        first = self.port is None
        if first:
            self._run([f"{self.bin}/initdb", "-D", self.data, "-U", self.USER, "-A", "trust", "--no-locale", "-E", "UTF8",
                       "--no-sync"], "initdb")
        # A free port can be taken between the probe and the bind: the first start tries a few.
        for attempt in range(3 if first else 1):
            port = self.port or free_port()
            try:
                self._run([f"{self.bin}/pg_ctl", "-D", self.data, "-l", os.path.join(self.folder, "server.log"), "-w",
                           "-t", "60", "-o", f"-p {port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
                           "-c max_connections=200", "start"], "pg_ctl-start")
                self.port = port
                break
            except RuntimeError:
                if not first or attempt == 2:
                    raise
        self.pid = self._postmaster_pid()
        if first:
            self._run([f"{self.bin}/createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.USER, self.DATABASE],
                      "createdb", server=False)

    def stop(self, mode="fast"):
        """pg_ctl stop -m MODE, waiting for the server to be gone."""
        self._run([f"{self.bin}/pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "60", "stop"], "pg_ctl-stop")
        self.pid = None

    def running(self):
        return self.pid is not None and _alive(self.pid)

    def _postmaster_pid(self):
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                return int(f.readline().strip())
        except (OSError, ValueError):
            return None

    def cleanup(self):
        if self.pid is not None and _alive(self.pid):
            try:
                self.stop("immediate")
            except Exception:
                pass
            if self.pid is not None and _alive(self.pid):
                os.kill(self.pid, signal.SIGKILL)  # the postmaster we started
        self.pid = None
        shutil.rmtree(self.folder, ignore_errors=True)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------
# Gateway nodes

class Node:
    """One `doorman serve` process. Its stdout and stderr go to `<folder>/node-<name>.log`; it is up
    once that log has "doorman listening on". The port is chosen at the first start and kept."""

    def __init__(self, binary, name, db_url, folder, args=()):
        self.binary, self.name, self.db_url, self.folder = binary, name, db_url, folder
        self.args = list(args)
        self.port = None
        self.proc = None
        self.log_path = os.path.join(folder, f"node-{name}.log")
        self.admin_key = None
        on_exit(self.stop)

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout=60):
        first = self.port is None
        for attempt in range(3 if first else 1):
            port = self.port or free_port()
            try:
                self._start(port, timeout)
                self.port = port
                return self
            except RuntimeError as e:
                if not first or attempt == 2 or "in use" not in str(e).lower():
                    raise

    def _start(self, port, timeout):
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOORMAN_")}
        argv = [self.binary, "serve", "--db", self.db_url, "--host", "127.0.0.1", "--port", str(port),
                "--node-name", self.name] + self.args
        with open(self.log_path, "ab") as out:
            start = out.tell()
            out.write(f"==== {time.strftime('%H:%M:%S')} start: {' '.join(argv)}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self._read_from(start)
            if m := re.search(r"admin key: (dmk_\S+)", text):
                self.admin_key = m.group(1)
            if "doorman listening on" in text:
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"node {self.name} exited with {self.proc.returncode}:\n{text[-3000:]}")
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"node {self.name} did not start within {timeout} s:\n{self._read_from(start)[-3000:]}")

    def _read_from(self, offset):
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """SIGKILL, as a crash would."""
        if self.alive():
            self.proc.kill()
            self.proc.wait(30)

    def stop(self, timeout=15):
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)

    def tail(self, lines=40):
        try:
            with open(self.log_path, "rb") as f:
                text = f.read().decode(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def start_cluster(binary, names=("A", "B", "C"), args=(), pg=None, logs=None, nodes=None):
    """PostgreSQL (unless given and started) and the nodes: the first alone (it bootstraps the admin
    key on the empty store), then the others. Node logs go to `logs` (kept) or a temporary folder
    (removed at exit). Nodes are appended to `nodes` (if given) as they are made, so a caller can
    show their logs when a start fails. Returns (pg, nodes, admin_key)."""
    pg = pg or Postgres()
    if pg.port is None:
        pg.start()
    if logs:
        os.makedirs(logs, exist_ok=True)
        folder = logs
    else:
        folder = tempfile.mkdtemp(prefix="doorman-cluster-")
        on_exit(lambda: shutil.rmtree(folder, ignore_errors=True))
    nodes = nodes if nodes is not None else []
    nodes.extend(Node(binary, n, pg.url, folder, args) for n in names)
    nodes[0].start()
    if not nodes[0].admin_key:
        raise RuntimeError(f"node {nodes[0].name} printed no 'admin key:' line on the empty store:\n{nodes[0].tail()}")
    for n in nodes[1:]:
        n.start()
    return pg, nodes, nodes[0].admin_key


# ---------------------------------------------------------------------------------------------
# HTTP

def http(method, url, key=None, body=None, timeout=20):
    """One request; returns (status, parsed JSON or text or None). Network errors raise OSError."""
    data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
    headers = {"Content-Type": "application/json"}
    if key:
        headers["X-API-Key"] = key
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, _decode(r.read())
    except urllib.error.HTTPError as e:
        return e.code, _decode(e.read())


def _decode(raw):
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


async def ahttp(method, url, key=None, body=None, timeout=20):
    return await asyncio.to_thread(http, method, url, key, body, timeout)


class Admin:
    """The admin API through any node (they share the store)."""

    def __init__(self, key):
        self.key = key

    def call(self, node, method, path, body=None, expect=None, timeout=20):
        status, answer = http(method, node.base + path, self.key, body, timeout)
        if expect is not None and status not in ((expect,) if isinstance(expect, int) else expect):
            raise RuntimeError(f"{method} {path} on {node.name}: {status} {answer}")
        return status, answer

    async def acall(self, node, method, path, body=None, expect=None, timeout=20):
        return await asyncio.to_thread(self.call, node, method, path, body, expect, timeout)

    def new_user(self, node, name, permissions=("channel:*",), properties=(PROPERTY,)):
        return self.call(node, "POST", "/v1/users", {"name": name, "permissions": list(permissions),
                                                    "properties": list(properties)}, expect=(200, 201))[1]["id"]

    def new_key(self, node, name, user_id):
        """A new key: (id, secret)."""
        answer = self.call(node, "POST", "/v1/keys", {"name": name, "userID": user_id}, expect=(200, 201))[1]
        return answer["key"]["id"], answer["secret"]


# ---------------------------------------------------------------------------------------------
# Waiting

def wait_until(predicate, timeout, interval=0.1):
    """Polls `predicate` until it returns a truthy value (returned) or `timeout` seconds pass
    (returns the last value). Exceptions count as falsy."""
    deadline = time.monotonic() + timeout
    value = None
    while True:
        try:
            value = predicate()
        except Exception:
            value = None
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


async def await_until(predicate, timeout, interval=0.1):
    """`wait_until` for a coroutine function or a plain function, without blocking the loop."""
    deadline = time.monotonic() + timeout
    value = None
    while True:
        try:
            value = predicate()
            if asyncio.iscoroutine(value):
                value = await value
        except Exception:
            value = None
        if value or time.monotonic() >= deadline:
            return value
        await asyncio.sleep(interval)


# ---------------------------------------------------------------------------------------------
# WebSocket client (RFC 6455, client side)

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3


class HandshakeError(Exception):
    pass


class Refused(Exception):
    """A handshake answered with something other than 101."""

    def __init__(self, node, status, body):
        super().__init__(f"handshake on {node}: {status} {body}")
        self.status, self.body = status, body

    @property
    def error(self):
        return self.body.get("error") if isinstance(self.body, dict) else None


def _mask(payload, mask):
    n = len(payload)
    if n == 0:
        return b""
    m = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(m, "little")).to_bytes(n, "little")


def encode_frame(opcode, payload):
    """One final, masked client frame."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    mask = os.urandom(4)
    return head + mask + _mask(payload, mask)


class WebSocket(asyncio.Protocol):
    """One client connection. After `ws_connect`:

    - `status`, `headers` (lower-case names), `body`: the handshake's answer (101 or a refusal);
    - `messages`: a deque of (monotonic time, text) not yet taken by `recv`, unless `on_message`
      was given: then `on_message(ws, t, payload_bytes)` is called for each text message instead;
    - `close_code` / `close_reason` / `close_time`: from the server's close frame (None until one
      arrives); `lost_time`: when the TCP connection ended; `done`: a future resolved then.

    Ping frames are answered with pong; a close frame is answered with a close frame (same code)
    and the connection is then closed from our side.
    """

    __slots__ = ("transport", "key", "request", "buf", "state", "status", "headers", "body", "opened", "done",
                 "messages", "waiter", "on_message", "close_code", "close_reason", "close_time", "lost_time",
                 "frag_op", "frag", "sent_close", "error", "welcome", "tag")

    def __init__(self, request, key, on_message=None):
        loop = asyncio.get_running_loop()
        self.transport = None
        self.key, self.request = key, request
        self.buf = bytearray()
        self.state = 0  # 0 head, 1 refusal body, 2 open, 3 closed
        self.status, self.headers, self.body = None, {}, b""
        self.opened = loop.create_future()
        self.done = loop.create_future()
        self.messages = collections.deque()
        self.waiter = None
        self.on_message = on_message
        self.close_code = self.close_reason = self.close_time = self.lost_time = None
        self.frag_op, self.frag = None, None
        self.sent_close = False
        self.error = None
        self.welcome = None
        self.tag = None  # free for the caller (node name, index, …)

    # asyncio.Protocol

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data):
        now = time.monotonic()
        buf = self.buf
        buf += data
        if self.state == 0:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > 65536:
                    self._fail(HandshakeError("response head too large"))
                return
            self._head(bytes(buf[:end]).decode("latin-1"))
            del buf[:end + 4]
            if self.state == 3:
                return
        if self.state == 1:
            length = self.headers.get("content-length")
            if length is not None and len(buf) >= int(length):
                self.body = bytes(buf[:int(length)])
                buf.clear()
                self._refused()
            return
        if self.state == 2:
            self._frames(now)

    def eof_received(self):
        return False  # close the transport

    def connection_lost(self, exc):
        self.lost_time = time.monotonic()
        if self.state == 1:
            self.body = bytes(self.buf)
            self._refused()
        elif self.state == 0 and not self.opened.done():
            self.opened.set_exception(ConnectionError(f"connection closed during the handshake ({exc})"))
        self.state = 3
        self._wake()
        if not self.done.done():
            self.done.set_result(self.close_code)

    # Handshake

    def _head(self, text):
        lines = text.split("\r\n")
        parts = lines[0].split(" ", 2)
        try:
            self.status = int(parts[1])
        except (IndexError, ValueError):
            return self._fail(HandshakeError(f"bad status line: {lines[0]!r}"))
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        if self.status != 101:
            self.state = 1
            return
        expected = base64.b64encode(hashlib.sha1(self.key + GUID).digest()).decode()
        if self.headers.get("upgrade", "").lower() != "websocket" or \
                "upgrade" not in self.headers.get("connection", "").lower():
            return self._fail(HandshakeError(f"101 without Upgrade: websocket: {self.headers}"))
        if self.headers.get("sec-websocket-accept") != expected:
            return self._fail(HandshakeError(f"bad Sec-WebSocket-Accept {self.headers.get('sec-websocket-accept')!r}, "
                                             f"expected {expected!r}"))
        self.state = 2
        self.opened.set_result(self)

    def _refused(self):
        self.state = 3
        if not self.opened.done():
            self.opened.set_result(self)
        if self.transport:
            self.transport.close()

    def _fail(self, error):
        self.error = error
        self.state = 3
        if not self.opened.done():
            self.opened.set_exception(error)
        if self.transport:
            self.transport.abort()

    # Frames

    def _frames(self, now):
        buf = self.buf
        n = len(buf)
        pos = 0
        while n - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if n - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2:pos + 4], "big")
                head = 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2:pos + 10], "big")
                head = 10
            masked = b1 & 0x80
            if masked:
                head += 4
            if n - pos < head + length:
                break
            payload = bytes(buf[pos + head:pos + head + length])
            if masked:  # servers must not mask; tolerate it
                payload = _mask(payload, bytes(buf[pos + head - 4:pos + head]))
            pos += head + length
            if b0 & 0x70:
                self._protocol_error("reserved bits set (no extension negotiated)")
                break
            self._frame(b0 & 0x80, b0 & 0x0F, payload, now)
            if self.state != 2:
                break
        if pos:
            del buf[:pos]

    def _frame(self, fin, opcode, payload, now):
        if opcode == 0x9:  # ping
            self._send(0xA, payload)
        elif opcode == 0xA:  # pong
            pass
        elif opcode == 0x8:  # close
            self.close_time = now
            self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            self.close_reason = payload[2:].decode(errors="replace")
            self.state = 3
            # The answering close frame waits for the loop's next turn, so that sockets read in
            # the same turn (thousands, when one revocation closes them all) are timestamped first.
            asyncio.get_running_loop().call_soon(self._answer_close, payload[:2])
        elif opcode in (0x1, 0x2):
            if self.frag_op is not None:
                return self._protocol_error("new message inside a fragmented one")
            if fin:
                self._message(opcode, payload, now)
            else:
                self.frag_op, self.frag = opcode, [payload]
        elif opcode == 0x0:
            if self.frag_op is None:
                return self._protocol_error("continuation without a message")
            self.frag.append(payload)
            if fin:
                op, parts = self.frag_op, self.frag
                self.frag_op, self.frag = None, None
                self._message(op, b"".join(parts), now)
        else:
            self._protocol_error(f"unknown opcode {opcode}")

    def _answer_close(self, code):
        if not self.sent_close:
            self._send(0x8, code)
            self.sent_close = True
        self.transport.close()

    def _message(self, opcode, payload, now):
        if self.on_message is not None:
            self.on_message(self, now, payload)
            return
        self.messages.append((now, payload.decode() if opcode == 1 else payload))
        self._wake()

    def _protocol_error(self, why):
        self.error = why
        if not self.sent_close:
            self._send(0x8, (1002).to_bytes(2, "big"))
            self.sent_close = True
        self.state = 3
        self.transport.close()

    def _wake(self):
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _send(self, opcode, payload):
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(encode_frame(opcode, payload))

    # API

    @property
    def open(self):
        return self.state == 2

    def send_text(self, text):
        self._send(0x1, text.encode())

    def send_json(self, obj):
        self.send_text(json.dumps(obj))

    async def recv(self, timeout):
        """The next text message (str), or None once the connection is over and nothing is left.
        Raises TimeoutError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not self.messages:
            if self.state == 3:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no message within {timeout} s")
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self.waiter, left)
            except asyncio.TimeoutError:
                pass
            finally:
                self.waiter = None
        return self.messages.popleft()[1]

    async def expect(self, predicate, timeout, skipped=None):
        """The first JSON message for which `predicate(msg)` holds; other messages are appended to
        `skipped` (if given). Raises TimeoutError, or EOFError when the connection ends first."""
        deadline = time.monotonic() + timeout
        while True:
            text = await self.recv(max(0.0, deadline - time.monotonic()))
            if text is None:
                raise EOFError(f"connection ended (close code {self.close_code}) before the expected message")
            msg = json.loads(text)
            if predicate(msg):
                return msg
            if skipped is not None:
                skipped.append(msg)

    def drain_json(self):
        """Every message received and not yet taken, parsed, with its arrival time."""
        out = [(t, json.loads(m)) for t, m in self.messages]
        self.messages.clear()
        return out

    async def wait_closed(self, timeout):
        """Waits for the connection to end; returns the close code (None: dropped without a close frame)."""
        await asyncio.wait_for(asyncio.shield(self.done), timeout)
        return self.close_code

    def close(self, code=1000):
        if self.transport is None:
            return
        if self.state == 2 and not self.sent_close:
            self._send(0x8, code.to_bytes(2, "big"))
            self.sent_close = True
        self.state = 3
        self.transport.close()


async def ws_connect(host, port, secret=None, path="/ws", headers=None, local_addr=None, timeout=15,
                     on_message=None):
    """Opens a connection and completes the handshake. Returns the WebSocket whatever the status
    (check `.status`: 101 → open; else `.body` holds the refusal). Raises OSError, TimeoutError,
    HandshakeError."""
    key = base64.b64encode(os.urandom(16))
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket", "Connection: Upgrade",
             f"Sec-WebSocket-Key: {key.decode()}", "Sec-WebSocket-Version: 13"]
    if secret:
        lines.append(f"X-API-Key: {secret}")
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    loop = asyncio.get_running_loop()
    ws = WebSocket(request, key, on_message)
    transport = None
    try:
        async with asyncio.timeout(timeout):
            transport, _ = await loop.create_connection(lambda: ws, host, port, local_addr=local_addr)
            await ws.opened
    except BaseException:
        if transport is not None:
            transport.abort()
        raise
    return ws


def refusal(ws):
    """A refused handshake's body as JSON (or text)."""
    return _decode(ws.body)


async def open_session(node, secret, timeout=15, **kw):
    """A handshake that must succeed, and its welcome (kept in ws.welcome; ws.tag = the node's name)."""
    ws = await ws_connect("127.0.0.1", node.port, secret, timeout=timeout, **kw)
    if ws.status != 101:
        raise Refused(node.name, ws.status, refusal(ws))
    ws.welcome = await ws.expect(lambda m: m.get("type") == "welcome", timeout)
    ws.tag = node.name
    return ws


async def subscribe(ws, request_id=1, channel=CHANNEL, prop=PROPERTY, timeout=15):
    ws.send_json({"id": request_id, "type": "subscribe", "channel": channel, "property": prop})
    msg = await ws.expect(lambda m: m.get("id") == request_id and m.get("type") in ("result", "error"), timeout)
    if msg["type"] != "result":
        raise RuntimeError(f"subscribe refused: {msg}")
    return msg


def percentile(values, p):
    """Nearest-rank percentile of a list (p in 0..100); None for an empty list."""
    if not values:
        return None
    s = sorted(values)
    return s[max(0, min(len(s) - 1, math.ceil(p / 100 * len(s)) - 1))]
