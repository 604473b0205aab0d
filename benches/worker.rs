//! The worker's throughput and end-to-end latency, against the durable ingest
//! rate measured in the same run on the same 1 KiB Bluum deliveries:
//!
//! - `ingest16` (the baseline): 16 threads call `ingest` on distinct ids with
//!   the default `Durability::Fsync` (20 000 events; 4 000 with `BENCH_QUICK=1`).
//! - `drain`: a fresh store is pre-filled with 100 000 pending events (10 000
//!   quick) through the real ingestor — with `Durability::Buffered(5 ms)`, only
//!   to make the pre-fill fast — then closed and reopened with the default
//!   `Durability::Fsync`. A worker with a no-op handler on `*` is started with
//!   1, 2 and 4 handler threads (a fresh pre-filled store each); measured from
//!   `Worker::start` until `stats().handled` reaches the count (polled every
//!   millisecond). The target: drain rate >= `ingest16`, a ratio of at least 1.
//! - `latency`: a worker (4 handler threads, no-op handler) runs while 4
//!   threads ingest at a steady 2 000 events/s for 3 s (1 s quick). Latency
//!   runs from just before `ingest` to the `WorkerConfig::observe` call for
//!   the event, which comes after its outcome is durably recorded.
//!
//! Each measurement runs `BENCH_ROUNDS` times (default 3, 1 with
//! `BENCH_QUICK=1`), interleaved so machine noise hits them alike; the table
//! shows medians and min–max over the rounds.
//! Run: `cargo bench --bench worker` (`BENCH_QUICK=1 cargo bench --bench worker`
//! for a smoke run).

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use webhook_inbox::{
    Durability, Event, Inbox, Ingested, Ingestor, Report, Router, Scheme, Signer, Verifier, Worker,
    WorkerConfig,
};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// Handler threads for the drain measurement.
const DRAIN_THREADS: [usize; 3] = [1, 2, 4];
/// Threads ingesting during the pre-fill (not measured).
const PREFILL_CALLERS: usize = 4;
const INGEST_CALLERS: usize = 16;
/// The paced load of the latency measurement: events/s, callers, handler threads.
const PACED_RATE: f64 = 2_000.0;
const PACED_CALLERS: usize = 4;
const PACED_WORKER_THREADS: usize = 4;
/// How often completion is polled.
const POLL: Duration = Duration::from_millis(1);
/// How long to wait for the worker before declaring it stuck.
const PATIENCE: Duration = Duration::from_secs(600);

struct Delivery {
    id: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn signer() -> Signer {
    Signer::new(Scheme::bluum(), SECRET).expect("secret")
}

fn delivery(signer: &Signer, id: String, n: usize, now: i64) -> Delivery {
    let body = common::body(n);
    Delivery {
        headers: signer.sign(&id, now, &body),
        id,
        body,
    }
}

/// `callers` lists of `per_caller` signed deliveries with ids `{prefix}-{caller}-{n}`.
fn deliveries(prefix: &str, callers: usize, per_caller: usize) -> Vec<Vec<Delivery>> {
    let (signer, now) = (signer(), now_secs());
    (0..callers)
        .map(|c| {
            (0..per_caller)
                .map(|n| delivery(&signer, format!("{prefix}-{c}-{n}"), n, now))
                .collect()
        })
        .collect()
}

fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "webhook-inbox-bench-worker-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench dir");
    dir
}

/// An inbox with the default `Fsync` durability and no pending limit.
fn open(dir: &Path) -> Inbox {
    Inbox::builder(dir)
        .max_pending(u64::MAX)
        .open()
        .expect("open")
}

fn ingestor(inbox: &Inbox) -> Ingestor {
    let verifier = Verifier::new(Scheme::bluum(), [SECRET]).expect("secret");
    inbox.ingestor(verifier).build().expect("ingestor")
}

fn accept(ingestor: &Ingestor, d: &Delivery) {
    let outcome = ingestor.ingest(&d.headers, &d.body).expect("ingest");
    assert!(matches!(outcome, Ingested::Accepted { .. }), "{outcome:?}");
}

fn noop_router() -> Router {
    Router::builder()
        .on("*", |_e: &Event| Ok(()))
        .build()
        .expect("router")
}

/// Polls every [`POLL`] until the worker has handled `n` events; panics if it
/// stops making progress for [`PATIENCE`] or fails any event.
fn wait_handled(worker: &Worker, n: u64) {
    let (mut last, mut since) = (0, Instant::now());
    loop {
        let stats = worker.stats();
        assert!(
            stats.retried + stats.dead_lettered + stats.unknown == 0,
            "a no-op handler failed: {stats:?}"
        );
        if stats.handled >= n {
            assert_eq!(stats.handled, n, "handled more events than were stored");
            return;
        }
        if stats.handled != last {
            (last, since) = (stats.handled, Instant::now());
        }
        assert!(
            since.elapsed() < PATIENCE,
            "the worker stalled at {stats:?}"
        );
        std::thread::sleep(POLL);
    }
}

