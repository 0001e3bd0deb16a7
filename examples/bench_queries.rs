//! Benchmark for `scripts/bench_queries.sh`: the cost of selfheal's query logger on a simple
//! indexed diesel-async query, with and without the instrumentation, in the same run.
//!
//! ```text
//! cargo run --release --example bench_queries -- rounds [--rounds 20] [--secs 2] [--concurrency 4]
//!                                                       [--rows 100000] [--noise-max 10] [--control]
//! cargo run --release --example bench_queries -- setup  [--rows 100000]
//! cargo run --release --example bench_queries -- seq plain|logged N
//! ```
//!
//! The Postgres server is `BENCH_PG_URL` (default `postgres://postgres@127.0.0.1:5432`); the
//! benchmark owns the database `selfheal_bench_queries` on it.
//!
//! - `setup` drops and recreates that database with one table, `bench_items` (`id bigint`
//!   primary key, `name text`, `qty integer`), filled with `--rows` rows, vacuumed and analysed.
//! - `rounds` runs `setup`, then `--rounds` pairs of rounds of `--secs` seconds each: `plain`
//!   (a pool from `selfheal::store::postgres::plain_manager`) and `logged` (a pool from
//!   `QueryLogger::manager`: same `Fast` recycling, the logger installed on every connection).
//!   Odd pairs run plain first, even pairs logged first (A B B A …), so a steady drift of the
//!   machine does not favour either. In a round, `--concurrency` tasks loop: check a
//!   connection out of the pool, run `bench_items.find(random id).first()` through the
//!   diesel-async DSL, return the connection. Both pools are opened and warmed up first.
//!   Per round it prints queries per second, the CPU time per query of this process and of
//!   the Postgres backends serving it, latency p50/p99, and the *other load*: CPU time used on
//!   the machine by anything else, in % of one core. `--control` makes the second pool plain
//!   too (an A/A run: the noise floor of the method).
//! - `seq` runs N queries one after the other on a pool of one connection (after 200 warm-up
//!   queries) and exits: the mode for `valgrind --tool=callgrind`, whose instruction counts,
//!   unlike timings, repeat on a shared machine. Two runs with different N cancel the start-up
//!   cost; see `scripts/bench_queries.sh`.
//!
//! As in the real system, a `QueryCollector` actor drains the logger every 100 ms into a
//! `MetricsStore` actor (with an `EventBus`), in both modes; everything runs on one
//! single-threaded actix `System`. Slow-query threshold 500 ms, `log_all_queries` off.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use actix::prelude::*;
use diesel::prelude::*;
use diesel::sql_types::Integer;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use hdrhistogram::Histogram;

use selfheal::actors::metrics_store::{GetQueryReport, MetricsStore};
use selfheal::actors::query_collector::QueryCollector;
use selfheal::db::{QueryLogger, QueryLoggerOptions};
use selfheal::trace::TraceContext;

diesel::table! {
    bench_items (id) {
        id -> Int8,
        name -> Text,
        qty -> Int4,
    }
}

const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432";
const DATABASE: &str = "selfheal_bench_queries";
const DEFAULT_ROWS: i64 = 100_000;
const DEFAULT_ROUNDS: usize = 20;
const DEFAULT_SECS: f64 = 2.0;
const DEFAULT_CONCURRENCY: usize = 4;
/// Rounds where anything else used more than this (% of one core) are marked noisy.
const DEFAULT_NOISE_MAX: f64 = 10.0;
/// Queries per task and pool before the first round (connections opened, statements prepared).
const WARMUP_QUERIES: usize = 2_000;
/// Queries before `seq` starts counting.
const SEQ_WARMUP: usize = 200;
/// The collector's flush interval, as `TRACE_FLUSH_INTERVAL_MS` defaults to.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// `/proc/stat` counts in USER_HZ, which is 100 on Linux.
const NS_PER_TICK: f64 = 1e7;
/// The target: at most 2 % fewer queries per second with the logger.
const TARGET_RATIO: f64 = 0.98;

