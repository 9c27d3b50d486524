#!/usr/bin/env bash
# Live-session benchmark (issue: live sessions), Doorman in gateway mode beside the C reference
# server, server pinned to core 1, wsload to core 0, REPS runs each, medians and ratios:
#   (a) revoke one key held by N sessions: trigger → last close frame at the client; and the
#       server's own commit → last close frame written (doorman_revocation_to_close_seconds);
#   (b) one publish to N subscribers: trigger → last delivery; and the server's own publish → last
#       frame written (doorman_publish_to_last_write_seconds);
#   (c) handshakes/s and server CPU per handshake with key auth vs echo mode without auth.
# The server rows also show the reference's own time for the same writes (its trigger's response
# time: it writes every frame before answering), the floor of one core's send(2) calls here.
#
#   scripts/bench-sessions.sh      REPS=3 N=10000 HS_N=20000
# Loopback only; every wsload run is bounded in count and time. Logs at warning level.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
TOOLS="$ROOT/../shared/tools"
REPS=${REPS:-3}
N=${N:-10000}
HS_N=${HS_N:-20000}
OUT=${OUT:-$ROOT/bench-results/sessions}
mkdir -p "$OUT"
rm -f "$OUT"/*
command -v taskset >/dev/null || { echo "taskset (util-linux) is required" >&2; exit 2; }
make -s -C "$TOOLS/wsload" >/dev/null
make -s -C "$TOOLS/refserver" >/dev/null
swift build -c release --product doorman >/dev/null
WSLOAD="$TOOLS/wsload/wsload"
DOORMAN="$ROOT/.build/release/doorman"
REFKEY="bench-key"
ulimit -n "$(ulimit -Hn)"
DB_DIR=$(mktemp -d)

pid=""
stop() { if [[ -n "$pid" ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi; pid=""; }
trap 'stop; rm -rf "$DB_DIR"' EXIT
wait_port() { for _ in $(seq 1 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }

start_ref() { PORT=$1 WS_API_KEY=$REFKEY taskset -c 1 "$TOOLS/refserver/cecho" >/dev/null 2>&1 & pid=$!; wait_port "$1"; }
# Gateway mode on a fresh database; sets ADMIN, KEY_ID, KEY (a device key allowed channel:*).
start_doorman() {
  local port=$1 out="$DB_DIR/out.$1"
  rm -f "$DB_DIR/bench.db"*
  taskset -c 1 "$DOORMAN" serve --port "$port" --db "$DB_DIR/bench.db" --loops 1 --max-connections 25000 --max-unfinished-per-address 25000 \
    --idle-timeout 0 --handshakes-per-second 0 --messages-per-second 0 --log-level warning >"$out" 2>/dev/null &
  pid=$!
  wait_port "$port"
  ADMIN=$(sed -n 's/^admin key: //p' "$out")
  new_key "$port"
}
new_key() {
  local port=$1 user
  user=$(curl -sf -H "X-API-Key: $ADMIN" -H "Content-Type: application/json" -d '{"name":"bench devices","permissions":["channel:*"]}' "http://127.0.0.1:$port/v1/users" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  read -r KEY_ID KEY < <(curl -sf -H "X-API-Key: $ADMIN" -H "Content-Type: application/json" -d "{\"name\":\"bench\",\"userID\":\"$user\"}" "http://127.0.0.1:$port/v1/keys" \
    | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["key"]["id"], d["secret"])')
}
# Until the previous run's connections are gone (their teardown must not be charged to the next run).
wait_idle() { # port
  for _ in $(seq 1 100); do
    [[ $(curl -sf "http://127.0.0.1:$1/healthz" | python3 -c 'import json,sys; print(json.load(sys.stdin)["connections"])' 2>/dev/null || echo 99) -le 1 ]] && return 0
    sleep 0.1
  done
}
metric() { # port name → value
  curl -sf "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n { print $2 }'
}

for rep in $(seq 1 "$REPS"); do
  echo "== rep $rep/$REPS" >&2
  # (a) revoke → close, reference then doorman.
  port=$((20000 + RANDOM % 1000)); start_ref $port
  taskset -c 0 "$WSLOAD" close-wait -u "ws://127.0.0.1:$port/ws" -H "X-API-Key: $REFKEY" -n "$N" -d 20 \
    --trigger "POST http://127.0.0.1:$port/revoke" >"$OUT/revoke.ref.$rep" 2>/dev/null || true
  stop
  port=$((21000 + RANDOM % 1000)); start_doorman $port
  taskset -c 0 "$WSLOAD" close-wait -u "ws://127.0.0.1:$port/ws" -H "X-API-Key: $KEY" -n "$N" -d 20 \
    --trigger "POST http://127.0.0.1:$port/v1/keys/$KEY_ID/revoke" --trigger-header "X-API-Key: $ADMIN" >"$OUT/revoke.doorman.$rep" 2>/dev/null || true
  sum=$(metric $port doorman_revocation_to_close_seconds_sum); count=$(metric $port doorman_revocation_to_close_seconds_count)
  echo "server_commit_to_last_close_ms=$(python3 -c "print(round(float('$sum')/max(1,int('$count'))*1000,2))")" >>"$OUT/revoke.doorman.$rep"

  # (b) publish → last delivery (the same server, a new key).
  wait_idle $port
  new_key $port
  taskset -c 0 "$WSLOAD" fanout -u "ws://127.0.0.1:$port/ws" -H "X-API-Key: $KEY" -c "$N" -m 20 -s 1 \
    --sub-msg '{"type":"subscribe","channel":"bench"}' --pub-url "http://127.0.0.1:$port/v1/publish" --trigger-header "X-API-Key: $KEY" \
    --pub-body '{"channel":"bench","data":"seq=%ld"}' >"$OUT/fanout.doorman.$rep" 2>/dev/null || true
  sum=$(metric $port doorman_publish_to_last_write_seconds_sum); count=$(metric $port doorman_publish_to_last_write_seconds_count)
  echo "server_publish_to_last_write_ms=$(python3 -c "print(round(float('$sum')/max(1,int('$count'))*1000,2))")" >>"$OUT/fanout.doorman.$rep"

  stop
  # (c) authenticated handshakes on a fresh gateway, as the echo-mode baseline below runs on a
  # fresh server (a server that just closed 10,000 sessions has other work in flight).
  port=$((21000 + RANDOM % 1000)); start_doorman $port
  taskset -c 0 "$WSLOAD" handshake -u "ws://127.0.0.1:$port/ws" -H "X-API-Key: $KEY" -n "$HS_N" -c 50 --server-pid "$pid" \
    >"$OUT/handshake.auth.$rep" 2>/dev/null || true
  stop
  port=$((22000 + RANDOM % 1000)); start_ref $port
  taskset -c 0 "$WSLOAD" fanout -u "ws://127.0.0.1:$port/ws" -H "X-API-Key: $REFKEY" -c "$N" -m 20 \
    --pub-url "http://127.0.0.1:$port/publish" >"$OUT/fanout.ref.$rep" 2>/dev/null || true
  stop
  # The reference's own server time: it writes every frame inside the HTTP request that triggers
  # them, so the trigger's response time is its publish → last write and revoke → last close.
  port=$((24000 + RANDOM % 1000)); start_ref $port
  taskset -c 0 "$WSLOAD" hold -u "ws://127.0.0.1:$port/ws" -H "X-API-Key: $REFKEY" -n "$N" -d 12 --settle 1 >/dev/null 2>&1 &
  hold=$!
  for _ in $(seq 1 80); do [[ $(curl -sf -d x "http://127.0.0.1:$port/publish" || echo 0) -ge $N ]] && break; sleep 0.1; done
  for i in 1 2 3; do
    echo "server_publish_ms_$i=$(curl -sf -o /dev/null -w '%{time_total}' -d "seq=$i" "http://127.0.0.1:$port/publish" | python3 -c 'import sys; print(float(sys.stdin.read())*1000)')"
  done >"$OUT/refserver.$rep"
  echo "server_revoke_ms=$(curl -sf -o /dev/null -w '%{time_total}' -X POST "http://127.0.0.1:$port/revoke" | python3 -c 'import sys; print(float(sys.stdin.read())*1000)')" >>"$OUT/refserver.$rep"
  wait "$hold" || true
  stop
  # (c) echo mode, no auth.
  port=$((23000 + RANDOM % 1000))
  taskset -c 1 "$DOORMAN" serve --echo --port "$port" --loops 1 --max-connections 25000 --max-unfinished-per-address 25000 --idle-timeout 0 --log-level warning >/dev/null 2>&1 &
  pid=$!; wait_port $port
  taskset -c 0 "$WSLOAD" handshake -u "ws://127.0.0.1:$port/ws" -n "$HS_N" -c 50 --server-pid "$pid" >"$OUT/handshake.echo.$rep" 2>/dev/null || true
  stop
done

python3 - "$OUT" "$REPS" <<'PY'
import math, statistics, sys
sys.path.insert(0, "scripts")
from bench_results import Results, med
out, reps = sys.argv[1], int(sys.argv[2])
results = Results(out, reps)
read, vals = results.read, results.vals
def ratio(a, b):
    rs = [y / x for x, y in zip(a, b) if x]
    return med(rs), rs
print(f"{'figure':52} {'reference':>10} {'doorman':>10} {'ratio':>7}  goal")
ra, da = vals("revoke.ref", "last_close_ms"), vals("revoke.doorman", "last_close_ms")
r, _ = ratio(ra, da)
print(f"{'(a) revoke 1 key / N sessions: last close (ms)':52} {med(ra):10.1f} {med(da):10.1f} {r:6.2f}x  <= 1.2x")
rs, ds = vals("refserver", "server_revoke_ms"), vals("revoke.doorman", "server_commit_to_last_close_ms")
r, _ = ratio(rs, ds)
print(f"{'    server: commit -> last close frame written (ms)':52} {med(rs):10.1f} {med(ds):10.1f} {r:6.2f}x  <= 50 ms")
rb, db = vals("fanout.ref", "round_last_p50_ms"), vals("fanout.doorman", "round_last_p50_ms")
r, _ = ratio(rb, db)
print(f"{'(b) publish to N subscribers: last delivery p50 (ms)':52} {med(rb):10.1f} {med(db):10.1f} {r:6.2f}x  <= 1.2x")
rs = [statistics.median(float(read("refserver", i)[f"server_publish_ms_{j}"]) for j in (1, 2, 3)) for i in range(1, reps + 1) if "server_publish_ms_3" in read("refserver", i)]
ds = vals("fanout.doorman", "server_publish_to_last_write_ms")
r, _ = ratio(rs, ds)
print(f"{'    server: publish -> last frame written (ms)':52} {med(rs):10.1f} {med(ds):10.1f} {r:6.2f}x  <= 20 ms")
he, ha = vals("handshake.echo", "handshakes_per_s"), vals("handshake.auth", "handshakes_per_s")
r, _ = ratio(he, ha)
print(f"{'(c) handshakes/s: key auth vs echo (no auth)':52} {med(he):10.0f} {med(ha):10.0f} {r:6.2f}x  >= 0.9x")
cpu = lambda name: [float(read(name, i)["server_cpu_s"]) / float(read(name, i)["ok"]) * 1e6 for i in range(1, reps + 1) if "server_cpu_s" in read(name, i) and float(read(name, i).get("ok", "0")) > 0]
print(f"{'    server CPU per handshake (us): echo / auth':52} {med(cpu('handshake.echo')):10.1f} {med(cpu('handshake.auth')):10.1f} {'':7}  auth <= 64 us")
for name in ("revoke.ref", "revoke.doorman", "fanout.ref", "fanout.doorman", "handshake.echo", "handshake.auth"):
    d = read(name, 1)
    keys = [k for k in ("opened", "still_open", "close_code_4001", "eof_without_close_frame", "missing", "stray", "ok", "non101", "client_cpu_pct") if k in d]
    print(f"  {name} rep1: " + " ".join(f"{k}={d[k]}" for k in keys))
PY
