//! The worker: how fast it drains a backlog, and how long an event takes from
//! `ingest` to its no-op handler's outcome being durably recorded.
//!
//! - drain: a fresh store is pre-filled with N pending events through the real
//!   ingestor (`Durability::Buffered(5 ms)`, 4 threads: only to make the
//!   pre-fill fast), closed and reopened with the default `Durability::Fsync`;
//!   timed from `Worker::start` (no-op handler on `*`, 1, 2 or 4 handler
//!   threads) until `stats().handled` reaches N (polled every millisecond).
//! - end to end: a worker (4 handler threads) runs while callers ingest;
//!   latency runs from just before `ingest` to the `WorkerConfig::observe`
//!   call for the event, which comes after its outcome is durably recorded.
//!   `paced`: 4 callers at a steady 2 000 events/s in all; `saturated`: 16
//!   callers as fast as they can. Throughput: events over the time from the
//!   start to the last outcome observed.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use webhook_inbox::{Durability, Event, Inbox, Ingestor, Report, Worker, WorkerConfig};

use crate::common::{self, Settings};
use crate::fixture::{self, Latencies, Scratch};
use crate::report::{Drain, EndToEnd, Stat};

/// Handler threads of the drain measurement, and whether attempts are
/// recorded before their handler runs (`WorkerConfig::durable_attempts`).
pub const DRAIN_THREADS: [(usize, bool); 4] = [(1, false), (2, false), (4, false), (4, true)];
/// Threads ingesting during a pre-fill (not measured).
const PREFILL_CALLERS: usize = 4;
/// Handler threads while measuring end to end.
const E2E_THREADS: usize = 4;
const PACED_RATE: f64 = 2_000.0;
const PACED_CALLERS: usize = 4;
const SATURATED_CALLERS: usize = 16;

/// Stores `n` pending events in `dir` through the ingestor (buffered, several
/// threads, ids `{prefix}-{i}`), then closes the inbox.
pub fn prefill(dir: &Path, n: usize, prefix: &str) {
    let inbox = Inbox::builder(dir)
        .durability(Durability::Buffered(Duration::from_millis(5)))
        .max_pending(u64::MAX)
        .open()
        .expect("open for the pre-fill");
    let ingestor = fixture::ingestor(&inbox);
    prefill_through(&ingestor, n, prefix, PREFILL_CALLERS);
    drop(ingestor);
    inbox.close().expect("close after the pre-fill");
}

/// Ingests `n` new events (ids `{prefix}-{i}`) through `ingestor` from
/// `callers` threads, each signing its deliveries as it goes.
pub fn prefill_through(ingestor: &Ingestor, n: usize, prefix: &str, callers: usize) {
    let (signer, now) = (fixture::signer(), common::now_secs());
    std::thread::scope(|s| {
        for c in 0..callers {
            let signer = &signer;
            s.spawn(move || {
                for i in (c..n).step_by(callers) {
                    let d = fixture::delivery(signer, format!("{prefix}-{i}"), i, now);
                    fixture::accept(ingestor, &d);
                }
            });
        }
    });
}

/// Events/s of a worker with `threads` handler threads draining `n` events
/// stored beforehand.
fn run_drain(n: usize, threads: usize, durable_attempts: bool, run: usize) -> f64 {
    let dir = Scratch::new(&format!("drain-{run}"));
    prefill(dir.path(), n, &format!("pre{run}"));
    let inbox = fixture::open(dir.path());
    assert_eq!(
        inbox.stats().pending,
        n as u64,
        "pending after the pre-fill"
    );
    let start = Instant::now();
    let worker = Worker::start(
        &inbox,
        fixture::noop_router(),
        WorkerConfig::default()
            .threads(threads)
            .durable_attempts(durable_attempts),
    )
    .expect("worker");
    fixture::wait_handled(&worker, n as u64);
    let secs = start.elapsed().as_secs_f64();
    worker.shutdown().expect("shutdown");
    inbox.close().expect("close");
    // Not timed: the outcomes are on disk, nothing is left to run.
    let inbox = fixture::open(dir.path());
    assert_eq!(inbox.stats().pending, 0, "pending after the drain");
    inbox.close().expect("close");
    n as f64 / secs
}