type PgPool = Pool<AsyncPgConnection>;
type Row = (i64, String, i32);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Plain,
    Logged,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Plain => "plain",
            Mode::Logged => "logged",
        }
    }
}

struct RoundsOptions {
    rows: i64,
    rounds: usize,
    secs: f64,
    concurrency: usize,
    noise_max: f64,
    control: bool,
}

enum Command {
    Setup { rows: i64 },
    Rounds(RoundsOptions),
    Seq { mode: Mode, queries: usize },
}

const USAGE: &str = "usage: bench_queries rounds [--rounds N] [--secs S] [--concurrency C] [--rows R] [--noise-max PCT] [--control]\n       bench_queries setup [--rows R]\n       bench_queries seq plain|logged N";

fn parse_num<T: std::str::FromStr>(name: &str, raw: Option<String>) -> Result<T, String> {
    let raw = raw.ok_or_else(|| format!("{name} needs a value"))?;
    raw.parse()
        .map_err(|_| format!("bad value for {name}: {raw:?}"))
}

fn parse_args() -> Result<Command, String> {
    let mut args = std::env::args().skip(1);
    let command = args.next();
    if command.as_deref() == Some("seq") {
        let mode = match args.next().as_deref() {
            Some("plain") => Mode::Plain,
            Some("logged") => Mode::Logged,
            other => return Err(format!("seq: expected plain or logged, got {other:?}")),
        };
        let queries: usize = parse_num("N", args.next())?;
        if queries == 0 {
            return Err("seq: N must be at least 1".to_owned());
        }
        return Ok(Command::Seq { mode, queries });
    }
    let mut o = RoundsOptions {
        rows: DEFAULT_ROWS,
        rounds: DEFAULT_ROUNDS,
        secs: DEFAULT_SECS,
        concurrency: DEFAULT_CONCURRENCY,
        noise_max: DEFAULT_NOISE_MAX,
        control: false,
    };
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--rows" => o.rows = parse_num(&flag, args.next())?,
            "--rounds" => o.rounds = parse_num(&flag, args.next())?,
            "--secs" => o.secs = parse_num(&flag, args.next())?,
            "--concurrency" => o.concurrency = parse_num(&flag, args.next())?,
            "--noise-max" => o.noise_max = parse_num(&flag, args.next())?,
            "--control" => o.control = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if o.rows < 1 || o.rounds < 1 || o.concurrency < 1 || !(o.secs > 0.0 && o.secs <= 600.0) {
        return Err("--rows, --rounds, --concurrency must be ≥ 1, --secs in (0, 600]".to_owned());
    }
    match command.as_deref() {
        Some("setup") => Ok(Command::Setup { rows: o.rows }),
        Some("rounds") => Ok(Command::Rounds(o)),
        other => Err(format!("unknown command {other:?}")),
    }
}

fn server_url() -> String {
    let url = std::env::var("BENCH_PG_URL").unwrap_or_else(|_| DEFAULT_SERVER.to_owned());
    url.trim_end_matches('/').to_owned()
}

fn database_url() -> String {
    format!("{}/{DATABASE}", server_url())
}

/// Drop and recreate the scratch database and fill `bench_items` with `rows` rows.
async fn setup(rows: i64) -> Result<(), String> {
    let admin_url = format!("{}/postgres", server_url());
    let mut admin = AsyncPgConnection::establish(&admin_url)
        .await
        .map_err(|e| format!("cannot connect to {admin_url}: {e}"))?;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"))
        .await
        .map_err(|e| format!("drop database: {e}"))?;
    admin
        .batch_execute(&format!("CREATE DATABASE {DATABASE}"))
        .await
        .map_err(|e| format!("create database: {e}"))?;
    drop(admin);
    let url = database_url();
    let mut conn = AsyncPgConnection::establish(&url)
        .await
        .map_err(|e| format!("cannot connect to {url}: {e}"))?;
    conn.batch_execute(&format!(
        "CREATE TABLE bench_items (id bigint PRIMARY KEY, name text NOT NULL, qty integer NOT NULL);
         INSERT INTO bench_items SELECT g, 'item ' || g, (g * 7) % 1000 FROM generate_series(1, {rows}) AS g;"
    ))
    .await
    .map_err(|e| format!("fill bench_items: {e}"))?;
    // A statement of its own: VACUUM cannot run inside the implicit transaction of a batch.
    conn.batch_execute("VACUUM ANALYZE bench_items")
        .await
        .map_err(|e| format!("vacuum bench_items: {e}"))?;
    eprintln!("bench_queries: database {DATABASE} recreated, bench_items has {rows} rows");
    Ok(())
}

