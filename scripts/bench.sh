#!/usr/bin/env bash
# Benchmark: Doorman's echo mode against the C reference server (../shared/tools/refserver), in one
# run, server pinned to core 1 and wsload to core 0. Prints, per figure, the median of REPS runs,
# the ratio to the reference, and server CPU time per operation (the steadier measure).
#
#   scripts/bench.sh            REPS=3 HS_N=20000 ECHO_SECONDS=5 HOLD_N=10000 (SKIP_TLS=1: no TLS/deflate part)
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
    doorman) taskset -c 1 "$DOORMAN" serve --echo --port "$2" --loops 1 --max-connections 20000 --max-unfinished-per-address 20000 --idle-timeout 0 >/dev/null 2>&1 & ;;
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
sys.path.insert(0, "scripts")
from bench_results import Results
out, reps = sys.argv[1], int(sys.argv[2])
results = Results(out, reps)
def read(name, server, rep):
    return results.read(f"{name}.{server}", rep)
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

# TLS and permessage-deflate (issue: the engine, part two). wsload speaks neither, so a Python
# client (websockets, in a venv under ~/.cache) drives the same echo server in four setups; the
# client is the bottleneck here, so the comparable figure is the server's CPU per message, as a
# ratio to plain ws://. Then RSS per idle connection at HOLD_N over TLS and with deflate negotiated.
[[ "${SKIP_TLS:-0}" == 1 ]] && exit 0
VENV="${XDG_CACHE_HOME:-$HOME/.cache}/doorman-bench-venv"
[[ -x "$VENV/bin/python" ]] || { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q websockets; }
CERTS=$(mktemp -d)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 90 -subj /CN=127.0.0.1 \
  -keyout "$CERTS/key.pem" -out "$CERTS/cert.pem" 2>/dev/null
trap 'stop; rm -rf "$CERTS"' EXIT
CLIENT=(taskset -c 0 "$VENV/bin/python" "$ROOT/scripts/wsclient-bench.py")
start_tls() { # port tls-port extra-args...
  local port=$1 tport=$2; shift 2
  taskset -c 1 "$DOORMAN" serve --echo --port "$port" --tls-port "$tport" --tls-cert "$CERTS/cert.pem" --tls-key "$CERTS/key.pem" \
    --loops 1 --max-connections 20000 --max-unfinished-per-address 20000 --idle-timeout 0 "$@" >/dev/null 2>&1 &
  pid=$!
  wait_port "$port"; wait_port "$tport"
}
for rep in $(seq 1 "$REPS"); do
  echo "== rep $rep/$REPS: TLS and deflate" >&2
  for setup in plain deflate tls tls-deflate; do
    port=$((25000 + RANDOM % 1000)); tport=$((port + 1000))
    case $setup in *deflate) start_tls $port $tport --compression; flag=--deflate ;; *) start_tls $port $tport; flag= ;; esac
    case $setup in tls*) url="wss://127.0.0.1:$tport/ws" ;; *) url="ws://127.0.0.1:$port/ws" ;; esac
    "${CLIENT[@]}" echo "$url" --server-pid "$pid" $flag -c 50 -s 512 -d "$ECHO_SECONDS" >"$OUT/py-echo.$setup.$rep" 2>/dev/null || true
    stop
  done
  for setup in plain tls deflate; do
    port=$((25000 + RANDOM % 1000)); tport=$((port + 1000))
    case $setup in deflate) start_tls $port $tport --compression; flag=--deflate ;; *) start_tls $port $tport; flag= ;; esac
    case $setup in tls) url="wss://127.0.0.1:$tport/ws" ;; *) url="ws://127.0.0.1:$port/ws" ;; esac
    "${CLIENT[@]}" hold "$url" --server-pid "$pid" $flag -n "$HOLD_N" >"$OUT/py-hold.$setup.$rep" 2>/dev/null || true
    stop
  done
done
python3 - "$OUT" "$REPS" <<'PY'
import sys
sys.path.insert(0, "scripts")
from bench_results import Results, med
results = Results(sys.argv[1], int(sys.argv[2]))
read, vals = results.read, results.vals
print()
print(f"{'echo, 50 conns, 512 B JSON (python client)':44} {'msgs/s':>9} {'CPU us/msg':>11} {'vs plain':>9}")
base = vals("py-echo.plain", "server_cpu_us_per_msg")
for setup in ("plain", "deflate", "tls", "tls-deflate"):
    cpu = vals(f"py-echo.{setup}", "server_cpu_us_per_msg")
    ratios = [c / b for b, c in zip(base, cpu) if b]
    print(f"  {setup:42} {med(vals(f'py-echo.{setup}', 'msgs_per_s')):9.0f} {med(cpu):11.2f} {med(ratios):8.2f}x")
print(f"{'RSS per idle connection':44} {'opened':>9} {'KiB/conn':>11}  goal")
for setup in ("plain", "tls", "deflate"):
    d = read(f"py-hold.{setup}", 1)
    goal = "<= 8 KiB" if setup == "tls" else ""
    print(f"  {setup:42} {d.get('opened', '?'):>9} {med(vals(f'py-hold.{setup}', 'server_kib_per_conn')):11.2f}  {goal} {d.get('extensions', '')}")
PY
