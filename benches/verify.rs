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
//! Group `parse`: `standard_header` splits a 3-signature `webhook-signature`
//! value with [`SignatureFormat::STANDARD`].

use std::hint::black_box;
use std::time::{SystemTime, UNIX_EPOCH};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use webhook_inbox::{KeyFormat, ManualClock, Scheme, SignatureFormat, Signer, Verifier};

const BODY_LEN: usize = 1024;
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const SCHEMES: [&str; 6] = ["standard", "bluum", "stripe", "github", "slack", "shopify"];
/// Three `v1` signatures, the valid one last (the multi-signature test vector's shape).
const THREE_SIGNATURES: &[u8] = b"v1,tFtCZ5RDCPxzWQRWXWPgrCgE2frDBe9gjpbWQxnVfsQ= \
v1,Mm7xgUVICxZfQ3bgf0h0Dof65L/IFx+PnZvnDWPCX6Q= \
v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

/// A Bluum envelope `{"event","timestamp","data"}` padded to exactly 1 KiB.
fn body() -> Vec<u8> {
    let head = r#"{"event":"order.filled","timestamp":"2026-11-28T12:00:00Z","data":{"id":"ord_1","account_id":"acc_7Hq2","symbol":"AAPL","side":"buy","qty":"10","filled_avg_price":"227.41","note":""#;
    let tail = r#""}}"#;
    let pad = BODY_LEN - head.len() - tail.len();
    let body = format!("{head}{}{tail}", "x".repeat(pad));
    assert_eq!(body.len(), BODY_LEN);
    assert!(serde_json::from_str::<serde_json::Value>(&body).is_ok());
    body.into_bytes()
}

/// "Now", so that svix (which reads the system clock) accepts the timestamp too.
fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    i64::try_from(secs).unwrap_or(i64::MAX)
}

fn bench_verify(c: &mut Criterion) {
    let body = body();
    let ts = now();
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
    group.finish();
}

criterion_group!(benches, bench_verify);
criterion_main!(benches);