/// Number of rows in `bench_items` (the ids are 1..=rows).
async fn row_count(pool: &PgPool) -> Result<i64, String> {
    let mut conn = pool.get().await.map_err(|e| e.to_string())?;
    bench_items::table
        .count()
        .get_result(&mut conn)
        .await
        .map_err(|e| format!("{e} (run `bench_queries setup` first)"))
}

#[derive(QueryableByName)]
struct BackendPid {
    #[diesel(sql_type = Integer)]
    pid: i32,
}

/// The pids of the Postgres backends connected to the benchmark database (all ours).
async fn backend_pids(pool: &PgPool) -> Result<Vec<i32>, String> {
    let mut conn = pool.get().await.map_err(|e| e.to_string())?;
    let rows: Vec<BackendPid> = diesel::sql_query(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend'",
    )
    .load(&mut conn)
    .await
    .map_err(|e| format!("pg_stat_activity: {e}"))?;
    Ok(rows.into_iter().map(|r| r.pid).collect())
}

/// The measured operation: check a connection out, look one row up by primary key.
async fn one_query(pool: &PgPool, id: i64) -> Result<Row, String> {
    let mut conn = pool.get().await.map_err(|e| e.to_string())?;
    bench_items::table
        .find(id)
        .select((bench_items::id, bench_items::name, bench_items::qty))
        .first::<Row>(&mut conn)
        .await
        .map_err(|e| format!("query failed: {e}"))
}

/// The real system's consumer of the logger: `QueryCollector` → `MetricsStore`.
struct Collector {
    logger: QueryLogger,
    metrics: Addr<MetricsStore>,
}

fn start_collector() -> Collector {
    let logger = QueryLogger::new(QueryLoggerOptions {
        log_all_queries: false,
    });
    let metrics = MetricsStore::standalone(1_000).start();
    QueryCollector::new(
        logger.clone(),
        metrics.clone(),
        FLUSH_EVERY,
        &selfheal::config::knobs::defaults(),
        Default::default(),
    )
    .start();
    Collector { logger, metrics }
}

fn build_pool(collector: &Collector, mode: Mode, size: usize) -> Result<PgPool, String> {
    let url = database_url();
    let manager = match mode {
        Mode::Plain => selfheal::store::postgres::plain_manager(&url),
        Mode::Logged => collector.logger.manager(&url),
    };
    Pool::builder(manager)
        .max_size(size)
        .build()
        .map_err(|e| format!("pool: {e}"))
}

/// CPU time (ns) a process's threads have used so far, from `/proc/PID/task/*/schedstat`.
fn process_cpu_ns(pid: &str) -> Option<u64> {
    let mut total = 0u64;
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let path = entry.ok()?.path().join("schedstat");
        let text = std::fs::read_to_string(path).ok()?;
        total += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// Busy time (ns) of all cores so far, from `/proc/stat`.
fn machine_busy_ns() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 8 {
        return None;
    }
    // user nice system idle iowait irq softirq steal (guest time is inside user): busy is
    // all but idle and iowait.
    Some((v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) * NS_PER_TICK)
}

/// CPU counters at one instant: this process, the Postgres backends, the whole machine.
struct CpuSnapshot {
    own: Option<u64>,
    pg: Option<u64>,
    machine: Option<f64>,
}

impl CpuSnapshot {
    fn take(backends: &[String]) -> Self {
        let pg = backends
            .iter()
            .map(|pid| process_cpu_ns(pid))
            .sum::<Option<u64>>();
        CpuSnapshot {
            own: process_cpu_ns("self"),
            pg,
            machine: machine_busy_ns(),
        }
    }
}

