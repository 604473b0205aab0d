//! The ingest contract on real sled stores in temporary directories: accepted
//! means stored and survives reopen, every refusal stores nothing, duplicates
//! are no-ops even under concurrency, markers expire after the retention.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::{SECRET, TempDir, bluum_body, bluum_headers, now};
use proptest::prelude::*;
use webhook_inbox::{
    Clock, Durability, EventProblem, Inbox, IngestError, Ingested, Ingestor, ManualClock,
    OpenError, Reply, Scheme, Signer, Verifier, VerifyError,
};

type Headers = Vec<(String, String)>;

fn bluum(inbox: &Inbox) -> Ingestor {
    inbox
        .ingestor(Verifier::new(Scheme::bluum(), [SECRET]).unwrap())
        .build()
        .unwrap()
}

fn accepted(outcome: Result<Ingested, IngestError>) -> u64 {
    match outcome {
        Ok(Ingested::Accepted { seq, .. }) => seq,
        other => panic!("expected Accepted, got {other:?}"),
    }
}

#[test]
fn accepted_survives_reopen_and_then_deduplicates() {
    let dir = TempDir::new("reopen");
    let body = bluum_body("order.filled", 1);
    let headers = bluum_headers("evt_1", &body);
    {
        let inbox = Inbox::open(dir.path()).unwrap();
        let seq = accepted(bluum(&inbox).ingest(&headers, &body));
        assert!(seq > 0);
        assert_eq!(inbox.stats().pending, 1);
        inbox.close().unwrap();
    }
    let inbox = Inbox::open(dir.path()).unwrap();
    assert_eq!(inbox.stats().pending, 1);
    assert_eq!(inbox.stats().dedup_markers, 1);
    assert_eq!(
        bluum(&inbox).ingest(&headers, &body).unwrap(),
        Ingested::Duplicate { id: "evt_1".into() }
    );
    // Sequence numbers keep growing across reopen.
    let body2 = bluum_body("order.filled", 2);
    let seq2 = accepted(bluum(&inbox).ingest(&bluum_headers("evt_2", &body2), &body2));
    assert!(seq2 > 1, "seq {seq2}");
}

#[test]
fn every_refusal_stores_nothing() {
    let dir = TempDir::new("refusals");
    let inbox = Inbox::builder(dir.path()).max_pending(1).open().unwrap();
    let ingestor = inbox
        .ingestor(Verifier::new(Scheme::bluum(), [SECRET]).unwrap())
        .max_body(2048)
        .build()
        .unwrap();
    let body = bluum_body("order.filled", 1);
    let good = bluum_headers("evt_1", &body);
    let stale = common::signer().sign("evt_1", now() - 3600, &body);
    let forged = Signer::new(Scheme::bluum(), "whsec_b3RoZXI=")
        .unwrap()
        .sign("evt_1", now(), &body);
    let untyped_body = br#"{"timestamp":"2026-11-28T14:00:00Z","data":{}}"#.to_vec();
    let untyped = bluum_headers("evt_1", &untyped_body);
    let huge = vec![b' '; 4096];
    let huge_headers = bluum_headers("evt_1", &huge);
    let not_json = b"\xff\xfenot json".to_vec();
    let not_json_headers = bluum_headers("evt_1", &not_json);

    let cases: Vec<(&str, &Headers, &[u8], u16)> = vec![
        ("tampered body", &good, b"{}", 401),
        ("stale timestamp", &stale, &body, 401),
        ("wrong secret", &forged, &body, 401),
        ("no event type", &untyped, &untyped_body, 400),
        ("body over the limit", &huge_headers, &huge, 413),
        ("body not JSON", &not_json_headers, &not_json, 400),
    ];
    for (what, headers, body, status) in cases {
        let err = ingestor.ingest(headers, body).unwrap_err();
        assert_eq!(err.status(), status, "{what}: {err}");
        let stats = inbox.stats();
        assert_eq!(
            (stats.pending, stats.dedup_markers),
            (0, 0),
            "{what} stored something"
        );
    }
    let missing: Vec<(String, String)> = good
        .iter()
        .filter(|(k, _)| k != "webhook-signature")
        .cloned()
        .collect();
    assert!(matches!(
        ingestor.ingest(&missing, &body),
        Err(IngestError::Rejected(VerifyError::MissingHeader { .. }))
    ));

    // Nothing was written: the genuine delivery of the same id is new.
    accepted(ingestor.ingest(&good, &body));

    // Over the pending bound: 503 with Retry-After, nothing written.
    let body2 = bluum_body("order.filled", 2);
    let err = ingestor
        .ingest(&bluum_headers("evt_2", &body2), &body2)
        .unwrap_err();
    assert!(
        matches!(
            err,
            IngestError::Overloaded {
                pending: 1,
                limit: 1
            }
        ),
        "{err}"
    );
    let reply = Reply::from(&Err(err));
    assert_eq!((reply.status, reply.retry_after_secs), (503, Some(30)));
    let stats = inbox.stats();
    assert_eq!(stats.pending, 1);
    assert_eq!(stats.accepted, 1);
    assert_eq!(stats.rejected.total(), 8);
    assert_eq!(stats.rejected.overloaded, 1);
    assert_eq!(stats.rejected.bad_signature, 2);
    assert_eq!(stats.rejected.stale_timestamp, 1);
    assert_eq!(stats.rejected.malformed_event, 2);
    assert_eq!(stats.rejected.too_large, 1);
    assert_eq!(stats.rejected.missing_header, 1);
}