/// Throughput (events/s from the start to the last observed outcome) and the
/// end-to-end latencies of `callers` × `per_caller` events, each caller
/// sending one every `interval` (staggered) or as fast as it can.
fn run_end_to_end(
    callers: usize,
    per_caller: usize,
    interval: Option<Duration>,
    run: usize,
) -> (f64, Latencies) {
    let dir = Scratch::new(&format!("e2e-{run}"));
    let inbox = fixture::open(dir.path());
    let total = callers * per_caller;
    let handled_at = Arc::new(Mutex::new(HashMap::<String, Instant>::with_capacity(total)));
    let config = WorkerConfig::default().threads(E2E_THREADS).observe({
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
    let worker = Worker::start(&inbox, fixture::noop_router(), config).expect("worker");
    let ingestor = fixture::ingestor(&inbox);
    let work = fixture::deliveries(&format!("e2e{run}"), callers, per_caller);
    let barrier = Barrier::new(callers + 1);
    let (start, started) = std::thread::scope(|s| {
        let threads: Vec<_> = work
            .iter()
            .enumerate()
            .map(|(c, mine)| {
                let (barrier, ingestor) = (&barrier, &ingestor);
                s.spawn(move || {
                    barrier.wait();
                    let begin = Instant::now();
                    let offset = interval.map(|i| i * c as u32 / callers as u32);
                    mine.iter()
                        .enumerate()
                        .map(|(k, d)| {
                            if let (Some(interval), Some(offset)) = (interval, offset) {
                                let due = begin + offset + interval * k as u32;
                                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                                    std::thread::sleep(wait);
                                }
                            }
                            let at = Instant::now();
                            fixture::accept(ingestor, d);
                            (d.id.as_str(), at)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        let started: Vec<(&str, Instant)> = threads
            .into_iter()
            .flat_map(|t| t.join().expect("caller"))
            .collect();
        (start, started)
    });
    fixture::wait_handled(&worker, total as u64);
    worker.shutdown().expect("shutdown");
    let handled_at = handled_at.lock().expect("handled times");
    let last = handled_at.values().max().copied().unwrap_or(start);
    let nanos: Vec<u64> = started
        .iter()
        .map(|(id, at)| {
            let done = handled_at.get(*id).expect("every event observed");
            u64::try_from(done.saturating_duration_since(*at).as_nanos()).unwrap_or(u64::MAX)
        })
        .collect();
    drop(ingestor);
    inbox.close().expect("close");
    let secs = last.saturating_duration_since(start).as_secs_f64();
    (total as f64 / secs, Latencies::new(nanos))
}

/// End to end, both modes, over the rounds.
pub fn measure_end_to_end(settings: &Settings) -> Vec<EndToEnd> {
    let paced_secs = if settings.quick { 1.0 } else { 5.0 };
    let paced_per_caller = (PACED_RATE * paced_secs / PACED_CALLERS as f64) as usize;
    let saturated_per_caller = if settings.quick { 100 } else { 1_000 };
    let interval = Duration::from_secs_f64(PACED_CALLERS as f64 / PACED_RATE);
    let modes = [
        ("paced", PACED_CALLERS, paced_per_caller, Some(interval)),
        ("saturated", SATURATED_CALLERS, saturated_per_caller, None),
    ];
    modes
        .into_iter()
        .enumerate()
        .map(|(m, (mode, callers, per_caller, interval))| {
            let (mut rates, mut p50, mut p99, mut p999, mut max) =
                (vec![], vec![], vec![], vec![], vec![]);
            for round in 0..settings.rounds {
                let (rate, lat) = run_end_to_end(callers, per_caller, interval, round * 2 + m);
                eprintln!(
                    "  end to end {mode:<9} round {}: {rate:>8.0} events/s, p50 {:.3} ms, p99 {:.3} ms",
                    round + 1,
                    lat.ms(0.5),
                    lat.ms(0.99)
                );
                rates.push(rate);
                p50.push(lat.ms(0.50));
                p99.push(lat.ms(0.99));
                p999.push(lat.ms(0.999));
                max.push(lat.ms(1.0));
            }
            EndToEnd {
                mode: mode.to_owned(),
                callers,
                handler_threads: E2E_THREADS,
                offered_events_per_sec: interval.map(|_| PACED_RATE),
                events_per_round: callers * per_caller,
                events_per_sec: Stat::of(&rates),
                p50_ms: Stat::of(&p50),
                p99_ms: Stat::of(&p99),
                p999_ms: Stat::of(&p999),
                max_ms: Stat::of(&max),
            }
        })
        .collect()
}

/// Drains of a pre-filled backlog with 1, 2 and 4 handler threads; the ratio
/// is to the median 16-caller durable ingest rate of the same run.
pub fn measure_drain(settings: &Settings, ingest16: f64) -> Vec<Drain> {
    let n = if settings.quick { 10_000 } else { 100_000 };
    let mut rates = vec![Vec::new(); DRAIN_THREADS.len()];
    let mut run = 0;
    for round in 0..settings.rounds {
        for (i, &(threads, durable_attempts)) in DRAIN_THREADS.iter().enumerate() {
            run += 1;
            let rate = run_drain(n, threads, durable_attempts, run);
            eprintln!(
                "  drain {n} with {threads} threads{} round {}: {rate:>8.0} events/s",
                if durable_attempts {
                    ", durable attempts"
                } else {
                    ""
                },
                round + 1
            );
            rates[i].push(rate);
        }
    }
    DRAIN_THREADS
        .iter()
        .zip(rates)
        .map(|(&(threads, durable_attempts), rates)| {
            let ratios: Vec<f64> = rates.iter().map(|r| r / ingest16).collect();
            Drain {
                events: n,
                threads,
                durable_attempts,
                events_per_sec: Stat::of(&rates),
                x_ingest16: Stat::of(&ratios),
            }
        })
        .collect()
}
