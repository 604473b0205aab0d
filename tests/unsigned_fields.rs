//! Only signed bytes decide deduplication: a genuine delivery resent with
//! other values in the headers its signature does not cover (a fresh delivery
//! id, another event type) is a duplicate, never a new event — on real sled
//! stores in temporary directories, with a real worker.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{TempDir, now};
use webhook_inbox::{
    Algorithm, DedupOn, Event, Inbox, Ingested, Router, Scheme, Signer, Verifier, Worker,
    WorkerConfig,
};

type Headers = Vec<(String, String)>;

fn with(headers: &Headers, name: &str, value: &str) -> Headers {
    let mut out: Headers = headers
        .iter()
        .filter(|(k, _)| !k.eq_ignore_ascii_case(name))
        .cloned()
        .collect();
    out.push((name.to_owned(), value.to_owned()));
    out
}

/// Sends one genuine delivery (`id_header`: `ids[0]`, `type_header`:
/// `types[0]`) and then copies of it under the other ids and types; asserts
/// one Accepted, the rest Duplicate, one handler run in all, and the first
/// delivery id kept with the stored event.
fn resent_under_new_ids_runs_once(
    scheme: Scheme,
    secret: &str,
    id_header: &str,
    type_header: &str,
    body: &[u8],
    copies: &[(&str, &str)],
) {
    let dir = TempDir::new(scheme.name());
    let inbox = Inbox::open(dir.path()).unwrap();
    let ingestor = inbox
        .ingestor(Verifier::new(scheme.clone(), [secret]).unwrap())
        .build()
        .unwrap();
    let signer = Signer::new(scheme, secret).unwrap();
    let (first_id, first_type) = copies[0];
    let genuine = with(&signer.sign(first_id, now(), body), type_header, first_type);

    let mut outcomes = Vec::new();
    for (id, event_type) in copies {
        let headers = with(&with(&genuine, id_header, id), type_header, event_type);
        outcomes.push(ingestor.ingest(&headers, body).unwrap());
    }
    let key = outcomes[0].id().to_owned();
    assert!(
        matches!(outcomes[0], Ingested::Accepted { .. }),
        "{outcomes:?}"
    );
    assert!(
        outcomes[1..]
            .iter()
            .all(|o| *o == Ingested::Duplicate { id: key.clone() }),
        "{outcomes:?}"
    );
    assert!(key.starts_with("sha256:"), "{key}");
    let stats = inbox.stats();
    assert_eq!(
        (stats.accepted, stats.duplicates, stats.pending),
        (1, copies.len() as u64 - 1, 1)
    );
    // The delivery id is kept with the stored event, for display and search.
    let stored = inbox.event(&key).unwrap().expect("stored");
    assert_eq!(stored.event_type, first_type);
    assert!(
        stored
            .headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case(id_header) && v == first_id),
        "{:?}",
        stored.headers
    );

    let runs = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&runs);
    let router = Router::builder()
        .on("*", move |e: &Event| {
            seen.lock()
                .unwrap()
                .push((e.id().to_owned(), e.event_type().to_owned()));
            Ok(())
        })
        .build()
        .unwrap();
    let worker = Worker::start(&inbox, router, WorkerConfig::default()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while worker.stats().handled < 1 {
        assert!(Instant::now() < deadline, "never handled");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Another copy after the event was handled is still a duplicate.
    let (late_id, late_type) = copies[copies.len() - 1];
    let late = with(&with(&genuine, id_header, late_id), type_header, late_type);
    assert_eq!(
        ingestor.ingest(&late, body).unwrap(),
        Ingested::Duplicate { id: key.clone() }
    );
    worker.shutdown().unwrap();
    assert_eq!(*runs.lock().unwrap(), [(key, first_type.to_owned())]);
    assert_eq!(inbox.stats().pending, 0);
}

#[test]
fn a_github_delivery_resent_under_new_ids_and_another_type_runs_once() {
    let body = br#"{"ref":"refs/heads/main","before":"6113728f27ae82c7b1a177c8d03f9e96e0adf246","after":"59b20b8d5c6ff8d09518454d4dd8b7a30f095ab5","repository":{"full_name":"octo/hello"}}"#;
    resent_under_new_ids_runs_once(
        Scheme::github(),
        "It's a Secret to Everybody",
        "X-GitHub-Delivery",
        "X-GitHub-Event",
        body,
        &[
            ("72d3162e-cc78-11e3-81ab-4c9367dc0958", "push"),
            ("00000000-0000-0000-0000-000000000001", "push"),
            ("00000000-0000-0000-0000-000000000002", "push"),
            ("00000000-0000-0000-0000-000000000003", "push"),
            ("00000000-0000-0000-0000-000000000004", "member"),
        ],
    );
}

#[test]
fn a_shopify_delivery_resent_under_new_ids_and_another_topic_runs_once() {
    let body = br#"{"id":820982911946154508,"email":"jon@example.com","total_price":"199.00"}"#;
    resent_under_new_ids_runs_once(
        Scheme::shopify(),
        "shop-secret",
        "X-Shopify-Event-Id",
        "X-Shopify-Topic",
        body,
        &[
            ("98880550-7158-44d4-b7cd-2c97c8a091b5", "orders/create"),
            ("98880550-7158-44d4-b7cd-000000000001", "orders/create"),
            ("98880550-7158-44d4-b7cd-000000000002", "orders/create"),
            ("98880550-7158-44d4-b7cd-000000000003", "orders/create"),
            ("98880550-7158-44d4-b7cd-000000000004", "refunds/create"),
        ],
    );
}

/// The audit, for every preset and for custom schemes: once a genuine
/// delivery is accepted, changing any one header still lets it verify only
/// where the signature does not cover that header — and then it is a
/// duplicate of the same event.
#[test]
fn no_preset_lets_an_unsigned_header_make_a_new_event() {
    let custom = || {
        Scheme::custom("acme", "X-Acme-Signature")
            .accept("", Algorithm::HmacSha256)
            .id_header("X-Acme-Delivery")
            .type_header("X-Acme-Event")
    };
    let cases: Vec<(Scheme, &str, &[u8])> = vec![
        (
            Scheme::standard(),
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            br#"{"type":"invoice.paid","data":{}}"#,
        ),
        (
            Scheme::bluum(),
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            br#"{"event":"order.filled","timestamp":"2026-11-28T14:00:00Z","data":{}}"#,
        ),
        (
            Scheme::stripe(),
            "whsec_test",
            br#"{"id":"evt_1","object":"event","type":"charge.succeeded"}"#,
        ),
        (
            Scheme::slack(),
            "8f742231b10e8888abcd99yyyzzz85a5",
            br#"{"type":"event_callback","event_id":"Ev08MFMKH6","event":{}}"#,
        ),
        (Scheme::github(), "gh", br#"{"zen":"Keep it simple."}"#),
        (Scheme::shopify(), "sh", br#"{"id":1}"#),
        (custom(), "acme-secret", b"\xff not json"),
    ];
    let dir = TempDir::new("audit");
    let inbox = Inbox::open(dir.path()).unwrap();
    for (scheme, secret, body) in cases {
        let name = scheme.name().to_owned();
        let ingestor = inbox
            .ingestor(Verifier::new(scheme.clone(), [secret]).unwrap())
            .build()
            .unwrap();
        let mut headers =
            Signer::new(scheme.clone(), secret)
                .unwrap()
                .sign("delivery-1", now(), body);
        let type_header = match name.as_str() {
            "github" => Some("X-GitHub-Event"),
            "shopify" => Some("X-Shopify-Topic"),
            "acme" => Some("X-Acme-Event"),
            _ => None,
        };
        if let Some(type_header) = type_header {
            headers.push((type_header.to_owned(), "first.type".to_owned()));
        }
        let first = ingestor.ingest(&headers, body).unwrap();
        assert!(matches!(first, Ingested::Accepted { .. }), "{name}");
        let mut unsigned = Vec::new();
        for (i, (header, value)) in headers.iter().enumerate() {
            let mut changed = headers.clone();
            changed[i].1 = format!("{value}-other");
            if let Ok(outcome) = ingestor.ingest(&changed, body) {
                assert_eq!(
                    outcome,
                    Ingested::Duplicate {
                        id: first.id().to_owned()
                    },
                    "{name}: changing {header} made a new event"
                );
                unsigned.push(header.as_str());
            }
        }
        // What is unsigned is exactly what the scheme says is.
        let expected: &[&str] = match name.as_str() {
            "github" => &["X-GitHub-Delivery", "X-GitHub-Event"],
            "shopify" => &["X-Shopify-Event-Id", "X-Shopify-Topic"],
            "acme" => &["X-Acme-Delivery", "X-Acme-Event"],
            _ => &[],
        };
        assert_eq!(unsigned, expected, "{name}");
        assert_eq!(scheme.type_is_signed(), expected.is_empty(), "{name}");
        assert_ne!(
            std::mem::discriminant(&scheme.dedup_on()),
            std::mem::discriminant(&DedupOn::UnsignedIdHeader("")),
            "{name}"
        );
    }
    assert_eq!(inbox.stats().accepted, 7);
}

/// The explicit opt-out: a custom scheme told to trust its unsigned id
/// header takes a fresh id as a new event, as documented.
#[test]
fn trusting_an_unsigned_id_header_is_explicit_and_does_what_it_says() {
    let scheme = Scheme::custom("acme", "X-Acme-Signature")
        .accept("", Algorithm::HmacSha256)
        .id_header("X-Acme-Delivery")
        .trust_unsigned_id_header();
    assert_eq!(
        scheme.dedup_on(),
        DedupOn::UnsignedIdHeader("X-Acme-Delivery")
    );
    let dir = TempDir::new("trusted");
    let inbox = Inbox::open(dir.path()).unwrap();
    let ingestor = inbox
        .ingestor(Verifier::new(scheme.clone(), ["k"]).unwrap())
        .build()
        .unwrap();
    let signed = Signer::new(scheme, "k").unwrap().sign("d-1", 0, b"{}");
    let first = ingestor.ingest(&signed, b"{}").unwrap();
    assert_eq!(first.id(), "d-1");
    let again = with(&signed, "X-Acme-Delivery", "d-2");
    assert!(matches!(
        ingestor.ingest(&again, b"{}").unwrap(),
        Ingested::Accepted { .. }
    ));
}

/// Copies of one genuine delivery under fresh ids cannot fill `max_pending`:
/// they are duplicates, so the next genuine event still gets in.
#[test]
fn copies_under_fresh_ids_cannot_fill_the_pending_bound() {
    let dir = TempDir::new("flood");
    let inbox = Inbox::builder(dir.path()).max_pending(2).open().unwrap();
    let ingestor = inbox
        .ingestor(Verifier::new(Scheme::github(), ["gh"]).unwrap())
        .build()
        .unwrap();
    let signer = Signer::new(Scheme::github(), "gh").unwrap();
    let body = br#"{"zen":"Design for failure."}"#;
    let genuine = with(&signer.sign("d-0", 0, body), "X-GitHub-Event", "ping");
    assert!(matches!(
        ingestor.ingest(&genuine, body).unwrap(),
        Ingested::Accepted { .. }
    ));
    for n in 1..=200 {
        let copy = with(&genuine, "X-GitHub-Delivery", &format!("d-{n}"));
        assert!(
            matches!(ingestor.ingest(&copy, body), Ok(Ingested::Duplicate { .. })),
            "copy {n}"
        );
    }
    assert_eq!(inbox.stats().pending, 1);
    let next = br#"{"zen":"Favor focus over features."}"#;
    let headers = with(&signer.sign("d-next", 0, next), "X-GitHub-Event", "ping");
    assert!(matches!(
        ingestor.ingest(&headers, next).unwrap(),
        Ingested::Accepted { .. }
    ));
}