#[test]
fn sixteen_threads_on_overlapping_ids_accept_each_id_once() {
    let dir = TempDir::new("concurrent");
    let inbox = Inbox::open(dir.path()).unwrap();
    let ingestor = bluum(&inbox);
    let ids: Vec<String> = (0..64).map(|i| format!("evt_{i}")).collect();
    let deliveries: Arc<Vec<(Headers, Vec<u8>)>> = Arc::new(
        ids.iter()
            .enumerate()
            .map(|(i, id)| {
                let body = bluum_body("order.filled", i as u64);
                (bluum_headers(id, &body), body)
            })
            .collect(),
    );
    let barrier = Arc::new(Barrier::new(16));
    let handles: Vec<_> = (0..16)
        .map(|t| {
            let (ingestor, deliveries, barrier) = (
                ingestor.clone(),
                Arc::clone(&deliveries),
                Arc::clone(&barrier),
            );
            std::thread::spawn(move || {
                barrier.wait();
                let mut accepted = Vec::new();
                // Each thread walks all ids from a different starting point.
                for k in 0..deliveries.len() {
                    let (headers, body) = &deliveries[(k + t * 4) % deliveries.len()];
                    if let Ingested::Accepted { id, .. } = ingestor.ingest(headers, body).unwrap() {
                        accepted.push(id);
                    }
                }
                accepted
            })
        })
        .collect();
    let mut count: HashMap<String, usize> = HashMap::new();
    for h in handles {
        for id in h.join().unwrap() {
            *count.entry(id).or_default() += 1;
        }
    }
    assert_eq!(count.len(), ids.len());
    assert!(count.values().all(|&n| n == 1), "{count:?}");
    let stats = inbox.stats();
    assert_eq!(
        (stats.accepted, stats.duplicates, stats.pending),
        (64, 64 * 15, 64)
    );
}

#[test]
fn body_limits_beyond_what_the_log_takes_are_refused_at_build() {
    let dir = TempDir::new("max-body");
    let inbox = Inbox::open(dir.path()).unwrap();
    let err = inbox
        .ingestor(Verifier::new(Scheme::bluum(), [SECRET]).unwrap())
        .max_body(webhook_inbox::MAX_BODY_LIMIT + 1)
        .build()
        .unwrap_err();
    assert!(
        matches!(err, webhook_inbox::ConfigError::BodyLimitTooLarge { .. }),
        "{err}"
    );
}

#[test]
fn a_second_opener_is_told_the_store_is_in_use() {
    let dir = TempDir::new("in-use");
    let inbox = Inbox::open(dir.path()).unwrap();
    let err = Inbox::open(dir.path()).unwrap_err();
    assert!(matches!(err, OpenError::InUse { .. }), "{err:?}");
    assert!(err.to_string().contains("in use"), "{err}");
    drop(inbox);
    Inbox::open(dir.path()).unwrap();
}

