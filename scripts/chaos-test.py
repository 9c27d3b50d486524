#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Chaos test: a seeded, bounded storm of hostile clients against the real gateway binary. The
server must survive it and come back to where it was.

    python3 scripts/chaos-test.py --binary .build/release/doorman [--seed N] [--actions 20000]
        [--seconds 150] [--workers 48] [--server-arg=--some-flag=VALUE ...] [--skip KIND ...]

Starts the binary on free ports (plain and TLS, a throw-away P-256 certificate made with the
openssl CLI, a fresh SQLite file, short handshake/close/idle/pong timeouts, no per-address
handshake limit; --server-arg adds flags after these, and a later flag wins), then over the admin
API makes a user who may subscribe and publish on every channel of every property and 16 device
keys (every other one without a message rate limit, so floods reach the fan-out). With one ws://
and one wss:// session welcomed and closed, it measures the server's RSS and open descriptors.

The attack: --workers threads, each with its own random.Random seeded with (seed, worker index),
so a seed replays the same plan (the timing still varies). A worker runs episodes until the action
budget (--actions) or the time budget (--seconds) is spent. An episode picks ws:// or wss://, a
source address in 127.0.0.2-250 (bound before connect: no address dominates) and a live key,
does 0-2 floods when it holds a session, and ends with one hostile action. Every hostile operation
counts as one action of its kind:
  ping_flood           up to 300 pings (control frames, 0-125 bytes; some `ping` messages), no reads
  message_flood        subscribe to a hot channel, publish up to ~8 KiB messages to it, no reads
  self_publish         publish to a channel this session subscribes to, read until it comes back
  stall                tiny SO_RCVBUF set before connect, subscribe to hot channels, never read:
                       parked while the others publish there, later closed or reset
  reset_head           SO_LINGER 0 + close at a random byte of the request head (or right after it)
  reset_tls_handshake  reset inside the ClientHello, after it, or inside the client's last flight
  reset_mid_frame      reset inside a frame (over TLS, sometimes inside its TLS record)
  reset_mid_message    reset after fin=0 fragments (pings between them, maybe half a next one)
  reset_queued         pings and publishes whose answers are never read, then reset: the server
                       has bytes queued for a dead peer
  half_close           shutdown(SHUT_WR) before, inside or after the head, or inside a session,
                       then read until EOF or a timeout
  partial_head         part of a request head, then silence (parked) or close
  partial_frame        part of a frame, then silence (parked) or close
  oversized_frame      lengths of 2^32, 2^40, 2^63-1, 2^64-1 or just over 1 MiB, messages over the
                       limit in fragments, more fragments than allowed
  malformed_frame      reserved bits, unknown opcodes, unmasked frames, control frames over 125
                       bytes or fragmented, stray continuations, bad close frames, long lengths
  invalid_utf8         in a text frame, split over fragments, truncated at the end, in a close reason
  deflate_abuse        compressed frames: a decompression bomb (whole or in fragments), corrupt data,
                       invalid UTF-8 inside, RSV1 on a control frame or a continuation, or on a
                       session that agreed no compression; some valid ones
(The server runs with --compression; 40 % of upgrades offer permessage-deflate, with varied
parameters, and compressed answers are inflated before they are read.)
  garbage_http         random bytes, overlong or broken heads, HTTP/2, to the plain or the TLS port
  tls_garbage_record   after the TLS handshake: garbage, records with bad MACs or lengths, alerts
  tls_no_close_notify  a TLS session ended by a FIN without close_notify
  revoke               (the admin thread) revoke a key that holds live sessions, issue a
                       replacement; workers pick the new keys up (a 401 drops a key from the pool)
Clients tolerate any answer (errors, resets, closes): the test is about the server surviving, not
about the clients' answers. Connections left silent are parked and closed (or reset) later.

Checks, one line each: "ok  NAME" or "FAIL NAME DETAIL [seed N]":
  1. at least --actions actions, and every kind happened;
  2. the server process is alive;
  3. a fresh ws:// session and a fresh wss:// session are welcomed and answer `ping` within
     50 ms (the upgrade request to its welcome, and each of five pings from its send to its result);
  4. the server's descriptor count comes back to its baseline (polled every 100 ms, 20 s at most);
  5. its RSS comes back within 20 % or 8 MiB (the larger) of its baseline (polled likewise);
  6. its stderr shows no crash (runtime traps, exclusivity violations, fatal signals) and it has
     not exited.
Then SIGTERM (SIGKILL after 10 s); the temporary folder is removed.

