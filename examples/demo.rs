//! The README's demo: a Bluum receiver end to end, in one process.
//!
//! Opens a store in a temporary directory, starts the worker with handlers for
//! Bluum events, and pushes signed deliveries through the ingestor exactly as
//! an HTTP handler would: a genuine one, Bluum's retry of it, a forged one, a
//! stale one, one whose handler fails twice and then succeeds, and one whose
//! handler always fails, ends as a dead letter and is replayed once "fixed".
//!
//! Run with `cargo run --example demo`. Retry waits are shortened to a quarter
//! of a second so it finishes in seconds; it exits non-zero if anything
//! happens other than what it says, so CI runs it as a check.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender};
use webhook_inbox::bluum::{self, Deposit, Order};
use webhook_inbox::{
    Backoff, Event, EventQuery, HandlerError, Inbox, Ingestor, Replay, Reply, Report, Router,
    Scheme, Signer, Verifier, Worker, WorkerConfig,
};

type Failure = Box<dyn std::error::Error>;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn main() -> Result<(), Failure> {
    // A fresh directory only this user can enter (never a predictable path
    // someone else could have created first); removed when the demo ends.
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("webhook-inbox-demo-")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir()?;
    run(&dir.path().join("store"))
}

fn run(dir: &std::path::Path) -> Result<(), Failure> {
    let inbox = Inbox::open(dir)?;
    let ingestor = inbox
        .ingestor(Verifier::new(Scheme::bluum(), [SECRET])?)
        .build()?;
    println!("Store: {} (each 200 below is on disk first)", dir.display());

    // What the handlers and the worker say goes through one channel, so the
    // account below prints in the order things happen.
    let (say, heard) = crossbeam_channel::unbounded::<String>();
    let crm_fixed = Arc::new(AtomicBool::new(false));
    let router = router(&say, &crm_fixed)?;
    let quick = |n| Backoff::ladder(vec![Duration::from_millis(250); n]);
    let config = WorkerConfig::default()
        .backoff_for("transfer.*", quick(4)) // up to 5 attempts
        .backoff_for("kyc.*", quick(2)) // up to 3 attempts
        .observe(move |e: &Event, report: &Report| {
            let _ = say.send(narrate(e, report));
        });
    let worker = Worker::start(&inbox, router, config)?;
    let mut bluum = FakeBluum::new(ingestor)?;

    step("1. Bluum sends order.filled");
    let order = r#"{"id":"ord_7f3a","investor_id":"inv_42","symbol":"AAPL","side":"buy","status":"filled","quantity":"10","filled_quantity":"10","average_price":"189.4200"}"#;
    bluum.send("evt_001", bluum::ORDER_FILLED, order, 0, 200)?;
    until(&heard, "evt_001 handled")?;

    step("2. Bluum did not see our answer in time and sends it again");
    bluum.resend(200)?;
    println!("   (a duplicate: nothing stored, the handler does not run again)");

    step("3. Someone replays it with the quantity changed");
    let forged = bluum
        .last
        .1
        .replace(r#""filled_quantity":"10""#, r#""filled_quantity":"1000""#);
    bluum.post(&bluum.last.0.clone(), forged.as_bytes(), 401)?;

    step("4. A delivery captured ten minutes ago is replayed");
    bluum.send("evt_old", bluum::ORDER_FILLED, order, -600, 401)?;

    step("5. transfer.deposit.completed: the ledger is down for the first two attempts");
    let deposit = r#"{"deposit_id":"dep_19","account_id":"acc_42","status":"completed","amount":"2500.00","currency":"USD"}"#;
    bluum.send("evt_002", bluum::DEPOSIT_COMPLETED, deposit, 0, 200)?;
    until(&heard, "evt_002 handled")?;

    step("6. kyc.verification.approved: the CRM keeps refusing the update");
    let kyc = r#"{"investor_id":"inv_42","level":"full"}"#;
    bluum.send("evt_003", bluum::KYC_VERIFICATION_APPROVED, kyc, 0, 200)?;
    until(&heard, "evt_003 dead-lettered")?;
    for letter in inbox.events(&EventQuery::dead())?.events {
        println!(
            "   dead letter {} ({}) after {} attempts:",
            letter.id, letter.event_type, letter.attempts
        );
        for e in &letter.errors {
            println!("     attempt {}: {}", e.attempt, e.error);
        }
    }

    step("7. The CRM is fixed; the operator replays the dead letter");
    crm_fixed.store(true, Ordering::SeqCst);
    let n = inbox.replay(&Replay::Id("evt_003".into()))?;
    println!("   replayed {n} event (like `webhook-inbox replay evt_003`)");
    until(&heard, "evt_003 handled")?;

    // Outcomes are durable before the worker reports them; the counts catch
    // up a moment later.
    let settle = Instant::now() + Duration::from_secs(5);
    while inbox.stats().pending > 0 && Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(10));
    }
    let stats = inbox.stats();
    let work = worker.stats();
    println!(
        "\nDeliveries: {} received, {} accepted, {} duplicate, {} refused.",
        stats.received,
        stats.accepted,
        stats.duplicates,
        stats.rejected.total()
    );
    println!(
        "Worker: {} handled, {} retries, {} dead-lettered; now {} pending, {} dead.",
        work.handled, work.retried, work.dead_lettered, stats.pending, stats.dead
    );
    worker.shutdown()?;
    drop(bluum);
    inbox.close()?;
    let expected = (4, 1, 2, 3, 5, 0, 0);
    let seen = (
        stats.received - stats.rejected.total(),
        stats.duplicates,
        stats.rejected.total(),
        work.handled,
        work.retried + work.dead_lettered,
        stats.pending,
        stats.dead,
    );
    if seen != expected {
        return Err(format!("expected {expected:?}, saw {seen:?}").into());
    }
    Ok(())
}

