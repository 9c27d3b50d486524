#!/usr/bin/env bash
# The test command (README): unit + integration tests, fuzzing, a SIGKILL crash test of the store,
# resets at every point and a seeded chaos run of hostile clients, the denial-of-service limits,
# Schemathesis against the admin API's OpenAPI document, calls through the binary to a reference
# upstream, the README's quick start as written, Autobahn|Testsuite conformance and a real headless Chromium (also over wss:// with
# permessage-deflate, and the admin page), testssl.sh against the TLS listener, a three-node
# cluster on a private PostgreSQL and the docker/ files' checks, against the real binary. Installs what it needs (as root, via
# apt-get and pip, through ../shared/tools/*/setup.sh). Ends with one line: "doorman: N passed, M failed".
#
#   scripts/test.sh                 everything
#   FUZZ_SECONDS=10 scripts/test.sh shorter fuzzing (default 60 s per target)
#   QUICK=1 scripts/test.sh         swift test only
#
# Under CI=true a tool that cannot be installed is a failure; elsewhere it is skipped, loudly.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
TOOLS="$ROOT/../shared/tools"
CACHE="${SHARED_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/shared-tools}"
. scripts/steps.sh

# Background processes we start, ended by PID on exit.
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; }
trap cleanup EXIT

# 0. The C libraries the build needs (apt-get as root, only if missing).
scripts/install-deps.sh || { echo "doorman: 0 passed, 1 failed, 0 skipped"; exit 1; }
# The PostgreSQL server binaries the store and cluster tests run privately (initdb in a temporary
# folder, never a system cluster): apt-get as root, only if missing. Without them those tests skip
# loudly (fail under CI=true).
if [[ -z "${DOORMAN_PG_BIN:-}" ]] && ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && [[ $(id -u) -eq 0 ]]; then
  echo "== installing postgresql" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) || echo "!! could not install postgresql" >&2
fi

# The admin page's files are embedded in the binary by a generated Swift file: it must be current.
if python3 scripts/embed-admin-page.py --check; then step "admin page embedded" pass; else step "admin page embedded" fail; fi

# 1. Unit and integration tests.
echo "== swift test"
if swift build --build-tests && swift test --skip-build 2>&1 | tee /tmp/doorman-swift-test.log; then
  if grep -qE "Test run with [0-9]+ tests? (in [0-9]+ suites? )?passed" /tmp/doorman-swift-test.log; then step "swift test" pass; else step "swift test" fail; fi
else
  step "swift test" fail
fi
if [[ "${QUICK:-0}" == 1 ]]; then
  echo "doorman: $passed passed, $failed failed, $skipped skipped"
  [[ $failed -eq 0 ]]; exit
fi

# 2. Fuzzing (libFuzzer + AddressSanitizer), briefly: frames, handshake, rules.
if bash scripts/fuzz.sh; then step "fuzz" pass; else step "fuzz" fail; fi

# 3. The real binary, release build, in echo mode with Autobahn's limits (9.* sends 16 MiB
#    messages in up to 65,536 fragments).
swift build -c release --product doorman || { step "release build" fail; echo "doorman: $passed passed, $failed failed, $skipped skipped"; exit 1; }
BIN="$ROOT/.build/release/doorman"
start_server() { # args... ; sets PORT (plain listener) and SERVER_OUT (its stdout)
  local out; out=$(mktemp)
  SERVER_OUT=$out
  "$BIN" serve --port 0 "$@" >"$out" 2>/dev/null &
  pids+=($!)
  for _ in $(seq 1 100); do
    PORT=$(sed -n 's/^doorman listening on .*:\([0-9]*\)$/\1/p' "$out")
    [[ -n "$PORT" ]] && return 0
    sleep 0.1
  done
  echo "server did not start" >&2; return 1
}

# 4. The store survives SIGKILL mid-writes (nothing acknowledged lost, never corrupt).
if BIN="$BIN" bash scripts/crash-test.sh 2>&1 | tee /tmp/doorman-crash.log | tail -2 && grep -qE '^crash-test: [1-9][0-9]* passed, 0 failed' /tmp/doorman-crash.log; then
  step "crash test" pass
else
  step "crash test" fail
fi

