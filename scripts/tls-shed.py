#!/usr/bin/env python3
"""Garbage and half-finished TLS handshakes are shed by the handshake deadline, and a live wss://
session is not hurt meanwhile (issue: the engine, part two).

  tls-shed.py PLAIN_PORT TLS_PORT [N]     (server on 127.0.0.1, echo mode, short --handshake-timeout)

Opens one TLS WebSocket session that echoes a message every 20 ms throughout, then N connections
to the TLS port (default 10,000): half send random bytes, half the start of a TLS record that never
completes. Waits until the server's /healthz connection count is back to the live session alone.
Standard library only; loopback only; bounded in count and time.
Last line: "tls-shed: PASS ..." or "tls-shed: FAIL ...".
"""
import base64
import json
import os
import resource
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.request

HOST = "127.0.0.1"


def healthz_connections(port):
    with urllib.request.urlopen(f"http://{HOST}:{port}/healthz", timeout=5) as r:
        return json.load(r)["connections"]


class Session:
    """A minimal wss:// echo client: masked text frames, unfragmented replies."""

    def __init__(self, port):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        raw = socket.create_connection((HOST, port), timeout=5)
        self.sock = ctx.wrap_socket(raw)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /ws HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise RuntimeError("closed during the upgrade")
            head += chunk
        if not head.startswith(b"HTTP/1.1 101"):
            raise RuntimeError(f"upgrade refused: {head[:40]!r}")
        self.buffer = head.split(b"\r\n\r\n", 1)[1]

    def echo(self, text):
        payload = text.encode()
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
        while len(self.buffer) < 2 or len(self.buffer) < 2 + (self.buffer[1] & 0x7F):
            chunk = self.sock.recv(4096)
            if not chunk:
                raise RuntimeError("closed")
            self.buffer += chunk
        n = self.buffer[1] & 0x7F
        got, self.buffer = self.buffer[2:2 + n], self.buffer[2 + n:]
        return got == payload


def main():
    plain, tls = int(sys.argv[1]), int(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 10_000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if n + 100 > hard:
        sys.exit(f"tls-shed: FAIL need {n + 100} descriptors, the limit is {hard}")

    session = Session(tls)
    baseline = healthz_connections(plain)
    echoes = {"ok": 0, "bad": 0, "worst_ms": 0.0}
    stop = threading.Event()

    def keep_echoing():
        i = 0
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                ok = session.echo(f"still here {i}")
            except Exception:
                ok = False
            echoes["ok" if ok else "bad"] += 1
            echoes["worst_ms"] = max(echoes["worst_ms"], (time.monotonic() - t0) * 1000)
            i += 1
            time.sleep(0.02)

    echo_thread = threading.Thread(target=keep_echoing, daemon=True)
    echo_thread.start()

    started = time.monotonic()
    bad = []
    for i in range(n):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect((HOST, tls))
        except BlockingIOError:
            pass
        bad.append(s)
    # Let the connects finish, then speak nonsense: garbage, or a record header promising 512
    # bytes followed by 40 (a ClientHello that never completes).
    time.sleep(0.5)
    peak = healthz_connections(plain)
    sent = 0
    for i, s in enumerate(bad):
        data = os.urandom(100) if i % 2 == 0 else b"\x16\x03\x01\x02\x00" + os.urandom(40)
        try:
            s.send(data)
            sent += 1
        except OSError:
            pass
    opened_s = time.monotonic() - started

    deadline = time.monotonic() + 60
    current = peak
    while time.monotonic() < deadline:
        current = healthz_connections(plain)
        if current <= baseline:
            break
        time.sleep(0.2)
    shed_s = time.monotonic() - started
    stop.set()
    echo_thread.join(5)
    for s in bad:
        s.close()
    alive = session.echo("after")

    print(f"bad_connections={n}\nsent_nonsense={sent}\nopened_in_s={opened_s:.1f}")
    print(f"server_connections_baseline={baseline}\nserver_connections_peak={peak}\nserver_connections_after={current}")
    print(f"shed_after_s={shed_s:.1f}\nlive_session_echoes_ok={echoes['ok']}\nlive_session_echoes_failed={echoes['bad']}")
    print(f"live_session_worst_echo_ms={echoes['worst_ms']:.1f}\nlive_session_alive_after={alive}")
    ok = current <= baseline and echoes["bad"] == 0 and alive and peak >= baseline + n * 9 // 10
    verdict = "PASS" if ok else "FAIL"
    print(f"tls-shed: {verdict} {n} bad handshakes, peak {peak} connections, back to {current} in {shed_s:.1f} s; "
          f"live session {echoes['ok']} echoes, {echoes['bad']} failed")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