#[test]
fn a_missing_or_foreign_directory_is_never_turned_into_a_store_by_mistake() {
    let dir = TempDir::new("not-a-store");
    let missing = dir.path().join("typo");
    let err = Inbox::builder(&missing).create(false).open().unwrap_err();
    assert!(matches!(err, OpenError::NotFound { .. }), "{err:?}");
    assert!(!missing.exists(), "created the directory");

    let foreign = dir.path().join("home");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "mine").unwrap();
    for builder in [
        Inbox::builder(&foreign),
        Inbox::builder(&foreign).create(false),
    ] {
        let err = builder.open().unwrap_err();
        assert!(matches!(err, OpenError::NotAStore { .. }), "{err:?}");
        assert!(
            err.to_string().contains("not a webhook-inbox store"),
            "{err}"
        );
    }
    let entries: Vec<_> = std::fs::read_dir(&foreign).unwrap().collect();
    assert_eq!(entries.len(), 1, "wrote into a foreign directory");

    // A fresh volume (only `lost+found`, hidden files) counts as empty.
    let volume = dir.path().join("volume");
    std::fs::create_dir_all(volume.join("lost+found")).unwrap();
    std::fs::write(volume.join(".gitkeep"), "").unwrap();
    Inbox::open(&volume).unwrap().close().unwrap();

    // An existing store opens without creating; an empty directory is created into.
    let store = dir.path().join("store");
    Inbox::open(&store).unwrap().close().unwrap();
    Inbox::builder(&store).create(false).open().unwrap();
}

#[test]
fn ingestors_share_a_store_and_sources_keep_ids_apart() {
    let dir = TempDir::new("sources");
    let inbox = Inbox::open(dir.path()).unwrap();
    let a = inbox
        .ingestor(Verifier::new(Scheme::bluum(), [SECRET]).unwrap())
        .source("bluum-a")
        .build()
        .unwrap();
    let b = inbox
        .ingestor(Verifier::new(Scheme::bluum(), [SECRET]).unwrap())
        .source("bluum-b")
        .build()
        .unwrap();
    let body = bluum_body("order.filled", 1);
    let headers = bluum_headers("evt_1", &body);
    accepted(a.ingest(&headers, &body));
    accepted(b.ingest(&headers, &body));
    assert!(matches!(
        a.ingest(&headers, &body),
        Ok(Ingested::Duplicate { .. })
    ));
    assert_eq!(inbox.stats().pending, 2);
}

