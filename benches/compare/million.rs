//! One million pending events, in a child process so that its peak RSS is the
//! library's alone (the bench binary re-executes itself with
//! `COMPARE_CHILD=million`):
//!
//! 1. 16 callers ingest N events with `Durability::Fsync`, each signing its
//!    deliveries as it goes (nothing is generated ahead, so no test data sits
//!    in memory);
//! 2. disk: `Inbox::stats().disk_bytes` and a `du`-style walk (allocated
//!    blocks) of the directory, divided by N; the walk again after closing;
//! 3. open after a crash: the clean-close file removed, so `Inbox::open`
//!    rebuilds sled from the log (then closed cleanly again);
//! 4. reopen to first dispatch: `Inbox::open` + `Worker::start` (no-op
//!    handler on `*`, 4 threads) until the first handler call;
//! 5. the drain of all N, from `Worker::start` until `stats().handled` is N;
//! 6. peak RSS: `VmHWM` from `/proc/self/status`, after the ingest and at the end.
//!
//! The child prints one JSON line; the parent runs it once per round.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use webhook_inbox::{Event, Router, Worker, WorkerConfig};

use crate::common::{self, Settings};
use crate::fixture::{self, Scratch};
use crate::report::{Million, Stat};

/// The environment variable that makes the bench binary the child.
pub const CHILD_ENV: &str = "COMPARE_CHILD";
const EVENTS_ENV: &str = "COMPARE_MILLION_EVENTS";
const DIR_ENV: &str = "COMPARE_MILLION_DIR";
const CALLERS: usize = 16;
const HANDLER_THREADS: usize = 4;
const KIB_PER_MIB: f64 = 1024.0;

/// What one child measured.
#[derive(Serialize, Deserialize, Debug)]
pub struct ChildReport {
    pub events: usize,
    pub ingest_events_per_sec: f64,
    pub stats_disk_bytes: u64,
    pub du_bytes: u64,
    pub apparent_bytes: u64,
    pub du_sled_bytes: u64,
    pub du_wal_bytes: u64,
    pub close_secs: f64,
    pub du_closed_bytes: u64,
    pub open_secs: f64,
    pub rebuild_secs: f64,
    pub first_dispatch_secs: f64,
    pub drain_secs: f64,
    pub hwm_after_ingest_kib: u64,
    pub hwm_kib: u64,
}

/// Allocated bytes (as `du` counts them) and apparent bytes under `path`.
pub fn du(path: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return (0, 0);
    };
    let mut sizes = (meta.blocks() * 512, meta.len());
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
            let (d, a) = du(&entry.path());
            sizes = (sizes.0 + d, sizes.1 + a);
        }
    }
    sizes
}