Prints "chaos: seed N" first and the command line that replays the run; last line
"chaos: N passed, M failed"; exit 0 iff nothing failed. Standard library only; loopback only;
every loop is bounded in count and time and every socket has a timeout, so a run ends within
3 minutes with the defaults (also when the server dies or hangs); only the process it started is
signalled, by its PID.
"""
import argparse
import base64
import collections
import itertools
import json
import os
import queue
import random
import re
import resource
import shlex
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
import zlib

HOST = "127.0.0.1"
MiB = 1 << 20
IO_TIMEOUT = 3.0          # any one socket operation of a worker
READ_BACK = 1.0           # how long a client listens for the server's answer to a hostile act
DEVICE_KEYS = 16
PARKING_LIMIT = 400       # connections left open without reading, at most, at once
PING_BUDGET_MS = 50.0
CHECKS_RESERVE = 20.0     # seconds kept after the attack for joining, checks and the stop
HOT = [("chaos-0", "hotel-1"), ("chaos-1", "hotel-1"), ("chaos.hot/2", "hotel-2"), ("chaos_3", "hotel-2")]
CRASH_MARKS = ["Fatal", "fatal error", "Simultaneous accesses", "Segmentation fault", "Illegal instruction",
               "Current stack trace", "SIGABRT", "SIGSEGV"]
BAD_UTF8 = [b"\xff", b"\xfe\xff", b"\xc3\x28", b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
            b"\xf8\x88\x80\x80\x80", b"\x80", b"\xbf\xbf"]
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


# --- RFC 6455 client frames, and a tolerant reader -------------------------------------------

def xor_mask(payload, key):
    n = len(payload)
    if n == 0:
        return b""
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


def frame(opcode, payload=b"", fin=True, rsv=0, masked=True, length=None, form=None):
    """One client frame. `length` claims another payload size than the bytes given; `form` forces
    the 7-bit (0), 16-bit or 64-bit length encoding (a non-minimal one, if it must)."""
    n = len(payload) if length is None else length
    first = (0x80 if fin else 0) | (rsv & 7) << 4 | (opcode & 0x0F)
    m = 0x80 if masked else 0
    form = form if form is not None else (0 if n < 126 else 16 if n < 65536 else 64)
    if form == 0:
        head = bytes([first, m | n])
    elif form == 16:
        head = struct.pack("!BBH", first, m | 126, n)
    else:
        head = struct.pack("!BBQ", first, m | 127, n)
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + xor_mask(payload, key)


def text(obj):
    return frame(OP_TEXT, json.dumps(obj, separators=(",", ":")).encode())


def parse_frame(buf):
    """(fin, opcode, payload, bytes used) of the first whole frame in buf, or None."""
    if len(buf) < 2:
        return None
    b0, b1 = buf[0], buf[1]
    n, pos = b1 & 0x7F, 2
    if n == 126:
        if len(buf) < 4:
            return None
        n, pos = struct.unpack_from("!H", buf, 2)[0], 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n, pos = struct.unpack_from("!Q", buf, 2)[0], 10
    if n > 64 * MiB:
        raise ConnectionError(f"the server announced a {n}-byte frame")
    key = None
    if b1 & 0x80:
        if len(buf) < pos + 4:
            return None
        key, pos = bytes(buf[pos:pos + 4]), pos + 4
    if len(buf) < pos + n:
        return None
    payload = bytes(buf[pos:pos + n])
    return b0 >> 7, b0 & 0x0F, xor_mask(payload, key) if key else payload, pos + n


DEFLATE_OFFERS = ["permessage-deflate", "permessage-deflate; client_no_context_takeover",
                  "permessage-deflate; server_no_context_takeover; client_max_window_bits",
                  "permessage-deflate; server_max_window_bits=10", "permessage-deflate; client_max_window_bits=9",
                  "permessage-deflate; server_max_window_bits=8, permessage-deflate"]


def upgrade_head(secret, rng, deflate=None):
    """An upgrade request; `deflate` (default: a coin toss) offers permessage-deflate (RFC 7692)."""
    key = base64.b64encode(rng.randbytes(16)).decode()
    offer = rng.choice(DEFLATE_OFFERS) if (rng.random() < DEFLATE_SHARE if deflate is None else deflate) else None
    extension = f"Sec-WebSocket-Extensions: {offer}\r\n" if offer else ""
    return ("GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nUser-Agent: chaos-test\r\n"
            f"{extension}X-API-Key: {secret}\r\n\r\n").encode()


def tls_contexts():
    """Two client contexts without verification: TLS 1.3 (or 1.2) and TLS 1.2 only."""
    made = []
    for top in (ssl.TLSVersion.MAXIMUM_SUPPORTED, ssl.TLSVersion.TLSv1_2):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.maximum_version = top
        made.append(ctx)
    return made


TLS_CONTEXTS = tls_contexts()


class Conn:
    """One client connection: a TCP socket bound to a chosen loopback source, with TLS (if any) run
    by an SSLObject over memory BIOs, so every byte on the wire is ours to cut, reset or corrupt."""

    def __init__(self, port, source, tls_context=None, rcvbuf=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.buf = bytearray()
        self.tls = None
        self.closed = False
        self.parked = False
        self.on_close = None
        self.inflater = None   # set once permessage-deflate is agreed: server messages may be compressed
        try:
            if rcvbuf:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            try:
                self.sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            except OSError:
                pass
            self.sock.bind((source, 0))
            self.sock.settimeout(IO_TIMEOUT)
            self.sock.connect((HOST, port))
        except BaseException:
            self.sock.close()
            raise
        if tls_context is not None:
            self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            self.tls = tls_context.wrap_bio(self.incoming, self.outgoing)

    def _wait_until(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("deadline")
        self.sock.settimeout(min(left, IO_TIMEOUT))

    def _pull(self, deadline):
        """One read from the wire into TLS; EOF is an error (used inside the handshake)."""
        self._wait_until(deadline)
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed")
        self.incoming.write(data)

    def pending_tls_output(self):
        return self.outgoing.read()

    def tls_handshake(self, deadline):
        while True:
            try:
                self.tls.do_handshake()
                self.raw_send(self.pending_tls_output())
                return
            except ssl.SSLWantReadError:
                self.raw_send(self.pending_tls_output())
                self._pull(deadline)

    def raw_send(self, data):
        """Bytes straight onto the TCP stream, past TLS."""
        if data:
            self.sock.settimeout(IO_TIMEOUT)
            self.sock.sendall(data)

    def seal(self, data):
        """The TLS records carrying data (not sent)."""
        self.tls.write(data)
        return self.pending_tls_output()

    def send(self, data):
        if data:
            self.raw_send(self.seal(data) if self.tls else data)

    def recv_some(self, deadline):
        """Some bytes, or b"" at the end of the stream."""
        if not self.tls:
            self._wait_until(deadline)
            return self.sock.recv(65536)
        while True:
            try:
                return self.tls.read(65536)
            except ssl.SSLWantReadError:
                self._wait_until(deadline)
                data = self.sock.recv(65536)
                if not data:
                    return b""
                self.incoming.write(data)
            except ssl.SSLZeroReturnError:
                return b""

    def read_frame(self, deadline):
        while True:
            got = parse_frame(self.buf)
            if got:
                compressed = bool(self.buf[0] & 0x40)
                del self.buf[:got[3]]
                if compressed and self.inflater:   # RFC 7692 §7.2.2: append the stripped tail, inflate
                    try:
                        return got[0], got[1], self.inflater.decompress(got[2] + b"\x00\x00\xff\xff")
                    except zlib.error as e:
                        raise ConnectionError(f"bad compressed message: {e}")
                return got[:3]
            data = self.recv_some(deadline)
            if not data:
                raise ConnectionError("closed")
            self.buf += data

    def read_head(self, deadline):
        """The status of the HTTP answer; what follows its head stays in buf."""
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > 16384:
                raise ConnectionError("answer head too long")
            data = self.recv_some(deadline)
            if not data:
                raise ConnectionError("closed before answering")
            self.buf += data
        head, _, rest = bytes(self.buf).partition(b"\r\n\r\n")
        self.buf = bytearray(rest)
        if re.search(rb"(?im)^sec-websocket-extensions:.*permessage-deflate", head):
            self.inflater = zlib.decompressobj(-15)
        m = re.match(rb"HTTP/1\.[01] (\d{3})", head)
        return int(m.group(1)) if m else 0

    def drain(self, seconds, cap=4 * MiB):
        """Reads and drops until the end of the stream, an error, `seconds` or `cap` bytes."""
        deadline, got = time.monotonic() + seconds, 0
        try:
            while got < cap:
                data = self.recv_some(deadline)
                if not data:
                    break
                got += len(data)
        except (OSError, ValueError):
            pass
        return got

    def half_close(self):
        self.sock.shutdown(socket.SHUT_WR)

    def close(self, reset=False):
        """Close (FIN; over TLS never a close_notify) or reset (SO_LINGER on, 0 s: an RST)."""
        if self.closed:
            return
        self.closed = True
        if reset:
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        self.sock.close()
        if self.on_close:
            self.on_close()


# --- Shared state of the attack ---------------------------------------------------------------

class KeyPool:
    """The device keys workers may use; `live` counts this test's open sessions per key."""

    def __init__(self):
        self.lock = threading.Lock()
        self.keys = []

    def add(self, key_id, secret):
        with self.lock:
            self.keys.append({"id": key_id, "secret": secret, "live": 0, "dead": False})

    def pick(self, rng):
        with self.lock:
            alive = [k for k in self.keys if not k["dead"]]
            return alive[rng.randrange(len(alive))] if alive else None

    def drop(self, key):
        with self.lock:
            key["dead"] = True

    def hold(self, key):
        """Counts one more live session of key; returns the function that ends it (once)."""
        with self.lock:
            key["live"] += 1
        done = []

        def release():
            if not done:
                done.append(1)
                with self.lock:
                    key["live"] -= 1
        return release

    def busy(self, rng):
        with self.lock:
            held = [k for k in self.keys if k["live"] > 0 and not k["dead"]]
            return held[rng.randrange(len(held))] if held else None


