#!/usr/bin/env bash
# Throughput and p99 of a trivial JSON route: bare actix-web vs. the same route behind selfheal
# (tracer at 100 % sampling, all agents running). See docs/BENCHMARKS.md.
#
# Rounds alternate bare, selfheal, bare, selfheal, ... in one run; the server is pinned to one
# core and wrk to another, both on 127.0.0.1. Prints every round, the median req/s and p99 of
# each mode, and the selfheal/bare ratios; the headline is the median of the per-round
# throughput ratios (each round's pair ran back to back, so slow drift of the machine cancels
# out). Exits non-zero only when the setup fails.
#
# Environment (all optional):
#   BENCH_ROUNDS      rounds per mode                         (default 9)
#   BENCH_DURATION    wrk duration of a measured run          (default 10s)
#   BENCH_WARMUP      wrk duration of the warm-up before it   (default 2s)
#   BENCH_CONNECTIONS wrk connections                         (default 32)
#   BENCH_THREADS     wrk threads                             (default 1)
#   BENCH_PORT        port to serve on                        (default 8099)
#   BENCH_SERVER_CPU  core for the server                     (default 0)
#   BENCH_CLIENT_CPU  core for wrk                            (default 1)
#   BENCH_NOISE_MAX   other load (%) on either core above which a round is marked noisy (default 10)
#   BENCH_SKIP_BUILD  set to 1 to use the binary already built
set -euo pipefail

ROUNDS=${BENCH_ROUNDS:-9}
DURATION=${BENCH_DURATION:-10s}
WARMUP=${BENCH_WARMUP:-2s}
CONNS=${BENCH_CONNECTIONS:-32}
THREADS=${BENCH_THREADS:-1}
PORT=${BENCH_PORT:-8099}
SERVER_CPU=${BENCH_SERVER_CPU:-0}
CLIENT_CPU=${BENCH_CLIENT_CPU:-1}
NOISE_MAX=${BENCH_NOISE_MAX:-10}
URL="http://127.0.0.1:${PORT}/bench/json"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN="$ROOT/target/release/examples/bench_server"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/selfheal-bench.XXXXXX")
SERVER_PID=""

die() { echo "bench: $*" >&2; exit 1; }

cleanup() {
    stop_server
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- setup -----------------------------------------------------------------------------------
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] && (( ROUNDS <= 50 )) || die "BENCH_ROUNDS must be 1..50"
command -v taskset >/dev/null || die "taskset is missing (util-linux)"
command -v curl >/dev/null || die "curl is missing"
if ! command -v wrk >/dev/null; then
    echo "bench: installing wrk (apt-get)" >&2
    if [[ $(id -u) -eq 0 ]]; then
        apt-get update -qq && apt-get install -y -qq wrk >/dev/null || die "apt-get install wrk failed"
    else
        sudo apt-get update -qq && sudo apt-get install -y -qq wrk >/dev/null || die "apt-get install wrk failed"
    fi
fi
CPUS=$(nproc --all)
(( SERVER_CPU < CPUS && CLIENT_CPU < CPUS )) || die "need cores $SERVER_CPU and $CLIENT_CPU; this machine has $CPUS"
[[ "$SERVER_CPU" != "$CLIENT_CPU" ]] || die "server and client must be pinned to different cores"

if [[ "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
    echo "bench: cargo build --release --example bench_server" >&2
    (cd "$ROOT" && cargo build --release --example bench_server) || die "build failed"
fi
[[ -x "$BIN" ]] || die "$BIN not found"
if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:${PORT}/"; then
    die "something already answers on 127.0.0.1:${PORT}; set BENCH_PORT"
fi

# --- helpers ---------------------------------------------------------------------------------
start_server() { # mode
    local mode=$1
    # Logs go to a file (shown if the server fails to start). The example overrides the
    # settings the comparison depends on; see examples/bench_server.rs.
    RUST_LOG=warn taskset -c "$SERVER_CPU" "$BIN" "$mode" "$PORT" \
        >"$WORK/server-$mode.log" 2>&1 &
    SERVER_PID=$!
    # Ready when the route answers: poll every 0.1 s, for 30 s at most (and 300 tries).
    local i deadline=$((SECONDS + 30))
    for ((i = 0; i < 300 && SECONDS < deadline; i++)); do
        if curl -fs -o /dev/null --max-time 1 "$URL"; then
            return 0
        fi
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server-$mode.log" >&2; die "$mode server exited during start"; }
        sleep 0.1
    done
    die "$mode server did not answer on $URL within 30 s"
}

stop_server() {
    [[ -n "$SERVER_PID" ]] || return 0
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    local i
    for ((i = 0; i < 50; i++)); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

# wrk's latency figure ("812.00us", "1.20ms", "2.00s") in microseconds.
to_us() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
        if (u == "us") m = 1; else if (u == "ms") m = 1000; else if (u == "s") m = 1000000;
        else if (u == "m") m = 60000000; else m = -1;
        if (m < 0) print "NaN"; else printf "%.0f\n", n * m }'
}

run_wrk() { # duration outfile
    taskset -c "$CLIENT_CPU" wrk -t"$THREADS" -c"$CONNS" -d"$1" --latency "$URL" >"$2" 2>&1 || true
}

# "busy total" clock ticks of one core so far, from /proc/stat (guest time is inside user).
core_ticks() { # core
    awk -v c="cpu$1" '$1 == c { busy = $2 + $3 + $4 + $7 + $8 + $9; print busy, busy + $5 + $6 }' /proc/stat
}

# CPU seconds used so far by this shell's finished children (wrk), from bash's `times`
# (run in this shell, not in a $(...) subshell, whose own children have used nothing).
children_secs() {
    times >"$WORK/times.txt"
    awk 'NR == 2 {
        s = 0
        for (i = 1; i <= 2; i++) { split($i, t, "m"); sub(/s$/, "", t[2]); s += t[1] * 60 + t[2] }
        print s }' "$WORK/times.txt"
}

