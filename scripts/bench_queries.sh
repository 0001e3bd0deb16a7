#!/usr/bin/env bash
# The cost of selfheal's query logger on a simple indexed diesel-async query: with vs without
# the instrumentation, in the same run. See docs/BENCHMARKS.md, "Query logger overhead".
#
# 1. Throughput: `bench_queries rounds` (examples/bench_queries.rs) recreates the scratch
#    database `selfheal_bench_queries` (100 000 rows), then runs pairs of rounds, plain pool vs
#    pool with the QueryLogger, order alternating, and prints every round, a Markdown table
#    and the ratios. The benchmark process is pinned to one core (BENCH_CPU); Postgres is not
#    pinned: its backends run wherever the kernel puts them, in practice mostly on the other
#    core of a 2-core machine.
# 2. Instructions (unless BENCH_CALLGRIND=0, and if valgrind is installed): `bench_queries seq`
#    under `valgrind --tool=callgrind`, plain and logged, N1 and N2 sequential queries on one
#    connection each; (instructions(N2) - instructions(N1)) / (N2 - N1) is the user-space
#    instruction count per query of the benchmark process, start-up excluded. Repeatable on a
#    noisy machine, unlike timings. Also prints where the logged run's extra instructions go.
#
# Exits non-zero only when the setup fails (build, database, valgrind run).
#
# Environment (all optional):
#   BENCH_ROUNDS       pairs of rounds                           (default 20)
#   BENCH_SECS         seconds per round                         (default 2)
#   BENCH_CONCURRENCY  tasks issuing queries = pool size         (default 4)
#   BENCH_CPU          core the benchmark is pinned to           (default 1)
#   BENCH_NOISE_MAX    other load (% of a core) marking a round noisy (default 10)
#   BENCH_CONTROL      1: both pools plain (an A/A run: the method's noise floor)
#   BENCH_THROUGHPUT   0 to skip the throughput rounds            (default 1)
#   BENCH_CALLGRIND    0 to skip the instruction count           (default 1)
#   BENCH_CG_N1 / BENCH_CG_N2  queries of the short and long callgrind runs (2000 / 22000)
#   BENCH_PG_URL       Postgres server                           (postgres://postgres@127.0.0.1:5432)
#   BENCH_SKIP_BUILD   1 to use the binary already built
set -euo pipefail

ROUNDS=${BENCH_ROUNDS:-20}
SECS=${BENCH_SECS:-2}
CONCURRENCY=${BENCH_CONCURRENCY:-4}
CPU=${BENCH_CPU:-1}
NOISE_MAX=${BENCH_NOISE_MAX:-10}
CALLGRIND=${BENCH_CALLGRIND:-1}
N1=${BENCH_CG_N1:-2000}
N2=${BENCH_CG_N2:-22000}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN="$ROOT/target/release/examples/bench_queries"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/selfheal-bench-queries.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

die() { echo "bench_queries: $*" >&2; exit 1; }

