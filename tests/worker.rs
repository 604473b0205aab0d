//! The worker on real sled stores and real threads: handled once, retried on
//! schedule (injected clock), dead-lettered, replayed, restart-safe, ordered
//! per key, robust to panics and slow handlers, drained on shutdown.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{SECRET, TempDir, bluum_body, bluum_headers};
use webhook_inbox::{
    Backoff, Event, EventQuery, EventState, HandlerError, Inbox, Ingested, Ingestor, Jitter,
    ManualClock, Replay, Report, Router, Scheme, UnknownTypes, Verifier, Worker, WorkerConfig,
    WorkerError,
};

fn bluum(inbox: &Inbox) -> Ingestor {
    inbox
        .ingestor(Verifier::new(Scheme::bluum(), [SECRET]).unwrap())
        .build()
        .unwrap()
}

fn send(ingestor: &Ingestor, id: &str, event_type: &str, n: u64) {
    let body = bluum_body(event_type, n);
    let outcome = ingestor.ingest(&bluum_headers(id, &body), &body).unwrap();
    assert!(matches!(outcome, Ingested::Accepted { .. }), "{outcome:?}");
}

/// Waits (up to 20 s) for `done`, panicking with `what` otherwise.
fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn manual_inbox(dir: &TempDir, clock: &ManualClock) -> Inbox {
    Inbox::builder(dir.path())
        .clock(clock.clone())
        .open()
        .unwrap()
}

fn seconds(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn events_are_handled_once_and_stay_deduplicated() {
    let dir = TempDir::new("worker-basic");
    let inbox = Inbox::open(dir.path()).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let router = Router::builder()
        .on("order.*", move |e: &Event| {
            log.lock().unwrap().push((e.id().to_owned(), e.attempt()));
            Ok(())
        })
        .build()
        .unwrap();
    let worker = Worker::start(&inbox, router, WorkerConfig::default()).unwrap();
    let ingestor = bluum(&inbox);
    for n in 0..3 {
        send(&ingestor, &format!("evt_{n}"), "order.filled", n);
    }
    wait_for("3 handled", || worker.stats().handled == 3);
    worker.shutdown().unwrap();
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("evt_0".into(), 1),
            ("evt_1".into(), 1),
            ("evt_2".into(), 1)
        ]
    );
    assert_eq!((inbox.stats().pending, inbox.stats().dead), (0, 0));
    // Handled events are gone from the store, their markers stay.
    assert!(inbox.event("evt_1").unwrap().is_none());
    let body = bluum_body("order.filled", 1);
    assert_eq!(
        ingestor
            .ingest(&bluum_headers("evt_1", &body), &body)
            .unwrap(),
        Ingested::Duplicate { id: "evt_1".into() }
    );
    drop(ingestor);
    inbox.close().unwrap();
    // After a restart nothing runs again.
    let inbox = Inbox::open(dir.path()).unwrap();
    assert_eq!(inbox.stats().pending, 0);
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&runs);
    let router = Router::builder()
        .on("*", move |_e: &Event| {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .build()
        .unwrap();
    let worker = Worker::start(&inbox, router, WorkerConfig::default()).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    worker.shutdown().unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 0);
}