# Percent of a core's ticks used by others than `own` ticks.
other_pct() { # busy0 total0 busy1 total1 own_ticks
    awk -v b0="$1" -v t0="$2" -v b1="$3" -v t1="$4" -v own="$5" 'BEGIN {
        if (t1 - t0 <= 0 || own == "NaN") { print "NaN"; exit }
        o = (b1 - b0 - own) * 100 / (t1 - t0); if (o < 0) o = 0; printf "%.0f\n", o }'
}

# CPU time (user + system, in clock ticks) the server process has used so far.
server_ticks() {
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$SERVER_PID/stat" 2>/dev/null || echo NaN
}

median() { # numbers...
    printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END {
        if (NR == 0) { print "NaN"; exit }
        if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "NaN"; else printf "%.3f\n", a / b }'; }

# --- rounds ----------------------------------------------------------------------------------
HZ=$(getconf CLK_TCK)
declare -a BARE_RPS BARE_P99 BARE_CPU BARE_NOISE SH_RPS SH_P99 SH_CPU SH_NOISE
echo "bench: $ROUNDS rounds of bare then selfheal; wrk -t$THREADS -c$CONNS -d$DURATION (warm-up $WARMUP);" \
     "server on core $SERVER_CPU, wrk on core $CLIENT_CPU; $URL" >&2
for ((r = 1; r <= ROUNDS; r++)); do
    for mode in bare selfheal; do
        start_server "$mode"
        run_wrk "$WARMUP" "$WORK/warmup.txt"
        out="$WORK/wrk-$mode-$r.txt"
        children_secs >"$WORK/w0"; t0=$(server_ticks); w0=$(<"$WORK/w0")
        read -r s_b0 s_t0 < <(core_ticks "$SERVER_CPU"); read -r c_b0 c_t0 < <(core_ticks "$CLIENT_CPU")
        run_wrk "$DURATION" "$out"
        read -r s_b1 s_t1 < <(core_ticks "$SERVER_CPU"); read -r c_b1 c_t1 < <(core_ticks "$CLIENT_CPU")
        children_secs >"$WORK/w1"; t1=$(server_ticks); w1=$(<"$WORK/w1")
        stop_server
        # Load on the two cores from anything but this server and this wrk: the noise gauge.
        # It sees other processes, not a noisy neighbour outside this machine (VM, SMT).
        srv_other=$(other_pct "$s_b0" "$s_t0" "$s_b1" "$s_t1" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print (a == "NaN" || b == "NaN") ? "NaN" : b - a }')")
        # How busy the server kept its core: well under 100 % means wrk, not the server, set the pace.
        srv_busy=$(awk -v a="$t0" -v b="$t1" -v c0="$s_t0" -v c1="$s_t1" \
            'BEGIN { if (a == "NaN" || b == "NaN" || c1 - c0 <= 0) print "NaN"; else printf "%.0f\n", (b - a) * 100 / (c1 - c0) }')
        cli_other=$(other_pct "$c_b0" "$c_t0" "$c_b1" "$c_t1" "$(awk -v a="$w0" -v b="$w1" -v hz="$HZ" 'BEGIN { printf "%.0f\n", (b - a) * hz }')")
        rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
        p99=$(awk '$1 == "99%" { print $2 }' "$out")
        reqs=$(awk '/ requests in / { print $1 }' "$out")
        # Server CPU (user + system) per request, microseconds: unlike req/s, not limited by
        # the load generator; still moved by whatever slows the core down.
        cpu_us=$(awk -v a="$t0" -v b="$t1" -v n="${reqs:-0}" -v hz="$HZ" \
            'BEGIN { if (n + 0 == 0 || a == "NaN" || b == "NaN") print "NaN"; else printf "%.2f\n", (b - a) * 1e6 / hz / n }')
        errs=$(awk '/Non-2xx|Socket errors/ { print }' "$out" | tr '\n' ' ')
        if [[ -z "$rps" || -z "$p99" ]]; then
            echo "bench: round $r $mode: could not parse wrk output:" >&2
            cat "$out" >&2
            rps=NaN p99_us=NaN
        else
            p99_us=$(to_us "$p99")
        fi
        [[ -z "$errs" ]] || echo "bench: round $r $mode: $errs" >&2
        printf 'bench: round %d %-8s %10s req/s  p99 %-8s  server CPU %s us/req, %s%% of its core  other load: server core %s%%, wrk core %s%%\n' \
            "$r" "$mode" "$rps" "${p99:-?}" "$cpu_us" "$srv_busy" "$srv_other" "$cli_other" >&2
        noise=$(awk -v a="$srv_other" -v b="$cli_other" 'BEGIN { print (a > b ? a : b) }')
        if [[ $mode == bare ]]; then
            BARE_RPS+=("$rps"); BARE_P99+=("$p99_us"); BARE_CPU+=("$cpu_us"); BARE_NOISE+=("$noise")
        else
            SH_RPS+=("$rps"); SH_P99+=("$p99_us"); SH_CPU+=("$cpu_us"); SH_NOISE+=("$noise")
        fi
    done
done

# --- report ----------------------------------------------------------------------------------
echo
echo "| round | bare req/s | bare p99 (us) | bare CPU us/req | selfheal req/s | selfheal p99 (us) | selfheal CPU us/req | req/s ratio | CPU/req ratio | other load % (bare/selfheal) |"
echo "|---|---|---|---|---|---|---|---|---|---|"
RATIOS=(); CRATIOS=(); QUIET=()
for ((i = 0; i < ROUNDS; i++)); do
    RATIOS+=("$(ratio "${SH_RPS[$i]}" "${BARE_RPS[$i]}")")
    CRATIOS+=("$(ratio "${SH_CPU[$i]}" "${BARE_CPU[$i]}")")
    mark=""
    if awk -v a="${BARE_NOISE[$i]}" -v b="${SH_NOISE[$i]}" -v m="$NOISE_MAX" 'BEGIN { exit !(a <= m && b <= m) }'; then
        QUIET+=("$i")
    else
        mark=" (noisy)"
    fi
    printf '| %d%s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s |\n' $((i + 1)) "$mark" \
        "${BARE_RPS[$i]}" "${BARE_P99[$i]}" "${BARE_CPU[$i]}" \
        "${SH_RPS[$i]}" "${SH_P99[$i]}" "${SH_CPU[$i]}" "${RATIOS[$i]}" "${CRATIOS[$i]}" \
        "${BARE_NOISE[$i]}" "${SH_NOISE[$i]}"
done
mb=$(median "${BARE_RPS[@]}"); ms=$(median "${SH_RPS[@]}")
pb=$(median "${BARE_P99[@]}"); ps=$(median "${SH_P99[@]}")
cb=$(median "${BARE_CPU[@]}"); cs=$(median "${SH_CPU[@]}")
printf '| **median** | %s | %s | %s | %s | %s | %s | **%s** | %s | |\n' \
    "$mb" "$pb" "$cb" "$ms" "$ps" "$cs" "$(ratio "$ms" "$mb")" "$(ratio "$cs" "$cb")"
echo
echo "selfheal/bare throughput, median of per-round ratios:  $(median "${RATIOS[@]}")  (target >= 0.97; $ROUNDS rounds)"
echo "selfheal/bare throughput, ratio of the medians:        $(ratio "$ms" "$mb")"
echo "selfheal/bare p99, ratio of the medians:               $(ratio "$ps" "$pb")"
echo "selfheal/bare server CPU per request, ratio of medians: $(ratio "$cs" "$cb")"
if (( ${#QUIET[@]} > 0 && ${#QUIET[@]} < ROUNDS )); then
    qr=(); qc=()  # the quiet rounds' ratios
    for i in "${QUIET[@]}"; do qr+=("${RATIOS[$i]}"); qc+=("${CRATIOS[$i]}"); done
    echo "quiet rounds only (${#QUIET[@]} of $ROUNDS, other load <= ${NOISE_MAX} %):" \
         "median req/s ratio $(median "${qr[@]}"), median CPU/req ratio $(median "${qc[@]}")"
elif (( ${#QUIET[@]} == 0 )); then
    echo "every round had more than ${NOISE_MAX} % other load on a core: the figures above are noisy"
fi
echo "machine: $(nproc --all) cores, $(uname -srm); $(date -u +%Y-%m-%dT%H:%MZ)"
