#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Cluster benchmark (issue "Many nodes on PostgreSQL"): a private PostgreSQL and three nodes A, B,
C of the binary on it, then

  (a) revoke one key held by N sessions spread evenly over A, B and C, through A with ?wait=true:
      per session, the time from the POST to its close frame, for sessions on A (local), on B and
      C (cross-node, through PostgreSQL), and all; the receipt; sessions that never closed (30 s);
  (b) cross-node publish latency: S subscribers on each of A, B and C, P publishes through A (paced),
      per-delivery latency on B and C (and on A for comparison), missing and duplicate deliveries.

    scripts/bench-cluster.sh                      (BINARY=.build/release/doorman; builds nothing)
    scripts/bench-cluster.py --binary PATH [--sessions 10000] [--subscribers 300] [--publishes 200] [--rate 20]

The client is Python (asyncio, one process, one thread): its own time to read and parse frames is
part of every figure here (a close frame is timestamped when the event loop reads its socket, before
parsing, but 10,000 sockets are read one after the other). The client's CPU time over each measured
window is printed beside the figures so its share can be judged; on a small machine the client,
PostgreSQL and the three nodes also share the cores.

Output: aligned "figure  value" lines. Loopback only (sources 127.0.0.2–127.0.0.9 spread the
ephemeral ports); every wait bounded; ends only the processes it started.
"""
import argparse
import asyncio
import collections
import http.client
import json
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster_lib as L  # noqa: E402

SOURCES = [f"127.0.0.{i}" for i in range(2, 10)]
TICKS = os.sysconf("SC_CLK_TCK")
SEQ = re.compile(rb'"seq":(\d+)')


def row(figure, value):
    print(f"{figure:<62} {value}", flush=True)


def ms(seconds):
    return "-" if seconds is None else f"{seconds * 1000:.1f}"


def spread(values):
    """p50 / p99 / max in ms."""
    if not values:
        return "- (none)"
    return f"{ms(L.percentile(values, 50))} / {ms(L.percentile(values, 99))} / {ms(max(values))}  (n={len(values)})"


def node_cpu(node):
    try:
        with open(f"/proc/{node.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS
    except (OSError, AttributeError):
        return 0.0


def node_fd_limit(node):
    try:
        with open(f"/proc/{node.proc.pid}/limits") as f:
            for line in f:
                if line.startswith("Max open files"):
                    return int(line.split()[3])
    except (OSError, ValueError):
        pass
    return None


class Window:
    """Client and node CPU seconds over a measured window."""

    def __init__(self, nodes):
        self.nodes = nodes
        self.cpu = time.process_time()
        self.node_cpu = [node_cpu(n) for n in nodes]
        self.wall = time.monotonic()

    def report(self, label):
        wall = time.monotonic() - self.wall
        row(f"{label}: window (wall) s", f"{wall:.2f}")
        row(f"{label}: client CPU over the window s", f"{time.process_time() - self.cpu:.2f}")
        row(f"{label}: node CPU over the window s (A / B / C)",
            " / ".join(f"{node_cpu(n) - c:.2f}" for n, c in zip(self.nodes, self.node_cpu)))


async def known_everywhere(nodes, secret, timeout=15):
    """Waits until every node accepts a handshake with a key just made (another node's cache learns
    it from the change feed a few milliseconds later), so the ramp measures sessions, not that."""
    for node in nodes:
        async def accepted(node=node):
            ws = await L.ws_connect("127.0.0.1", node.port, secret)
            ws.close()
            return ws.status == 101
        if not await L.await_until(accepted, timeout, 0.01):
            raise RuntimeError(f"node {node.name} never accepted the new key")


async def open_sessions(nodes, secret, count, concurrency, timeout=30):
    """`count` sessions spread round-robin over the nodes, each with its welcome; ws.tag = node name.
    Returns (sockets, failure counts)."""
    sem = asyncio.Semaphore(concurrency)
    sockets = [None] * count
    failures = collections.Counter()

    async def one(i):
        node = nodes[i % len(nodes)]
        src = SOURCES[i % len(SOURCES)]
        async with sem:
            for _ in range(3):
                try:
                    ws = await L.ws_connect("127.0.0.1", node.port, secret, local_addr=(src, 0), timeout=timeout)
                except (OSError, TimeoutError, L.HandshakeError) as e:
                    failures[type(e).__name__] += 1
                    await asyncio.sleep(0.2)
                    continue
                if ws.status != 101:
                    failures[f"http {ws.status} {L.refusal(ws)}"] += 1
                    await asyncio.sleep(0.2)
                    continue
                try:
                    await ws.expect(lambda m: m.get("type") == "welcome", timeout)
                except (TimeoutError, EOFError) as e:
                    failures[f"no welcome ({type(e).__name__})"] += 1
                    ws.close()
                    continue
                ws.tag = node.name
                sockets[i] = ws
                return
    await asyncio.gather(*(one(i) for i in range(count)))
    return [ws for ws in sockets if ws is not None], failures


async def bench_revoke(args, nodes, admin, user):
    A = nodes[0]
    key_id, secret = await asyncio.to_thread(admin.new_key, A, "bench revoke", user)
    await known_everywhere(nodes, secret)
    t = time.monotonic()
    sockets, failures = await open_sessions(nodes, secret, args.sessions, args.concurrency)
    ramp = time.monotonic() - t
    per_node = collections.Counter(ws.tag for ws in sockets)
    row("(a) sessions with their welcome (A / B / C)", " / ".join(str(per_node[n.name]) for n in nodes) + f"  of {args.sessions}")
    row("(a) ramp: handshakes + welcome, s (concurrency)", f"{ramp:.1f}  ({args.concurrency}; {len(sockets) / ramp:.0f}/s)")
    if failures:
        row("(a) handshake failures", dict(failures))
    live, t = None, time.monotonic()

    async def counted():
        nonlocal live
        _, answer = await admin.acall(A, "GET", f"/v1/keys/{key_id}")
        live = answer.get("liveSessions") if isinstance(answer, dict) else answer
        return live == len(sockets)
    await L.await_until(counted, 15, 0.25)
    row("(a) liveSessions of the key on A (cluster view; s to agree)", f"{live}  ({time.monotonic() - t:.1f} s)")
    await asyncio.sleep(0.5)

    window = Window(nodes)
    t0 = time.monotonic()
    status, receipt = await L.ahttp("POST", f"{A.base}/v1/keys/{key_id}/revoke?wait=true", admin.key, timeout=60)
    t_receipt = time.monotonic()
    pending = [ws.done for ws in sockets if not ws.done.done()]
    if pending:
        await asyncio.wait(pending, timeout=30)
    window.report("(a)")

    receipt = receipt if isinstance(receipt, dict) else {"body": receipt}
    row("(a) revoke POST → receipt, ms (status)", f"{ms(t_receipt - t0)}  ({status})")
    row("(a) receipt sessionsEnded / complete", f"{receipt.get('sessionsEnded')} / {receipt.get('complete')}")
    row("(a) receipt nodes", json.dumps(receipt.get("nodes")))
    local = [ws.close_time - t0 for ws in sockets if ws.close_time and ws.tag == A.name]
    remote = [ws.close_time - t0 for ws in sockets if ws.close_time and ws.tag != A.name]
    row("(a) POST → close frame, on A: p50 / p99 / max ms", spread(local))
    row("(a) POST → close frame, on B+C (cross-node): p50/p99/max ms", spread(remote))
    for n in nodes[1:]:
        row(f"(a)     on {n.name} alone: p50 / p99 / max ms", spread([ws.close_time - t0 for ws in sockets if ws.close_time and ws.tag == n.name]))
    row("(a) POST → close frame, all: p50 / p99 / max ms", spread(local + remote))
    codes = collections.Counter(ws.close_code for ws in sockets if ws.close_time)
    row("(a) close codes", dict(codes))
    never = sum(1 for ws in sockets if not ws.done.done())
    dropped = sum(1 for ws in sockets if ws.done.done() and ws.close_time is None)
    row("(a) never closed within 30 s", never)
    row("(a) dropped without a close frame", dropped)
    # The nodes' own view, without the Python client's time: on A, commit → the last close frame
    # written (doorman_revocation_to_close_seconds, one observation on this fresh cluster); on B
    # and C, A's change (its audit time) → the last close frame written there.
    figures = []
    for n in nodes:
        _, text = await L.ahttp("GET", f"{n.base}/metrics", timeout=10)
        text = text if isinstance(text, str) else (text.decode() if isinstance(text, bytes) else "")
        values = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#") and " " in line)
        if n is A:
            count = float(values.get("doorman_revocation_to_close_seconds_count", "0"))
            total = float(values.get("doorman_revocation_to_close_seconds_sum", "0"))
            figures.append(f"{n.name} {1000 * total / count:.1f}" if count == 1 else f"{n.name} ?")
        else:
            figures.append(f"{n.name} {1000 * float(values.get('doorman_cluster_last_change_to_close_seconds', 'nan')):.1f}")
    row("(a) node-side: change → last close frame written, ms", " / ".join(figures))
    for ws in sockets:
        ws.close()


def publisher(node, secret, count, rate, sent, statuses, start_at):
    """Publishes {"seq": i} through `node` at `rate` per second on one kept-alive connection,
    recording each POST's start (monotonic) in sent[i]. Runs in its own thread."""
    conn = None
    for i in range(count):
        delay = start_at + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        body = json.dumps({"channel": L.CHANNEL, "property": L.PROPERTY, "data": {"seq": i}}).encode()
        for attempt in range(2):
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=20)
                sent[i] = time.monotonic()
                conn.request("POST", "/v1/publish", body, {"X-API-Key": secret, "Content-Type": "application/json"})
                r = conn.getresponse()
                r.read()
                statuses[r.status] += 1
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
                break
            except (OSError, http.client.HTTPException) as e:
                conn = None
                if attempt:
                    statuses[type(e).__name__] += 1
    if conn:
        conn.close()


