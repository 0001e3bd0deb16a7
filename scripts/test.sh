#!/usr/bin/env bash
# The whole test suite: starts the local services the tests talk to when they are installed
# but not answering, then runs every test (unit, integration, doc tests; examples are built).
# Usage: bash scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

need() {
  command -v "$1" >/dev/null 2>&1 || {
    echo "scripts/test.sh: '$1' is not installed. $2" >&2
    exit 1
  }
}
need cargo "Install the Rust toolchain (rustup, stable >= 1.95)."

# PostgreSQL and Redis: started here when installed and not answering. The suite of this
# build does not need them yet; later suites do, and then a missing service fails loudly.
if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
  fi
fi
if command -v redis-server >/dev/null 2>&1 && ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || true
fi

cargo test --all-targets "$@"
cargo test --doc