# 4b. No device can take the gateway down: a reset at every point where the server still has bytes
#     to write (deterministic: the server is frozen while the client sends its last bytes and
#     resets), the denial-of-service limits, and a seeded chaos run of hostile clients (plain and
#     TLS) with the keys in use revoked meanwhile. CHAOS_SEED=N reproduces a run.
# run_check NAME LOG PATTERN COMMAND...: runs COMMAND (its output kept in LOG, its end shown);
# passes when it succeeds and LOG has a line matching PATTERN.
run_check() {
  local name=$1 log=$2 pattern=$3; shift 3
  if "$@" 2>&1 | tee "$log" | tail -3 && grep -qE "$pattern" "$log"; then step "$name" pass; else step "$name" fail; fi
}
run_check "resets at every point" /tmp/doorman-reset.log '^reset-test: [1-9][0-9]* passed, 0 failed' python3 scripts/reset-test.py "$BIN"
run_check "denial-of-service limits" /tmp/doorman-limits.log '^limits-test: [1-9][0-9]* passed, 0 failed' python3 scripts/limits-test.py "$BIN"
run_check "chaos (hostile clients)" /tmp/doorman-chaos.log '^chaos: [1-9][0-9]* passed, 0 failed' \
  python3 scripts/chaos-test.py --binary "$BIN" ${CHAOS_SEED:+--seed "$CHAOS_SEED"}
grep -m1 '^chaos: seed' /tmp/doorman-chaos.log   # the seed that replays it

# 5. The admin API against its own OpenAPI document (Schemathesis from PyPI).
if BIN="$BIN" bash scripts/api-check.sh 2>&1 | tee /tmp/doorman-api.log | tail -4 && grep -qE '^api-check: 1 passed, 0 failed' /tmp/doorman-api.log; then
  step "schemathesis" pass
else
  if grep -q "venv-schemathesis" /tmp/doorman-api.log && ! [[ -x "$CACHE/venv-schemathesis/bin/schemathesis" ]]; then
    missing_tool "schemathesis" "could not install schemathesis from PyPI"
  else
    step "schemathesis" fail
  fi
fi

# 5a. The README's quick start, run as written (scripts/serve.sh, the CLI, a device, a publish).
if python3 scripts/quickstart-check.py 2>&1 | tee /tmp/doorman-quickstart.log | tail -3 && grep -qE '^quickstart: [1-9][0-9]* passed, 0 failed' /tmp/doorman-quickstart.log; then
  step "readme quick start" pass
else
  step "readme quick start" fail
fi

# 5b. Calls through the binary to the Python reference upstream (the README's verification snippet),
#     and the Swift snippet's package against the same signature vector.
if python3 scripts/calls-check.py "$BIN" 2>&1 | tee /tmp/doorman-calls.log | tail -6 && grep -qE '^calls-check: [1-9][0-9]* passed, 0 failed' /tmp/doorman-calls.log; then
  step "calls via the python upstream" pass
else
  step "calls via the python upstream" fail
fi
if swift run --package-path examples/swift-upstream check-vector 2>&1 | tee /tmp/doorman-swift-upstream.log | tail -1 \
   && grep -q '^swift verify: vector ok' /tmp/doorman-swift-upstream.log; then
  step "swift upstream snippet" pass
else
  step "swift upstream snippet" fail
fi

# 5c. The client libraries against the release binary, through clients/scenario/harness.py (the
#     Swift client's tests ran in step 1 against the debug binary).
if command -v node >/dev/null; then
  if DOORMAN_BIN="$BIN" node --experimental-websocket --test --test-timeout=120000 clients/javascript/test/ 2>&1 | tee /tmp/doorman-js-client.log | tail -8 \
     && grep -qE '^# fail 0' /tmp/doorman-js-client.log && grep -qE '^# pass [1-9]' /tmp/doorman-js-client.log; then
    step "javascript client (node)" pass
  else
    step "javascript client (node)" fail
  fi
else
  missing_tool "javascript client (node)" "node (20) is not installed"
fi
if DOORMAN_BIN="$BIN" bash clients/python/run-tests.sh 2>&1 | tee /tmp/doorman-py-client.log | tail -3 \
   && grep -qE '^[0-9]+ passed' /tmp/doorman-py-client.log && ! grep -qE '[0-9]+ (failed|error)' /tmp/doorman-py-client.log; then
  step "python client" pass
else
  step "python client" fail
fi

# 5d. Many nodes: a private PostgreSQL (initdb in a temporary folder) and three nodes of the
#     release binary: revoke, publish, listing and caps across nodes, PostgreSQL stopped and
#     started with a revocation in between, fail-closed past the feed bound, a node SIGKILLed.
if python3 scripts/cluster-test.py --binary "$BIN" > /tmp/doorman-cluster.log 2>&1; then
  tail -4 /tmp/doorman-cluster.log
  if grep -q "^SKIPPED" /tmp/doorman-cluster.log; then
    missing_tool "cluster (postgresql)" "initdb/pg_ctl not found (apt-get install postgresql)"
  elif grep -qE '^cluster: [1-9][0-9]* passed, 0 failed' /tmp/doorman-cluster.log; then
    step "cluster (postgresql, 3 nodes)" pass
  else
    step "cluster (postgresql, 3 nodes)" fail
  fi
