#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Call benchmark driver (see scripts/bench-calls.sh, which builds and passes the binaries).

The upstream is nginx answering a fixed JSON: the cheapest possible upstream, so the gateway's
share of the CPU is at its largest. In one run, REPS times, medians:

  saturating  wrk (core 0) → nginx directly   vs   wrk → doorman /pms/checkIn → nginx:
              round trips/s, latency, CPU per call of every process
  paced       RATE calls/s over WS_CONNS connections (an open loop, Python asyncio): straight to
              nginx over HTTP, through doorman over HTTP, and as WebSocket calls: p50/p99 round trip

Servers (doorman with one loop, the upstream) run on core 1, load on core 0. Loopback only; every
run is bounded in time.
"""
import asyncio, json, os, re, resource, signal, statistics, subprocess, sys, tempfile, time, urllib.request

DOORMAN, ROOT = sys.argv[1], sys.argv[2]
REPS = int(os.environ.get("REPS", "3"))
DUR = int(os.environ.get("DUR", "6"))
CONNS = int(os.environ.get("CONNS", "8"))
WS_CONNS = int(os.environ.get("WS_CONNS", "4"))
RATE = int(os.environ.get("RATE", "1000"))
SECRET = "bench-upstream-secret-0123456789"
NGINX_PORT, PY_PORT, GW_PORT = 19181, 19182, 19183
tmp = tempfile.mkdtemp(prefix="doorman-bench-calls-")
procs = []


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_port(port):
    import socket
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def start(cmd, env=None, port=None, out=subprocess.DEVNULL):
    p = subprocess.Popen(["taskset", "-c", "1"] + cmd, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.DEVNULL)
    procs.append(p)
    if port:
        wait_port(port)
    return p


def stop_all():
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()


def start_nginx():
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""worker_processes 1; daemon off; master_process off; pid {tmp}/nginx.pid; error_log {tmp}/nginx.err;
events {{ worker_connections 1024; }}
http {{ access_log off; keepalive_requests 1000000; client_body_temp_path {tmp};
  server {{ listen 127.0.0.1:{NGINX_PORT};
    location / {{ default_type application/json; return 200 '{{"ok":true,"room":101}}'; }} }} }}
""")
    return start(["nginx", "-c", conf, "-p", tmp], port=NGINX_PORT)


def start_doorman(upstream_port):
    db = os.path.join(tmp, f"gw-{upstream_port}.db")
    out = open(os.path.join(tmp, f"gw-{upstream_port}.out"), "w+")
    p = start([DOORMAN, "serve", "--port", str(GW_PORT), "--db", db, "--loops", "1", "--log-level", "warning",
               "--calls-per-second", "0", "--messages-per-second", "0", "--handshakes-per-second", "0",
               "--upstream", f"pms=http://127.0.0.1:{upstream_port}"],
              env={"DOORMAN_UPSTREAM_SECRET_PMS": SECRET}, port=GW_PORT, out=out)
    out.seek(0)
    admin = re.search(r"admin key: (\S+)", out.read()).group(1)
    def post(path, body):
        req = urllib.request.Request(f"http://127.0.0.1:{GW_PORT}{path}", data=json.dumps(body).encode(),
                                     headers={"X-API-Key": admin, "Content-Type": "application/json"})
        return json.load(urllib.request.urlopen(req))
    user = post("/v1/users", {"name": "kiosks", "permissions": ["pms:*"], "properties": ["hotel-1"]})["id"]
    key = post("/v1/keys", {"name": "kiosk", "userID": user, "rules": ["!pms:checkOut*", "pms:checkIn*"]})["secret"]
    return p, key


