#!/usr/bin/env bash
# The whole test suite: starts PostgreSQL and Redis when they are installed but not answering,
# removes databases a killed earlier run left behind, then runs every test (unit, integration,
# doc tests; examples are built). The data-layer tests need both services: without them this
# script stops here and says what to install; it never skips those tests.
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

PG_HOST=127.0.0.1
PG_PORT=5432
# Servers named by the caller are used as they are; only the local defaults are started here.
OWN_PG="${SELFHEAL_TEST_DATABASE_URL:-}"
OWN_REDIS="${SELFHEAL_TEST_REDIS_URL:-}"
export SELFHEAL_TEST_DATABASE_URL="${SELFHEAL_TEST_DATABASE_URL:-postgres://postgres@$PG_HOST:$PG_PORT/postgres}"
export SELFHEAL_TEST_REDIS_URL="${SELFHEAL_TEST_REDIS_URL:-redis://127.0.0.1:6379}"

# PostgreSQL
if [ -n "$OWN_PG" ]; then
  : # the caller's server
elif ! command -v pg_isready >/dev/null 2>&1; then
  echo "scripts/test.sh: PostgreSQL is not installed (apt-get install postgresql; trust auth for" \
       "user postgres on 127.0.0.1:5432), or point SELFHEAL_TEST_DATABASE_URL at a server." >&2
  exit 1
fi
if ! pg_isready -h "$PG_HOST" -p "$PG_PORT" -q; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
  fi
  for _ in $(seq 1 50); do
    pg_isready -h "$PG_HOST" -p "$PG_PORT" -q && break
    sleep 0.2
  done
  pg_isready -h "$PG_HOST" -p "$PG_PORT" -q || {
    echo "scripts/test.sh: PostgreSQL does not answer on $PG_HOST:$PG_PORT." >&2
    exit 1
  }
fi

# Redis
if [ -n "$OWN_REDIS" ]; then
  : # the caller's server
elif ! command -v redis-server >/dev/null 2>&1; then
  echo "scripts/test.sh: Redis is not installed (apt-get install redis-server), or point" \
       "SELFHEAL_TEST_REDIS_URL at a server." >&2
  exit 1
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || true
  for _ in $(seq 1 50); do
    redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break
    sleep 0.2
  done
  redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || {
    echo "scripts/test.sh: Redis does not answer on 127.0.0.1:6379." >&2
    exit 1
  }
fi

# Databases of an earlier run that was killed before its tests could drop them: those created
# (the time is in the name) more than two hours ago, never those of a suite running now.
if command -v psql >/dev/null 2>&1; then
  psql "$SELFHEAL_TEST_DATABASE_URL" -Atqc \
    "SELECT datname FROM pg_database WHERE datname ~ '^selfheal_t_[0-9]+_'
       AND split_part(datname, '_', 3)::bigint < extract(epoch FROM now())::bigint - 7200" 2>/dev/null |
    while read -r db; do
      psql "$SELFHEAL_TEST_DATABASE_URL" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
    done
fi

cargo test --all-targets "$@"
cargo test --doc
