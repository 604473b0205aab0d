//! Durable ingest: this library against the inbox a user would hand-roll
//! (SQLite) and against the disk's floor (a bare group-committed log), on the
//! same signed deliveries, at 1, 4, 16 and 64 concurrent callers.
//!
//! - `library`: `Ingestor::ingest` into an `Inbox` with `Durability::Fsync`.
//! - `sqlite-full`: SQLite (bundled), WAL, `synchronous=FULL`: the same
//!   signature check, then one `INSERT OR IGNORE` transaction per delivery on
//!   one shared connection (a cached statement).
//! - `sqlite-normal`: the same with `synchronous=NORMAL`, which in WAL mode
//!   does not sync at commit: **not durable on power loss**.
//! - `bare-log`: the same signature check, then the body appended to a log:
//!   callers queue their records, one leader writes all that has gathered with
//!   one `pwrite` into a file reserved beforehand (`fallocate`, as the
//!   library's segments are) and one `fdatasync`, then releases the batch.
//!   Nothing else: no dedup, no index, no recovery. The most any durable
//!   inbox can do with this disk and this concurrency.
//! - `bare-log-append`: the same log growing the file at each write (no
//!   reservation), so every `fdatasync` also journals the new size and blocks:
//!   the floor the previous `benches/ingest.rs` measured, kept for comparison.
//!
//! Every (callers, system) runs once per round, the systems in a rotating
//! order, each on a fresh directory; the table shows medians over the rounds.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Barrier, Condvar, Mutex};
use std::time::Instant;

use crate::common::Settings;
use crate::fixture::{self, Delivery, Latencies, Scratch};
use crate::report::{IngestRow, Stat};

/// The concurrency levels measured.
pub const CALLERS: [usize; 4] = [1, 4, 16, 64];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum System {
    Library,
    SqliteFull,
    SqliteNormal,
    BareLog,
    BareLogAppend,
}

impl System {
    pub const ALL: [Self; 5] = [
        Self::Library,
        Self::SqliteFull,
        Self::SqliteNormal,
        Self::BareLog,
        Self::BareLogAppend,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Self::Library => "library",
            Self::SqliteFull => "sqlite-full",
            Self::SqliteNormal => "sqlite-normal",
            Self::BareLog => "bare-log",
            Self::BareLogAppend => "bare-log-append",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Library => "this library (Fsync)",
            Self::SqliteFull => "SQLite WAL synchronous=FULL",
            Self::SqliteNormal => "SQLite WAL synchronous=NORMAL (not durable on power loss)",
            Self::BareLog => "bare group-committed log (floor)",
            Self::BareLogAppend => "bare log, growing the file (old floor)",
        }
    }

    /// Whether an acknowledged event survives power loss.
    pub fn durable(self) -> bool {
        self != Self::SqliteNormal
    }

    fn run(self, work: &[Vec<Delivery>]) -> (f64, Latencies) {
        match self {
            Self::Library => run_library(work),
            Self::SqliteFull => run_sqlite(work, "FULL"),
            Self::SqliteNormal => run_sqlite(work, "NORMAL"),
            Self::BareLog => run_bare_log(work, true),
            Self::BareLogAppend => run_bare_log(work, false),
        }
    }
}

