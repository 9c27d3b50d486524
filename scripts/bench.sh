#!/usr/bin/env bash
# Benchmark: Doorman's echo mode against the C reference server (../shared/tools/refserver), in one
# run, server pinned to core 1 and wsload to core 0. Prints, per figure, the median of REPS runs,
# the ratio to the reference, and server CPU time per operation (the steadier measure).
#
#   scripts/bench.sh            REPS=3 HS_N=20000 ECHO_SECONDS=5 HOLD_N=10000
#
# Loopback only; every wsload run is bounded in count and time.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
TOOLS="$ROOT/../shared/tools"
REPS=${REPS:-3}
HS_N=${HS_N:-20000}
ECHO_SECONDS=${ECHO_SECONDS:-5}
HOLD_N=${HOLD_N:-10000}
OUT=${OUT:-$ROOT/bench-results}
mkdir -p "$OUT"

command -v taskset >/dev/null || { echo "taskset (util-linux) is required" >&2; exit 2; }
[[ -d /usr/include/openssl ]] || apt-get install -y -qq libssl-dev >/dev/null
make -s -C "$TOOLS/wsload" >/dev/null
make -s -C "$TOOLS/refserver" >/dev/null
swift build -c release --product doorman >/dev/null
WSLOAD="$TOOLS/wsload/wsload"
DOORMAN="$ROOT/.build/release/doorman"
KEY="bench-key"
ulimit -n "$(ulimit -Hn)"

pid=""
stop() { if [[ -n "$pid" ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi; pid=""; }
trap stop EXIT
wait_port() { for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
start() { # server port
  case "$1" in
    ref) PORT=$2 WS_API_KEY=$KEY taskset -c 1 "$TOOLS/refserver/cecho" >/dev/null 2>&1 & ;;
    doorman) taskset -c 1 "$DOORMAN" serve --echo --port "$2" --loops 1 --max-connections 20000 --idle-timeout 0 >/dev/null 2>&1 & ;;
  esac
  pid=$!
  wait_port "$2"
}
run() { # name server mode args... -> $OUT/name.server.N
  local name=$1 server=$2 rep=$3; shift 3
  local port=$((19000 + RANDOM % 1000))
  start "$server" "$port"
  taskset -c 0 "$WSLOAD" "$@" -u "ws://127.0.0.1:$port/ws" -H "X-API-Key: $KEY" --server-pid "$pid" \
    >"$OUT/$name.$server.$rep" 2>/dev/null || true
  stop
}

for rep in $(seq 1 "$REPS"); do
  for server in ref doorman; do
    echo "== rep $rep/$REPS: $server" >&2
    run handshake "$server" "$rep" handshake -n "$HS_N" -c 50
    run echo "$server" "$rep" echo -c 100 -s 64 -d "$ECHO_SECONDS"
    run hold "$server" "$rep" hold -n "$HOLD_N" -d 3 --settle 2
  done
done

python3 - "$OUT" "$REPS" <<'PY'
import math, statistics, sys
out, reps = sys.argv[1], int(sys.argv[2])
def read(name, server, rep):
    d = {}
    try:
        for line in open(f"{out}/{name}.{server}.{rep}"):
            if "=" in line:
                k, v = line.strip().split("=", 1)
                d[k] = v
    except FileNotFoundError:
        pass
    return d
def value(fn, d):
    try:
        return fn(d)
    except (KeyError, ValueError, ZeroDivisionError):
        return float("nan")
def outside_load(d):
    """CPU busy on the two cores that neither the server nor wsload accounts for (other processes)."""
    try:
        busy = float(d["cpu0_busy_pct"]) + float(d["cpu1_busy_pct"])
        return busy - float(d["server_cpu_pct"]) - float(d["client_cpu_pct"]) - float(d.get("cpu0_softirq_pct", 0)) - float(d.get("cpu1_softirq_pct", 0))
    except (KeyError, ValueError):
        return 0.0
hs = lambda d: float(d["handshakes_per_s"])
hs_cpu = lambda d: float(d["server_cpu_s"]) / float(d["ok"]) * 1e6
em = lambda d: float(d["msgs_per_s"])
em_cpu = lambda d: float(d["server_cpu_s"]) / (float(d["msgs_per_s"]) * float(d["duration_s"])) * 1e6
kib = lambda d: float(d["server_kib_per_conn"])
rows = [
    ("handshakes/s", "handshake", hs, ">= 0.8x ref"),
    ("server CPU per handshake (us)", "handshake", hs_cpu, "<= 64 us"),
    ("echo msgs/s (100 conns, 64 B)", "echo", em, ">= 0.8x ref"),
    ("server CPU per echo msg (us)", "echo", em_cpu, "<= 9 us"),
    ("RSS per idle conn @%s (KiB)" % read("hold", "doorman", 1).get("opened", "?"), "hold", kib, "<= 2 KiB"),
]
print(f"{'figure':34} {'reference':>11} {'doorman':>11} {'ratio':>7}  {'per-rep ratios':24} goal")
for label, name, fn, goal in rows:
    r = [value(fn, read(name, "ref", i)) for i in range(1, reps + 1)]
    d = [value(fn, read(name, "doorman", i)) for i in range(1, reps + 1)]
    pairs = [(a, b) for a, b in zip(r, d) if not (math.isnan(a) or math.isnan(b)) and a]
    ratios = [b / a for a, b in pairs]
    med = lambda xs: statistics.median([x for x in xs if not math.isnan(x)]) if any(not math.isnan(x) for x in xs) else float("nan")
    ratio = statistics.median(ratios) if ratios else float("nan")
    print(f"{label:34} {med(r):11.2f} {med(d):11.2f} {ratio:6.2f}x  {' '.join(f'{x:.2f}' for x in ratios):24} {goal}")
print("ratio = median of per-rep ratios (each rep runs the reference, then doorman, back to back)")
for name in ("handshake", "echo", "hold"):
    for i in range(1, reps + 1):
        for server in ("ref", "doorman"):
            d = read(name, server, i)
            keys = [k for k in ("ok", "non101", "timeouts", "mismatch", "opened", "still_open", "server_cpu_pct", "client_cpu_pct") if k in d]
            noise = outside_load(d)
            flag = f"  OUTSIDE LOAD ~{noise:.0f}% of a core: noisy" if noise > 30 else ""
            print(f"  {name}/{server} rep{i}: " + " ".join(f"{k}={d[k]}" for k in keys) + flag)
PY
