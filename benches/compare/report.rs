//! The results: their JSON form (`target/bench-results.json`), the plain
//! table, the targets, the merge of several runs and the SVG chart.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Version of the JSON layout below.
pub const SCHEMA: &str = "webhook-inbox-compare/1";

pub fn results_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-results.json")
}

pub fn chart_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/bench.svg")
}

/// One figure over the rounds (or, merged, over the runs' medians).
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Stat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// Every value, in order: one per round (merged: each run's median).
    pub values: Vec<f64>,
}

impl Stat {
    pub fn of(xs: &[f64]) -> Self {
        if xs.is_empty() {
            return Self::default();
        }
        let (median, min, max) = crate::common::summary(xs);
        Self {
            median,
            min,
            max,
            values: xs.to_vec(),
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Results {
    pub schema: String,
    pub quick: bool,
    /// Rounds of each measurement in a run (verify has its own, see there).
    pub rounds: usize,
    /// How many runs these figures summarise (1: a single run).
    #[serde(default = "one")]
    pub runs: usize,
    pub machine: Machine,
    pub wall_secs: f64,
    pub verify: VerifySection,
    pub ingest: Vec<IngestRow>,
    pub end_to_end: Vec<EndToEnd>,
    pub drain: Vec<Drain>,
    pub million: Million,
    pub floor: Floor,
    /// The PostgreSQL backend's rows: `None` when not measured (no
    /// `WEBHOOK_INBOX_TEST_POSTGRES`, or built without the `postgres` feature).
    #[serde(default)]
    pub postgres: Option<Postgres>,
    pub targets: Vec<Target>,
}

fn one() -> usize {
    1
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub mem_total_mib: u64,
    /// UTC, when the run started.
    pub date: String,
    /// `/proc/loadavg` (1, 5, 15 min) before and after the run.
    pub load_before: String,
    pub load_after: String,
    /// Where the stores, databases and logs were written, and its file system.
    pub bench_dir: String,
    pub filesystem: String,
    pub git_head: String,
    /// `git status --porcelain -- src` lines: uncommitted library changes measured.
    pub src_changes: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct VerifySection {
    pub rounds: usize,
    pub iterations: usize,
    pub schemes: Vec<VerifyRow>,
    pub svix: Option<Svix>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct VerifyRow {
    pub scheme: String,
    pub verify_ns: Stat,
    pub bare_hmac_ns: Stat,
    pub prekeyed_hmac_ns: Stat,
    pub x_bare_hmac: Stat,
    pub x_prekeyed_hmac: Stat,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Svix {
    pub verify_ns: Stat,
    /// svix's time over the bare HMAC of the Standard Webhooks content.
    pub x_bare_hmac: Stat,
    /// svix's time over this library's `standard` verify.
    pub x_standard_verify: Stat,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct IngestRow {
    pub callers: usize,
    /// `library`, `sqlite-full`, `sqlite-normal`, `bare-log` or `bare-log-append`.
    pub system: String,
    pub label: String,
    /// Whether an acknowledged event survives power loss.
    pub durable: bool,
    pub events_per_round: usize,
    pub events_per_sec: Stat,
    pub x_sqlite_full: Stat,
    /// Over `bare-log`, the preallocated log: the floor.
    pub x_bare_log: Stat,
    /// Over `bare-log-append`, the log that grows its file.
    #[serde(default)]
    pub x_bare_log_append: Stat,
    pub p50_ms: Stat,
    pub p99_ms: Stat,
    pub p999_ms: Stat,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct EndToEnd {
    /// `paced` or `saturated`.
    pub mode: String,
    pub callers: usize,
    pub handler_threads: usize,
    pub offered_events_per_sec: Option<f64>,
    pub events_per_round: usize,
    pub events_per_sec: Stat,
    pub p50_ms: Stat,
    pub p99_ms: Stat,
    pub p999_ms: Stat,
    pub max_ms: Stat,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Drain {
    pub events: usize,
    pub threads: usize,
    /// Attempts recorded before their handler runs.
    #[serde(default)]
    pub durable_attempts: bool,
    pub events_per_sec: Stat,
    /// Over the median 16-caller durable ingest rate of the same run.
    pub x_ingest16: Stat,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Million {
    pub events: usize,
    pub callers: usize,
    pub handler_threads: usize,
    pub ingest_events_per_sec: Stat,
    /// `Inbox::stats().disk_bytes` / events, all pending.
    pub disk_bytes_per_event_stats: Stat,
    /// Allocated blocks (`du`) / events, all pending, inbox open.
    pub disk_bytes_per_event_du: Stat,
    /// File sizes (`du --apparent-size`) / events, all pending, inbox open.
    pub disk_bytes_per_event_apparent: Stat,
    /// The `sled/` part of the `du` figure, per event.
    pub sled_bytes_per_event_du: Stat,
    /// The `wal/` part of the `du` figure, in bytes (not per event).
    pub wal_bytes_du: Stat,
    /// Allocated blocks / events after a clean close.
    pub disk_bytes_per_event_closed: Stat,
    pub close_secs: Stat,
    /// `Inbox::open` alone.
    pub open_secs: Stat,
    /// `Inbox::open` + `Worker::start` until the first handler call.
    pub reopen_to_first_dispatch_secs: Stat,
    /// `Inbox::open` after a crash (no clean close): sled rebuilt from the log.
    #[serde(default)]
    pub rebuild_secs: Stat,
    pub drain_events_per_sec: Stat,
    pub peak_rss_after_ingest_mib: Stat,
    /// `VmHWM` of the child at the end: the whole scenario.
    pub peak_rss_mib: Stat,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Floor {
    pub fdatasync_ops: usize,
    pub fdatasync_ops_per_sec: Stat,
    pub fdatasync_p50_ms: Stat,
    pub fdatasync_p99_ms: Stat,
    pub hmac_1kib_ops_per_sec: Stat,
}

/// The PostgreSQL backend (`pg.rs`), each measurement in a fresh schema.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Postgres {
    /// `SHOW server_version`.
    pub server_version: String,
    /// `PostgresBuilder::pool_size` of the backend's inboxes.
    pub pool_size: usize,
    pub ingest: Vec<PgIngestRow>,
    pub drain: Vec<PgDrain>,
    /// `pg_test_fsync`, if it is installed and the run is not quick.
    #[serde(default)]
    pub test_fsync: Option<PgTestFsync>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct PgIngestRow {
    pub callers: usize,
    /// `pg-backend`, `pg-hand-rolled` or `pg-floor`.
    pub system: String,
    pub label: String,
    pub events_per_round: usize,
    pub events_per_sec: Stat,
    /// Over `pg-hand-rolled`: one autocommit `INSERT … ON CONFLICT DO NOTHING` per delivery.
    pub x_hand_rolled: Stat,
    /// Over `pg-floor`: a bare client, 64 rows per transaction.
    pub x_floor: Stat,
    pub p50_ms: Stat,
    pub p99_ms: Stat,
    pub p999_ms: Stat,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct PgDrain {
    pub events: usize,
    /// Processes, each with its own `Inbox` and `Worker`.
    pub processes: usize,
    /// Handler threads per process.
    pub threads: usize,
    pub events_per_sec: Stat,
}

/// `pg_test_fsync -s {secs_per_test}`: the database's own floor, its
/// fdatasync line of "one 8kB write".
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct PgTestFsync {
    pub secs_per_test: u32,
    pub fdatasync_ops_per_sec: Stat,
    pub fdatasync_usecs_per_op: Stat,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Target {
    pub what: String,
    pub goal: String,
    pub value: f64,
    pub shown: String,
    pub met: bool,
}

impl Results {
    pub fn ingest_row(&self, callers: usize, system: &str) -> Option<&IngestRow> {
        self.ingest
            .iter()
            .find(|r| r.callers == callers && r.system == system)
    }

    /// The targets, judged on the medians.
    pub fn judge(&self) -> Vec<Target> {
        let mut targets = Vec::new();
        let mut push = |what: String, goal: &str, value: f64, shown: String, met: bool| {
            targets.push(Target {
                what,
                goal: goal.to_owned(),
                value,
                shown,
                met,
            });
        };
        for (callers, bare, sqlite) in [(16, 0.8, 4.0), (64, 0.8, 5.0)] {
            if let Some(r) = self.ingest_row(callers, "library") {
                let v = r.x_bare_log.median;
                push(
                    format!("durable ingest, {callers} callers, × bare log"),
                    &format!("≥ {bare}×"),
                    v,
                    format!("{v:.2}×"),
                    v >= bare,
                );
                let v = r.x_sqlite_full.median;
                push(
                    format!("durable ingest, {callers} callers, × SQLite FULL"),
                    &format!("≥ {sqlite}×"),
                    v,
                    format!("{v:.2}×"),
                    v >= sqlite,
                );
            }
        }
        if let Some(worst) = self
            .verify
            .schemes
            .iter()
            .max_by(|a, b| a.x_bare_hmac.median.total_cmp(&b.x_bare_hmac.median))
        {
            let v = worst.x_bare_hmac.median;
            push(
                "verify × bare HMAC-SHA256 (worst scheme)".to_owned(),
                "≤ 1.05×",
                v,
                format!("{v:.3}× ({})", worst.scheme),
                v <= 1.05,
            );
        }
        let m = &self.million;
        if m.events == 0 {
            // Not measured in this run (`BENCH_ONLY`).
            return targets;
        }
        let n = count(m.events as f64);
        let v = m.reopen_to_first_dispatch_secs.median;
        push(
            format!("reopen with {n} pending, to first dispatch"),
            "≤ 1 s",
            v,
            format!("{v:.3} s"),
            v <= 1.0,
        );
        let v = m.disk_bytes_per_event_du.median;
        push(
            format!("disk per pending 1 KiB event ({n} pending, du)"),
            "≤ 3 KiB",
            v,
            format!("{:.2} KiB", v / 1024.0),
            v <= 3.0 * 1024.0,
        );
        let v = m.peak_rss_mib.median;
        push(
            format!("peak RSS over the {n}-event run"),
            "≤ 256 MiB",
            v,
            format!("{v:.0} MiB"),
            v <= 256.0,
        );
        targets
    }
}

// ---- the machine -------------------------------------------------------------

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

pub fn loadavg() -> String {
    read("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// `YYYY-MM-DDTHH:MM:SSZ` for now.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn git(args: &[&str]) -> String {
    std::process::Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        // Read only: never refresh the index.
        .env("GIT_OPTIONAL_LOCKS", "0")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim_end().to_owned())
        .unwrap_or_default()
}

pub fn machine() -> Machine {
    let bench_dir = std::env::temp_dir();
    // The mount holding the bench directory: the longest matching mount point.
    let filesystem = read("/proc/mounts")
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 4 && bench_dir.starts_with(f[1])).then(|| (f[1].len(), f))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, f)| format!("{} on {} ({}, {})", f[0], f[1], f[2], f[3]))
        .unwrap_or_default();
    Machine {
        nproc: std::thread::available_parallelism().map_or(0, usize::from),
        cpu_model: read("/proc/cpuinfo")
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            .unwrap_or_default(),
        kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
        mem_total_mib: read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kib| kib / 1024),
        date: utc_now(),
        load_before: loadavg(),
        load_after: String::new(),
        bench_dir: bench_dir.display().to_string(),
        filesystem,
        git_head: git(&["rev-parse", "--short=12", "HEAD"]),
        src_changes: git(&["status", "--porcelain", "--", "src"])
            .lines()
            .map(str::to_owned)
            .collect(),
    }
}

// ---- JSON: write, read, merge --------------------------------------------------

pub fn write_json(results: &Results, path: &Path) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("results directory");
    }
    let text = serde_json::to_string_pretty(results).expect("serialise the results");
    std::fs::write(path, text + "\n").expect("write the results");
}

pub fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

/// Several runs' results as one: every figure becomes the median of the runs'
/// medians, its min/max their range; everything else comes from the first.
pub fn merge(runs: &[Value]) -> Results {
    fn walk(vals: &[&Value]) -> Value {
        match vals[0] {
            Value::Object(m) if m.contains_key("median") && m.contains_key("values") => {
                let medians: Vec<f64> = vals.iter().filter_map(|v| v["median"].as_f64()).collect();
                serde_json::to_value(Stat::of(&medians)).expect("a stat")
            }
            Value::Object(m) => Value::Object(
                m.keys()
                    .map(|k| {
                        let vs: Vec<&Value> = vals.iter().map(|v| &v[k.as_str()]).collect();
                        (k.clone(), walk(&vs))
                    })
                    .collect(),
            ),
            Value::Array(a) => Value::Array(
                (0..a.len())
                    .map(|i| walk(&vals.iter().map(|v| &v[i]).collect::<Vec<_>>()))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    let refs: Vec<&Value> = runs.iter().collect();
    let mut results: Results = serde_json::from_value(walk(&refs)).expect("results");
    results.runs = runs.len();
    results.targets = results.judge();
    results
}

// ---- the table ------------------------------------------------------------------

/// `12,345` for 12 345.4.
pub fn count(x: f64) -> String {
    let digits = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if x < -0.5 { format!("-{out}") } else { out }
}

/// Milliseconds with about three significant digits.
fn ms(x: f64) -> String {
    if x < 1.0 {
        format!("{x:.3}")
    } else if x < 10.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.1}")
    }
}

fn ratio(x: f64) -> String {
    format!("{x:.2}×")
}

/// `median [min–max]` with `f`, the range dropped when it is a single value.
fn ranged(s: &Stat, f: impl Fn(f64) -> String) -> String {
    if s.values.len() < 2 {
        f(s.median)
    } else {
        format!("{} [{}–{}]", f(s.median), f(s.min), f(s.max))
    }
}

fn caller_label(n: usize) -> String {
    format!("{n} caller{}", if n == 1 { "" } else { "s" })
}

/// Prints rows of cells with each column padded to its widest cell (the first
/// column left-aligned, the others right-aligned).
fn print_rows(rows: &[Vec<String>]) {
    let widths: Vec<usize> = (0..rows.iter().map(Vec::len).max().unwrap_or(0))
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let pad = widths[c] - cell.chars().count();
            if c == 0 {
                let _ = write!(line, "{cell}{}", " ".repeat(pad));
            } else {
                let _ = write!(line, "  {}{cell}", " ".repeat(pad));
            }
        }
        println!("{}", line.trim_end());
    }
}

fn strings<const N: usize>(cells: [&str; N]) -> Vec<String> {
    cells.iter().map(|s| (*s).to_owned()).collect()
}

pub fn print_table(r: &Results) {
    let m = &r.machine;
    let kind = if r.quick {
        "QUICK (smoke) run"
    } else {
        "full run"
    };
    println!();
    if r.runs > 1 {
        println!(
            "webhook-inbox compare: medians of {} {kind}s, each the median of {} rounds; \
             [brackets]: range of the run medians",
            r.runs, r.rounds
        );
    } else {
        println!(
            "webhook-inbox compare: {kind}, {} rounds; figures: median [min–max] over the rounds; \
             ratios: median of the per-round ratios",
            r.rounds
        );
    }
    println!(
        "machine: {} × {}, Linux {}, {} MiB RAM; {} on {}; {}load {} → {}; {} (git {}{})",
        m.nproc,
        m.cpu_model,
        m.kernel,
        m.mem_total_mib,
        m.bench_dir,
        m.filesystem,
        if r.runs > 1 { "first run: " } else { "" },
        m.load_before,
        m.load_after,
        m.date,
        m.git_head,
        if m.src_changes.is_empty() {
            String::new()
        } else {
            format!(", {} uncommitted change(s) in src/", m.src_changes.len())
        }
    );
    if r.ingest.is_empty() {
        // A `BENCH_ONLY=postgres` run: nothing else was measured.
        print_postgres(r);
        if r.runs == 1 {
            println!("\nwall time: {:.0} s", r.wall_secs);
        }
        return;
    }

    println!("\nTARGETS");
    let mut rows = vec![strings(["", "goal", "measured", ""])];
    for t in &r.targets {
        rows.push(vec![
            t.what.clone(),
            t.goal.clone(),
            t.shown.clone(),
            if t.met { "met" } else { "NOT MET" }.to_owned(),
        ]);
    }
    print_rows(&rows);

    println!("\nDURABLE INGEST, 1 KiB Bluum deliveries (a fresh store per round)");
    let mut rows = vec![strings([
        "callers / system",
        "× SQLite FULL",
        "× bare log",
        "× append log",
        "events/s",
        "p50 ms",
        "p99 ms",
        "p999 ms",
        "events/round",
    ])];
    for row in &r.ingest {
        rows.push(vec![
            format!("{:>2} {}", row.callers, row.label),
            ranged(&row.x_sqlite_full, ratio),
            ranged(&row.x_bare_log, ratio),
            ratio(row.x_bare_log_append.median),
            ranged(&row.events_per_sec, count),
            ms(row.p50_ms.median),
            ms(row.p99_ms.median),
            ms(row.p999_ms.median),
            count(row.events_per_round as f64),
        ]);
    }
    print_rows(&rows);

    let v = &r.verify;
    println!(
        "\nVERIFY ONLY, 1 KiB body ({} rounds × {} calls; bare HMAC = key + HMAC-SHA256 of the signed content)",
        v.rounds, v.iterations
    );
    let mut rows = vec![strings([
        "scheme",
        "× bare HMAC",
        "× pre-keyed HMAC",
        "verify ns",
        "bare HMAC ns",
        "pre-keyed ns",
    ])];
    for s in &v.schemes {
        rows.push(vec![
            s.scheme.clone(),
            ranged(&s.x_bare_hmac, |x| format!("{x:.3}×")),
            format!("{:.3}×", s.x_prekeyed_hmac.median),
            format!("{:.0}", s.verify_ns.median),
            format!("{:.0}", s.bare_hmac_ns.median),
            format!("{:.0}", s.prekeyed_hmac_ns.median),
        ]);
    }
    if let Some(s) = &v.svix {
        rows.push(vec![
            "svix crate (standard headers)".to_owned(),
            ranged(&s.x_bare_hmac, |x| format!("{x:.2}×")),
            String::new(),
            format!("{:.0}", s.verify_ns.median),
            String::new(),
            String::new(),
        ]);
    }
    print_rows(&rows);
    if let Some(s) = &v.svix {
        println!(
            "svix takes {:.1}× as long as this library's `standard` verify",
            s.x_standard_verify.median
        );
    }

    println!("\nEND TO END: ingest → no-op handler done (outcome durable), Fsync");
    let mut rows = vec![strings([
        "load",
        "events/s",
        "p50 ms",
        "p99 ms",
        "p999 ms",
        "max ms",
        "events/round",
    ])];
    for e in &r.end_to_end {
        let load = match e.offered_events_per_sec {
            Some(rate) => format!(
                "paced {} events/s, {} callers, {} handler threads",
                count(rate),
                e.callers,
                e.handler_threads
            ),
            None => format!(
                "saturated, {} callers, {} handler threads",
                e.callers, e.handler_threads
            ),
        };
        rows.push(vec![
            load,
            ranged(&e.events_per_sec, count),
            ranged(&e.p50_ms, ms),
            ranged(&e.p99_ms, ms),
            ms(e.p999_ms.median),
            ms(e.max_ms.median),
            count(e.events_per_round as f64),
        ]);
    }
    print_rows(&rows);

    println!(
        "\nDRAIN of a pending backlog (no-op handler, outcomes recorded with fdatasync in batches)"
    );
    let mut rows = vec![strings([
        "backlog / handler threads",
        "× 16-caller ingest",
        "events/s",
    ])];
    for d in &r.drain {
        rows.push(vec![
            format!(
                "{} pending, {} thread(s){}",
                count(d.events as f64),
                d.threads,
                if d.durable_attempts {
                    ", durable attempts"
                } else {
                    ""
                }
            ),
            ranged(&d.x_ingest16, ratio),
            ranged(&d.events_per_sec, count),
        ]);
    }
    let mm = &r.million;
    rows.push(vec![
        format!(
            "{} pending, {} thread(s) (child process)",
            count(mm.events as f64),
            mm.handler_threads
        ),
        r.ingest_row(16, "library").map_or(String::new(), |i| {
            ratio(mm.drain_events_per_sec.median / i.events_per_sec.median)
        }),
        ranged(&mm.drain_events_per_sec, count),
    ]);
    print_rows(&rows);

    println!(
        "\n{} PENDING EVENTS (child process: {} callers ingest with Fsync, then close, reopen, drain)",
        count(mm.events as f64),
        mm.callers
    );
    let kib = |x: f64| format!("{:.2} KiB", x / 1024.0);
    let secs = |x: f64| format!("{x:.3} s");
    let mib = |x: f64| format!("{x:.0} MiB");
    let rows = vec![
        vec![
            "ingest, events/s".to_owned(),
            ranged(&mm.ingest_events_per_sec, count),
        ],
        vec![
            "disk per pending event: du (allocated), inbox open".to_owned(),
            ranged(&mm.disk_bytes_per_event_du, kib),
        ],
        vec![
            "  of which sled/ (per event); wal/ (total)".to_owned(),
            format!(
                "{}; {:.0} MiB",
                kib(mm.sled_bytes_per_event_du.median),
                mm.wal_bytes_du.median / 1048576.0
            ),
        ],
        vec![
            "  apparent size; Inbox::stats().disk_bytes; du after close".to_owned(),
            format!(
                "{}; {}; {}",
                kib(mm.disk_bytes_per_event_apparent.median),
                kib(mm.disk_bytes_per_event_stats.median),
                kib(mm.disk_bytes_per_event_closed.median)
            ),
        ],
        vec!["close".to_owned(), ranged(&mm.close_secs, secs)],
        vec![
            "reopen to first dispatch (open + worker start)".to_owned(),
            ranged(&mm.reopen_to_first_dispatch_secs, secs),
        ],
        vec![
            "  of which Inbox::open".to_owned(),
            ranged(&mm.open_secs, secs),
        ],
        vec![
            "open after a crash (sled rebuilt from the log)".to_owned(),
            ranged(&mm.rebuild_secs, secs),
        ],
        vec![
            format!("drain, {} handler threads, events/s", mm.handler_threads),
            ranged(&mm.drain_events_per_sec, count),
        ],
        vec![
            "peak RSS (VmHWM), whole run".to_owned(),
            ranged(&mm.peak_rss_mib, mib),
        ],
        vec![
            "  peak RSS after the ingest".to_owned(),
            ranged(&mm.peak_rss_after_ingest_mib, mib),
        ],
    ];
    print_rows(&rows);

    let f = &r.floor;
    println!("\nMACHINE FLOOR");
    let mut rows = vec![strings(["", "ops/s", "library × floor"])];
    let lib1 = r.ingest_row(1, "library").map(|i| i.events_per_sec.median);
    rows.push(vec![
        format!(
            "4 KiB pwrite + fdatasync, 1 thread (p50 {} ms, p99 {} ms)",
            ms(f.fdatasync_p50_ms.median),
            ms(f.fdatasync_p99_ms.median)
        ),
        ranged(&f.fdatasync_ops_per_sec, count),
        lib1.map_or(String::new(), |l| {
            format!("{} (1 caller)", ratio(l / f.fdatasync_ops_per_sec.median))
        }),
    ]);
    for row in r.ingest.iter().filter(|i| i.system == "bare-log") {
        let lib = r.ingest_row(row.callers, "library");
        rows.push(vec![
            format!("bare group-committed log, {}", caller_label(row.callers)),
            ranged(&row.events_per_sec, count),
            lib.map_or(String::new(), |l| ratio(l.x_bare_log.median)),
        ]);
    }
    rows.push(vec![
        "HMAC-SHA256 of 1 KiB (key + MAC), 1 thread".to_owned(),
        ranged(&f.hmac_1kib_ops_per_sec, count),
        String::new(),
    ]);
    print_rows(&rows);
    print_postgres(r);
    if r.runs == 1 {
        println!("\nwall time: {:.0} s", r.wall_secs);
    }
}

/// The PostgreSQL backend's rows, or why there are none.
fn print_postgres(r: &Results) {
    let Some(pg) = &r.postgres else {
        println!(
            "\nPOSTGRESQL: not measured (WEBHOOK_INBOX_TEST_POSTGRES unset, or built without --features postgres)"
        );
        return;
    };
    println!(
        "\nPOSTGRESQL BACKEND, durable ingest of 1 KiB Bluum deliveries (server {}, pool {}, a fresh schema per round; floor latency: its batch's)",
        pg.server_version, pg.pool_size
    );
    let mut rows = vec![strings([
        "callers / system",
        "× hand-rolled",
        "× floor",
        "events/s",
        "p50 ms",
        "p99 ms",
        "p999 ms",
        "events/round",
    ])];
    for row in &pg.ingest {
        rows.push(vec![
            format!("{:>2} {}", row.callers, row.label),
            ranged(&row.x_hand_rolled, ratio),
            ranged(&row.x_floor, ratio),
            ranged(&row.events_per_sec, count),
            ms(row.p50_ms.median),
            ms(row.p99_ms.median),
            ms(row.p999_ms.median),
            count(row.events_per_round as f64),
        ]);
    }
    print_rows(&rows);
    match &pg.test_fsync {
        Some(t) => {
            let backend1 = pg
                .ingest
                .iter()
                .find(|i| i.callers == 1 && i.system == "pg-backend")
                .map_or(String::new(), |i| {
                    format!(
                        "; the backend at 1 caller: {} of it",
                        ratio(i.events_per_sec.median / t.fdatasync_ops_per_sec.median)
                    )
                });
            println!(
                "the database's floor: pg_test_fsync -s {}, fdatasync of one 8 kB write: {} ops/s ({:.0} µs/op){backend1}",
                t.secs_per_test,
                ranged(&t.fdatasync_ops_per_sec, count),
                t.fdatasync_usecs_per_op.median
            );
        }
        None => {
            println!("the database's floor: pg_test_fsync not run (quick run, or not installed)")
        }
    }

    println!("\nPOSTGRESQL BACKEND, drain of a pending backlog (no-op handler)");
    let mut rows = vec![strings(["backlog / workers", "events/s"])];
    for d in &pg.drain {
        rows.push(vec![
            format!(
                "{} pending, {} process{} × {} handler thread{}",
                count(d.events as f64),
                d.processes,
                if d.processes == 1 { "" } else { "es" },
                d.threads,
                if d.threads == 1 { "" } else { "s" }
            ),
            ranged(&d.events_per_sec, count),
        ]);
    }
    print_rows(&rows);
}

// ---- the chart -------------------------------------------------------------------

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Grouped horizontal bars of ingest events/s per concurrency (library, SQLite
/// FULL, SQLite NORMAL, bare log) and the library's two ratios.
pub fn chart(r: &Results) -> String {
    const W: f64 = 860.0;
    const LEFT: f64 = 190.0;
    const RIGHT: f64 = 110.0;
    const BAR: f64 = 15.0;
    let systems = [
        ("library", "this library (Fsync)", "#2b6cb0"),
        ("sqlite-full", "SQLite WAL FULL", "#dd6b20"),
        (
            "sqlite-normal",
            "SQLite WAL NORMAL (not durable)",
            "#f6ad55",
        ),
        ("bare-log", "bare group-committed log (floor)", "#718096"),
    ];
    let mut callers: Vec<usize> = r.ingest.iter().map(|i| i.callers).collect();
    callers.dedup();
    let max = r
        .ingest
        .iter()
        .map(|i| i.events_per_sec.median)
        .fold(1.0, f64::max);
    let scale = (W - LEFT - RIGHT) / max;

    let mut body = String::new();
    let mut y = 30.0;
    let kind = if r.quick { ", QUICK smoke run" } else { "" };
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let runs = if r.runs > 1 {
        format!(
            "medians of {} × {}",
            plural(r.runs, "run"),
            plural(r.rounds, "round")
        )
    } else {
        format!("median of {}", plural(r.rounds, "round"))
    };
    let _ = writeln!(
        body,
        r#"<text x="20" y="{y}" class="title">Durable ingest of 1 KiB Bluum deliveries, events/s ({runs}{kind})</text>"#
    );
    y += 22.0;
    let mut x = 20.0;
    for (_, label, color) in systems {
        let _ = writeln!(
            body,
            r#"<rect x="{x}" y="{}" width="12" height="12" fill="{color}"/><text x="{}" y="{}" class="legend">{}</text>"#,
            y - 10.0,
            x + 16.0,
            y,
            esc(label)
        );
        x += 30.0 + 6.5 * label.len() as f64;
    }
    y += 14.0;
    for &c in &callers {
        let top = y;
        for (i, (id, _, color)) in systems.iter().enumerate() {
            let Some(row) = r.ingest_row(c, id) else {
                continue;
            };
            let v = row.events_per_sec.median;
            let by = top + i as f64 * (BAR + 2.0);
            let w = (v * scale).max(1.0);
            let _ = writeln!(
                body,
                r#"<rect x="{LEFT}" y="{by}" width="{w:.1}" height="{BAR}" fill="{color}"/><text x="{:.1}" y="{:.1}" class="value">{}/s</text>"#,
                LEFT + w + 5.0,
                by + BAR - 3.5,
                count(v)
            );
        }
        let group = systems.len() as f64 * (BAR + 2.0);
        let _ = writeln!(
            body,
            r#"<text x="{:.1}" y="{:.1}" class="label" text-anchor="end">{}</text>"#,
            LEFT - 10.0,
            top + group / 2.0 + 4.0,
            caller_label(c)
        );
        y = top + group + 14.0;
    }

    // The ratios: two side-by-side panels.
    y += 16.0;
    let panels = [
        (
            "× SQLite FULL",
            "x_sqlite_full",
            [(16, 4.0), (64, 5.0)],
            20.0,
        ),
        (
            "× bare log (the disk's floor)",
            "x_bare_log",
            [(16, 0.8), (64, 0.8)],
            W / 2.0 + 10.0,
        ),
    ];
    let panel_w = W / 2.0 - 30.0;
    let label_w = 80.0;
    let mut bottom = y;
    for (title, field, targets, px) in panels {
        let value = |row: &IngestRow| match field {
            "x_sqlite_full" => row.x_sqlite_full.median,
            _ => row.x_bare_log.median,
        };
        let rows: Vec<&IngestRow> = callers
            .iter()
            .filter_map(|&c| r.ingest_row(c, "library"))
            .collect();
        let top_v = rows
            .iter()
            .map(|row| value(row))
            .chain(targets.iter().map(|t| t.1))
            .fold(1.0, f64::max)
            * 1.15;
        let s = (panel_w - label_w - 50.0) / top_v;
        let _ = writeln!(
            body,
            r#"<text x="{px}" y="{y}" class="title">this library {}</text>"#,
            esc(title)
        );
        let mut by = y + 12.0;
        for row in rows {
            let v = value(row);
            let bx = px + label_w;
            let goal = targets.iter().find(|t| t.0 == row.callers).map(|t| t.1);
            // The value goes past the bar and past the target line, if any.
            let text_x = bx + f64::max(v, goal.unwrap_or(0.0)) * s + 5.0;
            let _ = writeln!(
                body,
                r##"<text x="{:.1}" y="{:.1}" class="label" text-anchor="end">{}</text><rect x="{bx}" y="{by}" width="{:.1}" height="{BAR}" fill="#2b6cb0"/><text x="{text_x:.1}" y="{:.1}" class="value">{v:.2}×</text>"##,
                bx - 8.0,
                by + BAR - 3.5,
                caller_label(row.callers),
                (v * s).max(1.0),
                by + BAR - 3.5
            );
            if let Some(goal) = goal {
                let tx = bx + goal * s;
                let _ = writeln!(
                    body,
                    r##"<line x1="{tx:.1}" y1="{:.1}" x2="{tx:.1}" y2="{:.1}" stroke="#c53030" stroke-width="2" stroke-dasharray="3,2"/>"##,
                    by - 2.0,
                    by + BAR + 2.0
                );
            }
            by += BAR + 6.0;
        }
        let _ = writeln!(
            body,
            r##"<text x="{:.1}" y="{:.1}" class="note"><tspan fill="#c53030">┆</tspan> target at 16 and 64 callers</text>"##,
            px + label_w,
            by + 10.0
        );
        bottom = f64::max(bottom, by + 14.0);
    }
    y = bottom + 18.0;
    let m = &r.machine;
    let _ = writeln!(
        body,
        r#"<text x="20" y="{y}" class="note">{} × {}, Linux {}, {}; {}; generated by `cargo bench --bench compare -- --chart` from target/bench-results.json</text>"#,
        m.nproc,
        esc(&m.cpu_model),
        esc(&m.kernel),
        esc(&m.date),
        esc(m.filesystem.split(" (").next().unwrap_or_default()),
    );
    let h = y + 14.0;
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="Helvetica, Arial, sans-serif">
<style>
.title {{ font-size: 14px; font-weight: bold; fill: #1a202c; }}
.legend, .label {{ font-size: 12px; fill: #2d3748; }}
.value {{ font-size: 11px; fill: #1a202c; }}
.note {{ font-size: 10px; fill: #4a5568; }}
</style>
<rect width="100%" height="100%" fill="#ffffff"/>
{body}</svg>
"##
    )
}
