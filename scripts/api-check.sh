#!/usr/bin/env bash
# Checks the admin REST API against its own OpenAPI document with Schemathesis.
#
#   scripts/api-check.sh                 build (debug), start a fresh gateway, run Schemathesis
#   env: BIN=path/to/doorman             use this binary, do not build
#        SCRATCH=.build                  build directory when BIN is not given
#        API_EXAMPLES=50                 examples per operation
#        REPORT_DIR=<tmp>/report         where Schemathesis writes its JUnit report
#
# The gateway runs on 127.0.0.1 with --port 0 and a new database in a temporary directory; its
# first start prints the bootstrap admin key. Schemathesis tests the API with an admin key, so it
# will sooner or later revoke, suspend, rotate or delete the very key it is using, or disable or
# narrow that key's user (it reuses ids it saw in responses): all legitimate, after which every
# request would get the documented 401/403 and the rest of the run would test nothing else. So
# Schemathesis gets its keys from an auth hook (below): a fresh admin user and key at the start
# and again whenever a request answers 401/403, after which Schemathesis replays that request
# once (its own re-authentication). No operation is excluded and no check is relaxed.
# Ends with `api-check: N passed, M failed`; exits with Schemathesis's status (1 if the gateway
# could not be started or died during the run).
set -uo pipefail
cd "$(dirname "$0")/.."

SCRATCH="${SCRATCH:-.build}"
if [[ -z "${BIN:-}" ]]; then
    swift build --scratch-path "$SCRATCH" || { echo "api-check: 0 passed, 1 failed (build)"; exit 1; }
    BIN="$SCRATCH/debug/doorman"
fi
[[ -x "$BIN" ]] || { echo "api-check: no executable at $BIN" >&2; echo "api-check: 0 passed, 1 failed"; exit 1; }

WORK="$(mktemp -d /tmp/doorman-api-check.XXXXXX)"
REPORT_DIR="${REPORT_DIR:-$WORK/report}"
SERVER_PID=""

stop_server() {
    [[ -n "$SERVER_PID" ]] || return 0
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null
        for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$SERVER_PID" 2>/dev/null && kill -KILL "$SERVER_PID" 2>/dev/null
    fi
    wait "$SERVER_PID" 2>/dev/null
    SERVER_PID=""
}
finish() {
    local rc=$1
    stop_server
    if [[ $rc == 0 ]]; then
        rm -rf "$WORK"
        echo "api-check: 1 passed, 0 failed"
    else
        echo "api-check: server log and database kept in $WORK"
        echo "api-check: 0 passed, 1 failed"
    fi
    exit "$rc"
}
trap 'finish 1' INT TERM

# Start the gateway and read its first-start lines: `admin key: …`, then `doorman listening on HOST:PORT`.
"$BIN" serve --port 0 --db "$WORK/api.db" --log-level warning >"$WORK/stdout" 2>"$WORK/stderr" &
SERVER_PID=$!
PORT=""
for _ in $(seq 1 100); do   # up to 10 s
    PORT="$(sed -n 's/^doorman listening on .*:\([0-9]\{1,5\}\)$/\1/p' "$WORK/stdout")"
    [[ -n "$PORT" ]] && break
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
done
ADMIN_KEY="$(sed -n 's/^admin key: //p' "$WORK/stdout")"
if [[ -z "$PORT" || -z "$ADMIN_KEY" ]]; then
    echo "api-check: the gateway did not start (no port or no admin key on stdout)" >&2
    cat "$WORK/stderr" >&2
    finish 1
fi
BASE="http://127.0.0.1:$PORT"

