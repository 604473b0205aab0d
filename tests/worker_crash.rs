//! `kill -9` while ingesting and working: at-least-once, never again after a
//! recorded success, and every accepted event accounted for.
//!
//! The parent runs this test binary as a child (the ignored test
//! `worker_crash_child`), which ingests from two threads and runs a worker
//! with two handler threads. It prints, through one locked stdout, `ACK id`
//! after each acknowledgement, `RUN id` when a handler starts, and `DONE id`
//! / `DEAD id` from the worker's observer, which is called only once the
//! outcome is durably recorded. Some events fail their first attempt
//! (retried 20 ms later) and some fail for good (dead letters). The parent
//! SIGKILLs the child after a random number of acknowledgements (or a random
//! moment after ingest ended), over `CRASH_ROUNDS` rounds (default 20), then drains the store in-process and checks: every acknowledged event
//! ran; no event ran after its `DONE`; nothing is both done and dead; done +
//! dead + pending = accepted.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Child, SECRET, TempDir, bluum_body, bluum_headers};
use webhook_inbox::{
    Backoff, Event, EventQuery, HandlerError, Inbox, Ingested, Report, Router, Scheme, Verifier,
    Worker, WorkerConfig,
};

const CHILD_ENV: &str = "WEBHOOK_INBOX_WORKER_CRASH_CHILD";
const INGEST_THREADS: usize = 2;
const PER_THREAD: usize = 300;

type Out = Arc<Mutex<std::io::Stdout>>;

fn say(out: &Out, tag: &str, id: &str) {
    let mut out = out
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let _ = writeln!(out, "{tag} {id}");
    let _ = out.flush();
}

/// Ids ending in `0` fail for good; ids ending in `7` fail their first attempt.
fn router(out: Option<Out>) -> Router {
    Router::builder()
        .on("*", move |e: &Event| {
            if let Some(out) = &out {
                say(out, "RUN", e.id());
            }
            if e.id().ends_with('0') {
                return Err(HandlerError::permanent("refused"));
            }
            if e.id().ends_with('7') && e.attempt() == 1 {
                return Err(HandlerError::retry_after(
                    Duration::from_millis(20),
                    "try again",
                ));
            }
            Ok(())
        })
        .build()
        .unwrap()
}

fn config() -> WorkerConfig {
    WorkerConfig::default()
        .threads(2)
        .backoff(Backoff::ladder([Duration::from_millis(20); 4]))
}

#[test]
#[ignore = "run by `kill_9_while_working_never_runs_a_recorded_success_again` as a child process"]
fn worker_crash_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (dir, round) = spec.split_once('|').expect("dir|round");
    let round: usize = round.parse().expect("round");
    let inbox = Inbox::open(dir).expect("open");
    let out: Out = Arc::new(Mutex::new(std::io::stdout()));
    let observer_out = Arc::clone(&out);
    let config = config().observe(move |e: &Event, r: &Report| match r {
        Report::Handled => say(&observer_out, "DONE", e.id()),
        Report::DeadLettered { .. } => say(&observer_out, "DEAD", e.id()),
        _ => {}
    });
    let _worker = Worker::start(&inbox, router(Some(Arc::clone(&out))), config).expect("worker");
    let ingestor = inbox
        .ingestor(Verifier::new(Scheme::bluum(), [SECRET]).expect("secret"))
        .build()
        .expect("ingestor");
    say(&out, "READY", "");
    std::thread::scope(|s| {
        for t in 0..INGEST_THREADS {
            let (ingestor, out) = (&ingestor, &out);
            s.spawn(move || {
                for n in 0..PER_THREAD {
                    // Every fifth delivery re-sends an id of the previous round.
                    let id = if n % 5 == 4 && round > 0 {
                        format!("r{}-t{t}-{n}", round - 1)
                    } else {
                        format!("r{round}-t{t}-{n}")
                    };
                    let body = bluum_body("order.filled", n as u64);
                    if let Ok(Ingested::Accepted { .. } | Ingested::Duplicate { .. }) =
                        ingestor.ingest(&bluum_headers(&id, &body), &body)
                    {
                        say(out, "ACK", &id);
                    }
                }
            });
        }
    });
    say(&out, "INGESTED", "");
    std::thread::sleep(Duration::from_secs(30));
}

