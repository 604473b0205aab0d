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

const EVENTS: u64 = 2_000;
const KEYS: u64 = 8;
const SENDERS: u64 = 4;

/// `workers` workers (2 threads each, ordered by `/data/k`) on one sled
/// inbox while 4 threads ingest 2,000 events over 8 keys: each event runs
/// exactly once, and each key's events one at a time, in acceptance order.
fn workers_share_one_inbox(workers: usize) {
    let dir = tempfile::TempDir::new().unwrap();
    let inbox = Inbox::open(dir.path()).unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let config = WorkerConfig::default().threads(2).ordering_key("/data/k");
    let pool: Vec<Worker> = (0..workers)
        .map(|_| Worker::start(&inbox, ordered_router(&seen), config.clone()).unwrap())
        .collect();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..SENDERS {
            let sender = Sender::new(&inbox);
            scope.spawn(move || {
                for n in (t..EVENTS).step_by(SENDERS as usize) {
                    sender.accept(&format!("evt_{n}"), n % KEYS);
                }
            });
        }
    });
    let handled = || pool.iter().map(|w| w.stats().handled).sum::<u64>();
    wait_for("every event handled", Duration::from_secs(60), || {
        handled() >= EVENTS
    });
    let took = started.elapsed();
    let per_worker: Vec<u64> = pool.iter().map(|w| w.stats().handled).collect();
    for worker in pool {
        let stats = worker.stats();
        assert_eq!(
            (stats.retried, stats.leases_lost, stats.store_errors),
            (0, 0, 0)
        );
        worker.shutdown().unwrap();
    }
    let seen = lock(&seen);
    assert_eq!(seen.violations, Vec::<String>::new());
    assert_eq!(seen.runs.len() as u64, EVENTS);
    let twice: Vec<_> = seen.runs.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "run more than once: {twice:?}");
    assert_eq!(per_worker.iter().sum::<u64>(), EVENTS);
    assert!(
        per_worker.iter().filter(|n| **n > 0).count() >= 2,
        "only one worker took part: {per_worker:?}"
    );
    let stats = inbox.stats();
    assert_eq!((stats.pending, stats.retrying, stats.dead), (0, 0, 0));
    eprintln!("{workers} workers: {EVENTS} events in {took:.2?}, by worker {per_worker:?}");
}

#[test]
fn two_workers_on_one_sled_inbox_handle_each_event_once_in_key_order() {
    workers_share_one_inbox(2);
}

#[test]
fn four_workers_on_one_sled_inbox_handle_each_event_once_in_key_order() {
    workers_share_one_inbox(4);
}

