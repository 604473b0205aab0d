//! Durable ingest throughput and latency, against two references measured in
//! the same run on the same 1 KiB Bluum deliveries:
//!
//! - `sqlite-full`: the inbox a user would hand-roll — SQLite (bundled), WAL,
//!   `synchronous=FULL`, one `INSERT OR IGNORE` transaction per delivery on one
//!   shared connection, after the same signature check;
//! - `bare-log`: the disk's floor for durable acknowledgements — callers append
//!   the same record after the same signature check to a file; one leader
//!   writes what has gathered and `fdatasync`s it; the whole batch is released.
//!
//! Each configuration runs `BENCH_ROUNDS` times (default 3, 1 with
//! `BENCH_QUICK=1`); the table shows medians and the ratios that matter.
//! Run: `cargo bench --bench ingest`.

mod common;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier, Condvar, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use webhook_inbox::{Inbox, Ingested, Ingestor, Scheme, Signer, Verifier};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

type Delivery = (Vec<(String, String)>, Vec<u8>);

fn deliveries(callers: usize, per_caller: usize, run: usize) -> Vec<Vec<Delivery>> {
    let signer = Signer::new(Scheme::bluum(), SECRET).expect("secret");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    (0..callers)
        .map(|c| {
            (0..per_caller)
                .map(|n| {
                    let b = common::body(n);
                    (signer.sign(&format!("evt-{run}-{c}-{n}"), now, &b), b)
                })
                .collect()
        })
        .collect()
}

/// Runs `op` over each caller's deliveries on its own thread; returns events/s and sorted latencies (µs).
fn drive(work: Vec<Vec<Delivery>>, op: Arc<dyn Fn(&Delivery) + Send + Sync>) -> (f64, Vec<u32>) {
    let barrier = Arc::new(Barrier::new(work.len() + 1));
    let handles: Vec<_> = work
        .into_iter()
        .map(|mine| {
            let (barrier, op) = (Arc::clone(&barrier), Arc::clone(&op));
            std::thread::spawn(move || {
                barrier.wait();
                mine.iter()
                    .map(|d| {
                        let t = Instant::now();
                        op(d);
                        t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32
                    })
                    .collect::<Vec<u32>>()
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let mut latencies: Vec<u32> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("caller"))
        .collect();
    let secs = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    (latencies.len() as f64 / secs, latencies)
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    sorted
        .get(((sorted.len() as f64 - 1.0) * p) as usize)
        .copied()
        .unwrap_or(0)
}

fn fresh_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("webhook-inbox-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench dir");
    dir
}

fn verifier() -> Verifier {
    Verifier::new(Scheme::bluum(), [SECRET]).expect("secret")
}

// ---- this library ---------------------------------------------------------

fn run_inbox(work: Vec<Vec<Delivery>>) -> (f64, Vec<u32>) {
    let dir = fresh_dir("inbox");
    let inbox = Inbox::builder(&dir)
        .max_pending(u64::MAX)
        .open()
        .expect("open");
    let ingestor: Ingestor = inbox.ingestor(verifier()).build().expect("ingestor");
    let result = drive(
        work,
        Arc::new(move |(h, b): &Delivery| {
            let outcome = ingestor.ingest(h, b).expect("ingest");
            assert!(matches!(outcome, Ingested::Accepted { .. }));
        }),
    );
    inbox.close().expect("close");
    let _ = std::fs::remove_dir_all(&dir);
    result
}

// ---- SQLite, the hand-rolled inbox -----------------------------------------

fn run_sqlite(work: Vec<Vec<Delivery>>) -> (f64, Vec<u32>) {
    let dir = fresh_dir("sqlite");
    let conn = rusqlite::Connection::open(dir.join("inbox.db")).expect("sqlite");
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
         CREATE TABLE events (id TEXT PRIMARY KEY, source TEXT, type TEXT, received_at INTEGER, body BLOB);",
    )
    .expect("schema");
    let conn = Arc::new(Mutex::new(conn));
    let verifier = Arc::new(verifier());
    let result = drive(
        work,
        Arc::new(move |(h, b): &Delivery| {
            let v = verifier.verify(h, b).expect("genuine");
            let id = v.id().unwrap_or_default().to_owned();
            let conn = conn.lock().expect("connection");
            conn.execute(
                "INSERT OR IGNORE INTO events (id, source, type, received_at, body) VALUES (?1, 'bluum', 'order.filled', ?2, ?3)",
                rusqlite::params![id, v.timestamp().unwrap_or(0), b.as_slice()],
            )
            .expect("insert");
        }),
    );
    let _ = std::fs::remove_dir_all(&dir);
    result
}

// ---- the bare group-committed log ------------------------------------------

struct BareLog {
    state: Mutex<LogState>,
    done: Condvar,
    file: Mutex<File>,
}

#[derive(Default)]
struct LogState {
    buf: Vec<u8>,
    next: u64,
    durable: u64,
    flushing: bool,
}

impl BareLog {
    fn open(path: &Path) -> Self {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("log");
        Self {
            state: Mutex::new(LogState::default()),
            done: Condvar::new(),
            file: Mutex::new(file),
        }
    }

    fn append(&self, record: &[u8]) {
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
            s.flushing = true;
            let buf = std::mem::take(&mut s.buf);
            let upto = s.next;
            drop(s);
            {
                let mut f = self.file.lock().expect("file");
                f.write_all(&buf).expect("write");
                f.sync_data().expect("fdatasync");
            }
            s = self.state.lock().expect("state");
            s.flushing = false;
            s.durable = upto;
            self.done.notify_all();
        }
    }
}