[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS must be a positive integer"
[[ "$CONCURRENCY" =~ ^[1-9][0-9]*$ ]] || die "BENCH_CONCURRENCY must be a positive integer"
[[ "$N1" =~ ^[1-9][0-9]*$ && "$N2" =~ ^[1-9][0-9]*$ ]] && (( N2 > N1 )) \
    || die "BENCH_CG_N1 < BENCH_CG_N2 must be positive integers"

if [[ "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
    echo "bench_queries: cargo build --release --example bench_queries" >&2
    (cd "$ROOT" && cargo build --release --example bench_queries) || die "build failed"
fi
[[ -x "$BIN" ]] || die "$BIN not found"

PIN=()
CPUS=$(nproc --all)
if command -v taskset >/dev/null; then
    (( CPU < CPUS )) || die "BENCH_CPU=$CPU but this machine has $CPUS cores"
    PIN=(taskset -c "$CPU")
    echo "bench_queries: benchmark pinned to core $CPU of $CPUS; Postgres not pinned" >&2
else
    echo "bench_queries: taskset not found (util-linux): running unpinned" >&2
fi

# --- 1. throughput ---------------------------------------------------------------------------
if [[ "${BENCH_THROUGHPUT:-1}" != 0 ]]; then
    ARGS=(rounds --rounds "$ROUNDS" --secs "$SECS" --concurrency "$CONCURRENCY" --noise-max "$NOISE_MAX")
    [[ "${BENCH_CONTROL:-0}" == 1 ]] && ARGS+=(--control)
    echo "bench_queries: ${PIN[*]} $BIN ${ARGS[*]}" >&2
    RUST_LOG=warn "${PIN[@]}" "$BIN" "${ARGS[@]}" || die "throughput run failed"
else
    # The callgrind runs need the table: create it.
    RUST_LOG=warn "$BIN" setup || die "setup failed"
fi

# --- 2. instructions per query ---------------------------------------------------------------
[[ "$CALLGRIND" != 0 ]] || exit 0
if ! command -v valgrind >/dev/null || ! command -v callgrind_annotate >/dev/null; then
    echo "bench_queries: valgrind not installed (Debian: apt-get install valgrind): no instruction count" >&2
    exit 0
fi

# Instructions the program executed (user space), from valgrind's summary.
collected() { # mode n
    local out="$WORK/cg.$1.$2"
    RUST_LOG=warn "${PIN[@]}" valgrind --tool=callgrind --callgrind-out-file="$out" \
        "$BIN" seq "$1" "$2" >"$WORK/seq.$1.$2.txt" 2>"$WORK/vg.$1.$2.txt" \
        || { cat "$WORK/vg.$1.$2.txt" >&2; die "callgrind run $1 $2 failed"; }
    awk '/Collected :/ { print $NF }' "$WORK/vg.$1.$2.txt"
}

# Instructions spent in the function named $2, callees included, in callgrind output $1: the
# sum of the call arcs into it ("> file:function (Nx)" lines of the callee tree), which counts
# its inlined parts once.
inclusive() { # file function
    callgrind_annotate --tree=calling --inclusive=yes --threshold=100 --show-percs=no "$1" 2>/dev/null |
        awk -v f="$2" '$2 == ">" {
            line = $0; sub(/^ *[0-9,]+ +> +/, "", line); sub(/ \[[^]]*\]$/, "", line)
            sub(/ \([0-9,]+x\)$/, "", line)
            if (substr(line, index(line, ":") + 1) == f) { gsub(",", "", $1); s += $1 }
        } END { print s + 0 }'
}

echo >&2
echo "bench_queries: callgrind, $N1 and $N2 sequential queries on one connection, plain and logged" >&2
declare -A PER
for mode in plain logged; do
    i1=$(collected "$mode" "$N1")
    i2=$(collected "$mode" "$N2")
    PER[$mode]=$(awk -v a="$i1" -v b="$i2" -v n1="$N1" -v n2="$N2" 'BEGIN { printf "%.0f", (b - a) / (n2 - n1) }')
    echo "callgrind: $mode: $i1 instructions for $N1 queries, $i2 for $N2: ${PER[$mode]} per query" >&2
done
awk -v p="${PER[plain]}" -v l="${PER[logged]}" 'BEGIN {
    printf "callgrind: user-space instructions per query: plain %d, logged %d: +%d (%+.1f %%)\n", p, l, l - p, (l - p) * 100 / p }'

# Where the logged run's instructions go (inclusive, per query of the long run: N2 + 201
# warm-up and set-up queries).
CG="$WORK/cg.logged.$N2"
TOTAL_Q=$((N2 + 201))
for fn in \
    "<selfheal::db::query_logger::ConnectionLogger as diesel::connection::instrumentation::Instrumentation>::on_connection_event" \
    "<selfheal::actors::metrics_store::MetricsStore as actix::handler::Handler<selfheal::db::query_logger::IngestQueries>>::handle" \
    "selfheal::actors::query_stats::QueryTable::ingest" \
    "selfheal::actors::metrics_store::SeriesTable::record_scaled" \
    "selfheal::db::query_logger::QueryCollector::flush"; do
    n=$(inclusive "$CG" "$fn")
    awk -v n="$n" -v q="$TOTAL_Q" -v f="$fn" 'BEGIN { printf "callgrind: logged: %6.0f instructions/query in %s\n", n / q, f }'
done