/// A worker whose heartbeats the store never hears loses its lease; another
/// worker claims the event and handles it; the first worker's late outcome
/// (a failure) is refused, reported as lost, and changes nothing. With
/// `other_holds_it`, that outcome arrives while the other worker's handler
/// still runs (its claim live: only the fencing token refuses it); without,
/// after the other worker's outcome is recorded.
fn lease_lost_to_unheard_heartbeats(other_holds_it: bool) {
    let dir = tempfile::TempDir::new().unwrap();
    let first_faults = sled_faults(dir.path());
    let first_plan = first_faults.plan();
    let second_faults = first_faults.sibling();
    let first_inbox = inbox_over(dir.path(), first_faults);
    let second_inbox = inbox_over(dir.path(), second_faults);
    first_plan.heartbeats(Heartbeats::Swallow);

    let first_started = Arc::new(AtomicBool::new(false));
    let second_running = Arc::new(AtomicBool::new(false));
    let first_lost = Arc::new(AtomicBool::new(false));
    let first_router = {
        let (started, other) = (Arc::clone(&first_started), Arc::clone(&second_running));
        let plan = Arc::clone(&first_plan);
        Router::builder()
            .on("order.*", move |_: &Event| {
                // Takes no new work from now on (so the event, once its lease
                // is gone, goes to the other worker, not back to this one).
                plan.hold_claims(true);
                started.store(true, Ordering::SeqCst);
                // Outlives the 1 s lease: until the other worker runs it.
                wait_flag(&other);
                Err(HandlerError::retry("the first worker's attempt failed"))
            })
            .build()
            .unwrap()
    };
    let first_reports: Reports = Arc::default();
    let config = WorkerConfig::default()
        .threads(1)
        .lease(Duration::from_secs(1))
        .observe({
            let (reports, lost) = (Arc::clone(&first_reports), Arc::clone(&first_lost));
            move |e: &Event, r: &Report| {
                lock(&reports).push((e.id().to_owned(), r.clone()));
                if matches!(r, Report::LeaseLost { .. }) {
                    lost.store(true, Ordering::SeqCst);
                }
            }
        });
    let first = Worker::start(&first_inbox, first_router, config).unwrap();
    Sender::new(&first_inbox).accept("evt_1", 0);
    wait_for("the first handler", Duration::from_secs(10), || {
        first_started.load(Ordering::SeqCst)
    });

    let attempts = Arc::new(Mutex::new(Vec::new()));
    let second_router = {
        let (running, attempts) = (Arc::clone(&second_running), Arc::clone(&attempts));
        let first_lost = Arc::clone(&first_lost);
        Router::builder()
            .on("order.*", move |e: &Event| {
                lock(&attempts).push(e.attempt());
                running.store(true, Ordering::SeqCst);
                if other_holds_it {
                    wait_flag(&first_lost);
                }
                Ok(())
            })
            .build()
            .unwrap()
    };
    let (config, second_reports) = observed(WorkerConfig::default());
    let second = Worker::start(&second_inbox, second_router, config).unwrap();

    wait_for("the lost lease", Duration::from_secs(20), || {
        first.stats().leases_lost == 1
    });
    wait_for("the second outcome", Duration::from_secs(20), || {
        second.stats().handled == 1
    });
    let (a, b) = (first.stats(), second.stats());
    first.shutdown().unwrap();
    second.shutdown().unwrap();

    assert_eq!(
        (a.leases_lost, a.handled, a.retried, a.dead_lettered),
        (1, 0, 0, 0)
    );
    assert_eq!((b.handled, b.leases_lost), (1, 0));
    assert_eq!(
        *lock(&first_reports),
        [("evt_1".to_owned(), Report::LeaseLost { attempt: 1 })]
    );
    assert_eq!(
        *lock(&second_reports),
        [("evt_1".to_owned(), Report::Handled)]
    );
    // The failed attempt was never recorded: the second one is the first.
    assert_eq!(*lock(&attempts), [1]);
    // The first worker did beat, and the store never heard it.
    assert!(
        first_plan.calls().heartbeats >= 1,
        "{:?}",
        first_plan.calls()
    );
    // The store holds the second worker's outcome: handled, not retrying.
    let stats = second_inbox.stats();
    assert_eq!((stats.pending, stats.retrying, stats.dead), (0, 0, 0));
    assert!(second_inbox.event("evt_1").unwrap().is_none());
    assert!(matches!(
        Sender::new(&second_inbox).send("evt_1", 0),
        Ok(Ingested::Duplicate { .. })
    ));
}