/// Runs `op` over each caller's deliveries on its own thread, all released at
/// once; returns events/s (all events over the wall time) and the latencies.
pub fn drive<T: Sync>(work: &[Vec<T>], op: impl Fn(&T) + Sync) -> (f64, Latencies) {
    let barrier = Barrier::new(work.len() + 1);
    let (secs, nanos) = std::thread::scope(|s| {
        let callers: Vec<_> = work
            .iter()
            .map(|mine| {
                let (barrier, op) = (&barrier, &op);
                s.spawn(move || {
                    barrier.wait();
                    mine.iter()
                        .map(|d| {
                            let t = Instant::now();
                            op(d);
                            fixture::nanos_since(t)
                        })
                        .collect::<Vec<u64>>()
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        let nanos: Vec<u64> = callers
            .into_iter()
            .flat_map(|c| c.join().expect("caller"))
            .collect();
        (start.elapsed().as_secs_f64(), nanos)
    });
    (nanos.len() as f64 / secs, Latencies::new(nanos))
}

fn run_library(work: &[Vec<Delivery>]) -> (f64, Latencies) {
    let dir = Scratch::new("library");
    let inbox = fixture::open(dir.path());
    let ingestor = fixture::ingestor(&inbox);
    let result = drive(work, |d| fixture::accept(&ingestor, d));
    drop(ingestor);
    inbox.close().expect("close");
    result
}

fn run_sqlite(work: &[Vec<Delivery>], synchronous: &str) -> (f64, Latencies) {
    let dir = Scratch::new("sqlite");
    let conn = rusqlite::Connection::open(dir.path().join("inbox.db")).expect("sqlite");
    conn.execute_batch(&format!(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous={synchronous};
         CREATE TABLE events (id TEXT PRIMARY KEY, source TEXT, type TEXT, received_at INTEGER, body BLOB);"
    ))
    .expect("schema");
    let conn = Mutex::new(conn);
    let verifier = fixture::verifier();
    drive(work, |d| {
        let v = verifier.verify(&d.headers, &d.body).expect("genuine");
        let id = v.id().unwrap_or_default();
        let conn = conn.lock().expect("connection");
        let mut insert = conn
            .prepare_cached(
                "INSERT OR IGNORE INTO events (id, source, type, received_at, body) \
                 VALUES (?1, 'bluum', 'order.filled', ?2, ?3)",
            )
            .expect("statement");
        let rows = insert
            .execute(rusqlite::params![
                id,
                v.timestamp().unwrap_or(0),
                d.body.as_slice()
            ])
            .expect("insert");
        assert_eq!(rows, 1, "a fresh id is inserted");
    })
}

/// The bare group-committed log (see the module docs).
pub struct BareLog {
    state: Mutex<LogState>,
    done: Condvar,
    file: File,
}

#[derive(Default)]
struct LogState {
    buf: Vec<u8>,
    /// Records queued so far, and durable so far.
    next: u64,
    durable: u64,
    /// Where the next batch is written.
    offset: u64,
    flushing: bool,
}

impl BareLog {
    /// A log in `path`, with `reserve` bytes reserved (none if 0).
    pub fn open(path: &Path, reserve: u64) -> Self {
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(path)
            .expect("log");
        if reserve > 0 {
            rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, reserve)
                .expect("fallocate");
        }
        file.sync_all().expect("fsync the reservation");
        Self {
            state: Mutex::new(LogState::default()),
            done: Condvar::new(),
            file,
        }
    }

    /// Appends `record`; returns once it is durable.
    pub fn append(&self, record: &[u8]) {
        let mut s = self.state.lock().expect("state");
        s.buf
            .extend_from_slice(&(record.len() as u32).to_le_bytes());
        s.buf.extend_from_slice(record);
        s.next += 1;
        let mine = s.next;
        while s.durable < mine {
            if s.flushing {
                s = self.done.wait(s).expect("state");
                continue;
            }
            // Lead: write and sync everything queued, outside the lock.
            s.flushing = true;
            let buf = std::mem::take(&mut s.buf);
            let (upto, offset) = (s.next, s.offset);
            s.offset += buf.len() as u64;
            drop(s);
            self.file.write_all_at(&buf, offset).expect("pwrite");
            self.file.sync_data().expect("fdatasync");
            s = self.state.lock().expect("state");
            s.flushing = false;
            s.durable = upto;
            self.done.notify_all();
        }
    }
}

fn run_bare_log(work: &[Vec<Delivery>], reserve: bool) -> (f64, Latencies) {
    let dir = Scratch::new("log");
    let bytes: usize = work.iter().flatten().map(|d| d.body.len() + 4).sum();
    let reserve = if reserve { bytes as u64 + (1 << 20) } else { 0 };
    let log = BareLog::open(&dir.path().join("log"), reserve);
    let verifier = fixture::verifier();
    drive(work, |d| {
        let _ = verifier.verify(&d.headers, &d.body).expect("genuine");
        log.append(&d.body);
    })
}

/// Events per configuration and round: at least 10 000 in a full run, so the
/// p999 is the mean of real tail samples, not one outlier.
pub fn per_caller(callers: usize, quick: bool) -> usize {
    let total: usize = match (callers, quick) {
        (1, false) => 10_000,
        (4, false) => 12_000,
        (_, false) => 16_000,
        (1, true) => 600,
        (_, true) => 1_600,
    };
    total.div_ceil(callers)
}

/// One concurrency's figures over the rounds, per system (in the order the
/// systems were given): events/s, and p50/p99/p999 latencies in ms.
pub struct Rounds {
    pub callers: usize,
    pub events_per_round: usize,
    /// `[system][round]`.
    rates: Vec<Vec<f64>>,
    /// `[system][p50, p99, p999][round]`.
    pcts: Vec<[Vec<f64>; 3]>,
}

impl Rounds {
    pub fn events_per_sec(&self, system: usize) -> Stat {
        Stat::of(&self.rates[system])
    }

    /// The p50, p99 and p999 latencies of `system`, in ms.
    pub fn percentiles(&self, system: usize) -> [Stat; 3] {
        self.pcts[system].each_ref().map(|v| Stat::of(v))
    }

    /// The per-round ratios of `system`'s events/s over `base`'s.
    pub fn ratio(&self, system: usize, base: usize) -> Stat {
        let per_round: Vec<f64> = self.rates[system]
            .iter()
            .zip(&self.rates[base])
            .map(|(a, b)| a / b)
            .collect();
        Stat::of(&per_round)
    }
}

/// Runs every system at every concurrency in [`CALLERS`], once per round, in
/// an order rotating with the round so no system always runs first (or
/// last), each on fresh deliveries (ids `{tag}{run}-{caller}-{n}`) of
/// `per_caller(callers)` per caller; `run` returns events/s and latencies.
pub fn rounds<S: Copy>(
    settings: &Settings,
    tag: &str,
    systems: &[S],
    id: impl Fn(S) -> &'static str,
    per_caller: impl Fn(usize) -> usize,
    mut run: impl FnMut(S, &[Vec<Delivery>]) -> (f64, Latencies),
) -> Vec<Rounds> {
    let n = systems.len();
    let mut runs = 0;
    CALLERS
        .into_iter()
        .map(|callers| {
            let per_caller = per_caller(callers);
            let mut rates = vec![Vec::new(); n];
            let mut pcts = vec![[Vec::new(), Vec::new(), Vec::new()]; n];
            for round in 0..settings.rounds {
                for k in 0..n {
                    let i = (k + round) % n;
                    runs += 1;
                    let work = fixture::deliveries(&format!("{tag}{runs}"), callers, per_caller);
                    let (rate, latencies) = run(systems[i], &work);
                    eprintln!(
                        "  ingest {callers:>2} callers {:<13} round {}: {rate:>8.0} events/s, p50 {:.3} ms, p99 {:.3} ms",
                        id(systems[i]),
                        round + 1,
                        latencies.ms(0.5),
                        latencies.ms(0.99)
                    );
                    rates[i].push(rate);
                    for (j, p) in [0.50, 0.99, 0.999].into_iter().enumerate() {
                        pcts[i][j].push(latencies.ms(p));
                    }
                }
            }
            Rounds {
                callers,
                events_per_round: callers * per_caller,
                rates,
                pcts,
            }
        })
        .collect()
}

/// Every (callers, system) row over `settings.rounds` rounds.
pub fn measure(settings: &Settings) -> Vec<IngestRow> {
    let at = |s: System| System::ALL.iter().position(|&x| x == s).unwrap_or(0);
    let measured = rounds(
        settings,
        "ing",
        &System::ALL,
        System::id,
        |callers| per_caller(callers, settings.quick),
        |system, work| system.run(work),
    );
    let mut rows = Vec::new();
    for r in measured {
        for (i, system) in System::ALL.into_iter().enumerate() {
            let [p50_ms, p99_ms, p999_ms] = r.percentiles(i);
            rows.push(IngestRow {
                callers: r.callers,
                system: system.id().to_owned(),
                label: system.label().to_owned(),
                durable: system.durable(),
                events_per_round: r.events_per_round,
                events_per_sec: r.events_per_sec(i),
                x_sqlite_full: r.ratio(i, at(System::SqliteFull)),
                x_bare_log: r.ratio(i, at(System::BareLog)),
                x_bare_log_append: r.ratio(i, at(System::BareLogAppend)),
                p50_ms,
                p99_ms,
                p999_ms,
            });
        }
    }
    rows
}
