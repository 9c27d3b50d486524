#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Cluster test (issue "Many nodes on PostgreSQL"): a private PostgreSQL and three nodes A, B, C of
the binary on it (--feed-bound 2, --max-sessions-per-key 4), then:

  1. a key made through A works at once on B and C; a revocation through A closes the key's
     sessions on B and C (the receipt counts them per node);
  2. publishes through A and B reach subscribers on every node exactly once, in order; 100 KB too;
  3. GET /v1/sessions lists every node's sessions; the per-key session cap counts across nodes;
  4. PostgreSQL stops and starts again, a revocation made meanwhile through A reaches C's sessions;
  5. PostgreSQL stays down: /readyz 503 feed_lost, handshakes 503, then sessions closed 4200;
     back up: ready again;
  6. node B killed with SIGKILL: its clients reconnect elsewhere and resubscribe, a key and a
     publish that B acknowledged just before are not lost;
  7. a second process given a live node's name refuses to start.

    scripts/cluster-test.py [--binary .build/debug/doorman] [--only 1,3]

Prints `ok - …` / `FAIL - …` lines and `cluster: N passed, M failed` (exit 1 on any failure), with
the node logs' tails after a failure. Every wait is bounded; the timeouts only mean "never
happened" and assert nothing about speed. Skips loudly (exit 0) when PostgreSQL is not installed,
never under CI=true. Loopback only; ends only the processes it started.
"""
import argparse
import asyncio
import base64
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster_lib as L  # noqa: E402

BOUND = 2     # --feed-bound, seconds
CAP = 4       # --max-sessions-per-key: every test keeps a key at ≤ 4 sessions
NEVER = 15    # seconds after which an awaited thing counts as never happening


class Report:
    def __init__(self):
        self.passed = self.failed = 0

    def check(self, condition, what, detail=None):
        if condition:
            self.passed += 1
            print(f"ok - {what}", flush=True)
        else:
            self.failed += 1
            print(f"FAIL - {what}" + (f": {detail}" if detail is not None else ""), flush=True)
        return bool(condition)

    def note(self, text):
        print(f"# {text}", flush=True)


class Cluster:
    """The running world the tests share: PostgreSQL, nodes A, B, C, the admin key, one device
    user (channel:* on hotel-1) and a publisher key (used over HTTP only)."""

    def __init__(self, pg, nodes, admin_key):
        self.pg = pg
        self.nodes = nodes
        self.A, self.B, self.C = nodes
        self.admin = L.Admin(admin_key)
        self.user = self.admin.new_user(self.A, "cluster devices")
        self.publisher = self.admin.new_key(self.A, "cluster publisher", self.user)[1]
        self.sockets = []
        self.unknown_key_retries = 0

    async def key(self, name, via=None):
        """A new key of the device user: (id, secret)."""
        return await asyncio.to_thread(self.admin.new_key, via or self.A, name, self.user)

    async def session(self, node, secret, subscribed=False):
        """A session with its welcome. No retry: an admin change is answered only once every live
        node has applied it, so a key made a moment ago on another node must work here at once."""
        ws = await L.open_session(node, secret)
        self.sockets.append(ws)
        if subscribed:
            await L.subscribe(ws)
        return ws

    async def publish(self, node, data):
        return await L.ahttp("POST", node.base + "/v1/publish", self.publisher,
                             {"channel": L.CHANNEL, "property": L.PROPERTY, "data": data})

    def publish_many(self, node, tag, count):
        """Publishes {"pub": tag, "n": 0…count-1} one after the other (each acknowledged before the
        next); returns the statuses. Runs in a thread."""
        statuses = []
        for i in range(count):
            status, _ = L.http("POST", node.base + "/v1/publish", self.publisher,
                               {"channel": L.CHANNEL, "property": L.PROPERTY, "data": {"pub": tag, "n": i}})
            statuses.append(status)
        return statuses

    async def readyz(self, node):
        try:
            return await L.ahttp("GET", node.base + "/readyz", timeout=5)
        except OSError as e:
            return None, str(e)

    def close_all(self):
        for ws in self.sockets:
            ws.close()
        self.sockets.clear()


async def ending(ws, timeout=NEVER):
    """Waits for the connection to end: (the last notice it got or None, the close code; None = dropped
    without a close frame; "still open" after the timeout)."""
    try:
        await ws.wait_closed(timeout)
    except TimeoutError:
        return None, "still open"
    notices = [m for _, m in ws.drain_json() if m.get("type") == "notice"]
    return (notices[-1] if notices else None), ws.close_code


def events(ws):
    """The event payloads ws got so far (taken from its queue), in arrival order."""
    return [m["data"] for _, m in ws.drain_json() if m.get("type") == "event"]


def pending_events(ws):
    return sum(1 for _, text in ws.messages if '"event"' in text)


# ---------------------------------------------------------------------------------------------

async def test_revoke_across_nodes(c, r):
    A, B, C = c.A, c.B, c.C
    # A key acknowledged by A (201) is used on B and C at once, as a device handed a fresh key would.
    refused = []
    for trial in range(10):
        _, fresh = await c.key(f"t1 fresh {trial}")
        created = time.monotonic()
        for node in (B, C):
            ws = await L.ws_connect("127.0.0.1", node.port, fresh)
            ws.close()
            if ws.status == 101:
                continue
            first, accepted = time.monotonic() - created, None
            while accepted is None and time.monotonic() - created < NEVER:
                await asyncio.sleep(0.005)
                again = await L.ws_connect("127.0.0.1", node.port, fresh)
                again.close()
                if again.status == 101:
                    accepted = time.monotonic() - created
            refused.append(f"key {trial} on {node.name}: {ws.status} {L.refusal(ws)} {1000 * first:.1f} ms after the 201, "
                           + (f"accepted {1000 * accepted:.1f} ms after it" if accepted else "never accepted"))
    r.check(not refused, "1. a key created through A is accepted at once on B and C (10 keys, 20 handshakes)", refused)
    key_id, secret = await c.key("t1 revoke across nodes")
    socks = [await c.session(B, secret) for _ in range(2)] + [await c.session(C, secret) for _ in range(2)]
    status, receipt = await c.admin.acall(A, "POST", f"/v1/keys/{key_id}/revoke?wait=true")
    receipt = receipt if isinstance(receipt, dict) else {}
    r.check(status == 200, "1. revoke through A with ?wait=true answers 200", (status, receipt))
    r.check(receipt.get("sessionsEnded") == 4, "1. receipt sessionsEnded == 4 (2 on B + 2 on C)", receipt.get("sessionsEnded"))
    r.check(receipt.get("complete") is True, "1. receipt complete == true", receipt.get("complete"))
    nodes = receipt.get("nodes") or {}
    r.check(nodes.get("B") == 2 and nodes.get("C") == 2 and not nodes.get("A"),
            "1. receipt nodes: B 2, C 2 (A none)", nodes)
    results = [await ending(ws) for ws in socks]
    r.check(all(n and n.get("reason") == "key_revoked" and n.get("code") == 4001 for n, _ in results),
            "1. every client on B and C got notice key_revoked (4001)", [n for n, _ in results])
    r.check(all(code == 4001 for _, code in results), "1. every client on B and C got close 4001", [code for _, code in results])
    for node in (B, C):
        ws = await L.ws_connect("127.0.0.1", node.port, secret)
        ws.close()
        r.check(ws.status == 401, f"1. a new handshake with the revoked key on {node.name} gets 401", (ws.status, L.refusal(ws)))


async def test_publish_across_nodes(c, r):
    A, B, C = c.A, c.B, c.C
    _, secret = await c.key("t2 subscribers")
    subs = {n.name: await c.session(n, secret, subscribed=True) for n in (A, B, C)}
    counts = {"A": 50, "B": 20}
    statuses = await asyncio.gather(asyncio.to_thread(c.publish_many, A, "A", counts["A"]),
                                    asyncio.to_thread(c.publish_many, B, "B", counts["B"]))
    flat = statuses[0] + statuses[1]
    r.check(all(s == 202 for s in flat), "2. 50 publishes through A and 20 through B (at the same time) all get 202",
            sorted(set(flat)))
    total = sum(counts.values())
    await L.await_until(lambda: all(pending_events(ws) >= total for ws in subs.values()), NEVER)
    await asyncio.sleep(1)  # room for a duplicate to show up
    got = {name: events(ws) for name, ws in subs.items()}
    for name, evs in got.items():
        ok = True
        detail = {}
        for tag, count in counts.items():
            seq = [e.get("n") for e in evs if isinstance(e, dict) and e.get("pub") == tag]
            if seq != list(range(count)):
                ok = False
                detail[tag] = f"{len(seq)} events, first out of place at {next((i for i, v in enumerate(seq) if v != i), len(seq))}: {seq[:80]}"
        r.check(ok, f"2. subscriber on {name} got each of the {total} events exactly once, in publish order per publisher", detail)
    orders = {name: [(e.get("pub"), e.get("n")) for e in evs if isinstance(e, dict)] for name, evs in got.items()}
    r.check(orders["A"] == orders["B"] == orders["C"], "2. the three subscribers saw the events in the same order",
            {k: v[:20] for k, v in orders.items()})
    blob = base64.b64encode(os.urandom(75_000)).decode()  # 100,000 characters, over NOTIFY's 8000-byte limit
    status, answer = await c.publish(A, {"pub": "big", "blob": blob})
    r.check(status == 202, "2. a 100 KB publish through A gets 202", (status, answer))
    for name in ("B", "C", "A"):
        ws = subs[name]
        try:
            msg = await ws.expect(lambda m: m.get("type") == "event" and (m.get("data") or {}).get("pub") == "big", NEVER)
            data = msg["data"]
            r.check(data.get("blob") == blob, f"2. the 100 KB event arrived intact on {name}",
                    f"{len(data.get('blob') or '')} characters")
        except (TimeoutError, EOFError) as e:
            r.check(False, f"2. the 100 KB event arrived intact on {name}", f"not received: {e}")
    c.close_all()


async def test_sessions_and_cap(c, r):
    A, B, C = c.A, c.B, c.C
    key_id, secret = await c.key("t3 listing and cap")
    for node in (A, A, B, B):
        await c.session(node, secret)
    await asyncio.sleep(2.5)  # the nodes share their counts about every second
    fifth = None
    refused_at = None
    start = time.monotonic()
    while time.monotonic() - start < NEVER:
        fifth = await L.ws_connect("127.0.0.1", C.port, secret)
        fifth.close()
        if fifth.status != 101:
            refused_at = time.monotonic() - start
            break
        await asyncio.sleep(1)
    r.check(fifth.status == 429, f"3. a fifth session of the key on C (2 on A, 2 on B, cap {CAP}) gets 429",
            (fifth.status, L.refusal(fifth)))
    if fifth.status == 429:
        r.check(isinstance(L.refusal(fifth), dict) and L.refusal(fifth).get("error") == "too_many_sessions_for_key",
                "3. the 429 says too_many_sessions_for_key", L.refusal(fifth))
        if refused_at and refused_at > 0.5:
            r.note(f"the fifth session was admitted on C for {refused_at:.1f} s more after 2.5 s (counts lag)")

    async def listed():
        status, answer = await c.admin.acall(C, "GET", "/v1/sessions")
        items = [s for s in (answer or {}).get("items", []) if s.get("keyID") == key_id]
        by_node = {}
        for s in items:
            by_node[s.get("node")] = by_node.get(s.get("node"), 0) + 1
        return by_node if by_node == {"A": 2, "B": 2} else None, by_node
    last = {}

    async def probe():
        nonlocal last
        ok, last = await listed()
        return ok
    r.check(await L.await_until(probe, NEVER, 0.25), "3. GET /v1/sessions on C lists the key's 4 sessions: 2 on A, 2 on B", last)
    live = {}

    async def live_probe():
        nonlocal live
        _, answer = await c.admin.acall(C, "GET", f"/v1/keys/{key_id}")
        live = answer.get("liveSessions", (answer.get("key") or {}).get("liveSessions")) if isinstance(answer, dict) else answer
        return live == 4
    r.check(await L.await_until(live_probe, NEVER, 0.25), "3. GET /v1/keys/{id} on C says liveSessions 4", live)
    c.close_all()


async def test_pg_restart(c, r):
    A, C = c.A, c.C
    key_id, secret = await c.key("t4 revoke while catching up")
    socks = [await c.session(C, secret) for _ in range(2)]
    t0 = time.monotonic()
    await asyncio.to_thread(c.pg.stop, "fast")
    await asyncio.to_thread(c.pg.start)
    down = time.monotonic() - t0
    r.note(f"PostgreSQL stopped (fast) and started again: {down:.2f} s down")
    r.check(down < 2 * BOUND, f"4. PostgreSQL came back before 2 × feed bound ({2 * BOUND} s) passed", f"{down:.2f} s")
    status, receipt, attempts = None, None, 0
    deadline = time.monotonic() + NEVER
    while time.monotonic() < deadline:
        attempts += 1
        try:
            status, receipt = await c.admin.acall(A, "POST", f"/v1/keys/{key_id}/revoke?wait=true")
        except OSError as e:
            status, receipt = None, str(e)
        if status == 200 or (status == 409 and isinstance(receipt, dict) and receipt.get("error") == "key_revoked"):
            break
        await asyncio.sleep(0.2)
    r.check(status in (200, 409), f"4. the revocation through A succeeds once PostgreSQL answers ({attempts} attempts)",
            (status, receipt))
    r.note(f"revoke receipt: {receipt}")
    results = [await ending(ws) for ws in socks]
    r.check(all(code == 4001 for _, code in results), "4. C's sessions of the key are closed with 4001 after C catches up",
            [(n and n.get("reason"), code) for n, code in results])
    r.check(all(n and n.get("reason") == "key_revoked" for n, _ in results), "4. ...after notice key_revoked",
            [n for n, _ in results])
    ready = {}

    async def all_ready():
        for n in c.nodes:
            ready[n.name] = (await c.readyz(n))[0]
        return all(v == 200 for v in ready.values())
    r.check(await L.await_until(all_ready, NEVER, 0.25), "4. /readyz is 200 on A, B and C again", ready)
    ws = await L.ws_connect("127.0.0.1", C.port, secret)
    ws.close()
    r.check(ws.status == 401, "4. the revoked key's handshake on C gets 401", (ws.status, L.refusal(ws)))
    c.close_all()


async def test_fail_closed(c, r):
    A, B, C = c.A, c.B, c.C
    key_id, secret = await c.key("t5 fail closed")
    socks = [await c.session(B, secret) for _ in range(2)]
    t_stop = time.monotonic()
    await asyncio.to_thread(c.pg.stop, "fast")
    try:
        last = {}

        async def feed_lost(node):
            status, body = await c.readyz(node)
            last[node.name] = (status, body)
            return status == 503 and isinstance(body, dict) and body.get("status") == "feed_lost"
        lost = await L.await_until(lambda: feed_lost(B), NEVER, 0.2)
        lost_after = time.monotonic() - t_stop
        r.check(lost, "5. with PostgreSQL down, /readyz on B becomes 503 feed_lost", last.get("B"))
        if lost:
            r.note(f"B reported feed_lost {lost_after:.2f} s after PostgreSQL stopped (bound {BOUND} s)")
        others = [await L.await_until(lambda n=n: feed_lost(n), NEVER, 0.2) for n in (A, C)]
        r.check(all(others), "5. ...and on A and C", {n: last.get(n) for n in ("A", "C")})
        ws = await L.ws_connect("127.0.0.1", B.port, secret)
        ws.close()
        body = L.refusal(ws)
        r.check(ws.status == 503 and "feed_lost" in str(body), "5. a new handshake on B gets 503 feed_lost", (ws.status, body))
        results = [await ending(s, 2 * BOUND + NEVER) for s in socks]
        r.check(all(code == 4200 for _, code in results), "5. B's live sessions are closed with 4200",
                [code for _, code in results])
        r.check(all(n and n.get("reason") == "cluster_feed_lost" and n.get("code") == 4200 and n.get("reconnect") is True
                    for n, _ in results), "5. ...after notice cluster_feed_lost (4200, reconnect true)", [n for n, _ in results])
        closed = [s.close_time - t_stop for s in socks if s.close_time]
        if closed:
            r.note(f"sessions closed {min(closed):.2f}–{max(closed):.2f} s after PostgreSQL stopped (2 × bound = {2 * BOUND} s)")
            r.check(min(closed) > BOUND, f"5. the sessions were not closed before the feed bound ({BOUND} s) passed",
                    f"{min(closed):.2f} s")
    finally:
        await asyncio.to_thread(c.pg.start)
    ready = {}

    async def all_ready():
        for n in c.nodes:
            ready[n.name] = (await c.readyz(n))[0]
        return all(v == 200 for v in ready.values())
    r.check(await L.await_until(all_ready, 2 * NEVER, 0.25), "5. PostgreSQL back: /readyz is 200 on A, B and C", ready)
    ws, answer = None, None

    async def handshake():
        nonlocal ws, answer
        ws = await L.ws_connect("127.0.0.1", B.port, secret)
        if ws.status == 101:
            answer = await ws.expect(lambda m: m.get("type") == "welcome", NEVER)
            c.sockets.append(ws)
            return True
        answer = L.refusal(ws)
        ws.close()
        return False
    r.check(await L.await_until(handshake, NEVER, 0.25), "5. handshakes on B work again",
            (ws and ws.status, answer))
    c.close_all()


async def test_node_killed(c, r):
    A, B, C = c.A, c.B, c.C
    _, secret = await c.key("t6 clients of B")
    on_b = [await c.session(B, secret, subscribed=True) for _ in range(2)]
    _, watcher_secret = await c.key("t6 watchers")
    watchers = {n.name: await c.session(n, watcher_secret, subscribed=True) for n in (A, C)}
    status_pub, answer_pub = await c.publish(B, {"pub": "before-kill"})
    status_key, created = await c.admin.acall(B, "POST", "/v1/keys", {"name": "t6 made on B", "userID": c.user})
    B.kill()
    r.check(status_pub == 202, "6. a publish through B acknowledged (202) just before B is killed", (status_pub, answer_pub))
    r.check(status_key in (200, 201) and isinstance(created, dict) and "secret" in created,
            "6. a key created through B acknowledged just before B is killed", (status_key, created))
    drops = [await ending(ws) for ws in on_b]
    r.check(all(code is None for _, code in drops), "6. B's clients see the connection drop (no close frame)",
            [code for _, code in drops])

    # Each dropped client reconnects to the other nodes in turn (its own client loop), then resubscribes.
    others = [A, C]
    moved = []
    for i in range(len(on_b)):
        deadline = time.monotonic() + NEVER
        attempt, ws, last = 0, None, None
        while time.monotonic() < deadline and ws is None:
            node = others[(i + attempt) % len(others)]
            attempt += 1
            try:
                ws = await c.session(node, secret, subscribed=True)
            except Exception as e:  # refused or unreachable: the next node
                last = f"{node.name}: {e}"
                await asyncio.sleep(0.2)
        moved.append(ws)
        if ws is None:
            r.note(f"client {i} could not reconnect: {last}")
    r.check(all(moved), "6. B's clients reconnected to A or C and resubscribed", [ws and ws.tag for ws in moved])

    if isinstance(created, dict) and "secret" in created:
        ok, last = False, None
        deadline = time.monotonic() + NEVER
        while time.monotonic() < deadline and not ok:
            try:
                ws = await L.ws_connect("127.0.0.1", A.port, created["secret"])
            except (OSError, TimeoutError) as e:
                last = str(e)
                await asyncio.sleep(0.25)
                continue
            if ws.status == 101:
                c.sockets.append(ws)
                ok = (await ws.expect(lambda m: m.get("type") == "welcome", NEVER)) is not None
            else:
                last = (ws.status, L.refusal(ws))
                ws.close()
                await asyncio.sleep(0.25)
        r.check(ok, "6. the key created through B just before the kill works on A", last)

    for name, ws in watchers.items():
        try:
            await ws.expect(lambda m: m.get("type") == "event" and (m.get("data") or {}).get("pub") == "before-kill", NEVER)
            r.check(True, f"6. the publish B acknowledged before the kill reached the subscriber on {name}")
        except (TimeoutError, EOFError) as e:
            r.check(False, f"6. the publish B acknowledged before the kill reached the subscriber on {name}", str(e))

    if all(moved):
        status, _ = await c.publish(A, {"pub": "after-kill"})
        got = []
        for ws in moved:
            try:
                await ws.expect(lambda m: m.get("type") == "event" and (m.get("data") or {}).get("pub") == "after-kill", NEVER)
                got.append(True)
            except (TimeoutError, EOFError):
                got.append(False)
        r.check(status == 202 and all(got), "6. the reconnected clients get a publish made after the kill", (status, got))
    c.close_all()


async def test_name_taken(c, r):
    # A second process given a live node's name must refuse to start (it would take A's receipts
    # and session rows), and say why.
    binary = c.nodes[0].binary
    def start():
        return subprocess.run([binary, "serve", "--db", c.pg.url, "--port", "0", "--node-name", "A", "--log-level", "warning"],
                              capture_output=True, text=True, timeout=60)
    done = await asyncio.to_thread(start)
    output = done.stdout + done.stderr
    r.check(done.returncode != 0, "7. a second node named A refuses to start", (done.returncode, output[-300:]))
    r.check("node name A is used by another live node" in output, "7. ...and says the name is taken", output[-300:])
    status, _ = await c.readyz(c.A)
    r.check(status == 200, "7. node A is unharmed", status)


TESTS = [test_revoke_across_nodes, test_publish_across_nodes, test_sessions_and_cap, test_pg_restart,
         test_fail_closed, test_node_killed, test_name_taken]


async def run(c, r, only):
    for number, test in enumerate(TESTS, 1):
        if only and number not in only:
            continue
        r.note(f"test {number}: {test.__name__}")
        try:
            await asyncio.wait_for(test(c, r), 180)
        except Exception as e:
            r.check(False, f"{number}. {test.__name__} ran to its end", f"{type(e).__name__}: {e}")
        finally:
            c.close_all()
            if c.pg.pid is None or not c.pg.running():
                await asyncio.to_thread(c.pg.start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", default=os.path.join(L.ROOT, ".build/debug/doorman"))
    parser.add_argument("--only", default="", help="comma-separated test numbers")
    parser.add_argument("--logs", help="keep the node logs in this folder (default: a temporary one, removed)")
    args = parser.parse_args()
    only = {int(x) for x in args.only.split(",") if x.strip()}
    L.require_postgres()
    L.raise_fd_limit()
    binary = os.path.abspath(args.binary)
    if not os.access(binary, os.X_OK):
        sys.exit(f"no gateway binary at {binary} (swift build first, or --binary)")
    r = Report()
    pg, nodes = L.Postgres(), []
    try:
        _, _, admin_key = L.start_cluster(binary, args=["--feed-bound", str(BOUND), "--max-sessions-per-key", str(CAP),
                                                        "--handshakes-per-second", "0", "--log-level", "info"],
                                          pg=pg, logs=args.logs, nodes=nodes)
        r.note(f"PostgreSQL on 127.0.0.1:{pg.port}; nodes " + ", ".join(f"{n.name} :{n.port}" for n in nodes))
        c = Cluster(pg, nodes, admin_key)
        asyncio.run(run(c, r, only))
        if c.unknown_key_retries:
            r.note(f"handshakes retried after 401 unknown_key (a key made on another node a moment before): {c.unknown_key_retries}")
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(130)
    except Exception as e:
        r.check(False, "the cluster started and the tests ran", f"{type(e).__name__}: {e}")
    print(f"cluster: {r.passed} passed, {r.failed} failed", flush=True)
    if r.failed:
        for n in nodes:
            print(f"---- node {n.name} log (last 40 lines; {n.log_path})")
            print(n.tail(40))
        print("---- PostgreSQL server log (tail)")
        print(pg.server_log_tail(1500))
    sys.exit(1 if r.failed else 0)


if __name__ == "__main__":
    main()
