//! Verification cost over a 1 KiB Bluum-style JSON delivery.
//!
//! `cargo bench --bench verify -- --warm-up-time 1 --measurement-time 3`
//!
//! Group `body_1KiB` (throughput: 1024 bytes per iteration):
//! - `bare_hmac_sha256`: key + HMAC-SHA256 of the body alone — the floor;
//! - `prekeyed_hmac_sha256/standard_content`: the HMAC work `verify/standard`
//!   cannot avoid — a clone of an already keyed MAC fed `{id}.{timestamp}.{body}`
//!   (the verifier keys its MACs once, when it is built);
//! - `verify/<scheme>`: [`Verifier::verify`] for each preset, headers signed once
//!   outside the timed loop, verifier built once with a [`ManualClock`] at the
//!   signing timestamp;
//! - `svix_verify`: `svix::webhooks::Webhook::verify` over the same Standard
//!   Webhooks headers (as an `http::HeaderMap`), secret and body.
//!
//! Group `parse` (the signature-header parser, [`SignatureFormat::entries`]):
//! `standard_header` splits a 3-signature `webhook-signature` value with
//! [`SignatureFormat::STANDARD`]; `stripe_header` a `t=…,v1=…,v1=…` value with
//! [`SignatureFormat::KEY_VALUE_LIST`].
//!
//! Group `store`: `ingest_buffered` is [`Ingestor::ingest`] of a signed 1 KiB
//! Bluum delivery with a fresh id every iteration into an [`Inbox`] opened with
//! [`Durability::Buffered`] (100 ms), so it measures the CPU of verify, dedup
//! and the log append, not the disk. Signing happens outside the timed part.
//!
//! The comparisons with SQLite, the bare log and the disk are in
//! `cargo bench --bench compare`.

mod common;

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{BODY_LEN, SECRET};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use webhook_inbox::{
    Durability, Inbox, Ingested, KeyFormat, ManualClock, Scheme, SignatureFormat, Signer, Verifier,
};

const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const SCHEMES: [&str; 6] = ["standard", "bluum", "stripe", "github", "slack", "shopify"];
/// Three `v1` signatures, the valid one last (the multi-signature test vector's shape).
const THREE_SIGNATURES: &[u8] = b"v1,tFtCZ5RDCPxzWQRWXWPgrCgE2frDBe9gjpbWQxnVfsQ= \
v1,Mm7xgUVICxZfQ3bgf0h0Dof65L/IFx+PnZvnDWPCX6Q= \
v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
/// A Stripe header with a timestamp and two `v1` signatures.
const STRIPE_HEADER: &[u8] = b"t=1492774577,\
v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd,\
v1=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39";

