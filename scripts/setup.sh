#!/usr/bin/env bash
# Installs what the tests need beyond the .NET SDK, on a fresh machine: Debian's python3-msgpack (the Python
# interop client) and npm's @msgpack/msgpack (the Node interop client). Idempotent and quiet when all is there.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
# The system interpreter: Debian's python3-msgpack installs for it only (a pyenv python3 may come first on PATH).
/usr/bin/python3 -c 'import msgpack' 2>/dev/null || need_apt+=(python3-msgpack)
if ((${#need_apt[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing ${need_apt[*]} (apt)"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "setup: missing ${need_apt[*]} and cannot apt-get install (not root); the tests that need it will fail" >&2
  fi
fi

if [ -f clients/node/package.json ] && command -v npm >/dev/null && [ ! -d clients/node/node_modules/@msgpack ]; then
  echo "setup: npm install in clients/node"
  (cd clients/node && npm install --no-audit --no-fund --silent)
fi
