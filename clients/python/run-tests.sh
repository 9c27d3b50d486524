#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The Python client's tests: creates (or reuses) the venv ~/.cache/doorman-python-client-venv,
# installs clients/python with its test extra (editable), and runs pytest. The gateway scenario
# needs the binary: env DOORMAN_BIN, default .build/release/doorman under the repository root.
# Extra arguments go to pytest. Exits non-zero on any failure.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="${DOORMAN_PYTHON_CLIENT_VENV:-$HOME/.cache/doorman-python-client-venv}"
PYTHON="${PYTHON:-python3}"

if ! "$VENV/bin/python" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$HERE[test]"

DOORMAN_BIN="${DOORMAN_BIN:-$ROOT/.build/release/doorman}"
case "$DOORMAN_BIN" in /*) ;; *) DOORMAN_BIN="$ROOT/$DOORMAN_BIN" ;; esac
export DOORMAN_BIN
cd "$HERE"
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"