class Parking:
    """Connections left open without reading (stalled readers, half-sent heads and frames): each
    is closed or reset when its time is up, or at the end of the attack."""

    def __init__(self):
        self.lock = threading.Lock()
        self.items = []

    def park(self, conn, seconds, reset):
        with self.lock:
            if len(self.items) < PARKING_LIMIT:
                conn.parked = True
                self.items.append((time.monotonic() + seconds, conn, reset))
                return
        conn.close(reset)

    def sweep(self, everything=False):
        now = time.monotonic()
        with self.lock:
            due = [i for i in self.items if everything or i[0] <= now]
            self.items = [i for i in self.items if not (everything or i[0] <= now)]
        for _, conn, reset in due:
            conn.close(reset)

    def __len__(self):
        return len(self.items)


class Attack:
    def __init__(self, args, port, tls_port, pool):
        self.seed, self.budget = args.seed, args.actions
        self.port, self.tls_port, self.pool = port, tls_port, pool
        self.kinds = [k for k in KINDS if k not in args.skip]
        self.lock = threading.Lock()
        self.counts = collections.Counter()
        self.total = 0
        self.stop = threading.Event()
        self.deadline = min(time.monotonic() + args.seconds, args.end_by - CHECKS_RESERVE)
        self.parking = Parking()
        self.bugs = collections.Counter()   # unexpected exceptions in the clients (bugs of this test)
        self.first_bug = None

    def count(self, kind):
        with self.lock:
            self.counts[kind] += 1
            self.total += 1

    def going(self):
        return not self.stop.is_set() and self.total < self.budget and time.monotonic() < self.deadline


class Worker:
    def __init__(self, attack, index):
        self.a = attack
        self.index = index
        self.rng = random.Random(f"chaos:{attack.seed}:{index}")
        self.ids = itertools.count(1)

    def next_id(self):
        return next(self.ids)

    def connect(self, tls, rcvbuf=None):
        r = self.rng
        source = f"127.0.0.{r.randint(2, 250)}"
        context = r.choice(TLS_CONTEXTS) if tls else None
        return Conn(self.a.tls_port if tls else self.a.port, source, context, rcvbuf)

    def transport(self, tls, rcvbuf=None):
        """Connected, and through the TLS handshake when tls."""
        conn = self.connect(tls, rcvbuf)
        if tls:
            try:
                conn.tls_handshake(time.monotonic() + IO_TIMEOUT)
            except BaseException:
                conn.close()
                raise
        return conn

    def upgrade(self, conn):
        """Upgrades conn with a live key; True once welcomed. A key refused with 401 leaves the pool."""
        key = self.a.pool.pick(self.rng)
        if key is None:
            return False
        conn.send(upgrade_head(key["secret"], self.rng))
        deadline = time.monotonic() + IO_TIMEOUT
        status = conn.read_head(deadline)
        if status == 401:
            self.a.pool.drop(key)
        if status != 101:
            return False
        _, opcode, payload = conn.read_frame(deadline)
        if opcode != OP_TEXT or b'"welcome"' not in payload:
            return False
        conn.on_close = self.a.pool.hold(key)
        return True

    def session(self, tls, rcvbuf=None):
        """A welcomed session (three tries with different keys), or None."""
        for _ in range(3):
            conn = self.transport(tls, rcvbuf)
            try:
                if self.upgrade(conn):
                    return conn
            except BaseException:
                conn.close()
                raise
            conn.close()
        return None


# --- The actions: one function per kind; each gets a connection in its kind's phase -----------

def ping_flood(w, c):
    """Up to 300 pings (control frames with 0-125 bytes, some `ping` messages), pongs unread."""
    r = w.rng
    frames = []
    for _ in range(r.randint(20, 300)):
        if r.random() < 0.85:
            frames.append(frame(OP_PING, r.randbytes(r.randint(0, 125))))
        else:
            frames.append(text({"id": w.next_id(), "type": "ping"}))
    c.send(b"".join(frames))


def message_flood(w, c):
    """Subscribes to a hot channel and publishes up to ~8 KiB messages to it, reading nothing."""
    r = w.rng
    channel, prop = r.choice(HOT)
    frames = [text({"id": w.next_id(), "type": "subscribe", "channel": channel, "property": prop})]
    size = r.choice([64, 512, 2048, 8000])
    for i in range(r.randint(5, 60)):
        frames.append(text({"id": w.next_id(), "type": "publish", "channel": channel, "property": prop,
                            "data": {"n": i, "from": w.index, "pad": "x" * r.randint(0, size)}}))
    c.send(b"".join(frames))


def self_publish(w, c):
    """Publishes to a channel this session subscribes to, and reads until the event comes back."""
    r = w.rng
    channel, prop = r.choice(HOT) if r.random() < 0.5 else (f"self-{w.index}", "hotel-1")
    marker = f"mark-{w.index}-{w.next_id()}"
    c.send(text({"id": w.next_id(), "type": "subscribe", "channel": channel, "property": prop})
           + text({"id": w.next_id(), "type": "publish", "channel": channel, "property": prop,
                   "data": {"marker": marker, "pad": "y" * r.randint(0, 8000)}}))
    deadline, seen = time.monotonic() + READ_BACK, 0
    try:
        while seen < 4 * MiB:
            _, _, payload = c.read_frame(deadline)
            seen += len(payload)
            if marker.encode() in payload:
                return
    except TimeoutError:
        pass


def stall(w, c):
    """Subscribes to hot channels with a tiny receive buffer, then never reads while the others
    publish there: parked, later closed or reset with the server's bytes queued."""
    r = w.rng
    frames = [text({"id": w.next_id(), "type": "subscribe", "channel": ch, "property": prop})
              for ch, prop in r.sample(HOT, r.randint(1, 3))]
    frames += [frame(OP_PING, r.randbytes(125)) for _ in range(r.randint(0, 50))]
    c.send(b"".join(frames))
    w.a.parking.park(c, r.uniform(0.5, 6.0), reset=r.random() < 0.5)


