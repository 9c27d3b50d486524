#!/usr/bin/env bash
# Installs the Debian packages Doorman builds against, if any is missing: OpenSSL (libssl-dev, and
# the openssl command for test certificates), zlib (zlib1g-dev), SQLite (libsqlite3-dev) and libpq
# (libpq-dev, the PostgreSQL store). The PostgreSQL server its tests start comes from .ci/run (postgresql).
# Needs root for apt-get; does nothing when everything is there.
set -euo pipefail
missing=()
for pkg in libssl-dev zlib1g-dev libsqlite3-dev libpq-dev openssl; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
if [[ $(id -u) -ne 0 ]]; then
  echo "missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "== installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
