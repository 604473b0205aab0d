//! A handler that takes the whole process down (`std::process::abort()`):
//! with [`WorkerConfig::durable_attempts`] each crash uses up one attempt and
//! the event becomes a dead letter after the backoff's last one; without it
//! the same event aborts every restart with its attempt count stuck at 0.
//!
//! The parent runs this test binary as a child (the ignored test
//! `abort_child`) on one store, again and again: the child ingests one poison
//! delivery (a duplicate after the first round) and one ordinary one, runs a
//! worker whose handler aborts on the poison event, prints `IDLE` and exits
//! once nothing is pending any more.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{SECRET, TempDir, bluum_body, bluum_headers};
use webhook_inbox::{
    Backoff, Event, EventState, Inbox, Router, Scheme, Verifier, Worker, WorkerConfig,
};

const CHILD_ENV: &str = "WEBHOOK_INBOX_ABORT_CHILD";
const POISON: &str = "evt_poison";

#[test]
#[ignore = "run by the tests below as a child process"]
fn abort_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (store, durable) = spec.split_once('|').expect("store|durable");
    let inbox = Inbox::open(store).expect("open");
    let ingestor = inbox
        .ingestor(Verifier::new(Scheme::bluum(), [SECRET]).expect("secret"))
        .build()
        .expect("ingestor");
    for (id, n) in [(POISON, 1), ("evt_fine", 2)] {
        let body = bluum_body("order.filled", n);
        ingestor
            .ingest(&bluum_headers(id, &body), &body)
            .expect("ingest");
    }
    let router = Router::builder()
        .on("order.filled", |e: &Event| {
            if e.id() == POISON {
                std::process::abort();
            }
            Ok(())
        })
        .build()
        .expect("router");
    let config = WorkerConfig::default()
        .threads(1)
        .backoff(Backoff::ladder([Duration::from_millis(10); 2]))
        .durable_attempts(durable == "on");
    let worker = Worker::start(&inbox, router, config).expect("worker");
    let deadline = Instant::now() + Duration::from_secs(10);
    while inbox.stats().pending > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    println!("IDLE");
    worker.shutdown().expect("shutdown");
    inbox.close().expect("close");
}

/// Runs the child until it exits; whether it aborted.
fn run_child(store: &Path, durable: bool) -> bool {
    let status = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "abort_child", "--ignored", "--nocapture"])
        .env(
            CHILD_ENV,
            format!("{}|{}", store.display(), if durable { "on" } else { "off" }),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("child");
    use std::os::unix::process::ExitStatusExt;
    match status.signal() {
        Some(6) => true,
        None if status.success() => false,
        other => panic!("the child ended unexpectedly: {status:?} (signal {other:?})"),
    }
}

fn poison(store: &Path) -> webhook_inbox::StoredEvent {
    let inbox = Inbox::open(store).expect("open");
    let event = inbox.event(POISON).expect("read").expect("stored");
    inbox.close().expect("close");
    event
}

#[test]
fn with_durable_attempts_a_process_killing_handler_ends_as_a_dead_letter() {
    let dir = TempDir::new("abort-durable");
    let store = dir.path().join("store");
    let mut aborts = 0;
    for _ in 0..6 {
        if !run_child(&store, true) {
            break;
        }
        aborts += 1;
    }
    assert_eq!(aborts, 3, "one abort per attempt of the ladder's three");
    let event = poison(&store);
    assert_eq!(event.state, EventState::Dead);
    assert_eq!(event.attempts, 3);
    assert_eq!(event.errors.len(), 3);
    assert!(
        event.errors[0].error.contains("did not finish"),
        "{:?}",
        event.errors
    );
    // A later run does not touch it again.
    assert!(!run_child(&store, true));
    assert_eq!(poison(&store).state, EventState::Dead);
}

#[test]
fn without_durable_attempts_the_same_handler_aborts_every_restart() {
    let dir = TempDir::new("abort-plain");
    let store = dir.path().join("store");
    for round in 0..4 {
        assert!(run_child(&store, false), "round {round} did not abort");
    }
    let event = poison(&store);
    assert_eq!((event.state, event.attempts), (EventState::Pending, 0));
}
