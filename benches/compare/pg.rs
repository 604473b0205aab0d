//! The PostgreSQL backend (feature `postgres`), measured only when
//! `WEBHOOK_INBOX_TEST_POSTGRES` names a database (as for the tests; the
//! README says how), each measurement in a fresh schema dropped afterwards:
//!
//! - durable ingest at 1, 4, 16 and 64 callers, on the same signed 1 KiB
//!   deliveries as `ingest.rs`, interleaved the same way:
//!   - `pg-backend`: `Ingestor::ingest` into `Inbox::postgres(url)`;
//!   - `pg-hand-rolled`: the inbox a user would write: the same signature
//!     check, then one autocommit `INSERT … ON CONFLICT (source, id) DO
//!     NOTHING` per delivery into a table keyed by (source, id), on a
//!     connection of the caller's own (a prepared statement);
//!   - `pg-floor`: one bare client inserting the same rows (checked the same
//!     way) 64 per transaction, one multi-row `INSERT` each: the most this
//!     database commits of these rows. Its latency is its batch's.
//! - drain of a pending backlog (pre-filled through the ingestor by 64
//!   callers, not timed) with 1, 2 and 4 handler threads in this process,
//!   and with two child processes (the bench binary again, with
//!   `COMPARE_CHILD=pg-drain`), each with its own `Inbox` and a `Worker` of 2
//!   threads: timed from the moment both are told to start until the
//!   backlog's `pending` count (polled every 20 ms) is 0.
//! - the database's own floor: `pg_test_fsync -s 2` (full runs only; it
//!   takes about 30 s), its fdatasync line for one 8 kB write.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use webhook_inbox::{Inbox, Worker, WorkerConfig};

use crate::common::Settings;
use crate::fixture::{self, Delivery, Latencies, Scratch};
use crate::report::{PgDrain, PgIngestRow, PgTestFsync, Postgres, Stat};
use crate::testdb::{self, Schema};
use crate::{ingest, million, worker};

/// The value of `COMPARE_CHILD` that makes the bench binary a drain child.
pub const CHILD: &str = "pg-drain";
const SCHEMA_ENV: &str = "COMPARE_PG_SCHEMA";
const THREADS_ENV: &str = "COMPARE_PG_THREADS";
/// The backend's pool (ingest has a connection of its own besides).
const POOL_SIZE: usize = webhook_inbox::postgres::DEFAULT_POOL_SIZE;
/// Rows per transaction of the floor.
const BATCH: usize = 64;
/// Callers filling a drain's backlog (not measured).
const PREFILL_CALLERS: usize = 64;
/// The drains measured: (processes, handler threads in each).
const DRAINS: [(usize, usize); 4] = [(1, 1), (1, 2), (1, 4), (2, 2)];
const TEST_FSYNC: &str = "/usr/lib/postgresql/15/bin/pg_test_fsync";
const TEST_FSYNC_SECS: u32 = 2;

/// The hand-rolled inbox's table (and the floor's).
const TABLE: &str = "(source text NOT NULL, id text NOT NULL, type text NOT NULL, \
     received_at bigint NOT NULL, body bytea NOT NULL, PRIMARY KEY (source, id))";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum System {
    Backend,
    HandRolled,
    Floor,
}

impl System {
    const ALL: [Self; 3] = [Self::Backend, Self::HandRolled, Self::Floor];

    fn id(self) -> &'static str {
        match self {
            Self::Backend => "pg-backend",
            Self::HandRolled => "pg-hand-rolled",
            Self::Floor => "pg-floor",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Backend => "this library, PostgreSQL backend",
            Self::HandRolled => {
                "hand-rolled: INSERT … ON CONFLICT DO NOTHING, autocommit, a connection per caller"
            }
            Self::Floor => "bare client, 64 rows per transaction (floor)",
        }
    }

    fn run(self, work: &[Vec<Delivery>]) -> (f64, Latencies) {
        match self {
            Self::Backend => run_backend(work),
            Self::HandRolled => run_hand_rolled(work),
            Self::Floor => run_floor(work),
        }
    }
}

/// A fresh schema (dropped with the guard); the URL is known to be set.
fn fresh(what: &str) -> Schema {
    Schema::fresh(what).expect("WEBHOOK_INBOX_TEST_POSTGRES is set")
}

fn connect(schema: &Schema) -> Inbox {
    schema
        .inbox()
        .pool_size(POOL_SIZE)
        .max_pending(u64::MAX)
        .connect()
        .expect("connect the PostgreSQL inbox")
}

fn run_backend(work: &[Vec<Delivery>]) -> (f64, Latencies) {
    let schema = fresh("bench_ingest");
    let inbox = connect(&schema);
    let ingestor = fixture::ingestor(&inbox);
    let result = ingest::drive(work, |d| fixture::accept(&ingestor, d));
    drop(ingestor);
    inbox.close().expect("close");
    result
}

