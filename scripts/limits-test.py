#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The denial-of-service limits a hotel network needs, against the real binary:

- one client address may hold only so many connections that are reading a request (1 % of
  --max-connections by default): the next is refused at accept with 429 (a plain close on the TLS
  listener), before anything is read; other addresses are not affected; a connection whose request
  is answered and ends frees its place; /metrics counts the refusals;
- POST /v1/publish is rate-limited per key: past the burst, 429 with Retry-After; another key is
  not affected; /metrics counts the refusals.

    python3 scripts/limits-test.py .build/release/doorman
Prints "limits-test: N passed, M failed" last. Loopback only; bounded; ends only its own processes.
"""
import http.client, json, os, re, shutil, signal, socket, ssl, subprocess, sys, tempfile, time

BIN = sys.argv[1]
passed = failed = 0


def check(name, ok, detail=""):
    global passed, failed
    passed, failed = passed + (1 if ok else 0), failed + (0 if ok else 1)
    print(f"{'ok  ' if ok else 'FAIL'} {name} {detail}", flush=True)


def start(args, tls_dir):
    folder = tempfile.mkdtemp()
    proc = subprocess.Popen([BIN, "serve", "--port", "0", "--db", os.path.join(folder, "d.db"), "--log-level", "warning",
                             "--tls-cert", os.path.join(tls_dir, "cert.pem"), "--tls-key", os.path.join(tls_dir, "key.pem"), "--tls-port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    found = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(found) < 3:
        line = proc.stdout.readline().decode()
        if not line:
            break
        for name, pattern in (("admin", r"admin key: (\S+)"), ("port", r"doorman listening on .*:(\d+)$"), ("tls", r"doorman listening for TLS on .*:(\d+)$")):
            if m := re.match(pattern, line):
                found[name] = m.group(1)
    if len(found) < 3:
        raise SystemExit("the server did not start")
    return proc, folder, found["admin"], int(found["port"]), int(found["tls"])


def request(port, method, path, body=None, key=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, json.dumps(body) if body is not None else None, {"X-API-Key": key or "", "Content-Type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, dict(r.getheaders()), data


def metric(port, name):
    _, _, text = request(port, "GET", "/metrics")
    m = re.search(rb"^" + name.encode() + rb" (\d+)", text, re.M)
    return int(m.group(1)) if m else None


def connect(port, source="127.0.0.1"):
    s = socket.socket()
    s.settimeout(5)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def answer(s):
    """What the server says first: its bytes, or b"" when it closes (or resets) without a word."""
    try:
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return data
            data += chunk
    except ConnectionResetError:
        return data
    except socket.timeout:
        return data or b"(silence)"


def unfinished_cap(tls_dir):
    # --max-connections 300: the default cap is 1 %, 3 unfinished connections per address.
    proc, folder, admin, port, tls_port = start(["--max-connections", "300"], tls_dir)
    try:
        held = [connect(port) for _ in range(3)]
        for s in held:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")   # a head that never ends
        fourth = connect(port)
        refused = answer(fourth)
        check("the 4th unfinished connection from one address gets 429 at accept", refused.startswith(b"HTTP/1.1 429") and b"too_many_unfinished_requests" in refused, repr(refused[:80]))
        other = connect(port, "127.0.0.2")
        other.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        check("another address is not affected", answer(other).startswith(b"HTTP/1.1 200"))
        tls = connect(tls_port)
        check("on the TLS listener the refusal is a plain close", answer(tls) == b"")
        held[0].sendall(b"Connection: close\r\n\r\n")   # its request is complete, answered, and the connection ends
        check("a finished request frees its place", answer(held[0]).startswith(b"HTTP/1.1 200"))
        fifth = connect(port)
        fifth.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        check("then a new connection from that address is served", answer(fifth).startswith(b"HTTP/1.1 200"))
        for s in held[1:]:
            s.close()
        count = metric(port, "doorman_unfinished_handshake_refusals_total")
        check("/metrics counts the refusals", count is not None and count >= 2, str(count))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
        shutil.rmtree(folder, ignore_errors=True)


def publish_rate(tls_dir):
    proc, folder, admin, port, _ = start(["--publishes-per-second", "1", "--publish-burst", "3"], tls_dir)
    try:
        _, _, user = request(port, "POST", "/v1/users", {"name": "integrator", "permissions": ["channel:publish.*"], "properties": ["hotel-1"]}, admin)
        keys = []
        for name in ("pms", "rms"):
            _, _, issued = request(port, "POST", "/v1/keys", {"name": name, "userID": json.loads(user)["id"]}, admin)
            keys.append(json.loads(issued)["secret"])
        event = {"channel": "door-events", "property": "hotel-1", "data": {"door": 1}}
        statuses = [request(port, "POST", "/v1/publish", event, keys[0])[0] for _ in range(3)]
        status, headers, body = request(port, "POST", "/v1/publish", event, keys[0])
        check("a key's publishes within the burst are accepted", statuses == [202, 202, 202], str(statuses))
        check("past it: 429 rate_limited with Retry-After", status == 429 and b"rate_limited" in body and int(headers.get("Retry-After", "0")) >= 1,
              f"{status} {headers.get('Retry-After')} {body[:80]!r}")
        check("another key is not affected", request(port, "POST", "/v1/publish", event, keys[1])[0] == 202)
        count = metric(port, "doorman_publishes_rate_limited_total")
        check("/metrics counts the refusals", count == 1, str(count))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
        shutil.rmtree(folder, ignore_errors=True)


def main():
    tls_dir = tempfile.mkdtemp()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-keyout", os.path.join(tls_dir, "key.pem"), "-out", os.path.join(tls_dir, "cert.pem")],
                   check=True, capture_output=True)
    try:
        unfinished_cap(tls_dir)
        publish_rate(tls_dir)
    finally:
        shutil.rmtree(tls_dir, ignore_errors=True)
    print(f"limits-test: {passed} passed, {failed} failed")
    sys.exit(0 if failed == 0 else 1)


if __name__ == "__main__":
    main()