/// The schedule follows the injected clock: nothing runs before its time,
/// the last attempt dead-letters with the history, a replay succeeds.
#[test]
fn a_failing_handler_is_retried_on_schedule_then_dead_lettered_then_replayed() {
    let dir = TempDir::new("worker-retry");
    let clock = ManualClock::at_unix(1_800_000_000);
    let inbox = manual_inbox(&dir, &clock);
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let healthy = Arc::new(AtomicBool::new(false));
    let (log, ok) = (Arc::clone(&attempts), Arc::clone(&healthy));
    let router = Router::builder()
        .on("transfer.deposit.completed", move |e: &Event| {
            log.lock().unwrap().push(e.attempt());
            if ok.load(Ordering::SeqCst) {
                Ok(())
            } else {
                Err(HandlerError::retry("bank unreachable"))
            }
        })
        .build()
        .unwrap();
    let config = WorkerConfig::default().backoff(Backoff::ladder([seconds(10), seconds(20)]));
    let worker = Worker::start(&inbox, router, config).unwrap();
    send(&bluum(&inbox), "dep_1", "transfer.deposit.completed", 1);
    let runs = || attempts.lock().unwrap().len();

    wait_for("attempt 1", || worker.stats().retried == 1);
    let event = inbox.event("dep_1").unwrap().unwrap();
    assert_eq!(event.state, EventState::Retrying);
    assert_eq!(event.attempts, 1);
    assert_eq!(event.errors[0].error, "bank unreachable");
    assert_eq!(
        event.next_attempt.unwrap(),
        std::time::UNIX_EPOCH + seconds(1_800_000_010)
    );
    let stats = inbox.stats();
    assert_eq!(stats.retrying, 1);
    assert_eq!(stats.oldest_pending_age, Some(Duration::ZERO));
    let fsync = stats.fsync.expect("the embedded store measures its fsyncs");
    assert!(fsync.count >= 2, "accept and outcome: {fsync:?}");
    assert!(fsync.max >= fsync.p99 && fsync.max > Duration::ZERO);

    clock.advance(seconds(9));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(runs(), 1, "ran before its time");
    assert_eq!(inbox.stats().oldest_pending_age, Some(seconds(9)));
    clock.advance(seconds(1));
    wait_for("attempt 2", || worker.stats().retried == 2);
    clock.advance(seconds(19));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(runs(), 2, "ran before its time");
    clock.advance(seconds(1));
    wait_for("dead letter", || worker.stats().dead_lettered == 1);
    assert_eq!(*attempts.lock().unwrap(), [1, 2, 3]);

    let dead = inbox.events(&EventQuery::dead()).unwrap();
    assert_eq!(dead.events.len(), 1);
    let letter = &dead.events[0];
    assert_eq!((letter.id.as_str(), letter.attempts), ("dep_1", 3));
    assert_eq!(letter.errors.len(), 3);
    assert!(
        letter.errors[2].error.contains("attempt 3 of 3"),
        "{:?}",
        letter.errors
    );
    let stats = inbox.stats();
    assert_eq!((stats.pending, stats.retrying, stats.dead), (0, 0, 1));
    assert_eq!(
        stats.oldest_pending_age, None,
        "dead letters are not a backlog"
    );

    // Nothing more happens to a dead letter, however long we wait.
    clock.advance(seconds(86_400));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(runs(), 3);

    healthy.store(true, Ordering::SeqCst);
    assert_eq!(inbox.replay(&Replay::Id("dep_1".into())).unwrap(), 1);
    wait_for("replayed", || worker.stats().handled == 1);
    assert_eq!(*attempts.lock().unwrap(), [1, 2, 3, 1]);
    let stats = inbox.stats();
    assert_eq!((stats.pending, stats.retrying, stats.dead), (0, 0, 0));
    assert_eq!(inbox.replay(&Replay::AllDead).unwrap(), 0);
    worker.shutdown().unwrap();
}

#[test]
fn permanent_errors_bad_payloads_and_unknown_types_follow_their_policy() {
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Wrong {
        quantity_in_cents: u64,
    }
    for (policy, pending, dead) in [
        (UnknownTypes::Complete, 0, 2),
        (UnknownTypes::Keep, 1, 2),
        (UnknownTypes::DeadLetter, 0, 3),
    ] {
        let dir = TempDir::new("worker-policy");
        let inbox = Inbox::open(dir.path()).unwrap();
        let router = Router::builder()
            .on("order.rejected", |_e: &Event| {
                Err(HandlerError::permanent("unknown account"))
            })
            .on_typed("order.filled", |_e: &Event, _w: Wrong| Ok(()))
            .unknown_types(policy)
            .build()
            .unwrap();
        let worker = Worker::start(&inbox, router, WorkerConfig::default()).unwrap();
        let ingestor = bluum(&inbox);
        send(&ingestor, "a", "order.rejected", 1);
        send(&ingestor, "b", "order.filled", 2);
        send(&ingestor, "c", "kyc.verification.approved", 3);
        wait_for("all three", || {
            let s = worker.stats();
            s.dead_lettered + s.unknown == 3
        });
        worker.shutdown().unwrap();
        let stats = inbox.stats();
        assert_eq!((stats.pending, stats.dead), (pending, dead), "{policy:?}");
        let a = inbox.event("a").unwrap().unwrap();
        assert_eq!((a.state, a.attempts), (EventState::Dead, 1));
        assert_eq!(a.errors[0].error, "unknown account (permanent)");
        let b = inbox.event("b").unwrap().unwrap();
        assert!(b.errors[0].error.contains("does not deserialize"), "{b:?}");
    }
}