# api METHOD PATH [JSON]: a request with the bootstrap key; prints the body, fails unless 2xx.
api() {
    curl -sS --fail-with-body --max-time 10 -X "$1" -H "X-API-Key: $ADMIN_KEY" -H "Content-Type: application/json" \
        ${3:+--data "$3"} "$BASE$2"
}
json_field() { python3 -c 'import json,sys; v=json.load(sys.stdin)
for k in sys.argv[1].split("."): v=v[k]
print(v)' "$1"; }

USER_ID="$(api POST /v1/users '{"name":"api-check minter","permissions":["admin:*"]}' | json_field id)" || finish 1
ISSUED="$(api POST /v1/keys "{\"name\":\"api-check minter\",\"userID\":\"$USER_ID\"}")" || finish 1
MINTER_KEY="$(json_field secret <<<"$ISSUED")"
MINTER_KEY_ID="$(json_field key.id <<<"$ISSUED")"
[[ -n "$USER_ID" && -n "$MINTER_KEY" && -n "$MINTER_KEY_ID" ]] || finish 1

# The auth hook. Schemathesis asks `get` for a key at the start and again whenever a request
# answers 401 or 403 (every key here holds admin:*, so either means the run has disabled its own
# key or user), then replays that request once. Keys are minted, each with its own new admin user,
# by a "minter" key that Schemathesis never holds and whose ids it has never been shown: it can
# only attack ids it saw in a response, so as soon as a response shows the minter's key or user
# id, the minter (still working: nothing has been sent since) is replaced by a fresh one and the
# old one deleted.
cat >"$WORK/doorman_auth.py" <<'PY'
import json, os, threading, urllib.error, urllib.request
import schemathesis

BASE = os.environ["DOORMAN_API_CHECK_BASE"]
COUNTS = os.environ["DOORMAN_API_CHECK_COUNTS"]

def call(key, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(BASE + path, method=method, data=data,
                                     headers={"X-API-Key": key, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")

class Minter:
    lock = threading.Lock()
    secret = os.environ["DOORMAN_API_CHECK_KEY"]
    ids = os.environ["DOORMAN_API_CHECK_IDS"].split()   # [key id, user id]
    counts = {"keys": 0, "minters": 0}

    @classmethod
    def mint(cls, name):
        user = call(cls.secret, "POST", "/v1/users", {"name": name, "permissions": ["admin:*"]})
        issued = call(cls.secret, "POST", "/v1/keys", {"name": name, "userID": user["id"]})
        return issued["secret"], [issued["key"]["id"], user["id"]]

    @classmethod
    def note(cls, what):
        cls.counts[what] += 1
        with open(COUNTS, "w") as f:
            f.write(f'{cls.counts["keys"]} {cls.counts["minters"]}')

@schemathesis.hook
def after_call(context, case, response):
    with Minter.lock:
        if not any(i.encode() in (response.content or b"") for i in Minter.ids):
            return
        old_secret, old_ids = Minter.secret, Minter.ids
        Minter.secret, Minter.ids = Minter.mint("api-check minter")
        Minter.note("minters")
        for path in (f"/v1/keys/{old_ids[0]}", f"/v1/users/{old_ids[1]}"):
            try:
                call(Minter.secret, "DELETE", path)
            except urllib.error.HTTPError as error:
                if error.code not in (404, 409):
                    raise

@schemathesis.auth(refresh_interval=24 * 3600, retry_on=[401, 403])
class FreshAdminKey:
    def get(self, case, context):
        with Minter.lock:
            secret, _ = Minter.mint(f"schemathesis {Minter.counts['keys'] + 1}")
            Minter.note("keys")
            return secret

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["X-API-Key"] = data
PY

# The key goes through the hook, not HEADER: a fixed header would override the fresh keys.
DOORMAN_API_CHECK_BASE="$BASE" DOORMAN_API_CHECK_KEY="$MINTER_KEY" DOORMAN_API_CHECK_IDS="$MINTER_KEY_ID $USER_ID" \
    DOORMAN_API_CHECK_COUNTS="$WORK/counts" SCHEMATHESIS_HOOKS="$WORK/doorman_auth.py" \
    ../shared/tools/schemathesis/run.sh "$BASE/v1/openapi.json" "${API_EXAMPLES:-50}" "$REPORT_DIR"
rc=$?
read -r KEYS MINTERS <"$WORK/counts" 2>/dev/null
echo "api-check: ${KEYS:-0} fresh admin keys handed to Schemathesis; minter key replaced ${MINTERS:-0} times"

# The gateway must have survived the run and still answer (its admin keys may all be gone by now).
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "api-check: the gateway died during the run" >&2; cat "$WORK/stderr" >&2; rc=1
elif ! curl -sSf --max-time 10 "$BASE/healthz" >/dev/null || ! curl -sSf --max-time 10 "$BASE/v1/openapi.json" >/dev/null; then
    echo "api-check: the gateway no longer answers" >&2; rc=1
fi
if grep -qiE 'fatal error|crash' "$WORK/stderr"; then
    echo "api-check: the gateway logged a crash" >&2; cat "$WORK/stderr" >&2; rc=1
fi
finish "$rc"