fn new_histogram() -> Result<Histogram<u64>, String> {
    // Microseconds, 1 µs to 60 s, 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())
}

struct RoundResult {
    label: &'static str,
    queries: u64,
    qps: f64,
    /// This process's CPU per query (µs).
    cpu_us: f64,
    /// The Postgres backends' CPU per query (µs).
    pg_us: f64,
    /// CPU used by everything else, % of one core.
    other_pct: f64,
    p50_us: u64,
    p99_us: u64,
}

/// One task of a round: query until `deadline`, return the count and the latencies.
async fn worker(
    pool: PgPool,
    rows: i64,
    deadline: Instant,
    seed: u64,
) -> Result<(u64, Histogram<u64>), String> {
    let mut hist = new_histogram()?;
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut done = 0u64;
    // Inside a trace scope, as a query in a traced request handler runs (the logger records
    // the trace id).
    TraceContext::new_root()
        .scope(async {
            loop {
                let id = rng.i64(1..=rows);
                let started = Instant::now();
                let row = one_query(&pool, id).await?;
                hist.saturating_record(started.elapsed().as_micros() as u64);
                if row.0 != id {
                    return Err(format!("asked for id {id}, got {}", row.0));
                }
                done += 1;
                if Instant::now() >= deadline {
                    return Ok(());
                }
            }
        })
        .await?;
    Ok((done, hist))
}

async fn run_round(
    pool: &PgPool,
    label: &'static str,
    o: &RoundsOptions,
    backends: &[String],
    seed: u64,
) -> Result<RoundResult, String> {
    let before = CpuSnapshot::take(backends);
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(o.secs);
    let handles: Vec<_> = (0..o.concurrency)
        .map(|i| {
            actix_web::rt::spawn(worker(
                pool.clone(),
                o.rows,
                deadline,
                seed.wrapping_mul(1_000).wrapping_add(i as u64),
            ))
        })
        .collect();
    let mut queries = 0u64;
    let mut hist = new_histogram()?;
    for h in handles {
        let (n, part) = h.await.map_err(|e| format!("worker task: {e}"))??;
        queries += n;
        hist.add(&part).map_err(|e| e.to_string())?;
    }
    let wall = started.elapsed().as_secs_f64();
    let after = CpuSnapshot::take(backends);
    let delta = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) => b.saturating_sub(a) as f64,
        _ => f64::NAN,
    };
    let own_ns = delta(before.own, after.own);
    let pg_ns = delta(before.pg, after.pg);
    let other_pct = match (before.machine, after.machine) {
        (Some(b0), Some(b1)) => (b1 - b0 - own_ns - pg_ns).max(0.0) / (wall * 1e9) * 100.0,
        _ => f64::NAN,
    };
    let n = queries.max(1) as f64;
    Ok(RoundResult {
        label,
        queries,
        qps: queries as f64 / wall,
        cpu_us: own_ns / 1_000.0 / n,
        pg_us: pg_ns / 1_000.0 / n,
        other_pct,
        p50_us: hist.value_at_quantile(0.50),
        p99_us: hist.value_at_quantile(0.99),
    })
}

fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

async fn warm_up(pool: &PgPool, rows: i64, n: usize, seed: u64) -> Result<(), String> {
    let mut rng = fastrand::Rng::with_seed(seed);
    for _ in 0..n {
        one_query(pool, rng.i64(1..=rows)).await?;
    }
    Ok(())
}