fn bench_verify(c: &mut Criterion) {
    let body = common::body(1);
    assert_eq!(body.len(), BODY_LEN);
    assert!(serde_json::from_slice::<serde_json::Value>(&body).is_ok());
    // "Now", so that svix (which reads the system clock) accepts the timestamp too.
    let ts = common::now_secs();
    let mut group = c.benchmark_group("body_1KiB");
    group.throughput(Throughput::Bytes(BODY_LEN as u64));

    let key = KeyFormat::StandardWebhooks
        .derive(SECRET)
        .expect("the bench secret is valid base64");
    group.bench_function("bare_hmac_sha256", |b| {
        b.iter(|| {
            let mut mac = Hmac::<Sha256>::new_from_slice(black_box(&key))
                .expect("HMAC takes keys of any length");
            mac.update(black_box(&body));
            black_box(mac.finalize().into_bytes())
        });
    });

    let keyed = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes keys of any length");
    let ts_text = ts.to_string();
    group.bench_function("prekeyed_hmac_sha256/standard_content", |b| {
        b.iter(|| {
            let mut mac = black_box(&keyed).clone();
            for piece in [ID.as_bytes(), b".", ts_text.as_bytes(), b".", &body] {
                mac.update(black_box(piece));
            }
            black_box(mac.finalize().into_bytes())
        });
    });

    for name in SCHEMES {
        let scheme = Scheme::preset(name).expect("a preset");
        let headers = Signer::new(scheme.clone(), SECRET)
            .expect("a valid secret")
            .sign(ID, ts, &body);
        let verifier = Verifier::builder(scheme)
            .secret(SECRET)
            .clock(ManualClock::at_unix(ts))
            .build()
            .expect("a valid verifier");
        assert!(verifier.verify(&headers, &body).is_ok(), "{name}");
        group.bench_function(format!("verify/{name}"), |b| {
            b.iter(|| {
                black_box(
                    verifier
                        .verify(black_box(&headers), black_box(&body))
                        .is_ok(),
                )
            });
        });
    }

    #[cfg(feature = "http")]
    {
        let mut map = http::HeaderMap::new();
        for (name, value) in Signer::new(Scheme::standard(), SECRET)
            .expect("a valid secret")
            .sign(ID, ts, &body)
        {
            let name = http::HeaderName::from_bytes(name.as_bytes()).expect("a header name");
            let value = http::HeaderValue::from_str(&value).expect("a header value");
            map.insert(name, value);
        }
        let svix = svix::webhooks::Webhook::new(SECRET).expect("a valid secret");
        assert!(svix.verify(&body, &map).is_ok(), "svix");
        group.bench_function("svix_verify", |b| {
            b.iter(|| black_box(svix.verify(black_box(&body), black_box(&map)).is_ok()));
        });
    }
    group.finish();

    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Bytes(THREE_SIGNATURES.len() as u64));
    assert_eq!(
        SignatureFormat::STANDARD.entries(THREE_SIGNATURES).count(),
        3
    );
    group.bench_function("standard_header", |b| {
        b.iter(|| {
            for entry in SignatureFormat::STANDARD.entries(black_box(THREE_SIGNATURES)) {
                black_box(entry);
            }
        });
    });
    group.throughput(Throughput::Bytes(STRIPE_HEADER.len() as u64));
    assert_eq!(
        SignatureFormat::KEY_VALUE_LIST
            .entries(STRIPE_HEADER)
            .count(),
        3
    );
    group.bench_function("stripe_header", |b| {
        b.iter(|| {
            for entry in SignatureFormat::KEY_VALUE_LIST.entries(black_box(STRIPE_HEADER)) {
                black_box(entry);
            }
        });
    });
    group.finish();
}

fn bench_store(c: &mut Criterion) {
    let dir =
        std::env::temp_dir().join(format!("webhook-inbox-bench-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let inbox = Inbox::builder(&dir)
        .durability(Durability::Buffered(Duration::from_millis(100)))
        .max_pending(u64::MAX)
        .open()
        .expect("open the inbox");
    let bluum = inbox
        .ingestor(Verifier::new(Scheme::bluum(), [SECRET]).expect("a valid secret"))
        .build()
        .expect("an ingestor");
    let signer = Signer::new(Scheme::bluum(), SECRET).expect("a valid secret");
    let next = AtomicU64::new(0);
    // Signed outside the timed part; a fresh id (and body) every iteration.
    let delivery = || {
        let n = next.fetch_add(1, Ordering::Relaxed);
        let body = common::body(n as usize);
        (
            signer.sign(&format!("evt_{n}"), common::now_secs(), &body),
            body,
        )
    };

    let mut group = c.benchmark_group("store");
    group.throughput(Throughput::Bytes(BODY_LEN as u64));
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("ingest_buffered", |b| {
        b.iter_batched(
            delivery,
            |(headers, body)| {
                let outcome = bluum.ingest(&headers, &body).expect("accepted");
                assert!(matches!(outcome, Ingested::Accepted { .. }));
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
    drop(bluum);
    inbox.close().expect("close the inbox");
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench_verify, bench_store);
criterion_main!(benches);