// ---- the baseline: 16 durable callers ----------------------------------------

/// Events/s of `INGEST_CALLERS` threads ingesting `per_caller` events each.
fn run_ingest16(per_caller: usize, run: usize) -> f64 {
    let dir = fresh_dir(&format!("ingest-{run}"));
    let inbox = open(&dir);
    let ingestor = ingestor(&inbox);
    let work = deliveries(&format!("ing-{run}"), INGEST_CALLERS, per_caller);
    let barrier = Barrier::new(INGEST_CALLERS + 1);
    let secs = std::thread::scope(|s| {
        let callers: Vec<_> = work
            .iter()
            .map(|mine| {
                let (barrier, ingestor) = (&barrier, &ingestor);
                s.spawn(move || {
                    barrier.wait();
                    mine.iter().for_each(|d| accept(ingestor, d));
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        for caller in callers {
            caller.join().expect("caller");
        }
        start.elapsed().as_secs_f64()
    });
    drop(ingestor);
    inbox.close().expect("close");
    let _ = std::fs::remove_dir_all(&dir);
    (INGEST_CALLERS * per_caller) as f64 / secs
}

// ---- drain ------------------------------------------------------------------

/// Stores `n` pending events in `dir` through the ingestor (buffered, several
/// threads), then closes the inbox.
fn prefill(dir: &Path, n: usize, run: usize) {
    let inbox = Inbox::builder(dir)
        .durability(Durability::Buffered(Duration::from_millis(5)))
        .max_pending(u64::MAX)
        .open()
        .expect("open for the pre-fill");
    let ingestor = ingestor(&inbox);
    let (signer, now) = (signer(), now_secs());
    std::thread::scope(|s| {
        for c in 0..PREFILL_CALLERS {
            let (ingestor, signer) = (&ingestor, &signer);
            s.spawn(move || {
                for i in (c..n).step_by(PREFILL_CALLERS) {
                    accept(
                        ingestor,
                        &delivery(signer, format!("pre-{run}-{i}"), i, now),
                    );
                }
            });
        }
    });
    drop(ingestor);
    inbox.close().expect("close after the pre-fill");
}

/// Events/s of a worker with `threads` handler threads draining `n` events
/// stored beforehand.
fn run_drain(n: usize, threads: usize, run: usize) -> f64 {
    let dir = fresh_dir(&format!("drain-{run}"));
    prefill(&dir, n, run);
    let inbox = open(&dir);
    assert_eq!(
        inbox.stats().pending,
        n as u64,
        "pending after the pre-fill"
    );
    let start = Instant::now();
    let worker = Worker::start(
        &inbox,
        noop_router(),
        WorkerConfig::default().threads(threads),
    )
    .expect("worker");
    wait_handled(&worker, n as u64);
    let secs = start.elapsed().as_secs_f64();
    worker.shutdown().expect("shutdown");
    inbox.close().expect("close");
    // Not timed: the outcomes are on disk, nothing is left to run.
    let inbox = open(&dir);
    assert_eq!(inbox.stats().pending, 0, "pending after the drain");
    inbox.close().expect("close");
    let _ = std::fs::remove_dir_all(&dir);
    n as f64 / secs
}

// ---- end-to-end latency under a paced load -----------------------------------

/// Achieved ingest rate (events/s) and sorted end-to-end latencies (µs).
fn run_latency(secs: f64, run: usize) -> (f64, Vec<u32>) {
    let dir = fresh_dir(&format!("latency-{run}"));
    let inbox = open(&dir);
    let per_caller = (PACED_RATE * secs / PACED_CALLERS as f64) as usize;
    let total = per_caller * PACED_CALLERS;
    let handled_at = Arc::new(Mutex::new(HashMap::<String, Instant>::with_capacity(total)));
    let config = WorkerConfig::default()
        .threads(PACED_WORKER_THREADS)
        .observe({
            let handled_at = Arc::clone(&handled_at);
            move |event: &Event, report: &Report| {
                if matches!(report, Report::Handled) {
                    let at = Instant::now();
                    handled_at
                        .lock()
                        .expect("handled times")
                        .insert(event.id().to_owned(), at);
                }
            }
        });
    let worker = Worker::start(&inbox, noop_router(), config).expect("worker");
    let ingestor = ingestor(&inbox);
    let work = deliveries(&format!("lat-{run}"), PACED_CALLERS, per_caller);
    // Each caller sends every `interval`; the callers are staggered evenly.
    let interval = Duration::from_secs_f64(PACED_CALLERS as f64 / PACED_RATE);
    let barrier = Barrier::new(PACED_CALLERS + 1);
    let (started, elapsed) = std::thread::scope(|s| {
        let callers: Vec<_> = work
            .iter()
            .enumerate()
            .map(|(c, mine)| {
                let (barrier, ingestor) = (&barrier, &ingestor);
                s.spawn(move || {
                    barrier.wait();
                    let begin = Instant::now() + interval * c as u32 / PACED_CALLERS as u32;
                    mine.iter()
                        .enumerate()
                        .map(|(k, d)| {
                            let due = begin + interval * k as u32;
                            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                                std::thread::sleep(wait);
                            }
                            let at = Instant::now();
                            accept(ingestor, d);
                            (d.id.as_str(), at)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        let started: Vec<(&str, Instant)> = callers
            .into_iter()
            .flat_map(|caller| caller.join().expect("caller"))
            .collect();
        (started, start.elapsed())
    });
    wait_handled(&worker, total as u64);
    worker.shutdown().expect("shutdown");
    let handled_at = handled_at.lock().expect("handled times");
    let mut latencies: Vec<u32> = started
        .iter()
        .map(|(id, at)| {
            let done = handled_at.get(*id).expect("every event observed");
            let micros = done.saturating_duration_since(*at).as_micros();
            micros.min(u128::from(u32::MAX)) as u32
        })
        .collect();
    latencies.sort_unstable();
    drop(ingestor);
    inbox.close().expect("close");
    let _ = std::fs::remove_dir_all(&dir);
    (total as f64 / elapsed.as_secs_f64(), latencies)
}

// ---- the report -------------------------------------------------------------

fn percentile(sorted: &[u32], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 - 1.0) * p) as usize)
        .map_or(0.0, |&x| f64::from(x))
}

/// One table row: median and min–max of `xs` with `decimals` digits, then `note`.
fn row(what: &str, xs: &[f64], decimals: usize, note: &str) {
    let (mid, lo, hi) = common::summary(xs);
    let line =
        format!("{what:<32} {mid:>10.decimals$} {lo:>10.decimals$} {hi:>10.decimals$}  {note}");
    println!("{}", line.trim_end());
}

fn main() {
    let Some(common::Settings { quick, rounds }) = common::settings() else {
        return;
    };
    let (pending, per_caller, paced_secs) = if quick {
        (10_000, 250, 1.0)
    } else {
        (100_000, 1_250, 3.0)
    };

    let mut ingest16 = Vec::new();
    let mut drains = vec![Vec::new(); DRAIN_THREADS.len()];
    let (mut achieved, mut p50, mut p99, mut max) = (vec![], vec![], vec![], vec![]);
    for round in 0..rounds {
        // Interleave the measurements so machine noise hits them alike.
        ingest16.push(run_ingest16(per_caller, round));
        for (i, &threads) in DRAIN_THREADS.iter().enumerate() {
            drains[i].push(run_drain(pending, threads, round));
        }
        let (rate, latencies) = run_latency(paced_secs, round);
        achieved.push(rate);
        let ms = |p| percentile(&latencies, p) / 1000.0;
        p50.push(ms(0.50));
        p99.push(ms(0.99));
        max.push(ms(1.0));
    }

    println!(
        "worker: 1 KiB Bluum deliveries, Fsync durability, no-op handler on \"*\"; \
         medians of {rounds} rounds"
    );
    println!(
        "{:<32} {:>10} {:>10} {:>10}  vs ingest16 (per-round min–max)",
        "measurement", "median", "min", "max"
    );
    row(
        &format!("ingest16 events/s ({} ev)", INGEST_CALLERS * per_caller),
        &ingest16,
        0,
        "1.00x",
    );
    let (base, _, _) = common::summary(&ingest16);
    for (threads, rates) in DRAIN_THREADS.iter().zip(&drains) {
        let ratios: Vec<f64> = rates.iter().zip(&ingest16).map(|(d, i)| d / i).collect();
        let (_, lo, hi) = common::summary(&ratios);
        row(
            &format!(
                "drain events/s, {threads} thread{}",
                if *threads == 1 { "" } else { "s" }
            ),
            rates,
            0,
            &format!("{:.2}x ({lo:.2}–{hi:.2})", common::summary(rates).0 / base),
        );
    }
    let load = format!(
        "paced {PACED_RATE:.0} ev/s from {PACED_CALLERS} callers for {paced_secs:.0} s, \
         {PACED_WORKER_THREADS} handler threads"
    );
    row("latency: achieved events/s", &achieved, 0, &load);
    row("latency: p50 ms", &p50, 2, "");
    row("latency: p99 ms", &p99, 2, "");
    row("latency: max ms", &max, 2, "");
    println!("drain: {pending} events pending at start; ingest16: {INGEST_CALLERS} callers");
}
