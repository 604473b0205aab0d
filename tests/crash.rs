//! `kill -9` at random moments: every acknowledged event is stored, exactly once.
//!
//! The parent runs this same test binary as a child (the ignored test
//! `crash_child`), which ingests from several threads and prints `ACK <id>`
//! after each acknowledgement. The parent SIGKILLs it at a random moment,
//! reopens the store and checks: every acknowledged id is present, and the
//! number of stored events equals the number of distinct ids present (no id
//! stored twice). `CRASH_ROUNDS` sets the number of rounds (default 20).

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Child, SECRET, TempDir, bluum_body, bluum_headers};
use webhook_inbox::{Durability, Inbox, Ingested, Scheme, Verifier};

const CHILD_ENV: &str = "WEBHOOK_INBOX_CRASH_CHILD";
const THREADS: usize = 4;
const PER_THREAD: usize = 400;

fn candidate_ids(round: usize) -> Vec<String> {
    (0..THREADS)
        .flat_map(|t| (0..PER_THREAD).map(move |n| format!("r{round}-t{t}-{n}")))
        .collect()
}

/// The child: ingest this round's ids (plus re-sends of earlier rounds' ids,
/// which must be duplicates) and print an `ACK` line after each acknowledgement.
#[test]
#[ignore = "run by `kill_9_never_loses_an_acknowledged_event` as a child process"]
fn crash_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (dir, round) = spec.split_once('|').expect("dir|round");
    let round: usize = round.parse().expect("round");
    let inbox = Inbox::open(dir).expect("open");
    let ingestor = inbox
        .ingestor(Verifier::new(Scheme::bluum(), [SECRET]).expect("secret"))
        .build()
        .expect("ingestor");
    let out = Arc::new(Mutex::new(std::io::stdout()));
    writeln!(out.lock().unwrap(), "READY").unwrap();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (ingestor, out) = (ingestor.clone(), Arc::clone(&out));
            std::thread::spawn(move || {
                for n in 0..PER_THREAD {
                    // Every fourth delivery re-sends an id of the previous round.
                    let id = if n % 4 == 3 && round > 0 {
                        format!("r{}-t{t}-{n}", round - 1)
                    } else {
                        format!("r{round}-t{t}-{n}")
                    };
                    let body = bluum_body("order.filled", n as u64);
                    let outcome = ingestor
                        .ingest(&bluum_headers(&id, &body), &body)
                        .expect("ingest");
                    let tag = match outcome {
                        Ingested::Accepted { .. } => "ACK",
                        Ingested::Duplicate { .. } => "DUP",
                    };
                    let mut out = out.lock().unwrap();
                    writeln!(out, "{tag} {id}").unwrap();
                    out.flush().unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    writeln!(out.lock().unwrap(), "DONE").unwrap();
}

#[test]
fn kill_9_never_loses_an_acknowledged_event() {
    let rounds: usize = std::env::var("CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let dir = TempDir::new("crash");
    let mut seed = common::seed();
    let mut stored_total = 0u64;
    let (mut acked_total, mut killed_mid_stream) = (0usize, 0usize);
    let started = Instant::now();

    for round in 0..rounds {
        let child = Child::spawn(
            "crash_child",
            CHILD_ENV,
            format!("{}|{round}", dir.path().display()),
        );
        let lines = Arc::clone(&child.lines);
        // Wait for the child to be ready, then kill it 0–150 ms later.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !lines.lock().unwrap().iter().any(|l| l.ends_with("READY")) {
            assert!(Instant::now() < deadline, "child never became ready");
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_micros(
            common::next_random(&mut seed) % 150_000,
        ));
        let lines = child.kill(); // SIGKILL
        let acked: HashSet<&str> = lines
            .iter()
            .filter_map(|l| l.strip_prefix("ACK ").or_else(|| l.strip_prefix("DUP ")))
            .collect();
        killed_mid_stream += usize::from(!lines.iter().any(|l| l == "DONE"));
        acked_total += acked.len();

        // Reopen (replaying the log) and count what is stored.
        let inbox = Inbox::builder(dir.path())
            .durability(Durability::Buffered(Duration::from_millis(10)))
            .open()
            .unwrap_or_else(|e| panic!("round {round}: reopen failed: {e}"));
        let pending_after_crash = inbox.stats().pending;
        let ingestor = inbox
            .ingestor(Verifier::new(Scheme::bluum(), [SECRET]).unwrap())
            .build()
            .unwrap();
        let mut present = 0u64;
        for id in candidate_ids(round) {
            let body = bluum_body("order.filled", 0);
            match ingestor.ingest(&bluum_headers(&id, &body), &body).unwrap() {
                Ingested::Duplicate { .. } => present += 1,
                Ingested::Accepted { .. } => {
                    assert!(
                        !acked.contains(id.as_str()),
                        "round {round}: acknowledged {id} was lost"
                    );
                }
            }
        }
        // Events stored = distinct ids stored: nothing stored twice.
        assert_eq!(
            pending_after_crash,
            stored_total + present,
            "round {round}: {pending_after_crash} events stored for {} distinct ids",
            stored_total + present
        );
        // The check itself stored the missing ids of this round.
        stored_total += candidate_ids(round).len() as u64;
        drop(ingestor);
        inbox.close().unwrap();
    }
    println!(
        "{rounds} rounds, {acked_total} acknowledgements, {killed_mid_stream} kills mid-stream, 0 lost, 0 stored twice ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
    assert!(
        killed_mid_stream > 0,
        "no round was killed while ingesting: the test proved nothing"
    );
}