else
  tail -60 /tmp/doorman-cluster.log
  step "cluster (postgresql, 3 nodes)" fail
fi
# The docker/ deployment: the HAProxy config checked by the real haproxy, the compose file's shape.
if DOORMAN_BIN="$BIN" bash scripts/docker-check.sh > /tmp/doorman-docker-check.log 2>&1 \
   && grep -qE '^docker-check: [1-9][0-9]* passed, 0 failed' /tmp/doorman-docker-check.log; then
  tail -3 /tmp/doorman-docker-check.log
  step "docker files and topology" pass
else
  tail -40 /tmp/doorman-docker-check.log
  step "docker files and topology" fail
fi

# A throw-away self-signed certificate for the TLS listener (openssl CLI).
TLS_DIR=$(mktemp -d)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 90 -subj /CN=127.0.0.1 \
  -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" -keyout "$TLS_DIR/key.pem" -out "$TLS_DIR/cert.pem" 2>/dev/null \
  || echo "!! openssl could not make a test certificate" >&2
TLS_ARGS=(--tls-cert "$TLS_DIR/cert.pem" --tls-key "$TLS_DIR/key.pem" --tls-port 0)
tls_port() { sed -n 's/^doorman listening for TLS on .*:\([0-9]*\)$/\1/p' "$SERVER_OUT"; }

# 6. Autobahn|Testsuite. Without compression: 1.* to 11.*. With --compression, over ws:// and over
#    wss://: all 517 cases under CI (about 13 minutes each), a shorter profile elsewhere
#    (AUTOBAHN_FULL=1 runs the full suite locally). 0 failed, 0 non-strict.
AUTOBAHN_LIMITS=(--max-frame-bytes 16777216 --max-message-bytes 16777216 --max-fragments 100000 --max-write-queue-bytes 67108864)
if [[ "${CI:-}" == "true" || "${AUTOBAHN_FULL:-0}" == 1 ]]; then DEFLATE_CASES='*'; else DEFLATE_CASES='1.*,2.*,5.*,6.4.*,7.*,12.1.*,13.1.*,13.7.*'; fi
autobahn() { # name, url, cases, [exclude]
  local report; report=$(mktemp -d)
  EXCLUDE="${4:-}" bash "$TOOLS/autobahn/run.sh" "$2" "$report" "$3" | tee "/tmp/doorman-autobahn-$1.log" | tail -12
  if grep -qE '^autobahn: [1-9][0-9]* passed, 0 failed, 0 non-strict' "/tmp/doorman-autobahn-$1.log"; then step "autobahn $1" pass; else step "autobahn $1" fail; fi
}
if [[ -x "$CACHE/venv-autobahn/bin/wstest" ]] || bash "$TOOLS/autobahn/setup.sh" >/tmp/doorman-autobahn-setup.log 2>&1; then
  start_server --echo "${AUTOBAHN_LIMITS[@]}"
  autobahn "1-11" "ws://127.0.0.1:$PORT" '1.*,2.*,3.*,4.*,5.*,6.*,7.*,9.*,10.*,11.*' '12.*,13.*'
  start_server --echo --compression "${AUTOBAHN_LIMITS[@]}"
  autobahn "deflate ws" "ws://127.0.0.1:$PORT" "$DEFLATE_CASES"
  start_server --echo --compression "${AUTOBAHN_LIMITS[@]}" "${TLS_ARGS[@]}"
  autobahn "deflate wss" "wss://127.0.0.1:$(tls_port)" "$DEFLATE_CASES"
else
  tail -5 /tmp/doorman-autobahn-setup.log >&2
  missing_tool "autobahn" "autobahn setup failed"
fi

# 6b. 10,000 garbage and half-finished TLS handshakes are shed by the handshake deadline while a
#     live wss:// session keeps echoing.
ulimit -n "$(ulimit -Hn)"
start_server --echo "${TLS_ARGS[@]}" --handshake-timeout 2 --max-connections 25000 --max-unfinished-per-address 25000
if python3 scripts/tls-shed.py "$PORT" "$(tls_port)" 10000 | tee /tmp/doorman-tls-shed.log | tail -1 \
   && grep -q '^tls-shed: PASS' /tmp/doorman-tls-shed.log; then step "tls shed" pass; else step "tls shed" fail; fi

