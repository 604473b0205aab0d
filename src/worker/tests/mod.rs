//! Real workers on real stores: several workers sharing one sled inbox,
//! leases lost to heartbeats the store never heard, store failures injected
//! at the seam ([`Faults`]), and the in-memory inbox end to end.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::store::faults::{Faults, Heartbeats};
use crate::store::local::Local;
use crate::store::sled::{Settings, SledStore};
use crate::sync::lock;
use crate::{
    Backoff, DEFAULT_CACHE_BYTES, DEFAULT_MAX_PENDING, DEFAULT_RETENTION, Durability, Event,
    HandlerError, Inbox, IngestError, Ingested, Ingestor, Report, Router, Scheme, Signer,
    StoreError, SystemClock, Verifier, Worker, WorkerConfig,
};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Signs and ingests Bluum deliveries, as a sender and the HTTP layer would.
struct Sender {
    ingestor: Ingestor,
    signer: Signer,
}

impl Sender {
    fn new(inbox: &Inbox) -> Self {
        let verifier = Verifier::new(Scheme::bluum(), [SECRET]).unwrap();
        Self {
            ingestor: inbox.ingestor(verifier).build().unwrap(),
            signer: Signer::new(Scheme::bluum(), SECRET).unwrap(),
        }
    }

    /// Delivery `id`, an `order.filled` whose ordering key is `k{key}`.
    fn send(&self, id: &str, key: u64) -> Result<Ingested, IngestError> {
        let body = format!(
            r#"{{"event":"order.filled","timestamp":"2026-11-28T14:00:00Z","data":{{"id":"{id}","k":"k{key}"}}}}"#
        );
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let headers = self.signer.sign(id, now, body.as_bytes());
        self.ingestor.ingest(&headers, body.as_bytes())
    }

    fn accept(&self, id: &str, key: u64) {
        let outcome = self.send(id, key);
        assert!(
            matches!(outcome, Ok(Ingested::Accepted { .. })),
            "{id}: {outcome:?}"
        );
    }
}

/// Waits up to `limit` for `done`, polling; panics with `what` past it.
fn wait_for(what: &str, limit: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A sled store in `dir`, behind the fault switches.
fn sled_faults(dir: &Path) -> Faults {
    let settings = Settings {
        durability: Durability::Fsync,
        retention: DEFAULT_RETENTION,
        cache_bytes: DEFAULT_CACHE_BYTES,
        max_pending: DEFAULT_MAX_PENDING,
        clock: Arc::new(SystemClock),
    };
    let Ok(store) = SledStore::open(dir, settings, true) else {
        panic!("cannot open a sled store in {}", dir.display());
    };
    Faults::new(Box::new(Local::new(store)))
}

/// An inbox over `faults` (a store opened in `dir`).
fn inbox_over(dir: &Path, faults: Faults) -> Inbox {
    Inbox::builder(dir).with_backend(dir.to_path_buf(), Box::new(faults))
}

/// The reports an observer was given, in order, by event id.
type Reports = Arc<Mutex<Vec<(String, Report)>>>;

fn observed(config: WorkerConfig) -> (WorkerConfig, Reports) {
    let reports: Reports = Arc::default();
    let log = Arc::clone(&reports);
    let config = config.observe(move |e: &Event, r: &Report| {
        lock(&log).push((e.id().to_owned(), r.clone()));
    });
    (config, reports)
}

/// What the handlers of every worker on one inbox saw.
#[derive(Default)]
struct Seen {
    /// Handler runs by event id.
    runs: HashMap<String, u32>,
    /// Per ordering key: a handler of it is running; the last seq started.
    keys: HashMap<String, (bool, u64)>,
    /// Overlaps and out-of-order starts, described.
    violations: Vec<String>,
}

/// A handler that checks, across every worker sharing `seen`, that no two
/// events of one key run at once and that each key's events start in
/// acceptance (seq) order.
fn ordered_router(seen: &Arc<Mutex<Seen>>) -> Router {
    let seen = Arc::clone(seen);
    Router::builder()
        .on("order.*", move |e: &Event| {
            let json = e.json()?;
            let key = json["data"]["k"].as_str().unwrap_or_default().to_owned();
            {
                let mut s = lock(&seen);
                *s.runs.entry(e.id().to_owned()).or_default() += 1;
                let (busy, last) = *s.keys.get(&key).unwrap_or(&(false, 0));
                if busy {
                    s.violations.push(format!("{} overlaps {key}", e.id()));
                }
                if e.seq() <= last {
                    s.violations
                        .push(format!("{} (seq {}) after seq {last}", e.id(), e.seq()));
                }
                s.keys.insert(key.clone(), (true, e.seq()));
            }
            // Long enough for another worker to start the key's next event,
            // were it let through.
            std::thread::sleep(Duration::from_micros(300));
            if let Some(state) = lock(&seen).keys.get_mut(&key) {
                state.0 = false;
            }
            Ok(())
        })
        .build()
        .unwrap()
}

/// Handler runs per event id, and when each started.
type Runs = Arc<Mutex<HashMap<String, Vec<Instant>>>>;

fn counting_router(runs: &Runs) -> Router {
    let runs = Arc::clone(runs);
    Router::builder()
        .on("order.*", move |e: &Event| {
            lock(&runs)
                .entry(e.id().to_owned())
                .or_default()
                .push(Instant::now());
            Ok(())
        })
        .build()
        .unwrap()
}

/// Asserts each of `n` events was reported handled exactly once.
fn handled_once(reports: &Reports, n: u64) {
    let reports = lock(reports);
    let mut handled: HashMap<&str, u32> = HashMap::new();
    for (id, report) in reports.iter() {
        assert_eq!(*report, Report::Handled, "{id}");
        *handled.entry(id).or_default() += 1;
    }
    assert_eq!(handled.len() as u64, n);
    assert!(handled.values().all(|n| *n == 1), "{handled:?}");
}

mod failures;
mod leases;
mod sharing;