#[test]
fn ids_and_types_come_from_each_schemes_place() {
    let dir = TempDir::new("identity");
    let inbox = Inbox::open(dir.path()).unwrap();
    let t = now();

    // Stripe: id and type are JSON fields.
    let stripe = inbox
        .ingestor(Verifier::new(Scheme::stripe(), ["whsec_s"]).unwrap())
        .build()
        .unwrap();
    let body = br#"{"id":"evt_1Abc","object":"event","type":"payment_intent.succeeded","data":{"object":{}}}"#;
    let headers = Signer::new(Scheme::stripe(), "whsec_s")
        .unwrap()
        .sign("", t, body);
    assert_eq!(stripe.ingest(&headers, body).unwrap().id(), "evt_1Abc");

    // GitHub: the type from a header; the id from the signed body (its
    // SHA-256), since GitHub does not sign `X-GitHub-Delivery`, which is kept
    // with the stored headers. The body need not be JSON.
    let github = inbox
        .ingestor(Verifier::new(Scheme::github(), ["gh"]).unwrap())
        .build()
        .unwrap();
    let body = b"payload=%7B%7D";
    let mut headers =
        Signer::new(Scheme::github(), "gh")
            .unwrap()
            .sign("72d3162e-cc78-11e3", t, body);
    headers.push(("X-GitHub-Event".into(), "push".into()));
    let id = github.ingest(&headers, body).unwrap().id().to_owned();
    assert!(id.starts_with("sha256:") && id.len() == 7 + 64, "{id}");
    let stored = inbox.event(&id).unwrap().expect("stored");
    assert_eq!(stored.event_type, "push");
    assert!(
        stored
            .headers
            .contains(&("X-GitHub-Delivery".into(), "72d3162e-cc78-11e3".into())),
        "{:?}",
        stored.headers
    );
    let untyped: Vec<_> = headers
        .iter()
        .filter(|(k, _)| k != "X-GitHub-Event")
        .cloned()
        .collect();
    assert!(matches!(
        github.ingest(&untyped, body),
        Err(IngestError::MalformedEvent(
            EventProblem::MissingType { .. }
        ))
    ));

    // Shopify (here without its unsigned event-id header): the body's SHA-256
    // is the id, so a retry of the same bytes still deduplicates.
    let shopify = inbox
        .ingestor(Verifier::new(Scheme::shopify(), ["sh"]).unwrap())
        .build()
        .unwrap();
    let body = br#"{"id":820982911946154508,"email":"jon@example.com"}"#;
    let signed = Signer::new(Scheme::shopify(), "sh")
        .unwrap()
        .sign("", t, body);
    let mut headers: Vec<_> = signed
        .into_iter()
        .filter(|(k, _)| k != "X-Shopify-Event-Id")
        .collect();
    headers.push(("X-Shopify-Topic".into(), "orders/create".into()));
    let first = shopify.ingest(&headers, body).unwrap();
    assert!(
        first.id().starts_with("sha256:") && first.id().len() == 7 + 64,
        "{}",
        first.id()
    );
    assert!(matches!(
        shopify.ingest(&headers, body),
        Ok(Ingested::Duplicate { .. })
    ));

    // Ids that are too long or hold control characters are refused.
    let long_id = "i".repeat(300);
    let body = bluum_body("order.filled", 9);
    let err = bluum(&inbox)
        .ingest(&bluum_headers(&long_id, &body), &body)
        .unwrap_err();
    assert!(
        matches!(
            err,
            IngestError::MalformedEvent(EventProblem::InvalidId { .. })
        ),
        "{err}"
    );
    let body = br#"{"event":"order.\u0007filled","data":{}}"#;
    let err = bluum(&inbox)
        .ingest(&bluum_headers("evt_ctl", body), body)
        .unwrap_err();
    assert!(
        matches!(
            err,
            IngestError::MalformedEvent(EventProblem::InvalidType { .. })
        ),
        "{err}"
    );
}

#[test]
fn buffered_durability_acknowledges_and_persists_on_close() {
    let dir = TempDir::new("buffered");
    {
        let inbox = Inbox::builder(dir.path())
            .durability(Durability::Buffered(Duration::from_millis(20)))
            .open()
            .unwrap();
        let ingestor = bluum(&inbox);
        for i in 0..100 {
            let body = bluum_body("order.filled", i);
            accepted(ingestor.ingest(&bluum_headers(&format!("evt_{i}"), &body), &body));
        }
    }
    let inbox = Inbox::open(dir.path()).unwrap();
    assert_eq!(inbox.stats().pending, 100);
}