async fn rounds(o: RoundsOptions) -> Result<(), String> {
    setup(o.rows).await?;
    let collector = start_collector();
    let second = if o.control { Mode::Plain } else { Mode::Logged };
    let label_b = if o.control { "plain2" } else { "logged" };
    let pool_a = build_pool(&collector, Mode::Plain, o.concurrency)?;
    let pool_b = build_pool(&collector, second, o.concurrency)?;
    // Open every connection of both pools and prepare the statement on each.
    for pool in [&pool_a, &pool_b] {
        let rows_seen = row_count(pool).await?;
        if rows_seen != o.rows {
            return Err(format!(
                "bench_items has {rows_seen} rows, expected {}",
                o.rows
            ));
        }
        let handles: Vec<_> = (0..o.concurrency)
            .map(|i| {
                let pool = pool.clone();
                let rows = o.rows;
                actix_web::rt::spawn(
                    async move { warm_up(&pool, rows, WARMUP_QUERIES, i as u64).await },
                )
            })
            .collect();
        for h in handles {
            h.await.map_err(|e| format!("warm-up task: {e}"))??;
        }
    }
    let backends: Vec<String> = backend_pids(&pool_a)
        .await?
        .into_iter()
        .map(|p| p.to_string())
        .collect();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "bench_queries: {} pairs of rounds (plain/{label_b}, order alternating), {} s each, {} tasks, \
         pools of {}, {} rows; pid {}, allowed on {cores} core(s); {} Postgres backends",
        o.rounds,
        o.secs,
        o.concurrency,
        o.concurrency,
        o.rows,
        std::process::id(),
        backends.len()
    );
    let mut pairs: Vec<(RoundResult, RoundResult)> = Vec::with_capacity(o.rounds);
    let mut logged_queries = 0u64;
    for r in 0..o.rounds {
        let seed = 2 * r as u64;
        let (a, b) = if r % 2 == 0 {
            let a = run_round(&pool_a, "plain", &o, &backends, seed).await?;
            print_round(r + 1, &a, o.noise_max);
            let b = run_round(&pool_b, label_b, &o, &backends, seed + 1).await?;
            print_round(r + 1, &b, o.noise_max);
            (a, b)
        } else {
            let b = run_round(&pool_b, label_b, &o, &backends, seed + 1).await?;
            print_round(r + 1, &b, o.noise_max);
            let a = run_round(&pool_a, "plain", &o, &backends, seed).await?;
            print_round(r + 1, &a, o.noise_max);
            (a, b)
        };
        logged_queries += b.queries;
        pairs.push((a, b));
    }
    // Let the collector flush the last samples, then check it saw every logged query.
    actix_web::rt::time::sleep(FLUSH_EVERY * 3).await;
    let report = collector
        .metrics
        .send(GetQueryReport {
            limit: 3,
            trace_id: None,
        })
        .await
        .map_err(|e| format!("MetricsStore: {e}"))?;
    if !o.control {
        let expected = logged_queries + (WARMUP_QUERIES * o.concurrency) as u64 + 1;
        println!(
            "bench_queries: MetricsStore recorded {} queries (logged rounds + warm-up: {expected}), \
             {} dropped; top fingerprint: {}",
            report.table.total_queries,
            report.table.dropped_samples,
            report
                .top
                .iter()
                .find_map(|t| t.query.as_deref())
                .unwrap_or("-")
        );
    }
    print_summary(&pairs, label_b, o.noise_max);
    Ok(())
}

fn print_round(pair: usize, r: &RoundResult, noise_max: f64) {
    println!(
        "pair {pair:>2} {:<6} {:>8} queries {:>7.0} q/s  CPU/query: own {:>5.2} µs, postgres {:>5.2} µs  \
         p50 {:>4} µs  p99 {:>5} µs  other load {:>3.0}%{}",
        r.label,
        r.queries,
        r.qps,
        r.cpu_us,
        r.pg_us,
        r.p50_us,
        r.p99_us,
        r.other_pct,
        if r.other_pct > noise_max {
            " (noisy)"
        } else {
            ""
        }
    );
}

/// Ratios of one pair, B over A: (q/s, own CPU per query, own + Postgres CPU per query).
fn ratios(a: &RoundResult, b: &RoundResult) -> (f64, f64, f64) {
    (
        b.qps / a.qps,
        b.cpu_us / a.cpu_us,
        (b.cpu_us + b.pg_us) / (a.cpu_us + a.pg_us),
    )
}

