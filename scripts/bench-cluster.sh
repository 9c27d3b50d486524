#!/usr/bin/env bash
# Cluster benchmark (issue "Many nodes on PostgreSQL"): a private PostgreSQL, three nodes, 10,000
# sessions of one key revoked through one node (close latency local vs cross-node), then
# cross-node publish latency. See scripts/bench-cluster.py for the figures; it needs PostgreSQL's
# server binaries (initdb, pg_ctl; DOORMAN_PG_BIN to choose) and skips loudly without them.
#
#   BINARY=.build/release/doorman scripts/bench-cluster.sh [--sessions 10000] [--subscribers 300] ...
#
# Builds nothing: build the binary first (swift build -c release --product doorman).
set -euo pipefail
cd "$(dirname "$0")/.."
BINARY=${BINARY:-.build/release/doorman}
[[ -x "$BINARY" ]] || { echo "no gateway binary at $BINARY (swift build -c release --product doorman first)" >&2; exit 2; }
# The client and the nodes (which inherit it) hold thousands of sockets each.
ulimit -n "$(ulimit -Hn)"
exec python3 scripts/bench-cluster.py --binary "$BINARY" "$@"