async def bench_publish(args, nodes, admin, user):
    A = nodes[0]
    _, secret = await asyncio.to_thread(admin.new_key, A, "bench subscribers", user)
    _, publisher_secret = await asyncio.to_thread(admin.new_key, A, "bench publisher", user)
    await known_everywhere(nodes, secret)
    subs, failures = await open_sessions(nodes, secret, args.subscribers * len(nodes),
                                         args.concurrency)
    deliveries = []  # (node name, ws id, arrival, payload), appended by the protocol: cheap per frame

    def on_message(ws, t, payload):
        deliveries.append((ws.tag, id(ws), t, payload))
    sem = asyncio.Semaphore(args.concurrency)
    refused = collections.Counter()

    async def sub(ws):
        async with sem:
            try:
                await L.subscribe(ws, timeout=30)
                ws.on_message = on_message
            except Exception as e:
                refused[str(e)[:80]] += 1
    await asyncio.gather(*(sub(ws) for ws in subs))
    subscribed = [ws for ws in subs if ws.on_message is not None]
    per_node = collections.Counter(ws.tag for ws in subscribed)
    row("(b) subscribers (A / B / C)", " / ".join(str(per_node[n.name]) for n in nodes))
    if failures or refused:
        row("(b) subscriber failures", dict(failures) | dict(refused))
    await asyncio.sleep(1)

    sent = [None] * args.publishes
    statuses = collections.Counter()
    window = Window(nodes)
    start_at = time.monotonic() + 0.1
    await asyncio.to_thread(publisher, A, publisher_secret, args.publishes, args.rate, sent, statuses, start_at)
    expected = len(subscribed) * args.publishes
    deadline = time.monotonic() + 15
    while len(deliveries) < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # room for duplicates
    window.report("(b)")

    row("(b) publishes through A (rate/s): statuses", f"{args.publishes} ({args.rate}/s): {dict(statuses)}")
    latencies = collections.defaultdict(list)
    seen = collections.Counter()
    unparsed = 0
    for tag, wsid, t, payload in deliveries:
        m = SEQ.search(payload)
        if not m:
            unparsed += 1
            continue
        i = int(m.group(1))
        seen[(wsid, i)] += 1
        if seen[(wsid, i)] == 1 and 0 <= i < len(sent) and sent[i] is not None:
            latencies[tag].append(t - sent[i])
    for n in nodes:
        label = "(b) publish on A → delivery on A (local): p50/p99/max ms" if n is A else \
            f"(b) publish on A → delivery on {n.name}: p50 / p99 / max ms"
        row(label, spread(latencies[n.name]))
    row("(b) publish on A → delivery on B+C: p50 / p99 / max ms",
        spread(latencies[nodes[1].name] + latencies[nodes[2].name]))
    by_ws = {id(ws): ws.tag for ws in subscribed}
    for n in nodes:
        ids = [wsid for wsid, tag in by_ws.items() if tag == n.name]
        missing = sum(1 for wsid in ids for i in range(args.publishes) if seen[(wsid, i)] == 0)
        duplicates = sum(c - 1 for (wsid, _), c in seen.items() if by_ws.get(wsid) == n.name and c > 1)
        row(f"(b) on {n.name}: missing / duplicate deliveries", f"{missing} / {duplicates}  (of {len(ids) * args.publishes})")
    if unparsed:
        row("(b) messages without a seq (not events)", unparsed)
    for ws in subs:
        ws.close()