/// A distribution-free ~95 % confidence interval for the median of `values` (from the order
/// statistics: the number of values below the median is Binomial(n, ½)); `None` below 6 values.
fn median_ci(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    // k = the largest count with P(Binomial(n, ½) < k) ≤ 2.5 %.
    let mut p = 0.5f64.powi(n as i32);
    let (mut below, mut k) = (0.0, 0);
    for i in 0..n {
        if below + p > 0.025 {
            break;
        }
        below += p;
        k = i + 1;
        p = p * (n - i) as f64 / (i + 1) as f64;
    }
    (k >= 1).then(|| (v[k - 1], v[n - k]))
}

fn fmt_ci(ci: Option<(f64, f64)>) -> String {
    match ci {
        Some((lo, hi)) => format!("95 % CI {lo:.3}–{hi:.3}"),
        None => "too few pairs for a CI".to_owned(),
    }
}

/// Print the summary of `pairs`; returns the median of the per-pair q/s ratios and its CI.
fn summarize(
    name: &str,
    pairs: &[&(RoundResult, RoundResult)],
    label_b: &str,
) -> (f64, Option<(f64, f64)>) {
    let qps_a = median(pairs.iter().map(|p| p.0.qps));
    let qps_b = median(pairs.iter().map(|p| p.1.qps));
    let q = |i: usize| -> Vec<f64> {
        pairs
            .iter()
            .map(|p| {
                let r = ratios(&p.0, &p.1);
                [r.0, r.1, r.2][i]
            })
            .collect()
    };
    let (qps_r, own_r, total_r) = (q(0), q(1), q(2));
    let per_pair = median(qps_r.iter().copied());
    let qps_ci = median_ci(qps_r.iter().copied());
    let (lo, hi) = qps_r
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        });
    println!(
        "summary ({name}, {} pairs): {label_b}/plain q/s: median of per-pair ratios {per_pair:.3} ({}; pairs {lo:.3}–{hi:.3}), ratio of medians {:.3} ({qps_b:.0} / {qps_a:.0})",
        pairs.len(),
        fmt_ci(qps_ci),
        qps_b / qps_a,
    );
    println!(
        "summary ({name}): {label_b}/plain CPU per query: this process {:.3} ({}), this process + \
         Postgres backends {:.3} ({})",
        median(own_r.iter().copied()),
        fmt_ci(median_ci(own_r.iter().copied())),
        median(total_r.iter().copied()),
        fmt_ci(median_ci(total_r.iter().copied())),
    );
    (per_pair, qps_ci)
}

