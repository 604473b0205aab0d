//! Several replica processes on one PostgreSQL schema (feature `postgres`;
//! the database comes from `WEBHOOK_INBOX_TEST_POSTGRES`; without it each
//! test says why and passes, except under `CI=true`, where it fails).
//!
//! The parent runs this test binary as its replicas (the ignored `*_child`
//! tests), each connected to the test's fresh schema. A replica's handlers
//! record what they do in tables of the test's own beside the inbox's
//! (`t_runs`, `t_done`, `t_lost`, `t_order`), through their own connections
//! and committed before the handler returns, so a record survives the
//! replica's SIGKILL; they are timestamped by the database
//! (`clock_timestamp()`), one clock for every process, so runs on different
//! replicas can be put in order. (A shared append-only file would survive
//! the kill as well, but would carry each process's own clock reading.)
//!
//! - `sigkill_replicas_lose_nothing_and_never_rerun_a_recorded_success`:
//!   three replicas ingest from several threads and work with a 2 s lease;
//!   every round one of them, at random, is SIGKILLed and restarted
//!   (`PG_CRASH_ROUNDS`, default 20; `PG_CRASH_SEED` replays the kills;
//!   `PG_KEEP_SCHEMA` keeps the tables to look at). The last three are
//!   killed too and a final replica drains; then every acknowledged event
//!   is handled or dead, nothing else is stored, the counts add up, and no
//!   event ran after its success was recorded (or twice at once) except on
//!   a stale claim (see `check_crash_records`).
//! - `ordering_key_holds_across_replica_processes`: three replicas with
//!   `ordering_key("/key")` ingest interleaved keys concurrently; no two runs
//!   of one key overlap, and each key's events run in acceptance order.
//! - `claims_of_a_replica_killed_mid_handler_run_elsewhere_after_the_lease`
//!   (2 s) and `…_after_the_shortest_lease` (1 s): a replica's handlers hang
//!   for 10 s; its heartbeat must keep the claims (sampled in the database
//!   every 5 ms; the other replica must not run them); it is SIGKILLed, and
//!   the other replica runs them within the lease plus 3 s. That the killed
//!   replica's late outcome would be refused is the conformance suite's
//!   `finish_with_a_stale_token_is_refused_and_writes_nothing`.
#![cfg(feature = "postgres")]

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, Write};
use std::process::{ChildStdin, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{SECRET, bluum_body, bluum_headers};
use webhook_inbox::{
    Backoff, Event, EventQuery, EventState, HandlerError, Inbox, Ingested, Report, Router, Scheme,
    Verifier, Worker, WorkerConfig,
};

/// The test database: `common::postgres` (`PG_KEEP_SCHEMA` keeps a test's
/// schema, to look at what a failing run left behind).
use common::postgres as pg;

const CHILD_ENV: &str = "WEBHOOK_INBOX_PG_REPLICA";

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------
// A replica process, as the parent sees it.

type Lines = Arc<Mutex<Vec<(Instant, String)>>>;

/// One replica: this test binary run as a child for one ignored test. Its
/// stdout lines are collected with the moment they arrived; dropping it
/// SIGKILLs it (so a failing test leaves no replica behind).
struct Replica {
    name: String,
    process: std::process::Child,
    stdin: Option<ChildStdin>,
    lines: Lines,
    errors: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
}

impl Replica {
    /// Starts test `test` with `spec` in its environment and waits until it
    /// says `READY` (it is connected and its worker runs).
    fn start(test: &str, spec: String) -> Self {
        let mut process = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                test,
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &spec)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (stdout, stderr) = (
            process.stdout.take().unwrap(),
            process.stderr.take().unwrap(),
        );
        let lines: Lines = Arc::default();
        let errors: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = Arc::clone(&lines);
        let out = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                locked(&sink).push((Instant::now(), line));
            }
        });
        let sink = Arc::clone(&errors);
        let err = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let mut errors = locked(&sink);
                if errors.len() < 200 {
                    errors.push(line);
                }
            }
        });
        let replica = Self {
            name: format!("{test} {spec}"),
            stdin: process.stdin.take(),
            process,
            lines,
            errors,
            readers: vec![out, err],
        };
        // The harness prints `test name ... ` before it, unterminated.
        replica.wait_for("READY", Duration::from_secs(30), |lines| {
            lines.iter().any(|(_, l)| l.ends_with("READY"))
        });
        replica
    }

    fn lines(&self) -> MutexGuard<'_, Vec<(Instant, String)>> {
        locked(&self.lines)
    }

    /// Waits until `done` holds of its lines, or fails after `limit` with
    /// what the replica said on stderr.
    fn wait_for(
        &self,
        what: &str,
        limit: Duration,
        done: impl Fn(&[(Instant, String)]) -> bool,
    ) -> Instant {
        let deadline = Instant::now() + limit;
        loop {
            if done(&self.lines()) {
                return Instant::now();
            }
            assert!(
                Instant::now() < deadline,
                "{}: no {what} within {limit:?}; its stderr:\n{}",
                self.name,
                locked(&self.errors).join("\n")
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Sends it a line on stdin.
    fn tell(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{line}").expect("tell the replica");
        stdin.flush().expect("tell the replica");
    }

    /// SIGKILLs it and returns every line it printed.
    fn kill(mut self) -> Vec<(Instant, String)> {
        self.stop();
        std::mem::take(&mut *self.lines())
    }

    fn stop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------------
// What a replica uses.

/// The child's spec: the database URL and the `|`-separated fields the
/// parent passed; `None` when not run as a child.
fn child_spec() -> Option<(String, Vec<String>)> {
    let spec = std::env::var(CHILD_ENV).ok()?;
    let url = std::env::var(pg::VAR).expect("the parent passes the database on");
    Some((url, spec.split('|').map(str::to_owned).collect()))
}

type Out = Arc<Mutex<std::io::Stdout>>;

fn say(out: &Out, line: &str) {
    let mut out = locked(out);
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Connections for the handlers' own records, taken and given back.
struct Side {
    url: String,
    idle: Mutex<Vec<postgres::Client>>,
}

impl Side {
    fn new(url: &str) -> Arc<Self> {
        Arc::new(Self {
            url: url.to_owned(),
            idle: Mutex::default(),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut postgres::Client) -> Result<T, postgres::Error>,
    ) -> Result<T, postgres::Error> {
        let popped = locked(&self.idle).pop();
        let mut client = match popped {
            Some(c) => c,
            None => postgres::Client::connect(&self.url, postgres::NoTls)?,
        };
        let result = f(&mut client);
        if !client.is_closed() {
            locked(&self.idle).push(client);
        }
        result
    }
}

fn connect_replica(url: &str, schema: &str) -> Inbox {
    Inbox::postgres(url)
        .schema(schema)
        .pool_size(2)
        .connect()
        .expect("connect the replica")
}

fn verifier() -> Verifier {
    Verifier::new(Scheme::bluum(), [SECRET]).expect("secret")
}

fn as_i32(n: impl TryInto<i32>) -> i32 {
    n.try_into().unwrap_or(i32::MAX)
}

/// Every stored event, page by page.
fn stored_events(inbox: &Inbox) -> Vec<webhook_inbox::StoredEvent> {
    let mut all = Vec::new();
    let mut query = EventQuery::all().limit(1000);
    loop {
        let page = inbox.events(&query).expect("list events");
        all.extend(page.events);
        match page.next {
            Some(next) => query = query.after(next),
            None => return all,
        }
    }
}

/// Waits until nothing is pending in the inbox (every replica's view is
/// the same counters).
fn drained(inbox: &Inbox, limit: Duration) -> Duration {
    let started = Instant::now();
    while inbox.stats().pending > 0 {
        assert!(
            started.elapsed() < limit,
            "{} events still pending after {limit:?}",
            inbox.stats().pending
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    started.elapsed()
}

// ---------------------------------------------------------------------------
// a. SIGKILL a random replica every round.

const CRASH_INGEST_THREADS: usize = 3;
const CRASH_PER_THREAD: usize = 200;
const CRASH_LEASE: Duration = Duration::from_secs(2);

const CRASH_TABLES: &str = "
CREATE TABLE {s}.t_runs (
    run_id bigserial PRIMARY KEY,
    event_id text NOT NULL,
    inc int NOT NULL,
    replica int NOT NULL,
    attempt int NOT NULL,
    started timestamptz NOT NULL DEFAULT clock_timestamp(),
    ended timestamptz,
    ok boolean
);
CREATE INDEX ON {s}.t_runs (event_id, started);
CREATE TABLE {s}.t_done (
    event_id text NOT NULL,
    inc int NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX ON {s}.t_done (event_id);
CREATE TABLE {s}.t_lost (
    event_id text NOT NULL,
    inc int NOT NULL,
    attempt int NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);";

/// Ids ending in `0` fail for good; ids ending in `7` fail their first
/// attempt. Each run is a row of `t_runs`, inserted when it starts and
/// closed (`ended`, `ok`) before the handler returns: a row without `ended`
/// is a run a kill interrupted.
fn crash_router(side: &Arc<Side>, schema: &str, replica: i32, inc: i32) -> Router {
    let side = Arc::clone(side);
    let (start, end) = (
        format!(
            "INSERT INTO \"{schema}\".t_runs (event_id, inc, replica, attempt) \
             VALUES ($1, $2, $3, $4) RETURNING run_id"
        ),
        format!(
            "UPDATE \"{schema}\".t_runs SET ended = clock_timestamp(), ok = $2 WHERE run_id = $1"
        ),
    );
    Router::builder()
        .on("*", move |e: &Event| {
            let attempt = as_i32(e.attempt());
            let run: i64 = side
                .with(|c| c.query_one(&start, &[&e.id(), &inc, &replica, &attempt]))
                .map_err(HandlerError::retry)?
                .get(0);
            let outcome = if e.id().ends_with('0') {
                Err(HandlerError::permanent("refused on purpose"))
            } else if e.id().ends_with('7') && attempt == 1 {
                Err(HandlerError::retry_after(
                    Duration::from_millis(20),
                    "first attempt fails on purpose",
                ))
            } else {
                Ok(())
            };
            side.with(|c| c.execute(&end, &[&run, &outcome.is_ok()]))
                .map_err(HandlerError::retry)?;
            outcome
        })
        .build()
        .unwrap()
}

/// A 2 s lease; a recorded success goes to `t_done` and a refused outcome
/// to `t_lost`, from the observer (called once the outcome is committed),
/// through a thread of their own: the observer runs on the scheduler
/// thread, which also keeps the leases alive, so it must not wait for the
/// database. The thread ends (join it) once the worker is shut down.
fn crash_config(side: &Arc<Side>, schema: &str, inc: i32) -> (WorkerConfig, JoinHandle<()>) {
    let side = Arc::clone(side);
    let (done, lost) = (
        format!("INSERT INTO \"{schema}\".t_done (event_id, inc) SELECT unnest($1::text[]), $2"),
        format!(
            "INSERT INTO \"{schema}\".t_lost (event_id, inc, attempt) \
             SELECT unnest($1::text[]), $2, unnest($3::int[])"
        ),
    );
    // (id, None) for a recorded success, (id, Some(attempt)) for a lost lease.
    let (tx, rx) = std::sync::mpsc::channel::<(String, Option<i32>)>();
    let writer = std::thread::spawn(move || {
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            batch.extend(rx.try_iter().take(1000));
            let (mut handled, mut refused, mut attempts) = (Vec::new(), Vec::new(), Vec::new());
            for (id, attempt) in batch {
                match attempt {
                    None => handled.push(id),
                    Some(a) => {
                        refused.push(id);
                        attempts.push(a);
                    }
                }
            }
            let written = side.with(|c| {
                if !handled.is_empty() {
                    c.execute(&done, &[&handled, &inc])?;
                }
                if !refused.is_empty() {
                    c.execute(&lost, &[&refused, &inc, &attempts])?;
                }
                Ok(())
            });
            if let Err(err) = written {
                eprintln!("could not record the observer's reports: {err}");
            }
        }
    });
    let tx = Mutex::new(tx);
    let config = WorkerConfig::default()
        .threads(2)
        .lease(CRASH_LEASE)
        .backoff(Backoff::ladder([Duration::from_millis(20); 8]))
        .observe(move |e: &Event, r: &Report| {
            let report = match r {
                Report::Handled => None,
                Report::LeaseLost { attempt } => Some(as_i32(*attempt)),
                _ => return,
            };
            let _ = locked(&tx).send((e.id().to_owned(), report));
        });
    (config, writer)
}

#[test]
#[ignore = "a replica of `sigkill_replicas_lose_nothing_and_never_rerun_a_recorded_success`"]
fn crash_replica_child() {
    let Some((url, spec)) = child_spec() else {
        return;
    };
    let [schema, replica, inc] = &spec[..] else {
        panic!("spec: schema|replica|incarnation")
    };
    let (replica, inc): (i32, i32) = (replica.parse().unwrap(), inc.parse().unwrap());
    let inbox = connect_replica(&url, schema);
    let side = Side::new(&url);
    let (config, _writer) = crash_config(&side, schema, inc);
    let _worker =
        Worker::start(&inbox, crash_router(&side, schema, replica, inc), config).expect("worker");
    let ingestor = inbox.ingestor(verifier()).build().expect("ingestor");
    let out: Out = Arc::new(Mutex::new(std::io::stdout()));
    say(&out, "READY");
    std::thread::scope(|s| {
        for t in 0..CRASH_INGEST_THREADS {
            let (ingestor, out) = (&ingestor, &out);
            s.spawn(move || {
                for n in 0..CRASH_PER_THREAD {
                    // Every fifth delivery is an id every incarnation sends:
                    // replicas race to accept it, the later ones see a duplicate.
                    let id = if n % 5 == 4 {
                        format!("c-t{t}-{n}")
                    } else {
                        format!("i{inc}-t{t}-{n}")
                    };
                    let body = bluum_body("order.filled", n as u64);
                    if let Ok(Ingested::Accepted { .. } | Ingested::Duplicate { .. }) =
                        ingestor.ingest(&bluum_headers(&id, &body), &body)
                    {
                        say(out, &format!("ACK {id}"));
                    }
                }
            });
        }
    });
    say(&out, "INGESTED");
    // Working until killed (bounded, should the parent be gone).
    std::thread::sleep(Duration::from_secs(120));
}

/// The figures of the crash loop's checks that are counted, not asserted zero.
struct CrashFigures {
    runs: i64,
    stale_after: i64,
    interrupted: i64,
    completed_twice: i64,
    leases_lost: i64,
}

#[test]
fn sigkill_replicas_lose_nothing_and_never_rerun_a_recorded_success() {
    let Some(url) = pg::url() else {
        return;
    };
    let rounds: usize = std::env::var("PG_CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let mut seed = std::env::var("PG_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(common::seed)
        | 1;
    println!("PG_CRASH_SEED={seed}");
    let schema = pg::Schema::at(&url, "replicas");
    let inbox = connect_replica(&url, schema.name());
    pg::client(&url)
        .batch_execute(&schema.sql(CRASH_TABLES))
        .unwrap();
    let started = Instant::now();

    let spec = |slot: usize, inc: usize| format!("{}|{slot}|{inc}", schema.name());
    let mut next_inc = 0;
    let mut slots: Vec<(usize, Replica)> = Vec::new();
    for slot in 0..3 {
        slots.push((
            next_inc,
            Replica::start("crash_replica_child", spec(slot, next_inc)),
        ));
        next_inc += 1;
    }
    let mut acked: HashSet<String> = HashSet::new();
    let mut killed: HashSet<i32> = HashSet::new();
    let mut killed_mid_ingest = 0;
    let mut collect = |inc: usize, lines: Vec<(Instant, String)>| {
        killed.insert(as_i32(inc));
        let ingested = lines.iter().any(|(_, l)| l == "INGESTED");
        acked.extend(
            lines
                .into_iter()
                .filter_map(|(_, l)| l.strip_prefix("ACK ").map(str::to_owned)),
        );
        usize::from(!ingested)
    };
    for _round in 0..rounds {
        // A random moment 100–900 ms after the last restart: mostly while
        // the new replica ingests, always while the others work.
        std::thread::sleep(Duration::from_millis(
            100 + common::next_random(&mut seed) % 800,
        ));
        let slot = (common::next_random(&mut seed) % 3) as usize;
        let (inc, replica) = slots.swap_remove(slot);
        killed_mid_ingest += collect(inc, replica.kill()); // SIGKILL
        let fresh = Replica::start("crash_replica_child", spec(slot, next_inc));
        slots.push((next_inc, fresh));
        slots.swap(slot, 2);
        next_inc += 1;
    }
    // Stop all: SIGKILL the last three too, so their claims must come back
    // by their leases running out.
    for (inc, replica) in slots.drain(..) {
        killed_mid_ingest += collect(inc, replica.kill());
    }
    let rounds_took = started.elapsed();

    // A final replica (this process, not killed) drains what is left.
    let side = Side::new(&url);
    let (config, writer) = crash_config(&side, schema.name(), as_i32(next_inc));
    let worker = Worker::start(
        &inbox,
        crash_router(&side, schema.name(), 3, as_i32(next_inc)),
        config,
    )
    .unwrap();
    let drain = drained(&inbox, Duration::from_secs(120));
    let worker_stats = worker.stats();
    worker.shutdown().unwrap();
    writer.join().unwrap();

    let figures = check_crash_records(&url, &schema, &killed);
    let mut db = pg::client(&url);
    let mut ids = |sql: &str| -> HashSet<String> {
        db.query(&schema.sql(sql), &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    let ran = ids("SELECT DISTINCT event_id FROM {s}.t_runs");
    let succeeded = ids("SELECT DISTINCT event_id FROM {s}.t_runs WHERE ok");

    // What the library says: only dead letters are left, and only those
    // that failed on purpose.
    let stored = stored_events(&inbox);
    let dead: HashSet<String> = stored
        .iter()
        .filter(|e| e.state == EventState::Dead)
        .map(|e| e.id.clone())
        .collect();
    let stuck: Vec<&str> = stored
        .iter()
        .filter(|e| e.state != EventState::Dead || !e.id.ends_with('0'))
        .map(|e| e.id.as_str())
        .take(20)
        .collect();
    assert!(stuck.is_empty(), "still stored after the drain: {stuck:?}");

    // Accepted = acknowledged or run (an event accepted by a replica killed
    // before it printed `ACK` ran in the drain).
    let accepted: HashSet<&str> = acked.iter().chain(&ran).map(String::as_str).collect();
    let lost: Vec<&String> = acked
        .iter()
        .filter(|id| !succeeded.contains(*id) && !dead.contains(*id))
        .take(20)
        .collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    let mut completed = 0usize;
    for id in &accepted {
        if id.ends_with('0') {
            assert!(
                dead.contains(*id),
                "{id} failed for good but is no dead letter"
            );
        } else {
            assert!(succeeded.contains(*id), "{id} never succeeded");
            completed += 1;
        }
    }
    assert!(dead.iter().all(|id| accepted.contains(id.as_str())));

    // Every acknowledged id keeps its dedup marker: a re-delivery is a duplicate.
    let ingestor = inbox.ingestor(verifier()).build().unwrap();
    let acked_list: Vec<&String> = acked.iter().collect();
    std::thread::scope(|s| {
        for part in acked_list.chunks(acked_list.len().div_ceil(8).max(1)) {
            let ingestor = &ingestor;
            s.spawn(move || {
                for id in part {
                    let body = bluum_body("order.filled", 0);
                    let outcome = ingestor.ingest(&bluum_headers(id, &body), &body);
                    assert!(
                        matches!(outcome, Ok(Ingested::Duplicate { .. })),
                        "{id} lost its dedup marker: {outcome:?}"
                    );
                }
            });
        }
    });

    let stats = inbox.stats();
    assert_eq!((stats.pending, stats.retrying), (0, 0));
    assert_eq!(stats.dead as usize, dead.len());
    assert_eq!(
        stats.dedup_markers as usize,
        accepted.len(),
        "dedup markers != events accepted"
    );
    assert_eq!(
        completed + dead.len() + stats.pending as usize,
        accepted.len(),
        "completed {completed} + dead {} + pending {} != accepted {}",
        dead.len(),
        stats.pending,
        accepted.len()
    );
    println!(
        "{rounds} rounds, {} replica processes SIGKILLed ({killed_mid_ingest} while ingesting), \
         {:.1} s; final drain {:.1} s. {} accepted, {} acknowledged, {} runs ({} interrupted by a kill), \
         {completed} completed, {} dead, 0 pending; 0 acknowledged but lost; 0 runs after a recorded \
         success, 0 runs of one event at once, 0 successes not recorded, except by stale claims \
         (lapsed: replica killed, or outcome refused): {} runs after a recorded success, {} \
         events succeeded twice, {} outcomes refused for a lost lease (final replica: {} handled, \
         {} leases lost)",
        killed.len(),
        rounds_took.as_secs_f64(),
        drain.as_secs_f64(),
        accepted.len(),
        acked.len(),
        figures.runs,
        figures.interrupted,
        dead.len(),
        figures.stale_after,
        figures.completed_twice,
        figures.leases_lost,
        worker_stats.handled,
        worker_stats.leases_lost,
    );
    assert!(
        killed_mid_ingest > 0 || rounds < 5,
        "no kill landed while a replica ingested: the test proved little"
    );
    assert!(
        figures.interrupted > 0 || rounds < 10,
        "no kill landed while a handler ran: the test proved little"
    );
    drop(ingestor);
    inbox.close().unwrap();
}

/// The checks on the handlers' own records (`t_runs`, `t_done`, `t_lost`),
/// all with the database's clock.
///
/// A run may be stale: its claim lapsed (the lease ran out: its replica was
/// killed, or too slow to renew it) and another replica claimed the event.
/// The library refuses a stale run's outcome ([`Report::LeaseLost`]), so a
/// stale run is one whose replica was killed or reported the event's lease
/// lost. Only stale runs may overlap another run of their event, follow a
/// recorded success, or be a success that is not the last run.
fn check_crash_records(url: &str, schema: &pg::Schema, killed: &HashSet<i32>) -> CrashFigures {
    let mut db = pg::client(url);
    let killed: Vec<i32> = killed.iter().copied().collect();
    let mut sample = |sql: &str| -> Vec<String> {
        let sql = schema.sql(&sql.replace(
            "{stale}",
            "(r.inc = ANY ($1) OR EXISTS (SELECT 1 FROM {s}.t_lost l
               WHERE l.event_id = r.event_id AND l.inc = r.inc))",
        ));
        let params: &[&(dyn postgres::types::ToSql + Sync)] =
            if sql.contains("$1") { &[&killed] } else { &[] };
        db.query(&sql, params)
            .unwrap()
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect()
    };
    let twice = sample(
        "SELECT event_id || ' recorded by ' || string_agg(inc::text, ', ') FROM {s}.t_done
         GROUP BY event_id HAVING count(*) > 1 LIMIT 20",
    );
    assert!(twice.is_empty(), "a success recorded twice: {twice:?}");
    // A run that started after the success was recorded (committed before
    // the observer wrote `t_done`).
    let after = sample(
        "SELECT r.event_id || ' ran on ' || r.inc || ' after ' || d.inc || ' recorded it'
         FROM {s}.t_runs r JOIN {s}.t_done d USING (event_id)
         WHERE r.started > d.at AND NOT {stale} LIMIT 20",
    );
    assert!(after.is_empty(), "ran after a recorded success: {after:?}");
    // Two runs of one event at once: two replicas held the same claim.
    let overlap = sample(
        "SELECT r.event_id || ' on ' || r.inc || ' and ' || b.inc FROM {s}.t_runs r
         JOIN {s}.t_runs b ON r.event_id = b.event_id AND r.run_id <> b.run_id
         WHERE r.started < coalesce(b.ended, 'infinity') AND b.started < coalesce(r.ended, 'infinity')
           AND NOT {stale}
           AND NOT (b.inc = ANY ($1) OR EXISTS (SELECT 1 FROM {s}.t_lost l
                    WHERE l.event_id = b.event_id AND l.inc = b.inc))
         LIMIT 20",
    );
    assert!(
        overlap.is_empty(),
        "one event ran twice at once: {overlap:?}"
    );
    // A success followed by another run: its replica never recorded it.
    let again = sample(
        "SELECT DISTINCT r.event_id || ' succeeded on ' || r.inc FROM {s}.t_runs r
         JOIN {s}.t_runs b ON r.event_id = b.event_id AND b.started > r.ended
         WHERE r.ok AND NOT {stale} LIMIT 20",
    );
    assert!(
        again.is_empty(),
        "ran again after a success its (living) replica should have recorded: {again:?}"
    );
    let stale_after: i64 = db
        .query_one(
            &schema.sql(
                "SELECT count(*) FROM {s}.t_runs r JOIN {s}.t_done d USING (event_id)
                 WHERE r.started > d.at",
            ),
            &[],
        )
        .unwrap()
        .get(0);
    let count = |db: &mut postgres::Client, sql: &str| -> i64 {
        db.query_one(&schema.sql(sql), &[]).unwrap().get(0)
    };
    CrashFigures {
        stale_after,
        runs: count(&mut db, "SELECT count(*) FROM {s}.t_runs"),
        interrupted: count(
            &mut db,
            "SELECT count(*) FROM {s}.t_runs WHERE ended IS NULL",
        ),
        completed_twice: count(
            &mut db,
            "SELECT count(*) FROM (SELECT event_id FROM {s}.t_runs WHERE ok
             GROUP BY event_id HAVING count(*) > 1) x",
        ),
        leases_lost: count(&mut db, "SELECT count(*) FROM {s}.t_lost"),
    }
}

// ---------------------------------------------------------------------------
// b. Per-key ordering across replica processes.

const KEYS: usize = 12;
const PER_KEY: usize = 20;

const ORDER_TABLE: &str = "
CREATE TABLE {s}.t_order (
    key text NOT NULL,
    seq int NOT NULL,
    replica int NOT NULL,
    attempt int NOT NULL,
    ok boolean NOT NULL,
    started bigint NOT NULL,
    ended bigint NOT NULL
);";

/// The database's clock in microseconds.
const NOW_US: &str = "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint";

fn order_body(key: usize, seq: usize) -> Vec<u8> {
    format!(
        r#"{{"event":"order.filled","timestamp":"2026-11-28T14:00:00Z","key":"k{key}","seq":{seq}}}"#
    )
    .into_bytes()
}

/// Records (key, seq, start, end) of every run, after sleeping 2–9 ms so
/// that runs of one key would overlap if two replicas ran them at once;
/// every event whose seq is 3 mod 7 fails its first attempt (its key must
/// wait for it).
fn order_router(side: &Arc<Side>, schema: &str, replica: i32) -> Router {
    let side = Arc::clone(side);
    let record = format!(
        "INSERT INTO \"{schema}\".t_order (key, seq, replica, attempt, ok, started, ended) \
         VALUES ($1, $2, $3, $4, $5, $6, {NOW_US})"
    );
    let now = format!("SELECT {NOW_US}");
    Router::builder()
        .on("*", move |e: &Event| {
            let body = e.json()?;
            let key = body["key"].as_str().unwrap_or_default().to_owned();
            let seq = as_i32(body["seq"].as_i64().unwrap_or(-1));
            let attempt = as_i32(e.attempt());
            let started: i64 = side
                .with(|c| c.query_one(&now, &[]))
                .map_err(HandlerError::retry)?
                .get(0);
            std::thread::sleep(Duration::from_millis(
                2 + u64::try_from(seq).unwrap_or(0) * 5 % 8,
            ));
            let ok = !(seq % 7 == 3 && attempt == 1);
            side.with(|c| c.execute(&record, &[&key, &seq, &replica, &attempt, &ok, &started]))
                .map_err(HandlerError::retry)?;
            if ok {
                Ok(())
            } else {
                Err(HandlerError::retry_after(
                    Duration::from_millis(30),
                    "first attempt fails on purpose",
                ))
            }
        })
        .build()
        .unwrap()
}

#[test]
#[ignore = "a replica of `ordering_key_holds_across_replica_processes`"]
fn ordering_replica_child() {
    let Some((url, spec)) = child_spec() else {
        return;
    };
    let [schema, replica] = &spec[..] else {
        panic!("spec: schema|replica")
    };
    let replica: usize = replica.parse().unwrap();
    let inbox = connect_replica(&url, schema);
    let side = Side::new(&url);
    let worker = Worker::start(
        &inbox,
        order_router(&side, schema, as_i32(replica)),
        WorkerConfig::default()
            .threads(4)
            .ordering_key("/key")
            .lease(Duration::from_secs(5))
            .backoff(Backoff::ladder([Duration::from_millis(30); 5])),
    )
    .expect("worker");
    let ingestor = inbox.ingestor(verifier()).build().expect("ingestor");
    let out: Out = Arc::new(Mutex::new(std::io::stdout()));
    say(&out, "READY");
    let mut stdin = std::io::stdin().lock().lines();
    assert_eq!(stdin.next().and_then(Result::ok).as_deref(), Some("GO"));
    // Replica r ingests the keys k = r mod 3, from two threads, each
    // cycling through its own keys: every key's events are sent one after
    // the other by one thread (so acceptance order is seq order), and the
    // keys interleave across threads and processes.
    std::thread::scope(|s| {
        for t in 0..2 {
            let (ingestor, out) = (&ingestor, &out);
            s.spawn(move || {
                let keys: Vec<usize> = (0..KEYS)
                    .filter(|k| k % 3 == replica && (k / 3) % 2 == t)
                    .collect();
                for seq in 0..PER_KEY {
                    for &key in &keys {
                        let body = order_body(key, seq);
                        let id = format!("k{key}-{seq}");
                        let mut tries = 0;
                        let stored = loop {
                            match ingestor.ingest(&bluum_headers(&id, &body), &body) {
                                Ok(Ingested::Accepted { seq, .. }) => break seq,
                                Ok(Ingested::Duplicate { .. }) => panic!("{id} twice"),
                                Err(e) if tries < 5 => {
                                    tries += 1;
                                    eprintln!("ingest {id}: {e}; again");
                                    std::thread::sleep(Duration::from_millis(100));
                                }
                                Err(e) => panic!("ingest {id}: {e}"),
                            }
                        };
                        say(out, &format!("ACK k{key} {seq} {stored}"));
                    }
                }
            });
        }
    });
    say(&out, "INGESTED");
    assert_eq!(stdin.next().and_then(Result::ok).as_deref(), Some("STOP"));
    worker.shutdown().expect("shutdown");
    inbox.close().expect("close");
    say(&out, "STOPPED");
}

#[test]
fn ordering_key_holds_across_replica_processes() {
    let Some(url) = pg::url() else {
        return;
    };
    let schema = pg::Schema::at(&url, "ordering");
    let inbox = connect_replica(&url, schema.name());
    let mut db = pg::client(&url);
    db.batch_execute(&schema.sql(ORDER_TABLE)).unwrap();
    let started = Instant::now();
    let mut replicas: Vec<Replica> = (0..3)
        .map(|r| Replica::start("ordering_replica_child", format!("{}|{r}", schema.name())))
        .collect();
    for replica in &mut replicas {
        replica.tell("GO");
    }
    for replica in &replicas {
        replica.wait_for("INGESTED", Duration::from_secs(60), |lines| {
            lines.iter().any(|(_, l)| l == "INGESTED")
        });
    }
    let drain = drained(&inbox, Duration::from_secs(60));
    for replica in &mut replicas {
        replica.tell("STOP");
    }
    for replica in &replicas {
        replica.wait_for("STOPPED", Duration::from_secs(30), |lines| {
            lines.iter().any(|(_, l)| l == "STOPPED")
        });
    }
    let took = started.elapsed();

    // Acceptance order is each key's seq order (one thread sent each key's
    // events, one after the other).
    let mut accepted: HashMap<String, Vec<(usize, u64)>> = HashMap::new();
    for replica in replicas.drain(..) {
        for (_, line) in replica.kill() {
            let mut f = line.split(' ');
            if let (Some("ACK"), Some(key), Some(seq), Some(stored)) =
                (f.next(), f.next(), f.next(), f.next())
            {
                accepted
                    .entry(key.to_owned())
                    .or_default()
                    .push((seq.parse().unwrap(), stored.parse().unwrap()));
            }
        }
    }
    assert_eq!(accepted.len(), KEYS);
    for (key, events) in &mut accepted {
        events.sort_unstable();
        assert_eq!(events.len(), PER_KEY, "{key}");
        assert!(
            events.windows(2).all(|w| w[0].1 < w[1].1),
            "{key}: accepted out of seq order: {events:?}"
        );
    }

    // Every run of a key, by when it started: the runs never overlap, and
    // each one is of the earliest event of its key not yet handled.
    let rows = db
        .query(
            &schema.sql(
                "SELECT key, seq, replica, ok, started, ended FROM {s}.t_order
                 ORDER BY key, started, ended",
            ),
            &[],
        )
        .unwrap();
    let (mut runs, mut retries, mut handoffs) = (0, 0, 0);
    let mut by_replica = [0usize; 3];
    // Per key: (seq, replica, ok, started µs, ended µs).
    type Run = (i32, i32, bool, i64, i64);
    let mut key_runs: HashMap<String, Vec<Run>> = HashMap::new();
    for row in &rows {
        key_runs.entry(row.get(0)).or_default().push((
            row.get(1),
            row.get(2),
            row.get(3),
            row.get(4),
            row.get(5),
        ));
    }
    assert_eq!(key_runs.len(), KEYS);
    for (key, list) in &key_runs {
        let mut next = 0;
        let mut previous: Option<(i32, i64)> = None;
        for &(seq, replica, ok, start, end) in list {
            runs += 1;
            by_replica[usize::try_from(replica).unwrap()] += 1;
            assert_eq!(
                seq, next,
                "{key}: event {seq} ran while event {next} was not handled yet: {list:?}"
            );
            if let Some((prev_replica, prev_end)) = previous {
                assert!(
                    start >= prev_end,
                    "{key}: event {seq} started {} µs before the previous run ended: {list:?}",
                    prev_end - start
                );
                handoffs += usize::from(prev_replica != replica);
            }
            if ok {
                next += 1;
            } else {
                retries += 1;
            }
            previous = Some((replica, end));
        }
        assert_eq!(
            usize::try_from(next).unwrap(),
            PER_KEY,
            "{key}: not every event was handled"
        );
    }
    let failing = (0..PER_KEY).filter(|s| s % 7 == 3).count() * KEYS;
    assert_eq!(retries, failing, "every event meant to fail once did, once");
    assert!(
        handoffs > 0,
        "no key moved between replicas: ordering across replicas was not tested"
    );
    println!(
        "{KEYS} keys × {PER_KEY} events ingested by 3 replica processes at once, handled by \
         their 3 workers (4 threads each): {runs} runs ({retries} failed first attempts), \
         by replica {by_replica:?}, {handoffs} times a key's next run was on another replica; \
         0 overlapping runs of a key, 0 out of order; drained {:.1} s after ingest, {:.1} s in all",
        drain.as_secs_f64(),
        took.as_secs_f64()
    );
    assert_eq!(inbox.stats().pending, 0);
    inbox.close().unwrap();
}

// ---------------------------------------------------------------------------
// c. A replica SIGKILLed mid-handler.

const STALL_EVENTS: usize = 4;
/// How long the hung replica's handlers hold their claims before the kill
/// (`PG_STALL_HOLD_SECS`): many heartbeats.
const STALL_HOLD: Duration = Duration::from_secs(10);

/// A replica whose handlers print `RUN id attempt` and then either hang
/// (`hang`: until killed) or succeed (`quick`).
#[test]
#[ignore = "a replica of the `claims_of_a_replica_killed_mid_handler_…` tests"]
fn stall_replica_child() {
    let Some((url, spec)) = child_spec() else {
        return;
    };
    let [schema, mode, lease_ms] = &spec[..] else {
        panic!("spec: schema|mode|lease_ms")
    };
    let hang = mode == "hang";
    let lease = Duration::from_millis(lease_ms.parse().unwrap());
    // The replica that takes over polls four times a second (no LISTEN):
    // it notices a lease that ran out sooner.
    let inbox = Inbox::postgres(&url)
        .schema(schema)
        .pool_size(2)
        .listen(hang)
        .connect()
        .expect("connect the replica");
    let out: Out = Arc::new(Mutex::new(std::io::stdout()));
    let said = Arc::clone(&out);
    let router = Router::builder()
        .on("*", move |e: &Event| {
            say(&said, &format!("RUN {} {}", e.id(), e.attempt()));
            if hang {
                std::thread::sleep(Duration::from_secs(120));
            }
            Ok(())
        })
        .build()
        .unwrap();
    let _worker = Worker::start(
        &inbox,
        router,
        WorkerConfig::default().threads(STALL_EVENTS).lease(lease),
    )
    .expect("worker");
    say(&out, "READY");
    std::thread::sleep(Duration::from_secs(120));
}

#[test]
fn claims_of_a_replica_killed_mid_handler_run_elsewhere_after_the_lease() {
    killed_mid_handler(Duration::from_secs(2));
}

/// The same with the shortest lease a worker may ask for.
#[test]
fn claims_of_a_replica_killed_mid_handler_run_elsewhere_after_the_shortest_lease() {
    killed_mid_handler(Duration::from_secs(1));
}

fn killed_mid_handler(lease: Duration) {
    let Some(url) = pg::url() else {
        return;
    };
    let schema = pg::Schema::at(&url, "stall");
    let inbox = connect_replica(&url, schema.name());
    let runs = |lines: &[(Instant, String)]| -> Vec<(Instant, String)> {
        lines
            .iter()
            .filter_map(|(at, l)| l.strip_prefix("RUN ").map(|r| (*at, r.to_owned())))
            .collect()
    };
    let hung = Replica::start(
        "stall_replica_child",
        format!("{}|hang|{}", schema.name(), lease.as_millis()),
    );
    let ingestor = inbox.ingestor(verifier()).build().unwrap();
    for n in 0..STALL_EVENTS {
        let (id, body) = (format!("stall-{n}"), bluum_body("order.filled", n as u64));
        assert!(matches!(
            ingestor.ingest(&bluum_headers(&id, &body), &body),
            Ok(Ingested::Accepted { .. })
        ));
    }
    let claimed = hung.wait_for("RUN of every event", Duration::from_secs(10), |lines| {
        runs(lines).len() == STALL_EVENTS
    });
    // The other replica starts while the hung one holds every claim, and
    // must leave them alone while heartbeats keep the leases alive.

    let other = Replica::start(
        "stall_replica_child",
        format!("{}|quick|{}", schema.name(), lease.as_millis()),
    );
    let hold = std::env::var("PG_STALL_HOLD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(STALL_HOLD, Duration::from_secs);
    // Meanwhile, every 5 ms, the claims' lease as the database holds it
    // (the schema's `lease_until`, in unix ms by the replicas' clock, which
    // is this machine's): it must never have run out. The other replica
    // notices a lapse only if it polls within it; this sees lapses of a
    // few milliseconds.
    let mut db = pg::client(&url);
    let lapsed_sql = schema.sql(
        "SELECT count(*) FROM {s}.events
         WHERE lease_until IS NULL OR lease_until < (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
    );
    let (mut samples, mut lapsed) = (0u32, 0u32);
    while claimed.elapsed() < hold {
        let n: i64 = db.query_one(&lapsed_sql, &[]).unwrap().get(0);
        samples += 1;
        lapsed += u32::from(n > 0);
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        lapsed, 0,
        "the hung replica's leases had run out in {lapsed} of {samples} samples: its heartbeat came late"
    );
    let early = runs(&other.lines());
    assert!(
        early.is_empty(),
        "another replica ran events whose lease was kept alive: {early:?}"
    );
    let held_for = claimed.elapsed();

    let killed_at = Instant::now();
    let first = runs(&hung.kill()); // SIGKILL, mid-handler
    let bound = lease + Duration::from_secs(3);
    other.wait_for("RUN of every event after the kill", bound, |lines| {
        runs(lines).len() == STALL_EVENTS
    });
    let again = runs(&other.lines());
    let mut ids: Vec<&str> = again
        .iter()
        .map(|(_, r)| r.split(' ').next().unwrap())
        .collect();
    ids.sort_unstable();
    let mut expected: Vec<String> = (0..STALL_EVENTS).map(|n| format!("stall-{n}")).collect();
    expected.sort_unstable();
    assert_eq!(ids, expected, "each claimed event ran again, once");
    let delays: Vec<Duration> = again.iter().map(|(at, _)| *at - killed_at).collect();
    let slowest = delays.iter().max().copied().unwrap_or_default();
    assert!(slowest <= bound, "{slowest:?} after the kill");
    drained(&inbox, Duration::from_secs(10));
    println!(
        "{STALL_EVENTS} events claimed by a replica whose handlers hung for {:.1} s (lease {:?}, \
         kept alive by heartbeats: never lapsed in {samples} samples, the other replica did not \
         run them); SIGKILLed mid-handler: \
         the other replica ran all of them {:.2}–{:.2} s after the kill (bound {bound:?}); \
         first runs {:?}, second runs {:?}",
        held_for.as_secs_f64(),
        lease,
        delays
            .iter()
            .min()
            .copied()
            .unwrap_or_default()
            .as_secs_f64(),
        slowest.as_secs_f64(),
        first.iter().map(|(_, r)| r.as_str()).collect::<Vec<_>>(),
        again.iter().map(|(_, r)| r.as_str()).collect::<Vec<_>>(),
    );
    drop(other);
    drop(ingestor);
    inbox.close().unwrap();
}
