#!/usr/bin/env python3
"""Load for what ../shared/tools/wsload cannot speak: wss:// and permessage-deflate.

Uses the `websockets` library (asyncio). The client is slower than wsload, so the figures that
matter are the server's: CPU per message and RSS per idle connection, read from /proc/<pid>.
Loopback only; every mode is bounded in count and time and stops by itself.

  wsclient-bench.py echo URL --server-pid PID [--deflate] [-c 50] [-s 512] [-d 5]
  wsclient-bench.py hold URL --server-pid PID [--deflate] [-n 10000] [--settle 2]

Prints key=value lines (msgs_per_s, server_cpu_us_per_msg, server_kib_per_conn, ...).
"""
import argparse
import asyncio
import json
import os
import random
import re
import ssl
import sys
import time

from websockets.asyncio.client import connect

TICKS = os.sysconf("SC_CLK_TCK")


def server_cpu(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def server_rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def check_loopback(url):
    if not re.match(r"^wss?://127\.\d+\.\d+\.\d+(:\d+)?(/.*)?$", url):
        sys.exit(f"refusing: {url} is not a loopback ws:// or wss:// URL")


def options(args):
    kw = {"compression": "deflate" if args.deflate else None, "max_size": 1 << 24, "ping_interval": None,
          "open_timeout": 20, "close_timeout": 5}
    if args.url.startswith("wss://"):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        kw["ssl"] = ctx
    return kw


def payload(size):
    # Dashboard-like JSON: similar, compressible, not constant.
    base = {"type": "event", "channel": "rooms.101", "data": {"temp": 21.5, "occupied": True, "door": "closed"}}
    text = json.dumps(base)
    while len(text) < size:
        text += json.dumps({"k": random.randint(0, 9), "v": "status-ok"})
    return text[:size]


async def echo(args):
    kw = options(args)
    stop_at = None
    counts = {"n": 0, "bad": 0}
    msg = payload(args.size)

    async def one():
        async with connect(args.url, **kw) as ws:
            await ws.recv() if args.expect_welcome else None
            while stop_at is None or time.monotonic() < stop_at:
                await ws.send(msg)
                got = await ws.recv()
                if got != msg:
                    counts["bad"] += 1
                if stop_at is not None:
                    counts["n"] += 1

    tasks = [asyncio.create_task(one()) for _ in range(args.connections)]
    await asyncio.sleep(args.warmup)
    cpu0, t0 = server_cpu(args.server_pid), time.monotonic()
    counts["n"] = 0
    stop_at = t0 + args.duration
    await asyncio.gather(*tasks, return_exceptions=True)
    elapsed, cpu = time.monotonic() - t0, server_cpu(args.server_pid) - cpu0
    n = counts["n"]
    print(f"msgs={n}\nmsgs_per_s={n / elapsed:.1f}\nmismatch={counts['bad']}")
    print(f"server_cpu_s={cpu:.3f}\nserver_cpu_us_per_msg={cpu / max(n, 1) * 1e6:.2f}")


async def hold(args):
    kw = options(args)
    rss0 = server_rss_kib(args.server_pid)
    sockets, failed = [], 0
    deadline = time.monotonic() + args.timeout
    sem = asyncio.Semaphore(args.ramp)

    async def open_one():
        nonlocal failed
        async with sem:
            try:
                sockets.append(await connect(args.url, **kw))
            except Exception:
                failed += 1

    await asyncio.wait_for(asyncio.gather(*(open_one() for _ in range(args.n))), max(1, deadline - time.monotonic()))
    await asyncio.sleep(args.settle)
    rss1 = server_rss_kib(args.server_pid)
    exts = sockets[0].response.headers.get("Sec-WebSocket-Extensions", "") if sockets else ""
    print(f"opened={len(sockets)}\nfailed={failed}\nextensions={exts}")
    print(f"server_rss_before_kib={rss0}\nserver_rss_open_kib={rss1}")
    print(f"server_kib_per_conn={(rss1 - rss0) / max(len(sockets), 1):.2f}")
    for ws in sockets:
        ws.transport.abort()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["echo", "hold"])
    ap.add_argument("url")
    ap.add_argument("--server-pid", type=int, required=True)
    ap.add_argument("--deflate", action="store_true", help="offer permessage-deflate")
    ap.add_argument("-c", "--connections", type=int, default=50)
    ap.add_argument("-s", "--size", type=int, default=512)
    ap.add_argument("-d", "--duration", type=float, default=5)
    ap.add_argument("--warmup", type=float, default=1)
    ap.add_argument("--expect-welcome", action="store_true")
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("--ramp", type=int, default=200)
    ap.add_argument("--settle", type=float, default=2)
    ap.add_argument("--timeout", type=float, default=120)
    args = ap.parse_args()
    check_loopback(args.url)
    asyncio.run(echo(args) if args.mode == "echo" else hold(args))


if __name__ == "__main__":
    main()