# 6c. testssl.sh against the TLS listener (protocols, ciphers, preferences, vulnerabilities).
if command -v testssl >/dev/null || bash "$TOOLS/tls/setup.sh" >/tmp/doorman-tls-setup.log 2>&1; then
  start_server --echo "${TLS_ARGS[@]}"
  bash "$TOOLS/tls/run.sh" "127.0.0.1:$(tls_port)" | tee /tmp/doorman-testssl.log | tail -6
  if grep -qE '^tls: PASS' /tmp/doorman-testssl.log; then step "testssl" pass; else step "testssl" fail; fi
else
  tail -5 /tmp/doorman-tls-setup.log >&2
  missing_tool "testssl" "testssl.sh could not be installed"
fi

# 7. A real headless Chromium: handshake, text/binary/256 KiB echo, clean close.
if bash "$TOOLS/browser/setup.sh" >/tmp/doorman-browser-setup.log 2>&1; then
  start_server --echo
  if "$CACHE/venv-browser/bin/python" "$TOOLS/browser/ws_check.py" "ws://127.0.0.1:$PORT/ws" | tee /tmp/doorman-browser.log | tail -3 \
     && grep -qE '^browser: [1-9][0-9]* passed, 0 failed' /tmp/doorman-browser.log; then
    step "chromium echo" pass
  else
    step "chromium echo" fail
  fi
  start_server --echo
  if "$CACHE/venv-browser/bin/python" "$TOOLS/browser/ws_check.py" "ws://127.0.0.1:$PORT/ws" --protocols doorman.v1,other --expect-protocol doorman.v1 \
       | tee /tmp/doorman-browser2.log | tail -1 && grep -qE '^browser: [1-9][0-9]* passed, 0 failed' /tmp/doorman-browser2.log; then
    step "chromium subprotocol" pass
  else
    step "chromium subprotocol" fail
  fi
  start_server --echo --compression "${TLS_ARGS[@]}"
  if "$CACHE/venv-browser/bin/python" "$TOOLS/browser/ws_check.py" "wss://127.0.0.1:$(tls_port)/ws" --insecure --json /tmp/doorman-browser3.json \
       | tee /tmp/doorman-browser3.log | tail -1 && grep -qE '^browser: [1-9][0-9]* passed, 0 failed' /tmp/doorman-browser3.log \
       && python3 -c 'import json,sys; sys.exit(0 if "permessage-deflate" in json.load(open("/tmp/doorman-browser3.json")).get("extensions", "") else 1)'; then
    step "chromium wss + permessage-deflate" pass
  else
    step "chromium wss + permessage-deflate" fail
  fi
  # The JavaScript client in Chromium: a dashboard page subscribes, receives, and shows why it stopped.
  if DOORMAN_BIN="$BIN" "$CACHE/venv-browser/bin/python" clients/javascript/test/browser_test.py 2>&1 | tee /tmp/doorman-js-browser.log | tail -3 \
     && grep -qE '^js-browser: [1-9][0-9]* passed, 0 failed' /tmp/doorman-js-browser.log; then
    step "javascript client (chromium)" pass
  else
    step "javascript client (chromium)" fail
  fi
  # The admin page: sign in, keys, users, groups, audit, explain, rotate, kick; a key created on the
  # page opens a WebSocket, is revoked from the page, and the session ends with the reason (4001).
  ADMIN_DIR=$(mktemp -d)
  start_server --db "$ADMIN_DIR/admin.db" --log-level warning
  ADMIN_KEY=$(sed -n 's/^admin key: //p' "$SERVER_OUT")
  if DOORMAN_ADMIN_KEY="$ADMIN_KEY" "$CACHE/venv-browser/bin/python" scripts/admin-page-test.py "http://127.0.0.1:$PORT" \
       --screenshots "$ADMIN_DIR/shots" | tee /tmp/doorman-admin-page.log | tail -3 \
     && grep -qE '^admin-page: [1-9][0-9]* passed, 0 failed' /tmp/doorman-admin-page.log; then
    step "admin page (chromium)" pass
  else
    step "admin page (chromium)" fail
  fi
else
  tail -5 /tmp/doorman-browser-setup.log >&2
  missing_tool "chromium" "browser setup failed"
fi

echo
printf '%s\n' "${results[@]}"
echo "doorman: $passed passed, $failed failed, $skipped skipped"
[[ $failed -eq 0 ]]