/// A client of `schema`, created with the hand-rolled table in it.
fn with_table(schema: &Schema) -> postgres::Client {
    let mut client = schema.client();
    client
        .batch_execute(&format!(
            "CREATE SCHEMA \"{0}\"; CREATE TABLE \"{0}\".events {TABLE}",
            schema.name()
        ))
        .expect("the hand-rolled table");
    client
}

fn run_hand_rolled(work: &[Vec<Delivery>]) -> (f64, Latencies) {
    let schema = fresh("bench_hand");
    drop(with_table(&schema));
    // A connection per caller, connected (untimed) before the start.
    let connections: Vec<Mutex<(postgres::Client, postgres::Statement)>> = work
        .iter()
        .map(|_| {
            let mut client = schema.client();
            let insert = client
                .prepare(
                    "INSERT INTO events (source, id, type, received_at, body) \
                     VALUES ('bluum', $1, 'order.filled', $2, $3) ON CONFLICT DO NOTHING",
                )
                .expect("statement");
            Mutex::new((client, insert))
        })
        .collect();
    let work: Vec<Vec<(usize, &Delivery)>> = work
        .iter()
        .enumerate()
        .map(|(c, mine)| mine.iter().map(|d| (c, d)).collect())
        .collect();
    let verifier = fixture::verifier();
    ingest::drive(&work, |&(c, d)| {
        let v = verifier.verify(&d.headers, &d.body).expect("genuine");
        let mut connection = connections[c].lock().expect("connection");
        let (client, insert) = &mut *connection;
        let id = v.id().unwrap_or_default();
        let rows = client
            .execute(
                &*insert,
                &[&id, &v.timestamp().unwrap_or(0), &d.body.as_slice()],
            )
            .expect("insert");
        assert_eq!(rows, 1, "a fresh id is inserted");
    })
}

fn run_floor(work: &[Vec<Delivery>]) -> (f64, Latencies) {
    let schema = fresh("bench_floor");
    let mut client = with_table(&schema);
    let insert = client
        .prepare(&format!(
            "INSERT INTO \"{}\".events (source, id, type, received_at, body) \
             SELECT 'bluum', i, 'order.filled', t, b FROM unnest($1::text[], $2::bigint[], $3::bytea[]) AS r(i, t, b)",
            schema.name()
        ))
        .expect("statement");
    let all: Vec<&Delivery> = work.iter().flatten().collect();
    let verifier = fixture::verifier();
    let mut nanos = Vec::with_capacity(all.len());
    let start = Instant::now();
    for batch in all.chunks(BATCH) {
        let t = Instant::now();
        let (mut ids, mut times, mut bodies) = (Vec::new(), Vec::new(), Vec::new());
        for d in batch {
            let v = verifier.verify(&d.headers, &d.body).expect("genuine");
            ids.push(v.id().unwrap_or_default().to_owned());
            times.push(v.timestamp().unwrap_or(0));
            bodies.push(d.body.as_slice());
        }
        let rows = client
            .execute(&insert, &[&ids, &times, &bodies])
            .expect("insert a batch");
        assert_eq!(rows, batch.len() as u64, "fresh ids are inserted");
        let batch_nanos = fixture::nanos_since(t);
        nanos.extend(std::iter::repeat_n(batch_nanos, batch.len()));
    }
    (
        all.len() as f64 / start.elapsed().as_secs_f64(),
        Latencies::new(nanos),
    )
}

/// Deliveries per caller: as many as the embedded rows in a full run; a few
/// hundred in all in a quick one (100 at 1 caller, 256 otherwise).
fn per_caller(callers: usize, quick: bool) -> usize {
    if quick {
        let total: usize = if callers == 1 { 100 } else { 256 };
        total.div_ceil(callers)
    } else {
        ingest::per_caller(callers, false)
    }
}

fn measure_ingest(settings: &Settings) -> Vec<PgIngestRow> {
    let at = |s: System| System::ALL.iter().position(|&x| x == s).unwrap_or(0);
    let measured = ingest::rounds(
        settings,
        "pg",
        &System::ALL,
        System::id,
        |callers| per_caller(callers, settings.quick),
        |system, work| system.run(work),
    );
    let mut rows = Vec::new();
    for r in measured {
        for (i, system) in System::ALL.into_iter().enumerate() {
            let [p50_ms, p99_ms, p999_ms] = r.percentiles(i);
            rows.push(PgIngestRow {
                callers: r.callers,
                system: system.id().to_owned(),
                label: system.label().to_owned(),
                events_per_round: r.events_per_round,
                events_per_sec: r.events_per_sec(i),
                x_hand_rolled: r.ratio(i, at(System::HandRolled)),
                x_floor: r.ratio(i, at(System::Floor)),
                p50_ms,
                p99_ms,
                p999_ms,
            });
        }
    }
    rows
}