def reset_head(w, c):
    """Resets at a random byte of the request head (sometimes right after all of it)."""
    r = w.rng
    key = w.a.pool.pick(r)
    head = upgrade_head(key["secret"] if key else "dmk_none", r)
    c.send(head[:r.randint(0, len(head))])
    c.close(reset=True)


def reset_tls_handshake(w, c):
    """Resets inside the ClientHello, after it (maybe having read part of the server's answer), or
    inside the client's last handshake flight."""
    r = w.rng
    try:
        c.tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = c.pending_tls_output()
    how = r.randrange(3)
    if how == 0:
        c.raw_send(hello[:r.randint(0, len(hello) - 1)])
    elif how == 1:
        c.raw_send(hello)
        if r.random() < 0.5:
            try:
                c._wait_until(time.monotonic() + READ_BACK)
                c.sock.recv(r.randint(1, 4096))
            except OSError:
                pass
    else:
        c.raw_send(hello)
        deadline = time.monotonic() + IO_TIMEOUT
        while True:   # read the server's flight until the client has its next one to say
            try:
                c.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                if c.outgoing.pending:
                    break
                c._pull(deadline)
        last = c.pending_tls_output()
        c.raw_send(last[:r.randint(0, max(0, len(last) - 1))])
    c.close(reset=True)


def some_frame(w):
    """A well-formed frame to cut: a publish, a ping, a binary message, a close."""
    r = w.rng
    channel, prop = r.choice(HOT)
    return r.choice([
        lambda: text({"id": w.next_id(), "type": "publish", "channel": channel, "property": prop,
                      "data": {"pad": "z" * r.randint(0, 8000)}}),
        lambda: frame(OP_PING, r.randbytes(r.randint(1, 125))),
        lambda: frame(OP_BINARY, r.randbytes(r.randint(1, 65536))),
        lambda: frame(OP_CLOSE, struct.pack("!H", 1000) + b"bye"),
    ])()


def reset_mid_frame(w, c):
    """Resets inside a frame, after a ping whose pong is then queued; over TLS sometimes inside the
    TLS record too."""
    r = w.rng
    if r.random() < 0.5:
        c.send(frame(OP_PING, b"before the cut"))
    data = some_frame(w)
    cut = r.randint(1, len(data) - 1)
    if c.tls and r.random() < 0.5:
        records = c.seal(data)
        c.raw_send(records[:r.randint(1, len(records) - 1)])
    else:
        c.send(data[:cut])
    c.close(reset=True)