#[test]
fn markers_expire_after_the_retention_and_stay_bounded() {
    let dir = TempDir::new("retention");
    let clock = ManualClock::at_unix(now());
    let inbox = Inbox::builder(dir.path())
        .retention(Duration::from_secs(3600))
        .clock(clock.clone())
        .open()
        .unwrap();
    let ingestor = inbox
        .ingestor(
            Verifier::builder(Scheme::bluum())
                .secret(SECRET)
                .clock(clock.clone())
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let signer = common::signer();
    // Markers of events still stored are kept; a worker handles them.
    let router = webhook_inbox::Router::builder()
        .on("*", |_e: &webhook_inbox::Event| Ok(()))
        .build()
        .unwrap();
    let worker =
        webhook_inbox::Worker::start(&inbox, router, webhook_inbox::WorkerConfig::default())
            .unwrap();
    let mut peak = 0;
    for hour in 0..6u64 {
        for i in 0..200 {
            let body = bluum_body("order.filled", i);
            let id = format!("evt_{hour}_{i}");
            accepted(ingestor.ingest(&signer.sign(&id, clock.unix_seconds(), &body), &body));
        }
        clock.advance(Duration::from_secs(3600 + 1));
        // Let the worker finish them, then collect what is past the retention.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while inbox.stats().pending > 0 {
            assert!(std::time::Instant::now() < deadline, "never handled");
            std::thread::sleep(Duration::from_millis(5));
        }
        inbox.events(&webhook_inbox::EventQuery::all()).unwrap(); // waits for the store to apply
        inbox.collect_expired().unwrap();
        peak = peak.max(inbox.stats().dedup_markers);
    }
    // Only the last hour's markers may be held at any time, not all 1200.
    assert!(peak <= 200, "markers peaked at {peak}");
    assert_eq!(inbox.stats().dedup_markers, 0);
    // A delivery of an expired id is accepted again.
    let body = bluum_body("order.filled", 0);
    accepted(ingestor.ingest(&signer.sign("evt_0_0", clock.unix_seconds(), &body), &body));
    worker.shutdown().unwrap();
}

/// A replay inside the verifier's window must meet its dedup marker: a
/// retention shorter than twice the tolerance is refused when the ingestor is
/// built (a delivery signed `tolerance` ahead of the clock still verifies
/// `2 × tolerance` after it was accepted). Schemes without a timestamp have no
/// window and are not held to it.
#[test]
fn a_retention_shorter_than_the_replay_window_is_refused() {
    let dir = TempDir::new("retention-window");
    let inbox = Inbox::builder(dir.path())
        .retention(Duration::from_secs(1))
        .open()
        .unwrap();
    let err = inbox
        .ingestor(Verifier::new(Scheme::bluum(), [SECRET]).unwrap())
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("retention"), "{err}");
    assert_eq!(
        err,
        webhook_inbox::ConfigError::RetentionTooShort {
            retention: Duration::from_secs(1),
            tolerance: Duration::from_secs(300),
            needed: Duration::from_secs(600),
        }
    );
    // The boundary: exactly twice the tolerance is enough, a second less is not.
    let with_tolerance = |secs| {
        inbox
            .ingestor(
                Verifier::builder(Scheme::stripe())
                    .secret("whsec_s")
                    .tolerance(Duration::from_secs(secs))
                    .build()
                    .unwrap(),
            )
            .build()
    };
    assert!(with_tolerance(0).is_ok());
    assert!(matches!(
        with_tolerance(1),
        Err(webhook_inbox::ConfigError::RetentionTooShort { .. })
    ));
    // No timestamp, no window: GitHub builds on any retention.
    assert!(
        inbox
            .ingestor(Verifier::new(Scheme::github(), ["gh"]).unwrap())
            .build()
            .is_ok()
    );
    inbox.close().unwrap();

    let dir = TempDir::new("retention-window-ok");
    let inbox = Inbox::builder(dir.path())
        .retention(Duration::from_secs(600))
        .open()
        .unwrap();
    assert!(bluum(&inbox).source() == "bluum");
    inbox.close().unwrap();
}

