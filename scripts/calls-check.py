#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Calls through the real binary to the Python reference upstream (examples/upstream.py), whose
README snippet verifies every signature: allowed → 200 (verified upstream), denied by rule → 403
(never reaches it), the same signed request replayed straight at the upstream → 401.

    python3 scripts/calls-check.py .build/release/doorman
Prints "calls-check: N passed, M failed" last. Loopback only; bounded; ends only its own processes.
"""
import json, os, re, socket, subprocess, sys, tempfile, time, urllib.error, urllib.request

BIN = sys.argv[1]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECRET = "calls-check-secret-0123456789"
passed = failed = 0
procs = []


def check(name, ok, detail=""):
    global passed, failed
    passed, failed = passed + (1 if ok else 0), failed + (0 if ok else 1)
    print(f"{'ok  ' if ok else 'FAIL'} {name} {detail}")


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close(); return port


def wait_line(proc, pattern, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline:
        line = proc.stdout.readline().decode()
        m = re.search(pattern, line)
        if m:
            return m, line
    raise SystemExit(f"no line matching {pattern}")


def request(method, url, key=None, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else None
    h = {"Content-Type": "application/json", **(headers or {})}
    if key:
        h["X-API-Key"] = key
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, method=method, headers=h), timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def main():
    check("python snippet matches the gateway's vector", subprocess.run([sys.executable, os.path.join(ROOT, "examples/upstream.py"), "--self-test"]).returncode == 0)
    up_port = free_port()
    upstream = subprocess.Popen([sys.executable, os.path.join(ROOT, "examples/upstream.py"), str(up_port)],
                                env={**os.environ, "DOORMAN_UPSTREAM_SECRET": SECRET}, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    procs.append(upstream)
    wait_line(upstream, r"upstream listening")
    db = tempfile.mkdtemp()
    gw = subprocess.Popen([BIN, "serve", "--port", "0", "--db", os.path.join(db, "d.db"), "--upstream", f"pms=http://127.0.0.1:{up_port}/api"],
                          env={**os.environ, "DOORMAN_UPSTREAM_SECRET_PMS": SECRET}, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    procs.append(gw)
    admin = wait_line(gw, r"admin key: (\S+)")[0].group(1)
    port = wait_line(gw, r"doorman listening on .*:(\d+)$")[0].group(1)
    base = f"http://127.0.0.1:{port}"
    _, user = request("POST", base + "/v1/users", admin, {"name": "kiosks", "permissions": ["pms:*"], "properties": ["hotel-1"]})
    _, issued = request("POST", base + "/v1/keys", admin, {"name": "kiosk", "userID": json.loads(user)["id"], "rules": ["!pms:checkOut*", "pms:checkIn*"]})
    key = json.loads(issued)["secret"]
    status, body = request("POST", base + "/pms/checkIn", key, {"room": 101}, {"X-Doorman-Property": "hotel-1"})
    seen = json.loads(body) if status == 200 else {}
    check("allowed call verified by the upstream", status == 200 and seen.get("path") == "/api/checkIn" and seen.get("property") == "hotel-1", f"{status} {body[:200]!r}")
    status, _ = request("POST", base + "/pms/checkOut", key, {}, {"X-Doorman-Property": "hotel-1"})
    check("call denied by rule", status == 403, str(status))
    status, body = request("POST", base + "/pms/checkIn", key, {"room": 101})
    check("a key limited to a property must name it", status == 400 and b"invalid_property" in body, f"{status} {body[:120]!r}")
    status, _ = request("POST", base + "/pms/checkIn", "dmk_not_a_key", {})
    check("call without a valid key", status == 401, str(status))
    # A signed request replayed straight at the upstream: refused.
    forged = {"X-Doorman-Upstream": "pms", "X-Doorman-Timestamp": str(int(time.time())), "X-Doorman-Request-Id": "0" * 32, "X-Doorman-User": seen.get("user", ""),
              "X-Doorman-Signature": "v2=" + "0" * 64}
    status, _ = request("POST", f"http://127.0.0.1:{up_port}/api/checkIn", None, {"room": 101}, forged)
    check("the upstream refuses an unsigned request", status == 401, str(status))


try:
    main()
finally:
    for p in procs:
        p.terminate()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
print(f"calls-check: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