#[test]
fn kill_9_while_working_never_runs_a_recorded_success_again() {
    let rounds: usize = std::env::var("CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let dir = TempDir::new("worker-crash");
    let mut seed = common::seed();
    // Every line of every round, in order.
    let mut lines: Vec<String> = Vec::new();
    let started = Instant::now();
    let mut killed_mid_ingest = 0;

    for round in 0..rounds {
        let child = Child::spawn(
            "worker_crash_child",
            CHILD_ENV,
            format!("{}|{round}", dir.path().display()),
        );
        let round_lines = Arc::clone(&child.lines);
        // Kill after a random number of acknowledgements (so mostly while
        // ingesting, on any disk), or a random moment after ingest finished.
        let target = (common::next_random(&mut seed) % 700) as usize;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (acks, ingested) = {
                let lines = round_lines.lock().unwrap();
                let acks = lines.iter().filter(|l| l.starts_with("ACK ")).count();
                (acks, lines.iter().any(|l| l.starts_with("INGESTED")))
            };
            if acks >= target || ingested {
                break;
            }
            assert!(Instant::now() < deadline, "child stalled");
            std::thread::sleep(Duration::from_micros(200));
        }
        if target >= INGEST_THREADS * PER_THREAD {
            std::thread::sleep(Duration::from_micros(
                common::next_random(&mut seed) % 100_000,
            ));
        }
        let round_lines = child.kill(); // SIGKILL
        killed_mid_ingest += usize::from(!round_lines.iter().any(|l| l.starts_with("INGESTED")));
        lines.extend(round_lines);
    }

    // Finish the work in-process: no kill this time.
    let inbox = Inbox::open(dir.path()).expect("reopen after the last kill");
    let out: Arc<Mutex<Vec<String>>> = Arc::default();
    let (runs, outcomes) = (Arc::clone(&out), Arc::clone(&out));
    let local_router = Router::builder()
        .on("*", {
            let inner = router(None);
            move |e: &Event| {
                runs.lock().unwrap().push(format!("RUN {}", e.id()));
                match inner.dispatch(e) {
                    webhook_inbox::Dispatch::Ran(result) => result,
                    other => panic!("unexpected {other:?}"),
                }
            }
        })
        .build()
        .unwrap();
    let config = config().observe(move |e: &Event, r: &Report| match r {
        Report::Handled => outcomes.lock().unwrap().push(format!("DONE {}", e.id())),
        Report::DeadLettered { .. } => outcomes.lock().unwrap().push(format!("DEAD {}", e.id())),
        _ => {}
    });
    let worker = Worker::start(&inbox, local_router, config).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while inbox.stats().pending > 0 {
        assert!(Instant::now() < deadline, "the backlog never drained");
        std::thread::sleep(Duration::from_millis(10));
    }
    worker.shutdown().unwrap();
    lines.extend(out.lock().unwrap().drain(..));

    // The checks.
    let mut acked = HashSet::new();
    let mut ran = HashSet::new();
    let mut done: HashMap<&str, usize> = HashMap::new();
    let mut dead = HashSet::new();
    for line in &lines {
        let (tag, id) = line.split_once(' ').unwrap_or((line, ""));
        match tag {
            "ACK" => {
                acked.insert(id);
            }
            "RUN" => {
                assert!(
                    !done.contains_key(id),
                    "{id} ran again after its success was recorded"
                );
                ran.insert(id);
            }
            "DONE" => *done.entry(id).or_default() += 1,
            "DEAD" => {
                dead.insert(id);
            }
            _ => {}
        }
    }
    for id in &acked {
        assert!(ran.contains(id), "acknowledged {id} never ran");
    }
    assert!(done.values().all(|&n| n == 1), "a success recorded twice");
    assert!(
        done.keys().all(|id| !dead.contains(id)),
        "an event both done and dead"
    );
    let stored_dead: HashSet<String> = inbox
        .events(&EventQuery::dead().limit(usize::MAX))
        .unwrap()
        .events
        .into_iter()
        .map(|e| e.id)
        .collect();
    for id in &dead {
        assert!(stored_dead.contains(*id), "dead letter {id} is not stored");
    }
    // Accepted = every id acknowledged or run (the final drain ran whatever
    // was accepted without an acknowledgement). Each still has its dedup
    // marker, and is either a stored dead letter or completed (no longer
    // stored). A success recorded just before a kill may lack its DONE line.
    let accepted: HashSet<&str> = acked.union(&ran).copied().collect();
    let ingestor = inbox
        .ingestor(Verifier::new(Scheme::bluum(), [SECRET]).unwrap())
        .build()
        .unwrap();
    let mut completed = HashSet::new();
    for id in &accepted {
        let body = bluum_body("order.filled", 0);
        assert!(
            matches!(
                ingestor.ingest(&bluum_headers(id, &body), &body),
                Ok(Ingested::Duplicate { .. })
            ),
            "{id} lost its dedup marker"
        );
        match inbox.event(id).unwrap() {
            None => {
                completed.insert(*id);
            }
            Some(e) => assert!(stored_dead.contains(&e.id), "{id} is stored but not dead"),
        }
    }
    assert!(done.keys().all(|id| completed.contains(id)));
    assert!(stored_dead.iter().all(|id| accepted.contains(id.as_str())));
    let stats = inbox.stats();
    assert_eq!(stats.pending, 0);
    assert_eq!(stats.dead as usize, stored_dead.len());
    assert_eq!(
        completed.len() + stored_dead.len(),
        accepted.len(),
        "completed {} + dead {} + pending 0 != accepted {}",
        completed.len(),
        stored_dead.len(),
        accepted.len()
    );
    println!(
        "{rounds} rounds ({killed_mid_ingest} killed while ingesting): {} accepted, {} acknowledged, {} runs, {} completed ({} with a DONE line), {} dead, 0 lost, 0 run after success ({:.1} s)",
        accepted.len(),
        acked.len(),
        lines.iter().filter(|l| l.starts_with("RUN ")).count(),
        completed.len(),
        done.len(),
        stored_dead.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(killed_mid_ingest > 0, "no kill landed mid-stream");
}