async def run(args, nodes, admin_key):
    admin = L.Admin(admin_key)
    user = await asyncio.to_thread(admin.new_user, nodes[0], "bench devices")
    if args.sessions:
        await bench_revoke(args, nodes, admin, user)
        await asyncio.sleep(2)  # let the nodes finish closing before (b)
    if args.publishes and args.subscribers:
        await bench_publish(args, nodes, admin, user)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", default=os.path.join(L.ROOT, ".build/release/doorman"))
    parser.add_argument("--sessions", type=int, default=10000, help="(a) sessions of the revoked key, over the 3 nodes")
    parser.add_argument("--concurrency", type=int, default=200, help="handshakes in flight while opening sessions")
    parser.add_argument("--subscribers", type=int, default=300, help="(b) subscribers per node")
    parser.add_argument("--publishes", type=int, default=200, help="(b) publishes through A")
    parser.add_argument("--rate", type=float, default=20, help="(b) publishes per second")
    parser.add_argument("--logs", help="keep the node logs in this folder")
    args = parser.parse_args()
    L.require_postgres()
    limit = L.raise_fd_limit()
    need = max(args.sessions, args.subscribers * 3) + 500
    if limit < need:
        sys.exit(f"open-file limit {limit} < {need} needed: raise the hard limit (ulimit -Hn) or use fewer --sessions")
    binary = os.path.abspath(args.binary)
    if not os.access(binary, os.X_OK):
        sys.exit(f"no gateway binary at {binary} (swift build -c release --product doorman first, or --binary)")
    pg, nodes = L.Postgres(), []
    try:
        L.start_cluster(binary, args=["--max-connections", "20000", "--max-unfinished-per-address", "20000", "--handshakes-per-second", "0",
                                      "--messages-per-second", "0", "--idle-timeout", "0", "--log-level", "warning"],
                        pg=pg, logs=args.logs, nodes=nodes)
        row("binary", binary)
        row("cores / open-file limit (client; nodes A / B / C)",
            f"{os.cpu_count()} / {limit}; " + " / ".join(str(node_fd_limit(n)) for n in nodes))
        asyncio.run(run(args, nodes, nodes[0].admin_key))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as e:
        print(f"bench failed: {type(e).__name__}: {e}", file=sys.stderr)
        for n in nodes:
            print(f"---- node {n.name} log (tail)\n{n.tail(30)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
