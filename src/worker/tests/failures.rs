//! Store failures through the fault switches: refused outcomes, releases,
//! heartbeats and inserts; and the memory inbox end to end.

#[allow(clippy::wildcard_imports)]
use super::*;
use crate::store::faults::Plan;

/// A sled inbox behind fault switches, in a temporary directory (kept
/// while the first value lives).
fn faulty_inbox() -> (tempfile::TempDir, Arc<Plan>, Inbox) {
    let dir = tempfile::TempDir::new().unwrap();
    let faults = sled_faults(dir.path());
    let plan = faults.plan();
    let inbox = inbox_over(dir.path(), faults);
    (dir, plan, inbox)
}

/// Accepts `evt_0` … `evt_{n-1}`.
fn accept_all(inbox: &Inbox, n: u64) {
    let sender = Sender::new(inbox);
    for i in 0..n {
        sender.accept(&format!("evt_{i}"), i);
    }
}

/// Two outcome writes fail: the worker counts them, gives the claims back at
/// once (well within the 30 s lease), and runs those events again; each
/// event ends up recorded as handled exactly once.
#[test]
fn refused_outcomes_are_given_back_and_handled_once_later() {
    const N: u64 = 20;
    let (_dir, plan, inbox) = faulty_inbox();
    accept_all(&inbox, N);
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
    let (_dir, plan, inbox) = faulty_inbox();
    accept_all(&inbox, N);
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
    let (_dir, plan, inbox) = faulty_inbox();
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
    let (_dir, plan, inbox) = faulty_inbox();
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
    accept_all(&inbox, N);
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
