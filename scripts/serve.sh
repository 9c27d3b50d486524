#!/usr/bin/env bash
# Runs the gateway (release build) on SQLite, installing the C libraries it builds against first if
# they are missing. Arguments go to `doorman serve`, e.g. scripts/serve.sh --port 9000.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
exec swift run -c release doorman serve "$@"