// ---- the drain ------------------------------------------------------------------

/// Events/s of `processes` × `threads` handler threads draining `n` events
/// stored beforehand in a fresh schema.
fn run_drain(n: usize, processes: usize, threads: usize, run: usize) -> f64 {
    let schema = fresh("bench_drain");
    let inbox = connect(&schema);
    let ingestor = fixture::ingestor(&inbox);
    worker::prefill_through(&ingestor, n, &format!("pgd{run}"), PREFILL_CALLERS);
    drop(ingestor);
    assert_eq!(
        inbox.stats().pending,
        n as u64,
        "pending after the pre-fill"
    );
    let secs = if processes == 1 {
        let start = Instant::now();
        let worker = Worker::start(
            &inbox,
            fixture::noop_router(),
            WorkerConfig::default().threads(threads),
        )
        .expect("worker");
        fixture::wait_handled(&worker, n as u64);
        let secs = start.elapsed().as_secs_f64();
        worker.shutdown().expect("shutdown");
        secs
    } else {
        drain_in_children(&inbox, schema.name(), n, processes, threads)
    };
    assert_eq!(inbox.stats().pending, 0, "pending after the drain");
    inbox.close().expect("close");
    n as f64 / secs
}

/// A drain child: its stdin (`go`, `stop`) and stdout (`ready`, its report).
struct DrainChild {
    process: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl DrainChild {
    fn spawn(schema: &str, threads: usize) -> Self {
        let mut process = Command::new(std::env::current_exe().expect("the bench binary"))
            .env(million::CHILD_ENV, CHILD)
            .env(SCHEMA_ENV, schema)
            .env(THREADS_ENV, threads.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start a drain child");
        let stdin = process.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(process.stdout.take().expect("piped stdout"));
        Self {
            process,
            stdin,
            stdout,
        }
    }

    fn tell(&mut self, what: &str) {
        writeln!(self.stdin, "{what}")
            .and_then(|()| self.stdin.flush())
            .expect("write to a drain child");
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("read from a drain child");
        assert!(!line.is_empty(), "a drain child exited early");
        line.trim_end().to_owned()
    }
}

/// Seconds until `processes` children, told to start together, have drained
/// all `n` events of `schema` (watched through `inbox`).
fn drain_in_children(
    inbox: &Inbox,
    schema: &str,
    n: usize,
    processes: usize,
    threads: usize,
) -> f64 {
    const PATIENCE: Duration = Duration::from_secs(600);
    // `Inbox::stats` is three queries: not too often, to leave the
    // database to the workers.
    const POLL: Duration = Duration::from_millis(20);
    let mut children: Vec<DrainChild> = (0..processes)
        .map(|_| DrainChild::spawn(schema, threads))
        .collect();
    for child in &mut children {
        assert_eq!(child.line(), "ready", "a drain child's first line");
    }
    let start = Instant::now();
    for child in &mut children {
        child.tell("go");
    }
    let (mut last, mut since) = (n as u64, Instant::now());
    loop {
        let pending = inbox.stats().pending;
        if pending == 0 {
            break;
        }
        if pending != last {
            (last, since) = (pending, Instant::now());
        }
        assert!(
            since.elapsed() < PATIENCE,
            "the drain stalled at {pending} pending"
        );
        for child in &mut children {
            let exited = child.process.try_wait().expect("a drain child's status");
            assert!(exited.is_none(), "a drain child exited: {exited:?}");
        }
        std::thread::sleep(POLL);
    }
    let secs = start.elapsed().as_secs_f64();
    let mut handled = 0;
    for child in &mut children {
        child.tell("stop");
    }
    for mut child in children {
        let report = child.line();
        let count = report
            .strip_prefix("handled ")
            .and_then(|k| k.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("a drain child's report: {report:?}"));
        handled += count;
        let status = child.process.wait().expect("a drain child's status");
        assert!(status.success(), "a drain child failed: {status}");
    }
    assert_eq!(handled, n as u64, "events handled by the children");
    secs
}

/// The drain child: connects to the schema the parent named, says `ready`,
/// runs a worker from `go` to `stop`, then prints `handled {n}`.
pub fn child() {
    let url = std::env::var(testdb::VAR).expect("WEBHOOK_INBOX_TEST_POSTGRES");
    let schema = std::env::var(SCHEMA_ENV).expect("COMPARE_PG_SCHEMA");
    let threads: usize = std::env::var(THREADS_ENV)
        .ok()
        .and_then(|t| t.parse().ok())
        .expect("COMPARE_PG_THREADS");
    let inbox = Inbox::postgres(&url)
        .schema(schema)
        .pool_size(POOL_SIZE)
        .max_pending(u64::MAX)
        .connect()
        .expect("connect the PostgreSQL inbox");
    let mut stdin = std::io::stdin().lock();
    let mut line = String::new();
    println!("ready");
    std::io::stdout().flush().expect("stdout");
    stdin.read_line(&mut line).expect("go");
    let worker = Worker::start(
        &inbox,
        fixture::noop_router(),
        WorkerConfig::default().threads(threads),
    )
    .expect("worker");
    line.clear();
    stdin.read_line(&mut line).expect("stop");
    // The last outcomes are recorded: let their counters catch up.
    let deadline = Instant::now() + Duration::from_secs(5);
    while worker.stats().in_flight > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let stats = worker.stats();
    assert!(
        stats.retried + stats.dead_lettered + stats.unknown + stats.store_errors == 0,
        "a no-op handler failed: {stats:?}"
    );
    worker.shutdown().expect("shutdown");
    inbox.close().expect("close");
    println!("handled {}", stats.handled);
}

fn measure_drain(settings: &Settings) -> Vec<PgDrain> {
    let n = if settings.quick { 1_000 } else { 100_000 };
    let mut rates = vec![Vec::new(); DRAINS.len()];
    let mut run = 0;
    for round in 0..settings.rounds {
        for (i, &(processes, threads)) in DRAINS.iter().enumerate() {
            run += 1;
            let rate = run_drain(n, processes, threads, run);
            eprintln!(
                "  postgres drain {n}, {processes} process(es) × {threads} thread(s) round {}: {rate:>8.0} events/s",
                round + 1
            );
            rates[i].push(rate);
        }
    }
    DRAINS
        .iter()
        .zip(rates)
        .map(|(&(processes, threads), rates)| PgDrain {
            events: n,
            processes,
            threads,
            events_per_sec: Stat::of(&rates),
        })
        .collect()
}

// ---- the database's floor ----------------------------------------------------------

/// ops/s and µs/op of the fdatasync line in `pg_test_fsync`'s "one 8kB
/// write" section.
fn parse_test_fsync(out: &str) -> Option<(f64, f64)> {
    out.lines()
        .skip_while(|l| !l.contains("one 8kB write"))
        .take_while(|l| !l.trim().is_empty())
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f.as_slice() {
                ["fdatasync", ops, "ops/sec", usecs, "usecs/op"] => {
                    Some((ops.parse().ok()?, usecs.parse().ok()?))
                }
                _ => None,
            }
        })
}