/// This process's peak resident set so far, in KiB.
fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The child: runs the scenario in the directory the parent made, prints the report.
pub fn child() {
    let n: usize = std::env::var(EVENTS_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .expect("COMPARE_MILLION_EVENTS");
    let dir = PathBuf::from(std::env::var_os(DIR_ENV).expect("COMPARE_MILLION_DIR"));

    // 1. Ingest, signing on the fly.
    let inbox = fixture::open(&dir);
    let ingestor = fixture::ingestor(&inbox);
    let (signer, now) = (fixture::signer(), common::now_secs());
    let start = Instant::now();
    std::thread::scope(|s| {
        for c in 0..CALLERS {
            let (ingestor, signer) = (&ingestor, &signer);
            s.spawn(move || {
                for i in (c..n).step_by(CALLERS) {
                    let d = fixture::delivery(signer, format!("m-{i}"), i, now);
                    fixture::accept(ingestor, &d);
                }
            });
        }
    });
    let ingest_secs = start.elapsed().as_secs_f64();
    let hwm_after_ingest_kib = vm_hwm_kib();

    // 2. Disk, live and closed.
    let stats = inbox.stats();
    assert_eq!(stats.pending, n as u64, "pending after the ingest");
    let (du_bytes, apparent_bytes) = du(&dir);
    let (du_sled_bytes, _) = du(&dir.join("sled"));
    let (du_wal_bytes, _) = du(&dir.join("wal"));
    drop(ingestor);
    let t = Instant::now();
    inbox.close().expect("close");
    let close_secs = t.elapsed().as_secs_f64();
    let (du_closed_bytes, _) = du(&dir);

    // 3. As after a crash: without the clean-close file sled is rebuilt.
    std::fs::remove_file(dir.join("clean")).expect("a clean close leaves `clean`");
    let t = Instant::now();
    let inbox = fixture::open(&dir);
    let rebuild_secs = t.elapsed().as_secs_f64();
    assert_eq!(inbox.stats().pending, n as u64, "pending after the rebuild");
    inbox.close().expect("close");

    // 4. Reopen to first dispatch, 5. drain.
    let first: Arc<OnceLock<Instant>> = Arc::default();
    let router = Router::builder()
        .on("*", {
            let first = Arc::clone(&first);
            move |_e: &Event| {
                first.get_or_init(Instant::now);
                Ok(())
            }
        })
        .build()
        .expect("router");
    let t0 = Instant::now();
    let inbox = fixture::open(&dir);
    let open_secs = t0.elapsed().as_secs_f64();
    let started = Instant::now();
    let worker = Worker::start(
        &inbox,
        router,
        WorkerConfig::default().threads(HANDLER_THREADS),
    )
    .expect("worker");
    let first_at = loop {
        if let Some(&at) = first.get() {
            break at;
        }
        assert!(
            worker.is_running(),
            "the worker stopped before any dispatch"
        );
        std::thread::sleep(Duration::from_micros(100));
    };
    fixture::wait_handled(&worker, n as u64);
    let drain_secs = started.elapsed().as_secs_f64();
    worker.shutdown().expect("shutdown");
    inbox.close().expect("close");

    let report = ChildReport {
        events: n,
        ingest_events_per_sec: n as f64 / ingest_secs,
        stats_disk_bytes: stats.disk_bytes.unwrap_or(0),
        du_bytes,
        apparent_bytes,
        du_sled_bytes,
        du_wal_bytes,
        close_secs,
        du_closed_bytes,
        open_secs,
        rebuild_secs,
        first_dispatch_secs: first_at.saturating_duration_since(t0).as_secs_f64(),
        drain_secs,
        hwm_after_ingest_kib,
        hwm_kib: vm_hwm_kib(),
    };
    println!("{}", serde_json::to_string(&report).expect("report"));
}

/// Runs the child once with `n` events.
fn run_child(n: usize, run: usize) -> ChildReport {
    let dir = Scratch::new(&format!("million-{run}"));
    let exe = std::env::current_exe().expect("the bench binary");
    let output = Command::new(exe)
        .env(CHILD_ENV, "million")
        .env(EVENTS_ENV, n.to_string())
        .env(DIR_ENV, dir.path())
        .stderr(Stdio::inherit())
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the child failed: {}",
        output.status
    );
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .expect("the child's report");
    serde_json::from_str(line).expect("a report")
}

/// The scenario over the rounds (N = 1 000 000; 20 000 in quick mode).
pub fn measure(settings: &Settings) -> Million {
    let n = if settings.quick { 20_000 } else { 1_000_000 };
    let reports: Vec<ChildReport> = (0..settings.rounds)
        .map(|round| {
            let r = run_child(n, round);
            eprintln!(
                "  {n} pending round {}: ingest {:.0} events/s, {:.0} bytes/event, rebuild {:.2} s, reopen to first dispatch {:.3} s, drain {:.0} events/s, peak RSS {} MiB",
                round + 1,
                r.ingest_events_per_sec,
                r.du_bytes as f64 / n as f64,
                r.rebuild_secs,
                r.first_dispatch_secs,
                n as f64 / r.drain_secs,
                r.hwm_kib / 1024
            );
            r
        })
        .collect();
    let stat =
        |f: &dyn Fn(&ChildReport) -> f64| Stat::of(&reports.iter().map(f).collect::<Vec<_>>());
    let per_event = |bytes: u64| bytes as f64 / n as f64;
    Million {
        events: n,
        callers: CALLERS,
        handler_threads: HANDLER_THREADS,
        ingest_events_per_sec: stat(&|r| r.ingest_events_per_sec),
        disk_bytes_per_event_stats: stat(&|r| per_event(r.stats_disk_bytes)),
        disk_bytes_per_event_du: stat(&|r| per_event(r.du_bytes)),
        disk_bytes_per_event_apparent: stat(&|r| per_event(r.apparent_bytes)),
        sled_bytes_per_event_du: stat(&|r| per_event(r.du_sled_bytes)),
        wal_bytes_du: stat(&|r| r.du_wal_bytes as f64),
        disk_bytes_per_event_closed: stat(&|r| per_event(r.du_closed_bytes)),
        close_secs: stat(&|r| r.close_secs),
        open_secs: stat(&|r| r.open_secs),
        rebuild_secs: stat(&|r| r.rebuild_secs),
        reopen_to_first_dispatch_secs: stat(&|r| r.first_dispatch_secs),
        drain_events_per_sec: stat(&|r| n as f64 / r.drain_secs),
        peak_rss_after_ingest_mib: stat(&|r| r.hwm_after_ingest_kib as f64 / KIB_PER_MIB),
        peak_rss_mib: stat(&|r| r.hwm_kib as f64 / KIB_PER_MIB),
    }
}
