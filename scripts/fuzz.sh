#!/usr/bin/env bash
# Fuzzes the pure codec with libFuzzer + AddressSanitizer (STYLE.md P7): one binary per
# Tests/Fuzz/<Target>.swift, built together with Sources/WireCodec/*.swift (Rules: GatewayCore's rule
# language; Inflate: also Sources/WireDeflate/*.swift on zlib).
#
#   scripts/fuzz.sh                     every target, 60 s each
#   FUZZ_SECONDS=20 scripts/fuzz.sh     shorter
#   scripts/fuzz.sh Frames              one target
#
# Binaries, logs and corpora (kept between runs) live in .build-fuzz/; crashing inputs are written
# to fuzz-artifacts/<Target>-crash-<sha1>. Reproduce one with: .build-fuzz/<Target> <input file>.
# Exits non-zero if any target fails to build or finds a crash, leak, timeout or OOM. Ends with
# one line per target: "fuzz: <Target> ok, N execs in S s" or "fuzz: <Target> FAILED ...".
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS=${FUZZ_SECONDS:-60}
OUT=.build-fuzz
ARTIFACTS=fuzz-artifacts
SWIFTC=${SWIFTC:-swiftc}
mkdir -p "$OUT" "$ARTIFACTS"

[[ "$FUZZ_SECONDS" =~ ^[1-9][0-9]*$ ]] || { echo "FUZZ_SECONDS must be a positive integer, got '$FUZZ_SECONDS'" >&2; exit 2; }
command -v "$SWIFTC" >/dev/null || { echo "fuzz: $SWIFTC not found" >&2; exit 2; }

targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  for f in Tests/Fuzz/*.swift; do targets+=("$(basename "$f" .swift)"); done
fi

# Same language settings as Package.swift. lld, when the toolchain ships it, links without gold's
# page of "cannot export local symbol __asan_…" warnings.
flags=(-sanitize=fuzzer,address -parse-as-library -O -swift-version 6
  -enable-upcoming-feature ExistentialAny -enable-upcoming-feature MemberImportVisibility
  -enable-upcoming-feature InternalImportsByDefault -I Sources/CZlib)
if [[ -x "$(dirname "$(command -v "$SWIFTC")")/ld.lld" ]]; then flags+=(-use-ld=lld); fi

# Starting inputs: the config byte each harness reads first, then RFC 6455 examples.
seed() { # target, dir
  local dir=$2
  mkdir -p "$dir"
  case "$1" in
    Frames)
      printf '\x00\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58' >"$dir/masked-hello"
      printf '\x03\x01\x83\x37\xfa\x21\x3d\x7f\x9f\x4d\x89\x80\x00\x00\x00\x00\x80\x82\x37\xfa\x21\x3d\x5b\x95' >"$dir/fragmented-with-ping"
      printf '\x05\x88\x82\x01\x02\x03\x04\x02\xea' >"$dir/close-1000"
      printf '\x17\xc1\x82\x00\x00\x00\x00\xf2\x48' >"$dir/rsv1-text"
      printf '\x00\x82\xfe\x00\x80\x00\x00\x00\x00' >"$dir/binary-128-header"
      ;;
    Rules)
      printf 'pms:checkIn*\x00pms:checkInGuest' >"$dir/star"
      printf 'p?s:*In*\x00PMS:checkin' >"$dir/mixed"
      printf 'channel:subscribe.door-1' >"$dir/action"
      printf 'dmk_0000000000000000000000000000000000000000000000000' >"$dir/key-shape"
      ;;
    Inflate)
      printf '\x00\xf2\x48\xcd\xc9\xc9\x07\x00' >"$dir/rfc7692-hello"
      printf '\x10\xf2\x48\xcd\xc9\xc9\x07\x00\xf2\x00\x11\x00\x00' >"$dir/rfc7692-takeover"
      printf '\x03\x00\x05\x00\xfa\xff\x48\x65\x6c\x6c\x6f\x00' >"$dir/rfc7692-stored"
      ;;
    Handshake)
      printf '\x3fGET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n' >"$dir/rfc-request"
      printf '\x04GET / HTTP/1.0\r\nConnection: keep-alive, Upgrade\r\nUpgrade: WebSocket\r\nSec-WebSocket-Version: 8\r\n\r\n' >"$dir/old-version"
      printf '\x00X|a\r\nb|Y|c' >"$dir/split-header"
      ;;
  esac
}

max_len() { # target
  case "$1" in
    Frames) echo 16384 ;;
    *) echo 4096 ;;
  esac
}

# The sources a target is built with: the codec by default; the rule language for Rules; the
# codec and permessage-deflate (zlib through Sources/CZlib) for Inflate.
sources_for() {
  case "$1" in
    Inflate) echo Sources/WireCodec/*.swift Sources/WireDeflate/*.swift ;;
    Rules) echo Sources/GatewayCore/CRC32.swift Sources/GatewayCore/Base62.swift Sources/GatewayCore/APIKeySecret.swift \
                Sources/GatewayCore/Wildcard.swift Sources/GatewayCore/ActionName.swift ;;
    *) echo Sources/WireCodec/*.swift ;;
  esac
}

summary=()
failed=0
for t in "${targets[@]}"; do
  src="Tests/Fuzz/$t.swift"
  bin="$OUT/$t"
  log="$OUT/$t.log"
  if [[ ! -f "$src" ]]; then
    summary+=("fuzz: $t FAILED (no $src)"); failed=1; continue
  fi

  # Rebuild only when a source is newer than the binary.
  # shellcheck disable=SC2207
  deps=($(sources_for "$t"))
  if [[ ! -x "$bin" ]] || [[ -n "$(find "${deps[@]}" "$src" -name '*.swift' -newer "$bin" -print -quit)" ]]; then
    echo "== fuzz: building $t"
    if ! "$SWIFTC" "${flags[@]}" -module-name "${t}Fuzz" "${deps[@]}" "$src" -o "$bin" >"$OUT/$t.build.log" 2>&1; then
      cat "$OUT/$t.build.log" >&2
      summary+=("fuzz: $t FAILED (build, see $OUT/$t.build.log)"); failed=1; continue
    fi
  fi

  corpus="$OUT/corpus/$t"
  seeds="$OUT/seeds/$t"
  mkdir -p "$corpus"
  seed "$t" "$seeds"
  before=$(find "$ARTIFACTS" -maxdepth 1 -name "$t-*" | wc -l)

  echo "== fuzz: running $t for $FUZZ_SECONDS s"
  rc=0
  SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0} \
    "$bin" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 -max_len="$(max_len "$t")" \
    -print_final_stats=1 -artifact_prefix="$ARTIFACTS/$t-" "$corpus" "$seeds" >"$log" 2>&1 || rc=$?

  after=$(find "$ARTIFACTS" -maxdepth 1 -name "$t-*" | wc -l)
  execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -1)
  secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
  inputs=$(find "$corpus" -type f | wc -l)
  if [[ $rc -ne 0 || $after -gt $before ]]; then
    # The report: sanitizer or Swift runtime message, and the input that caused it.
    grep -E "Fatal error|ERROR: |SUMMARY: |Test unit written|^artifact_prefix|panic|Base64:" "$log" | head -20 >&2 || true
    newest=$(ls -t "$ARTIFACTS"/"$t"-* 2>/dev/null | head -1 || true)
    summary+=("fuzz: $t FAILED (exit $rc)${newest:+, input in $newest}; log $log"); failed=1
  else
    summary+=("fuzz: $t ok, ${execs:-?} execs in ${secs:-$FUZZ_SECONDS} s, corpus $inputs inputs")
  fi
done

printf '%s\n' "${summary[@]}"
exit "$failed"