fn run_bare_log(work: Vec<Vec<Delivery>>) -> (f64, Vec<u32>) {
    let dir = fresh_dir("log");
    let log = Arc::new(BareLog::open(&dir.join("log")));
    let verifier = Arc::new(verifier());
    let result = drive(
        work,
        Arc::new(move |(h, b): &Delivery| {
            let _ = verifier.verify(h, b).expect("genuine");
            log.append(b);
        }),
    );
    let _ = std::fs::remove_dir_all(&dir);
    result
}

// ---- the report -------------------------------------------------------------

/// One system's measurements over the rounds.
struct Series {
    name: &'static str,
    rates: Vec<f64>,
    p50: Vec<u32>,
    p99: Vec<u32>,
}

fn median(xs: Vec<f64>) -> f64 {
    common::summary(&xs).0
}

fn main() {
    let Some(common::Settings { quick, rounds }) = common::settings() else {
        return;
    };
    let scale = if quick { 4 } else { 1 };
    println!("durable ingest of 1 KiB Bluum deliveries; medians of {rounds} rounds");
    println!(
        "{:>7} {:>12} {:>10} {:>8} {:>8} {:>12} {:>12} {:>14} {:>14}",
        "callers",
        "system",
        "events/s",
        "p50 µs",
        "p99 µs",
        "vs sqlite",
        "vs bare log",
        "sqlite ev/s",
        "bare log ev/s"
    );
    let mut run = 0;
    // BENCH_CALLERS=16 narrows the run to one concurrency (for profiling).
    let only_callers: Option<usize> = std::env::var("BENCH_CALLERS")
        .ok()
        .and_then(|c| c.parse().ok());
    for (callers, per_caller) in [(1usize, 3000usize), (16, 2000), (64, 600)] {
        if only_callers.is_some_and(|c| c != callers) {
            continue;
        }
        let per_caller = per_caller / scale;
        let mut results: Vec<Series> = ["inbox", "sqlite-full", "bare-log"]
            .into_iter()
            .map(|name| Series {
                name,
                rates: vec![],
                p50: vec![],
                p99: vec![],
            })
            .collect();
        for _ in 0..rounds {
            // Interleave the systems so machine noise hits them alike.
            for (i, system) in [run_inbox as fn(_) -> _, run_sqlite, run_bare_log]
                .into_iter()
                .enumerate()
            {
                run += 1;
                let (rate, lat) = system(deliveries(callers, per_caller, run));
                results[i].rates.push(rate);
                results[i].p50.push(percentile(&lat, 0.50));
                results[i].p99.push(percentile(&lat, 0.99));
            }
        }
        let rate = |i: usize| median(results[i].rates.clone());
        let (sqlite, bare) = (rate(1), rate(2));
        for (i, Series { name, p50, p99, .. }) in results.iter().enumerate() {
            let mid = |v: &Vec<u32>| median(v.iter().map(|&x| f64::from(x)).collect());
            println!(
                "{callers:>7} {name:>12} {:>10.0} {:>8.0} {:>8.0} {:>11.2}x {:>11.2}x {sqlite:>14.0} {bare:>14.0}",
                rate(i),
                mid(p50),
                mid(p99),
                rate(i) / sqlite,
                rate(i) / bare,
            );
        }
    }
}
