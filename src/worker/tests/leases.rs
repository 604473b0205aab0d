//! A lease lost to heartbeats the store never hears: the late outcome is refused.

#[allow(clippy::wildcard_imports)]
use super::*;

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

/// A job still queued behind a busy handler whose claim a heartbeat finds
/// lost is not run: the other worker that holds its claim now runs it, once.
/// (Before, the first worker ran it as well, and only its outcome was refused.)
#[test]
fn a_queued_job_whose_claim_is_lost_is_not_run() {
    let dir = tempfile::TempDir::new().unwrap();
    let first_faults = sled_faults(dir.path());
    let first_plan = first_faults.plan();
    let second_faults = first_faults.sibling();
    let first_inbox = inbox_over(dir.path(), first_faults);
    let second_inbox = inbox_over(dir.path(), second_faults);
    first_plan.heartbeats(Heartbeats::Swallow);
    Sender::new(&first_inbox).accept("evt_1", 0);
    Sender::new(&first_inbox).accept("evt_2", 0);

    let (first_started, release) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let first_runs: Arc<Mutex<Vec<String>>> = Arc::default();
    let first_router = {
        let (started, release, runs) = (
            Arc::clone(&first_started),
            Arc::clone(&release),
            Arc::clone(&first_runs),
        );
        let plan = Arc::clone(&first_plan);
        Router::builder()
            .on("order.*", move |e: &Event| {
                lock(&runs).push(e.id().to_owned());
                if e.id() == "evt_1" {
                    plan.hold_claims(true);
                    started.store(true, Ordering::SeqCst);
                    wait_flag(&release);
                }
                Ok(())
            })
            .build()
            .unwrap()
    };
    let config = WorkerConfig::default()
        .threads(1)
        .lease(Duration::from_secs(1));
    let first = Worker::start(&first_inbox, first_router, config).unwrap();
    wait_for("the first handler", Duration::from_secs(10), || {
        first_started.load(Ordering::SeqCst)
    });
    // evt_2 waits behind evt_1 on the one thread; both leases run out
    // unheard, and the second worker claims and handles both.
    let second_runs: Runs = Arc::default();
    let second = Worker::start(
        &second_inbox,
        counting_router(&second_runs),
        WorkerConfig::default(),
    )
    .unwrap();
    wait_for("the second worker", Duration::from_secs(20), || {
        second.stats().handled == 2
    });
    // The first worker's next heartbeats are heard: both claims are lost.
    let beats = first_plan.calls().heartbeats;
    first_plan.heartbeats(Heartbeats::Pass);
    wait_for("heard heartbeats", Duration::from_secs(10), || {
        first_plan.calls().heartbeats >= beats + 2
    });
    release.store(true, Ordering::SeqCst);
    wait_for("the first worker's queue", Duration::from_secs(10), || {
        first.stats().in_flight == 0
    });
    first.shutdown().unwrap();
    second.shutdown().unwrap();
    assert_eq!(
        *lock(&first_runs),
        ["evt_1"],
        "evt_2 was not run by the first worker"
    );
}