#[test]
fn a_panicking_handler_does_not_kill_the_worker() {
    let dir = TempDir::new("worker-panic");
    let inbox = Inbox::open(dir.path()).unwrap();
    let tries = Arc::new(AtomicU32::new(0));
    let counted = Arc::clone(&tries);
    let router = Router::builder()
        .on("order.filled", move |e: &Event| {
            if e.id() == "boom" && counted.fetch_add(1, Ordering::SeqCst) < 2 {
                panic!("handler bug");
            }
            Ok(())
        })
        .build()
        .unwrap();
    let config = WorkerConfig::default()
        .threads(1)
        .backoff(Backoff::ladder([Duration::from_millis(10); 3]));
    let worker = Worker::start(&inbox, router, config).unwrap();
    let ingestor = bluum(&inbox);
    send(&ingestor, "boom", "order.filled", 0);
    for n in 1..20 {
        send(&ingestor, &format!("ok_{n}"), "order.filled", n);
    }
    wait_for("all handled", || worker.stats().handled == 20);
    let stats = worker.stats();
    assert_eq!((stats.panics, stats.retried), (2, 2));
    worker.shutdown().unwrap();
    assert_eq!(inbox.stats().pending, 0);
}

/// Shutdown lets running handlers finish and records them; what was not
/// started stays pending for the next worker.
#[test]
fn shutdown_drains_in_flight_work() {
    let dir = TempDir::new("worker-drain");
    let inbox = Inbox::open(dir.path()).unwrap();
    let started = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let (s, f) = (Arc::clone(&started), Arc::clone(&finished));
    let router = Router::builder()
        .on("*", move |_e: &Event| {
            s.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(300));
            f.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .build()
        .unwrap();
    let ingestor = bluum(&inbox);
    for n in 0..10 {
        send(&ingestor, &format!("evt_{n}"), "order.filled", n);
    }
    let worker = Worker::start(&inbox, router, WorkerConfig::default().threads(2)).unwrap();
    wait_for("two running", || started.load(Ordering::SeqCst) == 2);
    worker.shutdown().unwrap();
    let done = finished.load(Ordering::SeqCst);
    assert_eq!(
        done,
        started.load(Ordering::SeqCst),
        "a handler was cut off"
    );
    assert_eq!(inbox.stats().pending, 10 - done as u64);
    drop(ingestor);
    inbox.close().unwrap();
    let inbox = Inbox::open(dir.path()).unwrap();
    assert_eq!(inbox.stats().pending, 10 - done as u64);
}

#[test]
fn ten_thousand_events_over_four_threads_are_each_handled_exactly_once() {
    let dir = TempDir::new("worker-10k");
    let inbox = Inbox::open(dir.path()).unwrap();
    let counts = Arc::new(Mutex::new(HashMap::<String, u32>::new()));
    let log = Arc::clone(&counts);
    let router = Router::builder()
        .on("*", move |e: &Event| {
            *log.lock().unwrap().entry(e.id().to_owned()).or_default() += 1;
            Ok(())
        })
        .build()
        .unwrap();
    let worker = Worker::start(&inbox, router, WorkerConfig::default().threads(4)).unwrap();
    let ingestor = bluum(&inbox);
    std::thread::scope(|s| {
        for t in 0..8u64 {
            let ingestor = &ingestor;
            s.spawn(move || {
                for n in (t..10_000).step_by(8) {
                    send(ingestor, &format!("evt_{n}"), "order.filled", n);
                }
            });
        }
    });
    wait_for("10 000 handled", || worker.stats().handled == 10_000);
    worker.shutdown().unwrap();
    let counts = counts.lock().unwrap();
    assert_eq!(counts.len(), 10_000);
    assert!(counts.values().all(|&c| c == 1));
    assert_eq!(inbox.stats().pending, 0);
}

/// Same-key events run one at a time in acceptance order; a failing event
/// holds back its own key only.
#[test]
fn events_with_the_same_key_run_in_order() {
    let dir = TempDir::new("worker-order");
    let inbox = Inbox::open(dir.path()).unwrap();
    let seen = Arc::new(Mutex::new(Vec::<(String, u64)>::new()));
    let running = Arc::new(Mutex::new(Vec::<String>::new()));
    let failed_once = Arc::new(AtomicBool::new(false));
    let overlapped = Arc::new(AtomicBool::new(false));
    let (log, busy, failed, overlap) = (
        Arc::clone(&seen),
        Arc::clone(&running),
        Arc::clone(&failed_once),
        Arc::clone(&overlapped),
    );
    let router = Router::builder()
        .on("*", move |e: &Event| {
            let json = e.json()?;
            let key = json["data"]["investor_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let n: u64 = json["data"]["id"].as_str().unwrap_or_default()[4..]
                .parse()
                .unwrap_or(0);
            {
                let mut busy = busy.lock().unwrap();
                if busy.contains(&key) {
                    overlap.store(true, Ordering::SeqCst);
                }
                busy.push(key.clone());
            }
            std::thread::sleep(Duration::from_micros(300 * (n % 5)));
            busy.lock().unwrap().retain(|k| *k != key);
            if n == 5 && !failed.swap(true, Ordering::SeqCst) {
                return Err(HandlerError::retry_after(
                    Duration::from_millis(300),
                    "later",
                ));
            }
            log.lock().unwrap().push((key, n));
            Ok(())
        })
        .build()
        .unwrap();
    let ingestor = bluum(&inbox);
    let keys = ["inv_a", "inv_b", "inv_c", "inv_d"];
    for n in 0..80u64 {
        let key = keys[(n % 4) as usize];
        let body = bluum_body("order.filled", n).replace_inv(key);
        ingestor
            .ingest(&bluum_headers(&format!("evt_{n}"), &body), &body)
            .unwrap();
    }
    let config = WorkerConfig::default()
        .threads(4)
        .ordering_key("/data/investor_id");
    let worker = Worker::start(&inbox, router, config).unwrap();
    wait_for("80 handled", || worker.stats().handled == 80);
    assert_eq!(worker.stats().panics, 0);
    worker.shutdown().unwrap();
    assert!(
        !overlapped.load(Ordering::SeqCst),
        "two events of one key ran at once"
    );
    let seen = seen.lock().unwrap();
    for key in keys {
        let order: Vec<u64> = seen
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, n)| *n)
            .collect();
        assert_eq!(order.len(), 20);
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{key}: {order:?}");
    }
    // The failing event (5, key inv_b) held back inv_b only: other keys
    // finished events accepted after it before it succeeded.
    let five = seen.iter().position(|(_, n)| *n == 5).unwrap();
    assert!(
        seen[..five].iter().any(|(k, n)| k != "inv_b" && *n > 5),
        "nothing overtook the failing key"
    );
}