/// Waits (at most 15 s) for `flag`, in a handler.
fn wait_flag(flag: &AtomicBool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !flag.load(Ordering::SeqCst) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_lease_lost_to_unheard_heartbeats_is_refused_after_the_other_outcome() {
    lease_lost_to_unheard_heartbeats(false);
}

#[test]
fn a_lease_lost_to_unheard_heartbeats_is_refused_while_the_other_holds_it() {
    lease_lost_to_unheard_heartbeats(true);
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

/// Two outcome writes fail: the worker counts them, gives the claims back at
/// once (well within the 30 s lease), and runs those events again; each
/// event ends up recorded as handled exactly once.
#[test]
fn refused_outcomes_are_given_back_and_handled_once_later() {
    const N: u64 = 20;
    let dir = tempfile::TempDir::new().unwrap();
    let faults = sled_faults(dir.path());
    let plan = faults.plan();
    let inbox = inbox_over(dir.path(), faults);
    let sender = Sender::new(&inbox);
    for n in 0..N {
        sender.accept(&format!("evt_{n}"), n);
    }
    plan.refuse_outcomes(2);
    let runs: Runs = Arc::default();
    let (config, reports) = observed(WorkerConfig::default());
    let worker = Worker::start(&inbox, counting_router(&runs), config).unwrap();
    wait_for("every event handled", Duration::from_secs(20), || {
        worker.stats().handled == N
    });
    let stats = worker.stats();
    worker.shutdown().unwrap();

    assert_eq!((stats.store_errors, stats.leases_lost), (2, 0));
    let calls = plan.calls();
    assert!(calls.refused_items >= 2, "{calls:?}");
    let runs = lock(&runs);
    assert_eq!(runs.len() as u64, N);
    let total: usize = runs.values().map(Vec::len).sum();
    assert_eq!(total as u64, N + calls.refused_items);
    handled_once(&reports, N);
    let stats = inbox.stats();
    assert_eq!((stats.pending, stats.retrying, stats.dead), (0, 0, 0));
}

/// An outcome write fails and so does the release after it: the claims are
/// not given back, so the events wait for their 1 s lease to run out, then
/// run again and are recorded once.
#[test]
fn claims_not_given_back_return_when_their_lease_ends() {
    const N: u64 = 5;
    let dir = tempfile::TempDir::new().unwrap();
    let faults = sled_faults(dir.path());
    let plan = faults.plan();
    let inbox = inbox_over(dir.path(), faults);
    let sender = Sender::new(&inbox);
    for n in 0..N {
        sender.accept(&format!("evt_{n}"), n);
    }
    plan.refuse_finishes(2);
    let runs: Runs = Arc::default();
    let (config, reports) = observed(WorkerConfig::default().lease(Duration::from_secs(1)));
    let worker = Worker::start(&inbox, counting_router(&runs), config).unwrap();
    wait_for("every event handled", Duration::from_secs(20), || {
        worker.stats().handled == N
    });
    let stats = worker.stats();
    worker.shutdown().unwrap();

    // Only the outcome's failure counts; the release is best effort.
    assert_eq!((stats.store_errors, stats.leases_lost), (1, 0));
    let calls = plan.calls();
    // The refused outcomes, then the same claims' refused release.
    assert!(
        calls.refused_items >= 2 && calls.refused_items.is_multiple_of(2),
        "{calls:?}"
    );
    let runs = lock(&runs);
    let again: Vec<_> = runs.values().filter(|starts| starts.len() > 1).collect();
    assert_eq!(again.len() as u64, calls.refused_items / 2, "{runs:?}");
    for starts in again {
        assert_eq!(starts.len(), 2);
        let waited = starts[1] - starts[0];
        assert!(
            waited >= Duration::from_millis(900),
            "ran again after {waited:?}"
        );
    }
    handled_once(&reports, N);
    let stats = inbox.stats();
    assert_eq!((stats.pending, stats.retrying, stats.dead), (0, 0, 0));
}

/// Heartbeats that fail are store errors the worker counts and outlives:
/// the running handler's outcome is still recorded once they pass again.
#[test]
fn failing_heartbeats_are_counted_and_outlived() {
    let dir = tempfile::TempDir::new().unwrap();
    let faults = sled_faults(dir.path());
    let plan = faults.plan();
    let inbox = inbox_over(dir.path(), faults);
    let router = {
        let plan = Arc::clone(&plan);
        Router::builder()
            .on("order.*", move |e: &Event| {
                if e.id() == "evt_0" {
                    // Runs while two heartbeats fail, then lets them pass.
                    plan.heartbeats(Heartbeats::Fail);
                    let deadline = Instant::now() + Duration::from_secs(15);
                    while plan.calls().intercepted < 2 && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    plan.heartbeats(Heartbeats::Pass);
                }
                Ok(())
            })
            .build()
            .unwrap()
    };
    let (config, reports) = observed(WorkerConfig::default().lease(Duration::from_secs(1)));
    let worker = Worker::start(&inbox, router, config).unwrap();
    let sender = Sender::new(&inbox);
    sender.accept("evt_0", 0);
    wait_for("two failed heartbeats", Duration::from_secs(15), || {
        plan.calls().intercepted >= 2
    });
    sender.accept("evt_1", 1);
    wait_for("both handled", Duration::from_secs(15), || {
        worker.stats().handled == 2
    });
    let stats = worker.stats();
    worker.shutdown().unwrap();
    assert!(stats.store_errors >= 2, "{stats:?}");
    assert_eq!(stats.leases_lost, 0);
    handled_once(&reports, 2);
    let stats = inbox.stats();
    assert_eq!((stats.pending, stats.retrying, stats.dead), (0, 0, 0));
}

/// A refused insert answers the storage error (503) and stores nothing: no
/// event, no dedup marker, so the sender's retry is accepted.
#[test]
fn refused_inserts_answer_503_and_store_nothing() {
    let dir = tempfile::TempDir::new().unwrap();
    let faults = sled_faults(dir.path());
    let plan = faults.plan();
    let inbox = inbox_over(dir.path(), faults);
    let sender = Sender::new(&inbox);
    plan.refuse_inserts(2);
    for id in ["evt_1", "evt_2"] {
        let refused = sender.send(id, 0);
        assert!(
            matches!(refused, Err(IngestError::Storage(StoreError::Io(_)))),
            "{refused:?}"
        );
        assert_eq!(refused.err().map(|e| e.status()), Some(503));
    }
    let stats = inbox.stats();
    assert_eq!(
        (stats.accepted, stats.pending, stats.dedup_markers),
        (0, 0, 0)
    );
    assert!(inbox.event("evt_1").unwrap().is_none());
    sender.accept("evt_1", 0);
    let calls = plan.calls();
    assert_eq!((calls.inserts, calls.intercepted), (3, 2));
    assert_eq!(inbox.stats().pending, 1);
}

/// The in-memory inbox end to end: ingest, handle, retry once, handle.
#[test]
fn the_memory_inbox_runs_the_worker_end_to_end() {
    const N: u64 = 100;
    let inbox = Inbox::memory();
    let failures = Arc::new(AtomicU32::new(0));
    let runs = Arc::new(Mutex::new(HashMap::<String, Vec<u32>>::new()));
    let router = {
        let (failures, runs) = (Arc::clone(&failures), Arc::clone(&runs));
        Router::builder()
            .on("order.*", move |e: &Event| {
                lock(&runs)
                    .entry(e.id().to_owned())
                    .or_default()
                    .push(e.attempt());
                if e.seq().is_multiple_of(5) && e.attempt() == 1 {
                    failures.fetch_add(1, Ordering::SeqCst);
                    return Err(HandlerError::retry("first attempts of every fifth fail"));
                }
                Ok(())
            })
            .build()
            .unwrap()
    };
    let config = WorkerConfig::default().backoff(Backoff::ladder([Duration::from_millis(20)]));
    let (config, reports) = observed(config);
    let worker = Worker::start(&inbox, router, config).unwrap();
    let sender = Sender::new(&inbox);
    for n in 0..N {
        sender.accept(&format!("evt_{n}"), n);
    }
    wait_for("every event handled", Duration::from_secs(20), || {
        worker.stats().handled == N
    });
    let stats = worker.stats();
    worker.shutdown().unwrap();
    let failed = u64::from(failures.load(Ordering::SeqCst));
    assert_eq!(failed, N / 5);
    assert_eq!((stats.retried, stats.dead_lettered), (failed, 0));
    let runs = lock(&runs);
    assert_eq!(runs.len() as u64, N);
    for attempts in runs.values() {
        assert!(attempts == &[1] || attempts == &[1, 2], "{attempts:?}");
    }
    let handled: Vec<_> = lock(&reports)
        .iter()
        .filter(|(_, r)| *r == Report::Handled)
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(handled.len() as u64, N);
    let stats = inbox.stats();
    assert_eq!((stats.pending, stats.retrying, stats.dead), (0, 0, 0));
}