def wrk(url, key=None):
    script = os.path.join(tmp, "post.lua")
    with open(script, "w") as f:
        f.write('wrk.method = "POST"\nwrk.body = \'{"room":101}\'\nwrk.headers["Content-Type"] = "application/json"\n')
    cmd = ["taskset", "-c", "0", "wrk", "-t1", f"-c{CONNS}", f"-d{DUR}s", "--latency", "-s", script, url]
    if key:
        cmd[-1:-1] = ["-H", f"X-API-Key: {key}", "-H", "X-Doorman-Property: hotel-1"]   # the key is limited to hotel-1
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=DUR + 30).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    def latency(pct):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        v = float(m.group(1))
        return v / 1000 if m.group(2) == "us" else v * 1000 if m.group(2) == "s" else v
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: .*", out)
    return {"rps": rps, "p50": latency(50), "p99": latency(99), "requests": requests, "client_cpu": client_cpu,
            "non2xx": int(non2xx.group(1)) if non2xx else 0, "socket_errors": errors.group(0) if errors else ""}


def measured(fn, pids):
    before = {p: cpu_seconds(p) for p in pids}
    r = fn()
    r["cpu"] = {p: cpu_seconds(p) - before[p] for p in pids}
    return r


async def paced(kind, key, upstream_port, rate):
    """Calls at a fixed total rate over WS_CONNS connections for DUR seconds (an open loop: a slow
    answer does not slow the next call); returns round-trip times in ms. kind: direct | http | ws |
    ping (a session's ping: the same client and server path as a WebSocket call, minus the upstream)."""
    import websockets
    rtts = []
    per_conn = rate / WS_CONNS
    async def one(index):
        start = time.monotonic() + index / rate
        if kind in ("ws", "ping"):
            ws = await websockets.connect(f"ws://127.0.0.1:{GW_PORT}/ws", additional_headers={"X-API-Key": key}, compression=None)
            await ws.recv()
            pending = {}
            async def reader():
                async for text in ws:
                    answer = json.loads(text)
                    assert answer.get("type") == "result", answer
                    rtts.append((time.perf_counter() - pending.pop(answer["id"])) * 1000)
            task = asyncio.create_task(reader())
        else:
            port, path = (upstream_port, "/checkIn") if kind == "direct" else (GW_PORT, "/pms/checkIn")
            reader_, writer = await asyncio.open_connection("127.0.0.1", port)
            body = b'{"room":101}'
            auth = "" if kind == "direct" else f"X-API-Key: {key}\r\n"
            request = (f"POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
            lock = asyncio.Lock()
        n = 0
        while True:
            due = start + n / per_conn
            if due > start + DUR:
                break
            await asyncio.sleep(max(0, due - time.monotonic()))
            n += 1
            if kind in ("ws", "ping"):
                pending[n] = time.perf_counter()
                message = {"type": "call", "id": n, "call": "pms:checkIn", "property": "hotel-1", "body": {"room": 101}} if kind == "ws" else {"type": "ping", "id": n}
                await ws.send(json.dumps(message))
            else:
                async def exchange():
                    async with lock:   # HTTP/1.1 keep-alive: one at a time per connection
                        t = time.perf_counter()
                        writer.write(request)
                        head = await reader_.readuntil(b"\r\n\r\n")
                        assert head.startswith(b"HTTP/1.1 200"), head[:40]
                        length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
                        await reader_.readexactly(length)
                        rtts.append((time.perf_counter() - t) * 1000)
                asyncio.create_task(exchange())
        await asyncio.sleep(1)
        if kind in ("ws", "ping"):
            task.cancel()
            await ws.close()
        else:
            async with lock:
                writer.close()
    await asyncio.gather(*[one(i) for i in range(WS_CONNS)])
    return rtts


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))]