trait ReplaceInvestor {
    fn replace_inv(self, key: &str) -> Vec<u8>;
}

impl ReplaceInvestor for Vec<u8> {
    fn replace_inv(self, key: &str) -> Vec<u8> {
        String::from_utf8(self)
            .unwrap()
            .replace("inv_42", key)
            .into_bytes()
    }
}

/// Attempt counts and due times survive a restart; a retry is not run early
/// after it either.
#[test]
fn retry_state_survives_a_restart() {
    let dir = TempDir::new("worker-restart");
    let clock = ManualClock::at_unix(1_800_000_000);
    let failing = || {
        Router::builder()
            .on("*", |_e: &Event| Err(HandlerError::retry("still down")))
            .build()
            .unwrap()
    };
    let config = || {
        WorkerConfig::default()
            .backoff(Backoff::exponential(seconds(60), seconds(3600), 5))
            .jitter(Jitter::seeded(7))
    };
    let first_due;
    {
        let inbox = manual_inbox(&dir, &clock);
        let worker = Worker::start(&inbox, failing(), config()).unwrap();
        send(&bluum(&inbox), "evt_1", "order.filled", 1);
        wait_for("attempt 1", || worker.stats().retried == 1);
        worker.shutdown().unwrap();
        first_due = inbox.event("evt_1").unwrap().unwrap().next_attempt.unwrap();
        inbox.close().unwrap();
    }
    let inbox = manual_inbox(&dir, &clock);
    assert_eq!((inbox.stats().pending, inbox.stats().retrying), (1, 1));
    let event = inbox.event("evt_1").unwrap().unwrap();
    assert_eq!((event.state, event.attempts), (EventState::Retrying, 1));
    assert_eq!(event.next_attempt, Some(first_due));
    let ran = Arc::new(AtomicU32::new(0));
    let counted = Arc::clone(&ran);
    let router = Router::builder()
        .on("*", move |e: &Event| {
            assert_eq!(e.attempt(), 2);
            counted.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .build()
        .unwrap();
    let worker = Worker::start(&inbox, router, config()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(ran.load(Ordering::SeqCst), 0, "ran before its time");
    clock.set_unix(
        first_due
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
            + 1,
    );
    wait_for("attempt 2", || worker.stats().handled == 1);
    worker.shutdown().unwrap();
    assert_eq!(inbox.stats().pending, 0);
}

/// A hung handler is reported once and replaced: with one thread, other
/// events still flow.
#[test]
fn a_slow_handler_is_reported_and_does_not_hold_up_the_rest() {
    let dir = TempDir::new("worker-slow");
    let inbox = Inbox::open(dir.path()).unwrap();
    let release = Arc::new(AtomicBool::new(false));
    let gate = Arc::clone(&release);
    let router = Router::builder()
        .on("*", move |e: &Event| {
            if e.id() == "stuck" {
                while !gate.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            Ok(())
        })
        .build()
        .unwrap();
    let reports = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&reports);
    let config = WorkerConfig::default()
        .threads(1)
        .slow_after(Duration::from_millis(100))
        .observe(move |e: &Event, r: &Report| {
            if let Report::Slow { .. } = r {
                log.lock().unwrap().push(e.id().to_owned());
            }
        });
    let worker = Worker::start(&inbox, router, config).unwrap();
    let ingestor = bluum(&inbox);
    send(&ingestor, "stuck", "order.filled", 0);
    for n in 1..=5 {
        send(&ingestor, &format!("evt_{n}"), "order.filled", n);
    }
    wait_for("the others handled", || worker.stats().handled == 5);
    assert_eq!(worker.stats().slow, 1);
    assert_eq!(*reports.lock().unwrap(), ["stuck"]);
    release.store(true, Ordering::SeqCst);
    wait_for("the stuck one handled", || worker.stats().handled == 6);
    worker.shutdown().unwrap();
}

#[test]
fn bad_settings_are_refused_and_workers_can_share_an_inbox() {
    let dir = TempDir::new("worker-config");
    let inbox = Inbox::open(dir.path()).unwrap();
    let router = || Router::builder().build().unwrap();
    for bad in [
        WorkerConfig::default().threads(0),
        WorkerConfig::default().ordering_key("data.id"),
        WorkerConfig::default()
            .backoff_for("order.*", Backoff::bluum())
            .backoff_for("order.*", Backoff::bluum()),
    ] {
        assert!(matches!(
            Worker::start(&inbox, router(), bad),
            Err(WorkerError::Config(_))
        ));
    }
    assert!(matches!(
        Worker::start(
            &inbox,
            router(),
            WorkerConfig::default().lease(Duration::from_millis(10))
        ),
        Err(WorkerError::Config(_))
    ));
    let worker = Worker::start(&inbox, router(), WorkerConfig::default()).unwrap();
    let second = Worker::start(&inbox, router(), WorkerConfig::default()).unwrap();
    drop(worker);
    second.shutdown().unwrap();
    Worker::start(&inbox, router(), WorkerConfig::default())
        .unwrap()
        .shutdown()
        .unwrap();
}

#[test]
fn dead_letters_are_listed_by_type_and_page_replayed_by_type_and_purged() {
    let dir = TempDir::new("worker-dead");
    let clock = ManualClock::at_unix(1_800_000_000);
    let inbox = manual_inbox(&dir, &clock);
    let router = Router::builder()
        .on("*", |_e: &Event| Err(HandlerError::permanent("no")))
        .build()
        .unwrap();
    let worker = Worker::start(&inbox, router, WorkerConfig::default()).unwrap();
    let ingestor = bluum(&inbox);
    for n in 0..6 {
        let kind = if n % 2 == 0 {
            "order.filled"
        } else {
            "transfer.deposit.failed"
        };
        send(&ingestor, &format!("evt_{n}"), kind, n);
    }
    wait_for("6 dead", || worker.stats().dead_lettered == 6);
    worker.shutdown().unwrap();

    let page = inbox.events(&EventQuery::dead().limit(2)).unwrap();
    assert_eq!(page.events.len(), 2);
    let rest = inbox
        .events(&EventQuery::dead().after(page.next.unwrap()))
        .unwrap();
    assert_eq!((rest.events.len(), rest.next), (4, None));
    let transfers = inbox
        .events(&EventQuery::dead().event_type("transfer.*"))
        .unwrap();
    assert_eq!(transfers.events.len(), 3);
    assert!(
        transfers
            .events
            .iter()
            .all(|e| e.event_type == "transfer.deposit.failed")
    );

    assert_eq!(
        inbox.replay(&Replay::Type("order.filled".into())).unwrap(),
        3
    );
    let stats = inbox.stats();
    assert_eq!((stats.pending, stats.retrying, stats.dead), (3, 3, 3));
    // Replayed: scheduled again (retrying), attempts reset, history kept.
    let replayed = inbox
        .events(&EventQuery::all().state(EventState::Retrying))
        .unwrap();
    assert_eq!(replayed.events.len(), 3);
    assert!(
        replayed
            .events
            .iter()
            .all(|e| e.event_type == "order.filled" && e.attempts == 0 && e.errors.len() == 1)
    );

    clock.advance(seconds(3600));
    assert_eq!(inbox.purge_dead(Some(seconds(7200))).unwrap(), 0);
    assert_eq!(inbox.purge_dead(Some(seconds(1800))).unwrap(), 3);
    assert_eq!(inbox.stats().dead, 0);
    assert!(inbox.event("evt_1").unwrap().is_none());
    // Purged means gone, but still deduplicated.
    let body = bluum_body("transfer.deposit.failed", 1);
    assert_eq!(
        ingestor
            .ingest(&bluum_headers("evt_1", &body), &body)
            .unwrap(),
        Ingested::Duplicate { id: "evt_1".into() }
    );
}

/// After a restart, a retrying event still holds its key: a newer event of
/// the same key waits for it, other keys do not.
#[test]
fn a_retrying_event_holds_its_key_across_a_restart() {
    let dir = TempDir::new("worker-order-restart");
    let clock = ManualClock::at_unix(1_800_000_000);
    let config = || {
        WorkerConfig::default()
            .ordering_key("/data/investor_id")
            .backoff(Backoff::ladder([seconds(60); 3]))
    };
    {
        let inbox = manual_inbox(&dir, &clock);
        let router = Router::builder()
            .on("*", |_e: &Event| Err(HandlerError::retry("down")))
            .build()
            .unwrap();
        let worker = Worker::start(&inbox, router, config()).unwrap();
        send(&bluum(&inbox), "first", "order.filled", 1);
        wait_for("first failed", || worker.stats().retried == 1);
        worker.shutdown().unwrap();
        inbox.close().unwrap();
    }
    let inbox = manual_inbox(&dir, &clock);
    let ingestor = bluum(&inbox);
    send(&ingestor, "second", "order.filled", 2); // same investor: waits
    let body = bluum_body("order.filled", 3).replace_inv("inv_other");
    ingestor
        .ingest(&bluum_headers("other", &body), &body)
        .unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&order);
    let router = Router::builder()
        .on("*", move |e: &Event| {
            log.lock().unwrap().push(e.id().to_owned());
            Ok(())
        })
        .build()
        .unwrap();
    let worker = Worker::start(&inbox, router, config()).unwrap();
    wait_for("the other key", || worker.stats().handled == 1);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(*order.lock().unwrap(), ["other"]);
    clock.advance(seconds(60));
    wait_for("both", || worker.stats().handled == 3);
    worker.shutdown().unwrap();
    assert_eq!(*order.lock().unwrap(), ["other", "first", "second"]);
}

/// A dead letter outlives the dedup retention: its marker stays while it is
/// stored, so it can be shown, replayed by id, and a redelivery is a duplicate.
#[test]
fn dead_letters_keep_their_marker_past_the_retention() {
    let dir = TempDir::new("worker-dead-retention");
    let clock = ManualClock::at_unix(1_800_000_000);
    let inbox = Inbox::builder(dir.path())
        .clock(clock.clone())
        .retention(seconds(3600))
        .open()
        .unwrap();
    let router = Router::builder()
        .on("*", |e: &Event| {
            if e.id() == "dead" {
                Err(HandlerError::permanent("no"))
            } else {
                Ok(())
            }
        })
        .build()
        .unwrap();
    let worker = Worker::start(&inbox, router, WorkerConfig::default()).unwrap();
    let ingestor = bluum(&inbox);
    send(&ingestor, "dead", "order.filled", 1);
    send(&ingestor, "done", "order.filled", 2);
    wait_for("both", || {
        let s = worker.stats();
        s.handled == 1 && s.dead_lettered == 1
    });
    // Reading waits until the outcomes are applied, so the collector sees them.
    assert!(
        inbox.event("done").unwrap().is_none(),
        "handled: no longer stored"
    );
    clock.advance(seconds(7200));
    assert_eq!(inbox.collect_expired().unwrap(), 1); // the handled one's marker only
    assert_eq!(inbox.stats().dedup_markers, 1);
    assert!(inbox.event("dead").unwrap().is_some());
    let body = bluum_body("order.filled", 1);
    assert_eq!(
        ingestor
            .ingest(&bluum_headers("dead", &body), &body)
            .unwrap(),
        Ingested::Duplicate { id: "dead".into() }
    );
    // Still kept at the next collection, then gone one retention after the purge.
    clock.advance(seconds(7200));
    assert_eq!(inbox.collect_expired().unwrap(), 0);
    assert_eq!(inbox.purge_dead(None).unwrap(), 1);
    clock.advance(seconds(7200));
    assert_eq!(inbox.collect_expired().unwrap(), 1);
    assert_eq!(inbox.stats().dedup_markers, 0);
    worker.shutdown().unwrap();
}

/// The worker stops by itself when its inbox is closed, says why, and frees
/// the slot; an unbounded shutdown timeout is fine.
#[test]
fn the_worker_stops_when_the_inbox_is_closed() {
    let dir = TempDir::new("worker-closed");
    let inbox = Inbox::open(dir.path()).unwrap();
    let router = Router::builder().build().unwrap();
    let worker = Worker::start(
        &inbox,
        router,
        WorkerConfig::default().shutdown_timeout(Duration::MAX),
    )
    .unwrap();
    assert!(worker.is_running());
    inbox.clone().close().unwrap();
    wait_for("the worker to stop", || !worker.is_running());
    assert!(matches!(
        worker.shutdown(),
        Err(WorkerError::Store(webhook_inbox::StoreError::Closed))
    ));
    let router = Router::builder().build().unwrap();
    let again = Worker::start(
        &inbox,
        router,
        WorkerConfig::default().shutdown_timeout(Duration::MAX),
    );
    // Its first claim meets the closed store, unless the shutdown comes first.
    assert!(matches!(
        again.unwrap().shutdown(),
        Ok(()) | Err(WorkerError::Store(webhook_inbox::StoreError::Closed))
    ));
}

/// With buffered durability the worker's outcomes are flushed on the
/// interval (nobody waits for them) and survive a clean reopen.
#[test]
fn the_worker_runs_on_a_buffered_inbox() {
    let dir = TempDir::new("worker-buffered");
    {
        let inbox = Inbox::builder(dir.path())
            .durability(webhook_inbox::Durability::Buffered(Duration::from_millis(
                10,
            )))
            .open()
            .unwrap();
        let router = Router::builder()
            .on("*", |e: &Event| {
                if e.id().ends_with('7') {
                    Err(HandlerError::permanent("no"))
                } else {
                    Ok(())
                }
            })
            .build()
            .unwrap();
        let worker = Worker::start(&inbox, router, WorkerConfig::default()).unwrap();
        let ingestor = bluum(&inbox);
        for n in 0..100 {
            send(&ingestor, &format!("evt_{n}"), "order.filled", n);
        }
        wait_for("all 100", || {
            let s = worker.stats();
            s.handled + s.dead_lettered == 100
        });
        worker.shutdown().unwrap();
        drop(ingestor);
        inbox.close().unwrap();
    }
    let inbox = Inbox::open(dir.path()).unwrap();
    let stats = inbox.stats();
    assert_eq!((stats.pending, stats.dead), (0, 10));
}