def reset_mid_message(w, c):
    """Resets after fin=0 fragments of a message (control frames between them), sometimes inside
    the next fragment."""
    r = w.rng
    opcode = r.choice([OP_TEXT, OP_BINARY])
    body = json.dumps({"id": w.next_id(), "type": "ping", "pad": "f" * r.randint(0, 20000)}).encode()
    pieces = r.randint(1, 5)
    step = max(1, len(body) // (pieces + 1))
    frames = []
    for i in range(pieces):
        frames.append(frame(opcode if i == 0 else OP_CONT, body[i * step:(i + 1) * step], fin=False))
        if r.random() < 0.3:
            frames.append(frame(OP_PING, b"between fragments"))
    data = b"".join(frames)
    if r.random() < 0.5:
        rest = frame(OP_CONT, body[pieces * step:])
        data += rest[:r.randint(1, len(rest) - 1)]
    c.send(data)
    c.close(reset=True)


def reset_queued(w, c):
    """With a tiny receive buffer: subscribes to a hot channel, sends pings and publishes whose
    answers are never read, so the server has bytes queued for this peer; then resets."""
    r = w.rng
    channel, prop = r.choice(HOT)
    frames = [text({"id": w.next_id(), "type": "subscribe", "channel": channel, "property": prop})]
    for _ in range(r.randint(30, 300)):
        if r.random() < 0.8:
            frames.append(frame(OP_PING, r.randbytes(125)))
        else:
            frames.append(text({"id": w.next_id(), "type": "publish", "channel": channel, "property": prop,
                                "data": {"pad": "q" * r.randint(0, 4000)}}))
    c.send(b"".join(frames))
    pause = r.choice([0.0, 0.0, 0.01, 0.05, 0.2])   # a varied moment, not a wait for anything
    if pause:
        time.sleep(pause)
    c.close(reset=True)


def half_close(w, c):
    """shutdown(SHUT_WR) before the head, inside it, right after it, or inside a session (after a
    message or half a frame); then reads until the server's EOF or a timeout."""
    r = w.rng
    point = r.randrange(5)
    if point in (1, 2):
        key = w.a.pool.pick(r)
        head = upgrade_head(key["secret"] if key else "dmk_none", r)
        c.send(head if point == 2 else head[:r.randint(1, len(head) - 1)])
    elif point >= 3:
        if not w.upgrade(c):
            return
        if point == 3:
            c.send(text({"id": w.next_id(), "type": "ping"}))
        else:
            data = some_frame(w)
            c.send(data[:r.randint(1, len(data) - 1)])
    c.half_close()
    c.drain(IO_TIMEOUT)


def partial_head(w, c):
    """Part of a request head, then silence (parked until later) or a close."""
    r = w.rng
    key = w.a.pool.pick(r)
    head = upgrade_head(key["secret"] if key else "dmk_none", r)
    c.send(head[:r.randint(1, len(head) - 4)])
    if r.random() < 0.6:
        w.a.parking.park(c, r.uniform(0.5, 4.0), reset=r.random() < 0.3)
    else:
        c.close()


def partial_frame(w, c):
    """Part of a frame (often inside its header), then silence (parked until later) or a close."""
    r = w.rng
    data = some_frame(w)
    cut = r.randint(1, min(len(data) - 1, 14)) if r.random() < 0.5 else r.randint(1, len(data) - 1)
    c.send(data[:cut])
    if r.random() < 0.6:
        w.a.parking.park(c, r.uniform(0.5, 8.0), reset=r.random() < 0.3)
    else:
        c.close()


def oversized_frame(w, c):
    """A length header claiming a huge payload (maybe with some of it), a message over the limit
    in fragments, or more fragments than allowed; then listens, and closes or resets."""
    r = w.rng
    how = r.randrange(10)
    if how < 7:
        length = r.choice([2 ** 32, 2 ** 40, 2 ** 63 - 1, 2 ** 64 - 1, MiB + 1, MiB + r.randint(2, 65536)])
        data = frame(r.choice([OP_TEXT, OP_BINARY]), b"", length=length)
        if r.random() < 0.5:
            data += r.randbytes(r.randint(1, 65536))
        c.send(data)
    elif how < 9:
        c.send(b"".join(frame(OP_CONT if i else OP_BINARY, b"", fin=False) for i in range(r.randint(1025, 1200))))
    else:
        piece = r.randbytes(300 * 1024)
        c.send(b"".join(frame(OP_CONT if i else OP_BINARY, piece, fin=(i == 3)) for i in range(4)))
    c.drain(READ_BACK)
    c.close(reset=r.random() < 0.3)


def malformed_frame(w, c):
    """A frame breaking RFC 6455; then listens, and closes or resets."""
    r = w.rng
    body = r.randbytes(r.randint(0, 40))
    data = r.choice([
        lambda: frame(OP_TEXT, b"{}", rsv=r.randint(1, 7)),                                 # reserved bits
        lambda: frame(r.choice([3, 4, 5, 6, 7, 11, 12, 13, 14, 15]), body),                  # unknown opcode
        lambda: frame(OP_TEXT, b'{"id":1,"type":"ping"}', masked=False),                     # unmasked
        lambda: frame(OP_PING, r.randbytes(r.randint(126, 2000))),                           # control > 125
        lambda: frame(OP_PING, b"", length=r.randint(126, 65535)),                           # claims > 125
        lambda: frame(r.choice([OP_PING, OP_PONG, OP_CLOSE]), body[:20], fin=False),         # fragmented control
        lambda: frame(OP_CONT, body),                                                        # nothing to continue
        lambda: frame(OP_TEXT, b"ab", fin=False) + frame(OP_BINARY, b"cd"),                  # new message mid-message
        lambda: frame(OP_CLOSE, b"\x03"),                                                    # one-byte close
        lambda: frame(OP_CLOSE, struct.pack("!H", r.choice([0, 999, 1004, 1005, 1006, 1015, 2999, 5000, 65535]))),
        lambda: frame(OP_TEXT, b"{}", form=r.choice([16, 64])),                              # non-minimal length
        lambda: frame(OP_BINARY, b"", length=2 ** 63 + r.randint(0, 1000)),                  # length's top bit set
    ])()
    c.send(data)
    c.drain(READ_BACK)
    c.close(reset=r.random() < 0.3)


def deflated(data):
    """Raw deflate of data as one message (RFC 7692 §7.2.1: sync flush, tail stripped)."""
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    return (z.compress(data) + z.flush(zlib.Z_SYNC_FLUSH))[:-4]


BOMB_TEXT = deflated(b"[" + b" " * (8 << 20) + b"]")   # ~8 KiB that inflate to 8 MiB (the limit is 1 MiB)
BOMB_ZEROS = deflated(b"\0" * (3 << 20))


def deflate_abuse(w, c):
    """Compressed frames the server must refuse or bound: a decompression bomb (a few KiB that
    inflate past the message limit), corrupt deflate data, RSV1 on a control frame or a
    continuation, or RSV1 on a session that agreed no compression; then listens, closes or resets."""
    r = w.rng
    data = r.choice([
        lambda: frame(OP_TEXT, BOMB_TEXT, rsv=4),                                                  # bomb
        lambda: frame(OP_BINARY, BOMB_ZEROS[:r.randint(1, 200)], rsv=4, fin=False)
                + frame(OP_CONT, BOMB_ZEROS[200:], fin=True),                                      # bomb in fragments
        lambda: frame(OP_TEXT, r.randbytes(r.randint(1, 300)), rsv=4),                             # corrupt
        lambda: frame(OP_TEXT, deflated(b'{"id":1,"type":"ping"}\xff\xfe'), rsv=4),                 # bad UTF-8 inside
        lambda: frame(OP_PING, deflated(b"p"), rsv=4),                                             # RSV1 on control
        lambda: frame(OP_TEXT, deflated(b'{"id":1,'), rsv=4, fin=False) + frame(OP_CONT, deflated(b"}"), rsv=4),
        lambda: frame(OP_TEXT, deflated(json.dumps({"id": w.next_id(), "type": "ping"}).encode()), rsv=4),  # valid
    ])()
    c.send(data)
    c.drain(READ_BACK)
    c.close(reset=r.random() < 0.3)


def invalid_utf8(w, c):
    """Invalid UTF-8 in a text message: whole, split over fragments, truncated at its end, inside a
    JSON string, or in a close reason; then listens, and closes or resets."""
    r = w.rng
    bad = r.choice(BAD_UTF8)
    how = r.randrange(5)
    if how == 0:
        data = frame(OP_TEXT, b'{"id":1,"type":"ping","x":"' + bad + b'"}')
    elif how == 1:
        cut = r.randint(0, len(bad))
        data = frame(OP_TEXT, b"valid start " + bad[:cut], fin=False) + frame(OP_CONT, bad[cut:] + b" end")
    elif how == 2:
        data = frame(OP_TEXT, "ok \u20ac".encode()[:-1])   # ends inside a 3-byte sequence
    elif how == 3:
        data = frame(OP_TEXT, r.randbytes(r.randint(1, 2000)) + bad)
    else:
        data = frame(OP_CLOSE, struct.pack("!H", 1000) + b"reason " + bad)
    c.send(data)
    c.drain(READ_BACK)
    c.close(reset=r.random() < 0.3)


def garbage_http(w, c):
    """Bytes that are not a request (or not a ClientHello, on the TLS port); then listens, closes."""
    r = w.rng
    data = r.choice([
        lambda: r.randbytes(r.randint(1, 4096)),
        lambda: b"GET / HTTP/1.1\r\n" + r.randbytes(r.randint(1, 2000)),
        lambda: b"GET /ws HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * r.randint(8200, 20000) + b"\r\n\r\n",
        lambda: b"GET /ws HTTP/1.1\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(100)) + b"\r\n",
        lambda: b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + r.randbytes(64),
        lambda: b"\x00" * r.randint(1, 3000),
        lambda: (b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: !!!\r\nX-API-Key: dmk_nope\r\n\r\n"),
        lambda: b"GET /ws HTTP/1.1\r\nHost: a\r\nHost: b\r\n Folded: x\r\nBad\x00Name: y\r\n\r\n",
        lambda: b"POST /v1/publish HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n" + r.randbytes(1000),
        lambda: b"POST /v1/keys HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n" + r.randbytes(100),
        lambda: b"\x16\x03\x01\x02\x00" + r.randbytes(r.randint(0, 600)),
        lambda: b"GET /" + b"%" * r.randint(1, 9000) + b" HTTP/1.1\r\n\r\n",
    ])()
    c.raw_send(data)
    c.drain(READ_BACK)
    c.close()


def tls_garbage_record(w, c):
    """After the TLS handshake (sometimes in a session): garbage, a record with a bad MAC, one
    over the maximum length, a plaintext handshake, alert or ChangeCipherSpec record, or a
    valid record followed by junk; then listens, and closes or resets."""
    r = w.rng
    if r.random() < 0.5 and not w.upgrade(c):
        return
    junk = r.randbytes(r.randint(1, 2000))
    data = r.choice([
        lambda: junk,
        lambda: b"\x17\x03\x03" + struct.pack("!H", len(junk)) + junk,
        lambda: b"\x17\x03\x03\xff\xff" + junk,
        lambda: b"\x16\x03\x01" + struct.pack("!H", len(junk)) + junk,
        lambda: b"\x15\x03\x03\x00\x02\x02\x28",
        lambda: b"\x14\x03\x03\x00\x01\x01",
        lambda: c.seal(frame(OP_PING, b"real")) + junk,
    ])()
    c.raw_send(data)
    c.drain(READ_BACK)
    c.close(reset=r.random() < 0.3)


def tls_no_close_notify(w, c):
    """A TLS session that ends with a FIN and no close_notify, sometimes mid-message."""
    r = w.rng
    how = r.randrange(3)
    if how == 0:
        c.send(text({"id": w.next_id(), "type": "ping"}))
        c.drain(0.05, cap=4096)
    elif how == 1:
        c.send(frame(OP_TEXT, b'{"id":1,', fin=False))
    c.close()


# name: (function, phase, weight, TLS only, tiny receive buffer). Phases: "raw" (TCP connected,
# nothing said), "transport" (TCP, and TLS handshake done on the TLS port), "session" (welcomed).
KINDS = {
    "ping_flood":          (ping_flood, "session", 5, False, False),
    "message_flood":       (message_flood, "session", 5, False, False),
    "self_publish":        (self_publish, "session", 3, False, False),
    "stall":               (stall, "session", 4, False, True),
    "reset_head":          (reset_head, "transport", 4, False, False),
    "reset_tls_handshake": (reset_tls_handshake, "raw", 3, True, False),
    "reset_mid_frame":     (reset_mid_frame, "session", 4, False, False),
    "reset_mid_message":   (reset_mid_message, "session", 3, False, False),
    "reset_queued":        (reset_queued, "session", 5, False, True),
    "half_close":          (half_close, "transport", 3, False, False),
    "partial_head":        (partial_head, "transport", 3, False, False),
    "partial_frame":       (partial_frame, "session", 3, False, False),
    "oversized_frame":     (oversized_frame, "session", 3, False, False),
    "malformed_frame":     (malformed_frame, "session", 4, False, False),
    "invalid_utf8":        (invalid_utf8, "session", 3, False, False),
    "deflate_abuse":       (deflate_abuse, "session", 3, False, False),
    "garbage_http":        (garbage_http, "raw", 3, False, False),
    "tls_garbage_record":  (tls_garbage_record, "transport", 3, True, False),
    "tls_no_close_notify": (tls_no_close_notify, "session", 2, True, False),
}
FLOODS = ["ping_flood", "message_flood", "self_publish"]   # may come before any session's last act
REVOKE = "revoke"                                           # counted by the admin thread
TLS_SHARE = 0.35
DEFLATE_SHARE = 0.4   # sessions that offer permessage-deflate (the server runs with --compression)


def episode(w):
    """One connection: its transport, its key, 0-2 floods when it is a session, one last act."""
    r = w.rng
    kinds = w.a.kinds
    kind = r.choices(kinds, weights=[KINDS[k][2] for k in kinds])[0]
    act, phase, _, tls_only, tiny_buffer = KINDS[kind]
    tls = tls_only or r.random() < TLS_SHARE
    rcvbuf = r.choice([1024, 2048, 4096]) if tiny_buffer else None
    if phase == "session":
        conn = w.session(tls, rcvbuf)
        if conn is None:
            return
    elif phase == "transport":
        conn = w.transport(tls, rcvbuf)
    else:
        conn = w.connect(tls, rcvbuf)
    try:
        if phase == "session":
            floods = [f for f in FLOODS if f in kinds]
            for _ in range(r.randint(0, 2) if floods else 0):
                flood = r.choice(floods)
                if not w.a.going():
                    return
                w.a.count(flood)
                KINDS[flood][0](w, conn)
        w.a.count(kind)
        act(w, conn)
    finally:
        if not conn.parked:
            conn.close()


def work(w):
    while w.a.kinds and w.a.going():
        try:
            episode(w)
        except (OSError, ValueError):
            pass   # resets, timeouts, closes, TLS errors: whatever the server answers is fine
        except Exception:
            with w.a.lock:
                w.a.bugs[type(sys.exc_info()[1]).__name__] += 1
                w.a.first_bug = w.a.first_bug or traceback.format_exc()
            time.sleep(0.01)


# --- The server and its admin API ---------------------------------------------------------------

class Server:
    def __init__(self, binary, folder, extra):
        cert, key = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                        "-days", "2", "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", cert],
                       check=True, capture_output=True, timeout=30)
        self.stderr_path = os.path.join(folder, "stderr.log")
        self.command = [binary, "serve", "--port", "0", "--db", os.path.join(folder, "chaos.db"), "--tls-cert", cert,
                        "--tls-key", key, "--tls-port", "0", "--handshakes-per-second", "0", "--handshake-timeout", "2",
                        "--close-timeout", "2", "--idle-timeout", "5", "--pong-timeout", "2", "--compression", "--log-level", "warning",
                        *extra]

        def more_descriptors():
            _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=err, preexec_fn=more_descriptors)
        self.pid = self.proc.pid
        lines = queue.Queue()

        def read_stdout():   # keeps the pipe drained for the server's whole life
            for raw in self.proc.stdout:
                lines.put(raw.decode(errors="replace"))
            lines.put(None)

        threading.Thread(target=read_stdout, daemon=True).start()
        self.admin = self.port = self.tls_port = None
        deadline = time.monotonic() + 30
        while not (self.admin and self.port and self.tls_port) and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                break
            if m := re.match(r"admin key: (\S+)", line):
                self.admin = m.group(1)
            elif m := re.match(r"doorman listening for TLS on .*:(\d+)\s*$", line):
                self.tls_port = int(m.group(1))
            elif m := re.match(r"doorman listening on .*:(\d+)\s*$", line):
                self.port = int(m.group(1))
        if not (self.admin and self.port and self.tls_port):
            status = self.stop()
            raise RuntimeError(f"the server did not start (exit status {status}): {self.stderr_tail(5)}")

    def alive(self):
        return self.proc.poll() is None

    def api(self, method, path, body=None):
        """(status, JSON answer or None) of an admin request."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"http://{HOST}:{self.port}{path}", data=data, method=method,
                                         headers={"X-API-Key": self.admin, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                status, raw = answer.status, answer.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, None

    def create_key(self, user_id, n, name=None):
        """A device key; every other one has no message rate limit, so its floods reach the fan-out."""
        body = {"name": name or f"chaos device {n}", "userID": user_id}
        if n % 2 == 0:
            body["limits"] = {"messagesPerSecond": 0}
        status, answer = self.api("POST", "/v1/keys", body)
        if status not in (200, 201) or not answer or "secret" not in answer or "id" not in answer.get("key", {}):
            raise RuntimeError(f"POST /v1/keys answered {status}: {answer}")
        return answer["key"]["id"], answer["secret"]

    def descriptors(self):
        try:
            return len(os.listdir(f"/proc/{self.pid}/fd"))
        except OSError:
            return None

    def rss_kib(self, field="VmRSS"):
        try:
            with open(f"/proc/{self.pid}/status") as f:
                m = re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M)
            return int(m.group(1)) if m else None
        except OSError:
            return None

    def memory(self):
        """RSS split into anonymous and file-backed pages, for failure details."""
        anon, files = self.rss_kib("RssAnon"), self.rss_kib("RssFile")
        return f"anon {(anon or 0) / 1024:.1f} MiB, files {(files or 0) / 1024:.1f} MiB"

    def connections(self):
        try:
            with urllib.request.urlopen(f"http://{HOST}:{self.port}/healthz", timeout=2) as r:
                return json.load(r).get("connections")
        except (OSError, ValueError):
            return None

    def crash_lines(self):
        with open(self.stderr_path, "rb") as f:
            lines = f.read().decode(errors="replace").splitlines()
        return [line for line in lines if any(mark in line for mark in CRASH_MARKS)]

    def stderr_tail(self, n):
        try:
            with open(self.stderr_path, "rb") as f:
                return " | ".join(f.read().decode(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self):
        """SIGTERM, SIGKILL after 10 s; the exit status."""
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(5)
        return self.proc.returncode


def revoke_keys(server, attack, pool, user_id, rng, issued):
    """The admin thread: now and then revokes a key that holds live sessions and issues another."""
    while not attack.stop.wait(rng.uniform(0.2, 0.7)):
        key = pool.busy(rng)
        if key is None:
            continue
        try:
            status, _ = server.api("POST", f"/v1/keys/{key['id']}/revoke")
            if status == 200:
                pool.drop(key)
                attack.count(REVOKE)
                pool.add(*server.create_key(user_id, next(issued)))
        except (OSError, RuntimeError):
            pass


def probe(server, secret, tls, pings=5):
    """A fresh session from 127.0.0.1 with the probe key: the upgrade timed from its request to the
    welcome, then `pings` ping messages each timed from send to its result (ms), then a clean close
    awaited to the server's EOF. Returns the welcome's time followed by the pings' times."""
    conn = Conn(server.tls_port if tls else server.port, HOST, TLS_CONTEXTS[0] if tls else None)
    times = []
    try:
        deadline = time.monotonic() + IO_TIMEOUT
        if tls:
            conn.tls_handshake(deadline)
        started = time.monotonic()
        conn.send(upgrade_head(secret, random.Random()))
        status = conn.read_head(deadline)
        if status != 101:
            raise ConnectionError(f"handshake answered {status}")
        _, opcode, payload = conn.read_frame(deadline)
        if opcode != OP_TEXT or json.loads(payload).get("type") != "welcome":
            raise ConnectionError(f"no welcome: {payload[:80]!r}")
        times.append((time.monotonic() - started) * 1000)
        for i in range(1, pings + 1):
            started = time.monotonic()
            conn.send(text({"id": i, "type": "ping"}))
            while True:
                _, opcode, payload = conn.read_frame(started + 1)
                if opcode == OP_TEXT:
                    message = json.loads(payload)
                    if message.get("id") == i and message.get("type") == "result" and message.get("pong"):
                        break
            times.append((time.monotonic() - started) * 1000)
        conn.send(frame(OP_CLOSE, struct.pack("!H", 1000)))
        conn.drain(2)
    finally:
        conn.close()
    return times


