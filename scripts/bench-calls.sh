#!/usr/bin/env bash
# Call benchmark (issue: calls to upstream services): round trips/s, p50/p99 latency and CPU per
# call through the gateway against calling the upstream directly, over HTTP (wrk) and over a
# session (a Python websockets client), nginx as the upstream.
#
#   scripts/bench-calls.sh          REPS=3 DUR=6 CONNS=8 WS_CONNS=4 RATE=1000
# Loopback only; servers pinned to core 1, load to core 0; every run bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
for tool in wrk nginx taskset; do
  command -v "$tool" >/dev/null || PATH=$PATH:/usr/sbin command -v "$tool" >/dev/null || { echo "bench-calls needs $tool (apt-get install wrk nginx-light)" >&2; exit 2; }
done
export PATH=$PATH:/usr/sbin
VENV=${VENV:-$HOME/.cache/doorman-bench-venv}
[[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
"$VENV/bin/python" -c 'import websockets' 2>/dev/null || "$VENV/bin/pip" -q install 'websockets>=13'
swift build -c release --product doorman >/dev/null
exec "$VENV/bin/python" scripts/bench_calls.py "$ROOT/.build/release/doorman" "$ROOT"
