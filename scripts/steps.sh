# Sourced by the test scripts: counts steps and prints each result; a missing tool fails under
# CI=true and is skipped, loudly, elsewhere. The caller prints the totals.
passed=0; failed=0; skipped=0
results=()
step() { # name, pass|fail|skip
  case "$2" in
    pass) passed=$((passed + 1)) ;;
    fail) failed=$((failed + 1)) ;;
    skip) skipped=$((skipped + 1)) ;;
  esac
  results+=("$2  $1")
  echo "== $1: $2"
}
missing_tool() { # name, why
  if [[ "${CI:-}" == "true" ]]; then
    echo "!! $1 is missing under CI: $2" >&2
    step "$1" fail
  else
    echo "!!!!!!!! SKIPPING $1: $2 (this would fail under CI=true) !!!!!!!!" >&2
    step "$1" skip
  fi
}