fn print_summary(pairs: &[(RoundResult, RoundResult)], label_b: &str, noise_max: f64) {
    println!();
    println!(
        "| pair | plain q/s | plain CPU/query own + pg | plain p50 / p99 | {label_b} q/s | {label_b} CPU/query own + pg | {label_b} p50 / p99 | other load | q/s ratio | own CPU ratio |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (i, (a, b)) in pairs.iter().enumerate() {
        let (q, own, _) = ratios(a, b);
        println!(
            "| {} | {:.0} | {:.2} + {:.2} µs | {} / {} µs | {:.0} | {:.2} + {:.2} µs | {} / {} µs | {:.0}%, {:.0}% | {q:.3} | {own:.3} |",
            i + 1,
            a.qps,
            a.cpu_us,
            a.pg_us,
            a.p50_us,
            a.p99_us,
            b.qps,
            b.cpu_us,
            b.pg_us,
            b.p50_us,
            b.p99_us,
            a.other_pct,
            b.other_pct,
        );
    }
    println!(
        "| **median** | **{:.0}** | {:.2} + {:.2} µs | {:.0} / {:.0} µs | **{:.0}** | {:.2} + {:.2} µs | {:.0} / {:.0} µs | | **{:.3}** | {:.3} |",
        median(pairs.iter().map(|p| p.0.qps)),
        median(pairs.iter().map(|p| p.0.cpu_us)),
        median(pairs.iter().map(|p| p.0.pg_us)),
        median(pairs.iter().map(|p| p.0.p50_us as f64)),
        median(pairs.iter().map(|p| p.0.p99_us as f64)),
        median(pairs.iter().map(|p| p.1.qps)),
        median(pairs.iter().map(|p| p.1.cpu_us)),
        median(pairs.iter().map(|p| p.1.pg_us)),
        median(pairs.iter().map(|p| p.1.p50_us as f64)),
        median(pairs.iter().map(|p| p.1.p99_us as f64)),
        median(pairs.iter().map(|p| ratios(&p.0, &p.1).0)),
        median(pairs.iter().map(|p| ratios(&p.0, &p.1).1)),
    );
    println!();
    let all: Vec<_> = pairs.iter().collect();
    let (per_pair, ci) = summarize("all", &all, label_b);
    let quiet: Vec<_> = pairs
        .iter()
        .filter(|p| p.0.other_pct <= noise_max && p.1.other_pct <= noise_max)
        .collect();
    if quiet.is_empty() {
        println!(
            "summary (quiet pairs): none had other load ≤ {noise_max}% of a core in both rounds"
        );
    } else if quiet.len() < pairs.len() {
        summarize(
            &format!("quiet: other load ≤ {noise_max}%"),
            &quiet,
            label_b,
        );
    }
    // The verdict rests on the median of the per-pair ratios (each pair ran seconds apart, so
    // it cancels the machine's drifts, which the ratio of medians does not) and its CI.
    let verdict = match ci {
        Some((lo, _)) if lo >= TARGET_RATIO => "met (the whole CI is within 2 %)".to_owned(),
        Some((_, hi)) if hi < TARGET_RATIO => "NOT met (the whole CI is beyond 2 %)".to_owned(),
        Some(_) => format!(
            "not resolved at this noise level (the CI straddles {TARGET_RATIO:.3}); point estimate {}",
            if per_pair >= TARGET_RATIO {
                "within"
            } else {
                "beyond"
            }
        ),
        None => format!(
            "point estimate {} (too few pairs for a CI)",
            if per_pair >= TARGET_RATIO {
                "within"
            } else {
                "beyond"
            }
        ),
    };
    if label_b == "logged" {
        println!(
            "summary: target ≤ 2 % fewer queries per second with the logger (ratio ≥ {TARGET_RATIO:.3}), all pairs: {verdict}"
        );
    } else {
        println!(
            "summary: control run, no logger in either pool (the method's noise floor); \
             as a test of the 2 % target it would be: {verdict}"
        );
    }
}

/// `seq`: N queries one after the other on a pool of one connection (for callgrind).
async fn seq(mode: Mode, queries: usize) -> Result<(), String> {
    let collector = start_collector();
    let pool = build_pool(&collector, mode, 1)?;
    let rows = row_count(&pool).await?;
    if rows < 1 {
        return Err("bench_items is empty (run `bench_queries setup`)".to_owned());
    }
    warm_up(&pool, rows, SEQ_WARMUP, 7).await?;
    let started = Instant::now();
    let mut rng = fastrand::Rng::with_seed(11);
    TraceContext::new_root()
        .scope(async {
            for _ in 0..queries {
                one_query(&pool, rng.i64(1..=rows)).await?;
            }
            Ok::<(), String>(())
        })
        .await?;
    let wall = started.elapsed();
    // Let the collector hand the last batch to the MetricsStore, as it would in a server.
    actix_web::rt::time::sleep(FLUSH_EVERY * 2).await;
    println!(
        "seq {} {queries} queries in {:.3} s ({:.1} µs/query)",
        mode.name(),
        wall.as_secs_f64(),
        wall.as_secs_f64() * 1e6 / queries as f64
    );
    Ok(())
}

#[actix_web::main]
async fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let command = match parse_args() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bench_queries: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let outcome = match command {
        Command::Setup { rows } => setup(rows).await,
        Command::Rounds(o) => rounds(o).await,
        Command::Seq { mode, queries } => seq(mode, queries).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_queries: {e}");
            ExitCode::FAILURE
        }
    }
}