fn test_fsync(settings: &Settings) -> Option<PgTestFsync> {
    if settings.quick {
        eprintln!("  pg_test_fsync: skipped in a quick run (it takes about 30 s)");
        return None;
    }
    if !Path::new(TEST_FSYNC).exists() {
        eprintln!("  pg_test_fsync: {TEST_FSYNC} is not installed, skipped");
        return None;
    }
    // On the bench's disk (here the same device as the database's).
    let dir = Scratch::new("pg-test-fsync");
    let out = Command::new(TEST_FSYNC)
        .arg("-s")
        .arg(TEST_FSYNC_SECS.to_string())
        .arg("-f")
        .arg(dir.path().join("pg_test_fsync.out"))
        .stderr(Stdio::inherit())
        .output()
        .expect("run pg_test_fsync");
    assert!(out.status.success(), "pg_test_fsync failed: {}", out.status);
    let Some((ops, usecs)) = parse_test_fsync(&String::from_utf8_lossy(&out.stdout)) else {
        eprintln!("  pg_test_fsync: no fdatasync line for one 8kB write in its output");
        return None;
    };
    eprintln!("  pg_test_fsync -s {TEST_FSYNC_SECS}: fdatasync {ops:.0} ops/s, {usecs:.0} µs/op");
    Some(PgTestFsync {
        secs_per_test: TEST_FSYNC_SECS,
        fdatasync_ops_per_sec: Stat::of(&[ops]),
        fdatasync_usecs_per_op: Stat::of(&[usecs]),
    })
}

/// Every PostgreSQL row, or `None` (said why) without a test database.
pub fn measure(settings: &Settings) -> Option<Postgres> {
    if std::env::var(testdb::VAR).map_or(true, |u| u.is_empty()) {
        eprintln!(
            "  PostgreSQL rows skipped: {} is not set (see README, \"Running the PostgreSQL tests\")",
            testdb::VAR
        );
        return None;
    }
    let server_version: String = fresh("bench_version")
        .client()
        .query_one("SHOW server_version", &[])
        .and_then(|row| row.try_get(0))
        .expect("the server's version");
    eprintln!("  PostgreSQL {server_version}");
    let test_fsync = test_fsync(settings);
    let ingest = measure_ingest(settings);
    let drain = measure_drain(settings);
    Some(Postgres {
        server_version,
        pool_size: POOL_SIZE,
        ingest,
        drain,
        test_fsync,
    })
}
