#!/usr/bin/env bash
# Crash test of the SQLite store: SIGKILL in the middle of writes loses nothing acknowledged and
# never corrupts the file.
#
#   scripts/crash-test.sh
#   env: ROUNDS=5                        kills
#        BIN=path/to/doorman             use this binary, do not build
#        SCRATCH=.build                  build directory when BIN is not given
#        KEEP=1                          keep the database and logs even when everything passes
#
# Each round starts `doorman store-writer` (hidden subcommand) on the same database file with a
# large --count, so it writes users usr_crash_<i> and keys key_crash_<i> and prints `ack <i>` after
# each pair of durable commits; after a random 0.2-1.0 s it is killed with SIGKILL (by PID). Then:
#   - sqlite3 `PRAGMA integrity_check` is `ok` and foreign keys check clean;
#   - every acknowledged user and key, of this round and all earlier ones, is in the file;
#   - nothing beyond the one write in flight appeared (at most ack+1 of this round's rows);
#   - the store still opens and migrates: store-writer writes 2 more rows and exits 0, and the
#     schema version is unchanged.
# Ends with `crash-test: R passed, F failed`; exits 1 on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${ROUNDS:-5}"
SCRATCH="${SCRATCH:-.build}"
if [[ -z "${BIN:-}" ]]; then
    swift build --scratch-path "$SCRATCH" || { echo "crash-test: 0 passed, 1 failed (build)"; exit 1; }
    BIN="$SCRATCH/debug/doorman"
fi
command -v sqlite3 >/dev/null || { echo "crash-test: sqlite3 (the CLI) is needed" >&2; echo "crash-test: 0 passed, 1 failed"; exit 1; }
[[ -x "$BIN" ]] || { echo "crash-test: no executable at $BIN" >&2; echo "crash-test: 0 passed, 1 failed"; exit 1; }

WORK="$(mktemp -d /tmp/doorman-crash-test.XXXXXX)"
DB="$WORK/crash.db"
WRITER_PID=""
trap '[[ -n "$WRITER_PID" ]] && kill -KILL "$WRITER_PID" 2>/dev/null; exit 1' INT TERM

# sql QUERY: one value from the database (the CLI's own busy timeout guards against a stray lock).
sql() { sqlite3 -batch -noheader "$DB" ".timeout 5000" "$1"; }

# missing TABLE PREFIX FIRST LAST: how many of PREFIX<FIRST>..PREFIX<LAST> are absent from TABLE.
missing() {
    sql "WITH RECURSIVE n(i) AS (SELECT $3 UNION ALL SELECT i + 1 FROM n WHERE i < $4)
         SELECT COUNT(*) FROM n WHERE NOT EXISTS (SELECT 1 FROM $1 WHERE id = '$2' || n.i);"
}

# check ROUND: integrity, and every range acknowledged so far (in $WORK/acked: "first last" lines).
check() {
    local problems=0 integrity fk first last gone
    integrity="$(sql "PRAGMA integrity_check;" 2>&1)"
    if [[ "$integrity" != "ok" ]]; then echo "  integrity_check: $integrity"; problems=1; fi
    fk="$(sql "PRAGMA foreign_key_check;" 2>&1)"
    if [[ -n "$fk" ]]; then echo "  foreign_key_check: $fk"; problems=1; fi
    while read -r first last; do
        for table in users:usr_crash_ keys:key_crash_; do
            gone="$(missing "${table%%:*}" "${table#*:}" "$first" "$last" 2>&1)"
            if [[ "$gone" != "0" ]]; then
                echo "  LOST: $gone of ${table#*:}$first..${table#*:}$last acknowledged but not in ${table%%:*}"; problems=1
            fi
        done
    done <"$WORK/acked"
    return "$problems"
}

: >"$WORK/acked"
passed=0 failed=0 next=1 version=""
for round in $(seq 1 "$ROUNDS"); do
    ok=1
    delay="$(printf '0.%03d' $((200 + RANDOM % 801)))"; [[ "$delay" == "0.1000" ]] && delay="1.000"
    "$BIN" store-writer --db "$DB" --start "$next" --count 100000000 >"$WORK/acks.$round" 2>"$WORK/stderr.$round" &
    WRITER_PID=$!
    sleep "$delay"
    if kill -0 "$WRITER_PID" 2>/dev/null; then
        kill -KILL "$WRITER_PID"
        wait "$WRITER_PID" 2>/dev/null; status=$?
    else
        wait "$WRITER_PID" 2>/dev/null; status=$?
    fi
    WRITER_PID=""
    if [[ $status != 137 ]]; then
        echo "  the writer was not killed but exited with $status:"; sed 's/^/    /' "$WORK/stderr.$round"; ok=0
    fi
    last="$(grep -E '^ack [0-9]+$' "$WORK/acks.$round" | tail -1 | cut -d' ' -f2)"
    opened="$(grep -c '^ack open$' "$WORK/acks.$round")"
    acked=0
    if [[ -n "$last" ]]; then
        acked=$((last - next + 1))
        echo "$next $last" >>"$WORK/acked"
    fi
    echo "round $round: killed after ${delay}s, $acked pairs acknowledged ($([[ $opened == 1 ]] && echo "store open" || echo "killed while opening"))"

    check || ok=0
    # Nothing may appear beyond the one write in flight when the kill came.
    top=$((next + acked))   # the number that may have been committed without its ack
    extra="$(sql "SELECT COUNT(*) FROM users WHERE id LIKE 'usr_crash_%' AND CAST(substr(id, 11) AS INTEGER) > $top;")"
    if [[ "$extra" != "0" ]]; then echo "  $extra users beyond usr_crash_$top: written out of order?"; ok=0; fi
    if [[ "$(sql "SELECT COUNT(*) FROM keys k LEFT JOIN users u ON u.id = k.user_id WHERE u.id IS NULL;")" != "0" ]]; then
        echo "  keys without their user"; ok=0
    fi

    # The store still opens (and migrates): two more pairs, a clean exit, the same schema version.
    start_after=$((top + 1))
    if ! "$BIN" store-writer --db "$DB" --start "$start_after" --count 2 >"$WORK/reopen.$round" 2>&1; then
        echo "  the store did not reopen:"; sed 's/^/    /' "$WORK/reopen.$round"; ok=0
    elif [[ "$(grep -c '^ack [0-9]' "$WORK/reopen.$round")" != 2 ]]; then
        echo "  reopened, but did not acknowledge 2 writes"; ok=0
    else
        echo "$start_after $((start_after + 1))" >>"$WORK/acked"
    fi
    now_version="$(sql "SELECT MAX(version) FROM schema_migrations;" 2>&1)"
    if [[ -z "$version" && "$now_version" =~ ^[0-9]+$ ]]; then version="$now_version"; fi
    if [[ "$now_version" != "$version" ]]; then echo "  schema version $now_version (was $version)"; ok=0; fi
    check || ok=0
    next=$((start_after + 2))

    if [[ $ok == 1 ]]; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "round $round: FAILED"; fi
done

total_users="$(sql "SELECT COUNT(*) FROM users;")"
echo "crash-test: $total_users users in $DB after $ROUNDS kills; schema version $version"
if [[ $failed == 0 && -z "${KEEP:-}" ]]; then rm -rf "$WORK"; else echo "crash-test: database and logs kept in $WORK"; fi
echo "crash-test: $passed passed, $failed failed"
[[ $failed == 0 ]]