/// The application's handlers, typed with Bluum's payloads.
fn router(say: &Sender<String>, crm_fixed: &Arc<AtomicBool>) -> Result<Router, Failure> {
    let (s1, s2, s3) = (say.clone(), say.clone(), say.clone());
    let fixed = Arc::clone(crm_fixed);
    Ok(Router::builder()
        .on_typed(bluum::ORDER_FILLED, move |e: &Event, o: Order| {
            let price = o.average_price.map(|p| p.to_string()).unwrap_or_default();
            let line = format!(
                "booked {} {} {} @ {price}",
                o.side, o.filled_quantity, o.symbol
            );
            let _ = s1.send(format!("   handler: {line} (order {}, {})", o.id, e.id()));
            Ok(())
        })
        .on_typed(bluum::DEPOSIT_COMPLETED, move |e: &Event, d: Deposit| {
            if e.attempt() <= 2 {
                return Err(HandlerError::retry("ledger service unavailable"));
            }
            let cents = d.amount.to_scaled(2).unwrap_or_default();
            let _ = s2.send(format!(
                "   handler: credited {cents} cents {} to {}",
                d.currency, d.account_id
            ));
            Ok(())
        })
        .on(bluum::KYC_VERIFICATION_APPROVED, move |e: &Event| {
            if !fixed.load(Ordering::SeqCst) {
                return Err(HandlerError::retry("CRM answered 500"));
            }
            let _ = s3.send(format!("   handler: investor marked verified ({})", e.id()));
            Ok(())
        })
        .build()?)
}

/// One line per recorded outcome, ending with what `until` waits for.
fn narrate(e: &Event, report: &Report) -> String {
    let (id, attempt) = (e.id(), e.attempt());
    match report {
        Report::Handled => format!("   worker: attempt {attempt} succeeded: {id} handled"),
        Report::Retrying {
            error,
            next_attempt,
            ..
        } => {
            let wait = next_attempt
                .duration_since(SystemTime::now())
                .unwrap_or_default();
            format!(
                "   worker: attempt {attempt} failed ({error}); retry in {} ms",
                wait.as_millis()
            )
        }
        Report::DeadLettered { error, .. } => {
            format!("   worker: attempt {attempt} failed ({error}): {id} dead-lettered")
        }
        other => format!("   worker: {id}: {other:?}"),
    }
}

/// Plays Bluum: signs deliveries and posts them to our "endpoint" (the ingestor).
struct FakeBluum {
    ingestor: Ingestor,
    signer: Signer,
    /// The last genuine delivery: its headers and body.
    last: (Vec<(String, String)>, String),
}

impl FakeBluum {
    fn new(ingestor: Ingestor) -> Result<Self, Failure> {
        let signer = Signer::new(Scheme::bluum(), SECRET)?;
        Ok(Self {
            ingestor,
            signer,
            last: (Vec::new(), String::new()),
        })
    }

    /// Signs `data` as event `id` of type `kind`, `age` seconds from now, posts it.
    fn send(
        &mut self,
        id: &str,
        kind: &str,
        data: &str,
        age: i64,
        expect: u16,
    ) -> Result<(), Failure> {
        let body =
            format!(r#"{{"event":"{kind}","timestamp":"2026-11-28T14:00:00Z","data":{data}}}"#);
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let headers = self
            .signer
            .sign(id, i64::try_from(now)? + age, body.as_bytes());
        self.post(&headers, body.as_bytes(), expect)?;
        self.last = (headers, body);
        Ok(())
    }

    fn resend(&self, expect: u16) -> Result<(), Failure> {
        self.post(&self.last.0, self.last.1.as_bytes(), expect)
    }

    /// What the HTTP handler does: ingest the raw body, answer the mapped status.
    fn post(&self, headers: &[(String, String)], body: &[u8], expect: u16) -> Result<(), Failure> {
        let reply = Reply::from(&self.ingestor.ingest(headers, body));
        println!("   POST /webhooks/bluum -> {} {}", reply.status, reply.body);
        if reply.status != expect {
            return Err(format!("expected {expect}, answered {}", reply.status).into());
        }
        Ok(())
    }
}

fn step(title: &str) {
    println!("\n{title}");
}

/// Prints what the handlers and worker say until a line ends with `milestone`.
fn until(heard: &Receiver<String>, milestone: &str) -> Result<(), Failure> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = heard
            .recv_timeout(left)
            .map_err(|_| format!("gave up waiting for `{milestone}`"))?;
        println!("{line}");
        if line.ends_with(milestone) {
            return Ok(());
        }
    }
}
