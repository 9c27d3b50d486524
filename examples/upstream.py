#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A reference upstream for Doorman calls: verifies every request's signature (and refuses
replays), then answers. The `verify` function is what an upstream author needs; the rest is a
small server for trying it:

    DOORMAN_UPSTREAM_SECRET=... python3 examples/upstream.py 9001
    doorman serve --upstream pms=http://127.0.0.1:9001   (with DOORMAN_UPSTREAM_SECRET_PMS=...)

The upstream verifies as the name Doorman calls it by (DOORMAN_UPSTREAM_NAME, default pms): a
call Doorman signed for another upstream is refused even when the two share a secret.

Paths: anything → 200 with the identity Doorman vouched for and the body received;
/status/NNN → that status; /slow?ms=N → answers after N ms; /big?bytes=N → N bytes, chunked.
"""
import hashlib, hmac, json, os, sys, time, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_SKEW = 300
_seen, _seen_lock = {}, threading.Lock()

def verify(method, target, headers, body, secret, upstream):
    """True if Doorman signed this request with `secret` for this upstream (our name in Doorman's
    --upstream) and it is not a replay."""
    h = lambda name: headers.get(name, "")
    if h("X-Doorman-Upstream") != upstream:  # addressed to another upstream
        return False
    try:
        timestamp = int(h("X-Doorman-Timestamp"))
    except ValueError:
        return False
    if abs(time.time() - timestamp) > MAX_SKEW:
        return False
    canonical = "\n".join(["v2", method, target, upstream, str(timestamp), h("X-Doorman-Request-Id"), h("X-Doorman-User"),
                           h("X-Doorman-Key"), h("X-Doorman-Scopes"), h("X-Doorman-Properties"), h("X-Doorman-Property"),
                           hashlib.sha256(body).hexdigest()])
    expected = "v2=" + hmac.new(secret, canonical.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, h("X-Doorman-Signature")):
        return False
    with _seen_lock:  # a request id is good once within the skew window
        now = time.time()
        for rid in [r for r, t in _seen.items() if now - t > 2 * MAX_SKEW]:
            del _seen[rid]
        if h("X-Doorman-Request-Id") in _seen:
            return False
        _seen[h("X-Doorman-Request-Id")] = now
    return True


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    secret = os.environ.get("DOORMAN_UPSTREAM_SECRET", "").encode()
    name = os.environ.get("DOORMAN_UPSTREAM_NAME", "pms")

    def log_message(self, *args):
        pass

    def answer(self, status, payload, content_type="application/json"):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if not verify(self.command, self.path, self.headers, body, self.secret, self.name):
            return self.answer(401, {"error": "bad_signature"})
        path, _, query = self.path.partition("?")
        args = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
        if "/status/" in path:
            return self.answer(int(path.rsplit("/", 1)[1]), {"status": "as asked"})
        if path.endswith("/slow"):
            time.sleep(int(args.get("ms", "1000")) / 1000)
        if path.endswith("/big"):
            total = int(args.get("bytes", "1048576"))
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            while total > 0:
                n = min(total, 65536)
                self.wfile.write(b"%x\r\n" % n + b"x" * n + b"\r\n")
                total -= n
            self.wfile.write(b"0\r\n\r\n")
            return
        self.answer(200, {
            "path": self.path, "method": self.command,
            "user": self.headers.get("X-Doorman-User"), "key": self.headers.get("X-Doorman-Key"),
            "scopes": json.loads(self.headers.get("X-Doorman-Scopes", "[]")),
            "properties": json.loads(self.headers.get("X-Doorman-Properties", "[]")),
            "property": self.headers.get("X-Doorman-Property"),
            "received": body.decode("utf-8", "replace"),
        })

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any


def self_test():
    """The vector of the gateway's unit tests: the snippet and the gateway agree."""
    global time
    headers = {"X-Doorman-Upstream": "pms", "X-Doorman-Timestamp": "1795400000", "X-Doorman-Request-Id": "abc123", "X-Doorman-User": "usr_1",
               "X-Doorman-Key": "key_1", "X-Doorman-Scopes": '["pms:*","caf\\u00e9"]', "X-Doorman-Properties": '["hotel-1"]',
               "X-Doorman-Property": "hotel-1",
               "X-Doorman-Signature": "v2=c3dbd9c326ef240051ba72a3a9c7a15225d4270e188e2982887731c3cb5a8e76"}
    real_time = time.time
    time.time = lambda: 1795400000
    try:
        secret = b"0123456789abcdef0123"
        ok = not verify("POST", "/api/checkIn?x=1", headers, b'{"room":101}', secret, "billing")  # signed for pms
        ok = ok and not verify("POST", "/api/checkIn?x=1", {**headers, "X-Doorman-Upstream": "billing"}, b'{"room":101}', secret, "billing")
        ok = ok and verify("POST", "/api/checkIn?x=1", headers, b'{"room":101}', secret, "pms")
        ok = ok and not verify("POST", "/api/checkIn?x=1", headers, b'{"room":101}', secret, "pms")  # the same request again: a replay
    finally:
        time.time = real_time
    print("python verify: vector " + ("ok" if ok else "FAILED"))
    return ok


if __name__ == "__main__":
    if sys.argv[1:] == ["--self-test"]:
        sys.exit(0 if self_test() else 1)
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9001
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"upstream listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()