# --- The run ------------------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", required=True, help="the doorman executable")
    parser.add_argument("--seed", type=int, default=None, help="plan seed (default: random)")
    parser.add_argument("--actions", type=int, default=20000, help="hostile actions to perform")
    parser.add_argument("--seconds", type=float, default=150, help="time budget of the attack")
    parser.add_argument("--workers", type=int, default=48, help="attacking threads")
    parser.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                        help="one more argument for `doorman serve` (repeatable; write --server-arg=--flag=value)")
    parser.add_argument("--skip", action="append", default=[], choices=sorted([*KINDS, REVOKE]), metavar="KIND",
                        help="leave out an action kind (repeatable; for narrowing a failure down)")
    args = parser.parse_args()
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1, 2 ** 31)
    started = time.monotonic()
    args.end_by = started + args.seconds + CHECKS_RESERVE   # the whole run: 170 s with the defaults, plus the stop
    print(f"chaos: seed {args.seed}", flush=True)
    replay = [sys.executable, sys.argv[0], "--binary", args.binary, "--seed", str(args.seed), "--actions", str(args.actions),
              "--seconds", f"{args.seconds:g}", "--workers", str(args.workers)]
    replay += [f"--server-arg={a}" for a in args.server_arg] + [f"--skip={k}" for k in args.skip]
    print(f"chaos: replay with: {shlex.join(replay)}", flush=True)

    results = {"passed": 0, "failed": 0}

    def check(name, ok, detail=""):
        results["passed" if ok else "failed"] += 1
        if ok:
            print(f"ok  {name}" + (f" ({detail})" if detail else ""), flush=True)
        else:
            print(f"FAIL {name} {detail} [seed {args.seed}]", flush=True)

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    folder = tempfile.mkdtemp(prefix="doorman-chaos-")
    server = None
    try:
        server = Server(args.binary, folder, args.server_arg)
        status, user = server.api("POST", "/v1/users", {"name": "chaos devices",
                                                        "permissions": ["channel:subscribe.*", "channel:publish.*"],
                                                        "properties": ["*"]})
        if status not in (200, 201) or not user:
            raise RuntimeError(f"POST /v1/users answered {status}: {user}")
        issued = itertools.count()
        pool = KeyPool()
        for _ in range(DEVICE_KEYS):
            pool.add(*server.create_key(user["id"], next(issued)))
        probe_secret = server.create_key(user["id"], 1, "chaos probe")[1]   # never revoked, never flooded

        # The baseline: one ws:// and one wss:// session welcomed and closed, then a settled count.
        probe(server, probe_secret, tls=False, pings=1)
        probe(server, probe_secret, tls=True, pings=1)
        readings = []
        settle_by = time.monotonic() + 3
        while time.monotonic() < settle_by and not (len(readings) >= 5 and len(set(readings[-5:])) == 1):
            readings.append(server.descriptors())
            time.sleep(0.1)
        base_fds, base_rss, base_memory = min(readings[-5:]), server.rss_kib(), server.memory()
        print(f"chaos: server pid {server.pid}, ports {server.port} (ws) and {server.tls_port} (wss); "
              f"baseline {base_fds} descriptors, RSS {base_rss / 1024:.1f} MiB", flush=True)
    except Exception as e:   # no server, refused flags, an admin API that says no: nothing to attack
        check("setup", False, f"{type(e).__name__}: {e}")
        if server:
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)
        print(f"chaos: {results['passed']} passed, {results['failed']} failed")
        sys.exit(1)

    try:
        # --- The attack.
        attack = Attack(args, server.port, server.tls_port, pool)
        workers = [threading.Thread(target=work, args=(Worker(attack, i),), daemon=True) for i in range(args.workers)]
        admin = threading.Thread(target=revoke_keys, daemon=True,
                                 args=(server, attack, pool, user["id"], random.Random(f"chaos:{args.seed}:admin"), issued))
        attack_started = time.monotonic()
        for t in workers:
            t.start()
        if REVOKE not in args.skip:
            admin.start()
        last_report = last_sample = attack_started
        peak_fds = peak_rss = 0
        while any(t.is_alive() for t in workers):
            attack.parking.sweep()
            if not server.alive():
                attack.stop.set()   # nothing left to attack: end now, the checks will say why
            if time.monotonic() - last_sample >= 0.5:
                last_sample = time.monotonic()
                fds, rss = server.descriptors() or 0, server.rss_kib() or 0
                peak_fds, peak_rss = max(peak_fds, fds), max(peak_rss, rss)
            if time.monotonic() - last_report >= 10:
                last_report = time.monotonic()
                print(f"chaos: {attack.total} actions after {last_report - attack_started:.0f} s; {len(attack.parking)} "
                      f"parked; server: {fds} descriptors, RSS {rss / 1024:.1f} MiB", flush=True)
            if time.monotonic() > attack.deadline + IO_TIMEOUT + 1:
                break   # a worker still in a slow step: stop waiting (it is a daemon thread)
            time.sleep(0.05)
        attack.stop.set()
        for t in workers:
            t.join(timeout=max(0.0, attack.deadline + IO_TIMEOUT + 1 - time.monotonic()))
        if admin.is_alive():
            admin.join(timeout=max(0.5, attack.deadline + IO_TIMEOUT + 1 - time.monotonic()))
        attack.parking.sweep(everything=True)
        attack_s = time.monotonic() - attack_started
        print(f"chaos: {attack.total} actions in {attack_s:.1f} s ({attack.total / max(attack_s, 0.001):.0f}/s) "
              f"by {args.workers} workers; server peaks: {peak_fds} descriptors, RSS {peak_rss / 1024:.1f} MiB", flush=True)
        for kind in [*KINDS, REVOKE]:
            print(f"chaos:   {kind:<20} {attack.counts[kind]:>6}" + ("   (skipped)" if kind in args.skip else ""))
        if attack.bugs:
            print(f"chaos: unexpected client exceptions (a bug of this test): {dict(attack.bugs)}\n{attack.first_bug}")

        # --- The checks.
        wanted = [k for k in [*KINDS, REVOKE] if k not in args.skip]
        missing = [k for k in wanted if attack.counts[k] == 0]
        check("actions: the budget spent and every kind done", attack.total >= args.actions and not missing,
              f"{attack.total} of {args.actions} actions" + (f"; never done: {', '.join(missing)}" if missing else ""))
        alive = server.alive()
        check("server alive after the attack", alive,
              "" if alive else f"exit status {server.proc.returncode}; stderr ends: {server.stderr_tail(6)}")

        for tls in (False, True):
            name = f"fresh {'wss' if tls else 'ws'}:// session welcomed and pings answered, each within {PING_BUDGET_MS:g} ms"
            try:
                welcome, *pings = probe(server, probe_secret, tls)
                slowest = max(welcome, *pings)
                check(name, slowest <= PING_BUDGET_MS,
                      f"welcome {welcome:.1f} ms, pings {', '.join(f'{t:.1f}' for t in pings)} ms")
            except (OSError, ValueError) as e:
                check(name, False, f"{type(e).__name__}: {e}")

        # Descriptors and RSS, polled together every 100 ms for up to 20 s; less when the attack
        # used its whole time budget, so that the stop (10 s at most) still ends the run in time.
        window = max(2.0, min(20.0, args.end_by - 11 - time.monotonic()))
        rss_limit = base_rss + max(base_rss * 0.2, 8 * 1024)
        poll_started = time.monotonic()
        fds_back = rss_back = None
        fds = rss = None
        while True:
            fds, rss = server.descriptors(), server.rss_kib()
            now = time.monotonic() - poll_started
            if fds_back is None and fds is not None and fds <= base_fds:
                fds_back = now
            if rss_back is None and rss is not None and rss <= rss_limit:
                rss_back = now
            if (fds_back is not None and rss_back is not None) or now >= window or not server.alive():
                break
            time.sleep(0.1)
        waited = f"after {time.monotonic() - poll_started:.1f} s"
        gone = None if server.alive() else f"the server is gone (exit status {server.proc.poll()})"
        if fds_back is not None:
            check("descriptors back to the baseline", True, f"{fds}, baseline {base_fds}, after {fds_back:.1f} s")
        else:
            check("descriptors back to the baseline", False, gone or f"{fds} {waited}, baseline {base_fds}; "
                  f"the server counts {server.connections()} connections")
        if rss_back is not None:
            check("RSS back near the baseline", True, f"{rss / 1024:.1f} MiB, baseline {base_rss / 1024:.1f} MiB, "
                  f"limit {rss_limit / 1024:.1f} MiB, after {rss_back:.1f} s")
        else:
            check("RSS back near the baseline", False, gone or
                  f"{(rss or 0) / 1024:.1f} MiB {waited} ({server.memory()}), limit {rss_limit / 1024:.1f} MiB, "
                  f"baseline {base_rss / 1024:.1f} MiB ({base_memory})")

        crashes = server.crash_lines()
        alive = server.alive()
        detail = ""
        if crashes:
            detail = f"{len(crashes)} crash line(s), first: {crashes[0][:300]!r}"
        if not alive:
            detail += f"{'; ' if detail else ''}exited with status {server.proc.returncode}"
        check("no crash in the server's stderr, and it did not exit", not crashes and alive, detail)
    except Exception as e:   # a bug of this script: still a failed run, still a last line
        traceback.print_exc()
        check("the test ran to its end", False, f"{type(e).__name__}: {e}")
    finally:
        status = server.stop()
        print(f"chaos: server stopped (exit status {status}) after {time.monotonic() - started:.1f} s in all", flush=True)
        shutil.rmtree(folder, ignore_errors=True)
    print(f"chaos: {results['passed']} passed, {results['failed']} failed")
    sys.exit(1 if results["failed"] else 0)


if __name__ == "__main__":
    main()