/// With the shortest retention allowed (twice the tolerance), a replay at any
/// moment it still verifies is a duplicate — even of an event signed at the
/// far edge of the window and handled at once.
#[test]
fn a_replay_anywhere_inside_the_window_is_a_duplicate() {
    let dir = TempDir::new("retention-edge");
    let start = now();
    let clock = ManualClock::at_unix(start);
    let inbox = Inbox::builder(dir.path())
        .retention(Duration::from_secs(600))
        .clock(clock.clone())
        .open()
        .unwrap();
    let ingestor = inbox
        .ingestor(
            Verifier::builder(Scheme::bluum())
                .secret(SECRET)
                .clock(clock.clone())
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let router = webhook_inbox::Router::builder()
        .on("*", |_e: &webhook_inbox::Event| Ok(()))
        .build()
        .unwrap();
    let worker =
        webhook_inbox::Worker::start(&inbox, router, webhook_inbox::WorkerConfig::default())
            .unwrap();
    // Signed 300 s ahead of the clock: it verifies from now until now + 600 s.
    let body = bluum_body("order.filled", 1);
    let headers = common::signer().sign("evt_edge", start + 300, &body);
    accepted(ingestor.ingest(&headers, &body));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while worker.stats().handled < 1 {
        assert!(std::time::Instant::now() < deadline, "never handled");
        std::thread::sleep(Duration::from_millis(5));
    }
    for at in [1, 300, 599, 600] {
        clock.set_unix(start + at);
        inbox.events(&webhook_inbox::EventQuery::all()).unwrap(); // the store has applied
        inbox.collect_expired().unwrap();
        assert_eq!(
            ingestor.ingest(&headers, &body).unwrap(),
            Ingested::Duplicate {
                id: "evt_edge".into()
            },
            "{at} s after acceptance"
        );
    }
    clock.set_unix(start + 601);
    assert!(matches!(
        ingestor.ingest(&headers, &body),
        Err(IngestError::Rejected(VerifyError::TimestampTooOld { .. }))
    ));
    assert_eq!(worker.stats().handled, 1);
    worker.shutdown().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// Any sequence of deliveries with repeated ids behaves like inserting into a set.
    #[test]
    fn ingest_behaves_like_a_set(ids in proptest::collection::vec(0u8..12, 1..40)) {
        let dir = TempDir::new("set");
        let inbox = Inbox::open(dir.path()).unwrap();
        let ingestor = bluum(&inbox);
        let mut seen = std::collections::HashSet::new();
        for n in &ids {
            let body = bluum_body("order.filled", u64::from(*n));
            let outcome = ingestor.ingest(&bluum_headers(&format!("evt_{n}"), &body), &body).unwrap();
            prop_assert_eq!(matches!(outcome, Ingested::Accepted { .. }), seen.insert(*n));
        }
        prop_assert_eq!(inbox.stats().pending, seen.len() as u64);
    }
}

#[test]
fn hostile_deliveries_get_typed_errors_and_store_nothing() {
    let dir = TempDir::new("hostile");
    let inbox = Inbox::open(dir.path()).unwrap();
    let ingestor = bluum(&inbox);
    let body = bluum_body("order.filled", 1);
    let signed = |id: &str, body: &[u8]| bluum_headers(id, body);

    // 1 MiB signature header, 64 KiB id: refused before any MAC, as malformed.
    let mut huge_sig = signed("evt_h1", &body);
    huge_sig[2].1 = format!("v1,{}", "A".repeat(1 << 20));
    let long_id = "i".repeat(64 * 1024);
    let cases: Vec<(&str, Headers, Vec<u8>, u16)> = vec![
        ("1 MiB signature header", huge_sig, body.clone(), 400),
        ("64 KiB id", signed(&long_id, &body), body.clone(), 400),
        (
            "body not UTF-8",
            signed("evt_h2", b"\xff\xfe\xfd"),
            b"\xff\xfe\xfd".to_vec(),
            400,
        ),
        (
            "truncated JSON",
            signed("evt_h3", &body[..body.len() / 2]),
            body[..body.len() / 2].to_vec(),
            400,
        ),
        ("empty body", signed("evt_h4", b""), Vec::new(), 400),
    ];
    for (what, headers, body, status) in cases {
        let err = ingestor.ingest(&headers, &body).unwrap_err();
        assert_eq!(err.status(), status, "{what}: {err}");
        assert_eq!(inbox.stats().pending, 0, "{what} stored something");
    }

    // Valid but extreme: accepted without trouble (no recursion, no quadratic work).
    let deep = format!(
        r#"{{"event":"order.filled","data":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    )
    .into_bytes();
    let mut crowded = signed("evt_deep", &deep);
    crowded.splice(
        0..0,
        (0..10_000).map(|i| (format!("x-junk-{i}"), "y".to_owned())),
    );
    assert!(matches!(
        ingestor.ingest(&crowded, &deep),
        Ok(Ingested::Accepted { .. })
    ));
    assert_eq!(inbox.stats().pending, 1);
}
