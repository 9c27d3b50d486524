#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The shared scenario harness for the client libraries' tests: runs a real gateway (the binary)
and the reference upstream (examples/upstream.py) on 127.0.0.1, makes a device key, and lets a
test steer them over a small control API, so every client is tested against the same story:

    connect, subscribe, receive a publish, call an upstream, get throttled and recover,
    server restart → reconnect and resubscribe, key revoked → stop, and no more handshakes.

    python3 clients/scenario/harness.py --binary .build/release/doorman
    → prints "harness ready http://127.0.0.1:PORT" and serves until POST /stop (or --limit seconds)

Control API (JSON):
    GET  /info        {"url","http","key","keyID","channel","property","call","limits"}
    POST /publish     {"data": …}            publish on the channel (another key, over HTTP)
    POST /restart                            SIGTERM the gateway, start it again on the same port and store
    POST /suspend                            suspend the device key (waits for its sessions to close)
    POST /resume                             resume it (a suspended device comes back within 2 × 1 s:
                                             the gateway runs with --reversible-retry 1)
    POST /revoke                             revoke the device key (waits for its sessions to close)
    GET  /handshakes  {"accepted": n, "revoked_key": n, …, "total": n}   since the gateway last started
    POST /stop                               end everything (the harness exits)
Loopback only; bounded in time; ends only its own processes.
"""
import argparse, json, os, re, signal, socket, subprocess, sys, tempfile, threading, time, urllib.error, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SECRET = "scenario-upstream-secret-0123456789"
CHANNEL, PROPERTY, CALL = "door-events", "hotel-1", "pms:checkIn"
# Calls: a burst of 3, then one every 2 s: a client meets rate_limited quickly and can recover.
LIMITS = {"callsPerSecond": 0.5, "callBurst": 3}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class World:
    def __init__(self, binary):
        self.binary = binary
        self.dir = tempfile.mkdtemp(prefix="doorman-scenario-")
        self.port = free_port()
        self.upstream_port = free_port()
        self.gateway = None
        self.upstream = subprocess.Popen([sys.executable, os.path.join(ROOT, "examples/upstream.py"), str(self.upstream_port)],
                                         env={**os.environ, "DOORMAN_UPSTREAM_SECRET": SECRET},
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        # Ready only once the upstream listens (it prints a line when it does).
        if "upstream listening" not in self.upstream.stdout.readline().decode():
            raise SystemExit("the reference upstream did not start")
        self.start_gateway()
        user = self.admin("POST", "/v1/users", {"name": "scenario devices", "permissions": ["pms:*", "channel:*"], "properties": [PROPERTY]})["id"]
        issued = self.admin("POST", "/v1/keys", {"name": "scenario device", "userID": user, "limits": LIMITS})
        self.key, self.key_id = issued["secret"], issued["key"]["id"]
        self.publisher = self.admin("POST", "/v1/keys", {"name": "scenario publisher", "userID": user})["secret"]

    def start_gateway(self):
        out = open(os.path.join(self.dir, "gateway.out"), "a+")
        start = out.tell()
        self.gateway = subprocess.Popen(
            [self.binary, "serve", "--port", str(self.port), "--db", os.path.join(self.dir, "doorman.db"), "--log-level", "warning",
             "--reversible-retry", "1",
             "--upstream", f"pms=http://127.0.0.1:{self.upstream_port}", "--handshakes-per-second", "0"],
            env={**os.environ, "DOORMAN_UPSTREAM_SECRET_PMS": SECRET}, stdout=out, stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while time.time() < deadline:
            out.seek(start)
            text = out.read()
            if m := re.search(r"admin key: (\S+)", text):
                self.admin_key = m.group(1)
            if "doorman listening on" in text:
                return
            time.sleep(0.05)
        raise SystemExit("the gateway did not start")

    def request(self, method, path, key, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
                                     headers={"X-API-Key": key, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                text = r.read()
                return r.status, (json.loads(text) if text else None)
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def admin(self, method, path, body=None):
        status, answer = self.request(method, path, self.admin_key, body)
        if status >= 300:
            raise RuntimeError(f"{method} {path}: {status} {answer}")
        return answer

    def handshakes(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10) as r:
            text = r.read().decode()
        counts = {m.group(1): int(m.group(2)) for m in re.finditer(r'^doorman_handshakes_total\{result="([a-z_]+)"\} (\d+)$', text, re.M)}
        counts["total"] = sum(counts.values())
        return counts

    def restart(self):
        self.gateway.send_signal(signal.SIGTERM)
        self.gateway.wait(20)
        self.start_gateway()

    def stop(self):
        for p in (self.gateway, self.upstream):
            if p and p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build/release/doorman"))
    parser.add_argument("--limit", type=float, default=600, help="seconds before the harness ends by itself")
    args = parser.parse_args()
    world = World(args.binary)
    done = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def reply(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/info":
                return self.reply(200, {"url": f"ws://127.0.0.1:{world.port}/ws", "http": f"http://127.0.0.1:{world.port}",
                                        "key": world.key, "keyID": world.key_id, "channel": CHANNEL, "property": PROPERTY,
                                        "call": CALL, "limits": LIMITS})
            if self.path == "/handshakes":
                return self.reply(200, world.handshakes())
            self.reply(404, {"error": "not_found"})

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}") if length else {}
            try:
                if self.path == "/publish":
                    status, answer = world.request("POST", "/v1/publish", world.publisher,
                                                   {"channel": CHANNEL, "property": PROPERTY, "data": body.get("data")})
                    return self.reply(status, answer)
                if self.path == "/restart":
                    world.restart()
                    return self.reply(200, {"restarted": True})
                if self.path in ("/suspend", "/resume"):
                    wait = "?wait=true" if self.path == "/suspend" else ""
                    return self.reply(200, world.admin("POST", f"/v1/keys/{world.key_id}{self.path}{wait}"))
                if self.path == "/revoke":
                    return self.reply(200, world.admin("POST", f"/v1/keys/{world.key_id}/revoke?wait=true"))
                if self.path == "/stop":
                    self.reply(200, {"stopping": True})
                    done.set()
                    return
            except Exception as e:  # the test sees why
                return self.reply(500, {"error": str(e)})
            self.reply(404, {"error": "not_found"})

    # SIGTERM/SIGINT end the harness like POST /stop: its gateway and upstream go with it.
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    control = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=control.serve_forever, daemon=True).start()
    print(f"harness ready http://127.0.0.1:{control.server_address[1]}", flush=True)
    try:
        done.wait(args.limit)
    finally:
        control.shutdown()
        world.stop()


if __name__ == "__main__":
    main()