def main():
    rows = []
    try:
        up = start_nginx()
        gw, key = start_doorman(NGINX_PORT)
        runs = {"direct": [], "gateway": [], "lat_direct": [], "lat_http": [], "lat_ws": [], "lat_ping": []}
        for _ in range(REPS):
            runs["direct"].append(measured(lambda: wrk(f"http://127.0.0.1:{NGINX_PORT}/checkIn"), [up.pid]))
            runs["gateway"].append(measured(lambda: wrk(f"http://127.0.0.1:{GW_PORT}/pms/checkIn", key), [up.pid, gw.pid]))
            for kind in ("direct", "http", "ws", "ping"):
                runs["lat_" + kind].append(asyncio.run(paced(kind, key, NGINX_PORT, RATE)))
        rows.append(("nginx", up.pid, gw.pid, runs))
    finally:
        stop_all()

    med = statistics.median
    print(f"call benchmark: wrk -t1 -c{CONNS} -d{DUR}s POST; paced {RATE}/s over {WS_CONNS} connections; REPS={REPS}, medians; servers on core 1, load on core 0")
    for name, up_pid, gw_pid, runs in rows:
        d, g = runs["direct"], runs["gateway"]
        for r in d + g:
            if r["non2xx"] or r["socket_errors"]:
                print(f"  WARNING: {name}: {r['non2xx']} non-2xx, {r['socket_errors']}")
        up_us_direct = med([r["cpu"][up_pid] / r["requests"] * 1e6 for r in d])
        up_us_gw = med([r["cpu"][up_pid] / r["requests"] * 1e6 for r in g])
        gw_us = med([r["cpu"][gw_pid] / r["requests"] * 1e6 for r in g])
        client_direct = med([r["client_cpu"] / r["requests"] * 1e6 for r in d])
        client_gw = med([r["client_cpu"] / r["requests"] * 1e6 for r in g])
        total_direct = up_us_direct + client_direct
        total_gw = up_us_gw + gw_us + client_gw
        lat = {k: [x for run in runs["lat_" + k] for x in run] for k in ("direct", "http", "ws", "ping")}
        print(f"\nupstream: {name} (a fixed answer: the cheapest possible upstream, so the gateway's largest share)")
        print(f"{'figure':52s} {'direct':>10s} {'gateway':>10s} {'ratio':>7s}")
        print(f"{'HTTP round trips/s (wrk, saturating)':52s} {med([r['rps'] for r in d]):10.0f} {med([r['rps'] for r in g]):10.0f} {med([r['rps'] for r in g]) / med([r['rps'] for r in d]):6.2f}x")
        print(f"{'HTTP latency p50 / p99 under saturation (ms)':52s} {med([r['p50'] for r in d]):5.2f}/{med([r['p99'] for r in d]):<5.2f} {med([r['p50'] for r in g]):5.2f}/{med([r['p99'] for r in g]):<5.2f}")
        print(f"{'CPU per call, upstream (us)':52s} {up_us_direct:10.1f} {up_us_gw:10.1f}")
        print(f"{'CPU per call, doorman (us)':52s} {'':10s} {gw_us:10.1f}")
        print(f"{'CPU per call, client wrk (us)':52s} {client_direct:10.1f} {client_gw:10.1f}")
        print(f"{'CPU per call, all processes (us)':52s} {total_direct:10.1f} {total_gw:10.1f} {total_gw / total_direct:6.2f}x   doorman adds {gw_us / total_direct * 100:.0f}% (goal <= 30%)")
        print(f"at {RATE} calls/s (paced, {WS_CONNS} connections), round trip in ms:")
        for label, key_ in (("HTTP through doorman", "http"), ("WebSocket call through doorman", "ws")):
            print(f"  {label:50s} p50 {pct(lat['direct'], 50):.3f} -> {pct(lat[key_], 50):.3f}   p99 {pct(lat['direct'], 99):.3f} -> {pct(lat[key_], 99):.3f}"
                  f"   added p99 {pct(lat[key_], 99) - pct(lat['direct'], 99):+.3f} ms (goal <= +1 ms)   [{len(lat[key_])} calls]")
        print(f"  {'a session ping, no upstream (the Python client floor)':50s} p50 {pct(lat['ping'], 50):.3f}   p99 {pct(lat['ping'], 99):.3f}   [{len(lat['ping'])}]")


if __name__ == "__main__":
    main()
