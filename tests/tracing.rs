//! With the `tracing` feature: ingest outcomes and handler attempts reach a
//! real subscriber, and a handler's own events carry the event's span.
#![cfg(feature = "tracing")]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{SECRET, TempDir, bluum_body, bluum_headers};
use webhook_inbox::{Event, HandlerError, Inbox, Router, Scheme, Verifier, Worker, WorkerConfig};

/// Everything the subscriber writes, shared with the test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = self.text();
            if text.contains(needle) {
                return text;
            }
            assert!(Instant::now() < deadline, "no {needle:?} in:\n{text}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[test]
fn ingest_outcomes_and_handler_attempts_are_traced() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let dir = TempDir::new("tracing");
    let inbox = Inbox::open(dir.path()).unwrap();
    let bluum = inbox
        .ingestor(Verifier::new(Scheme::bluum(), [SECRET]).unwrap())
        .build()
        .unwrap();
    let router = Router::builder()
        .on("order.filled", |_: &Event| {
            tracing::info!("booking the fill");
            Ok(())
        })
        .on("order.rejected", |_: &Event| {
            Err(HandlerError::permanent("no such order"))
        })
        .build()
        .unwrap();
    let worker = Worker::start(&inbox, router, WorkerConfig::default()).unwrap();

    let body = bluum_body("order.filled", 1);
    bluum
        .ingest(&bluum_headers("evt_fill", &body), &body)
        .unwrap();
    bluum
        .ingest(&bluum_headers("evt_fill", &body), &body)
        .unwrap();
    assert!(
        bluum
            .ingest(&bluum_headers("evt_fill", &body), b"{}")
            .is_err()
    );
    let body = bluum_body("order.rejected", 2);
    bluum
        .ingest(&bluum_headers("evt_bad", &body), &body)
        .unwrap();

    let text = captured.wait_for("dead-lettered");
    let text = if text.contains("handled") {
        text
    } else {
        captured.wait_for("handled")
    };
    worker.shutdown().unwrap();

    let line = |needle: &str| {
        text.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{text}"))
            .to_owned()
    };
    let accepted = line("accepted");
    assert!(
        accepted.contains("DEBUG") && accepted.contains("id=\"evt_fill\""),
        "{accepted}"
    );
    assert!(line("duplicate").contains("evt_fill"));
    let refused = line("refused");
    assert!(
        refused.contains("WARN") && refused.contains("status=401"),
        "{refused}"
    );
    // The handler's own event sits inside the span naming its event.
    let inside = line("booking the fill");
    assert!(
        inside.contains("webhook_inbox.handle{")
            && inside.contains("id=\"evt_fill\"")
            && inside.contains("attempt=1"),
        "{inside}"
    );
    let dead = line("dead-lettered");
    assert!(
        dead.contains("ERROR") && dead.contains("no such order"),
        "{dead}"
    );
}

/// Refusals come from unauthenticated senders, so a flood of them must not
/// fill the logs: one `warn` per kind of refusal per 10 s, the others at
/// `debug`, and the next `warn` says how many were suppressed.
#[test]
fn a_flood_of_refusals_is_one_warn_per_kind_and_window() {
    use webhook_inbox::{ManualClock, Signer};

    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let dir = TempDir::new("tracing-flood");
    let clock = ManualClock::at_unix(common::now());
    let inbox = Inbox::builder(dir.path())
        .clock(clock.clone())
        .open()
        .unwrap();
    let bluum = inbox
        .ingestor(Verifier::new(Scheme::bluum(), [SECRET]).unwrap())
        .build()
        .unwrap();
    let body = bluum_body("order.filled", 1);
    let forged = Signer::new(Scheme::bluum(), "whsec_b3RoZXI=")
        .unwrap()
        .sign("evt_forged", common::now(), &body);
    let stale = common::signer().sign("evt_stale", common::now() - 3600, &body);

    // Ingest runs on the calling thread: a scoped subscriber sees all of it.
    tracing::subscriber::with_default(subscriber, || {
        for _ in 0..500 {
            assert_eq!(bluum.ingest(&forged, &body).unwrap_err().status(), 401);
        }
        for _ in 0..3 {
            assert_eq!(bluum.ingest(&stale, &body).unwrap_err().status(), 401);
        }
        clock.advance(Duration::from_secs(9));
        bluum.ingest(&forged, &body).unwrap_err();
        clock.advance(Duration::from_secs(2));
        bluum.ingest(&forged, &body).unwrap_err();
    });

    let text = captured.text();
    let refused = |level: &str, kind: &str| -> Vec<String> {
        text.lines()
            .filter(|l| {
                l.contains(level)
                    && l.contains("refused")
                    && l.contains(&format!("kind=\"{kind}\""))
            })
            .map(str::to_owned)
            .collect()
    };
    let warned = refused("WARN", "bad_signature");
    assert_eq!(warned.len(), 2, "{warned:#?}");
    assert!(warned[0].contains("suppressed=0"), "{}", warned[0]);
    // 499 of the flood plus the one 9 s later went to debug; the next warn says so.
    assert!(warned[1].contains("suppressed=500"), "{}", warned[1]);
    assert_eq!(refused("DEBUG", "bad_signature").len(), 500);
    // Another kind has its own window.
    assert_eq!(refused("WARN", "stale_timestamp").len(), 1);
    assert_eq!(refused("DEBUG", "stale_timestamp").len(), 2);
    assert_eq!(inbox.stats().rejected.bad_signature, 502);
}
