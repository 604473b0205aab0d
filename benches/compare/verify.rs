//! Verification alone, against the HMAC it cannot avoid, on the same 1 KiB
//! Bluum body signed once per scheme:
//!
//! - `verify`: `Verifier::verify` (headers as `(String, String)` pairs, a
//!   `ManualClock` at the signing time);
//! - `bare HMAC`: `Hmac<Sha256>::new_from_slice(key)`, the scheme's signed
//!   content (`{id}.{timestamp}.{body}`, `{timestamp}.{body}`,
//!   `v0:{timestamp}:{body}` or `{body}`, assembled beforehand) and
//!   `finalize`: what a hand-written check computes, no parsing, no decoding,
//!   no comparison;
//! - `pre-keyed HMAC`: the same from a clone of an already keyed MAC (the
//!   verifier keys once, when it is built): the least HMAC work possible;
//! - `svix`: `svix::webhooks::Webhook::verify` over the Standard Webhooks
//!   headers (as an `http::HeaderMap`) of the same body.
//!
//! Each timing is `iterations` calls in a row; every round times every
//! variant (alternating which goes first), and the figures are medians over
//! the rounds; ratios are per round, then the median.

use std::hint::black_box;
use std::time::Instant;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use webhook_inbox::{Encoding, KeyFormat, ManualClock, Scheme, Signer, Verifier};

use crate::common::{self, SECRET, Settings};
use crate::report::{Stat, Svix, VerifyRow, VerifySection};

pub const SCHEMES: [&str; 6] = ["standard", "bluum", "stripe", "github", "slack", "shopify"];
const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";

/// Rounds and calls per timing.
pub fn scale(settings: &Settings) -> (usize, usize) {
    if settings.quick {
        (5, 2_000)
    } else {
        (25, 10_000)
    }
}

/// Mean nanoseconds per call of `f` over `iterations` calls.
pub fn time_ns(iterations: usize, mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..iterations {
        f();
    }
    t.elapsed().as_nanos() as f64 / iterations as f64
}

/// What the scheme signs, as one buffer.
fn signed_content(scheme: &Scheme, ts: i64, body: &[u8]) -> Vec<u8> {
    let template = scheme
        .content()
        .to_string()
        .replace("{id}", ID)
        .replace("{timestamp}", &ts.to_string());
    let (before, after) = template
        .split_once("{body}")
        .expect("templates sign the body");
    [before.as_bytes(), body, after.as_bytes()].concat()
}

/// The HMAC key the scheme derives from [`SECRET`]: the one whose MAC of the
/// content appears in the signed headers.
fn key(headers: &[(String, String)], content: &[u8]) -> Vec<u8> {
    [KeyFormat::StandardWebhooks, KeyFormat::Utf8]
        .into_iter()
        .filter_map(|format| format.derive(SECRET).ok())
        .find(|key| {
            let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
            mac.update(content);
            let tag = mac.finalize().into_bytes();
            let encoded = [Encoding::Hex.encode(&tag), Encoding::Base64.encode(&tag)];
            headers
                .iter()
                .any(|(_, v)| encoded.iter().any(|e| v.contains(e.as_str())))
        })
        .expect("the bare HMAC reproduces the signature")
}

struct Case {
    name: &'static str,
    verifier: Verifier,
    headers: Vec<(String, String)>,
    content: Vec<u8>,
    key: Vec<u8>,
    keyed: Hmac<Sha256>,
}

/// Per-round timings of one scheme: verify, bare HMAC, pre-keyed HMAC (ns).
type Timings = [Vec<f64>; 3];

pub fn measure(settings: &Settings) -> VerifySection {
    let (rounds, iterations) = scale(settings);
    let body = common::body(1);
    let ts = common::now_secs();
    let cases: Vec<Case> = SCHEMES
        .into_iter()
        .map(|name| {
            let scheme = Scheme::preset(name).expect("a preset");
            let headers = Signer::new(scheme.clone(), SECRET)
                .expect("a valid secret")
                .sign(ID, ts, &body);
            let content = signed_content(&scheme, ts, &body);
            let key = key(&headers, &content);
            let verifier = Verifier::builder(scheme)
                .secret(SECRET)
                .clock(ManualClock::at_unix(ts))
                .build()
                .expect("a valid verifier");
            assert!(verifier.verify(&headers, &body).is_ok(), "{name}");
            let keyed = Hmac::<Sha256>::new_from_slice(&key).expect("any key length");
            Case {
                name,
                verifier,
                headers,
                content,
                key,
                keyed,
            }
        })
        .collect();
    let svix = svix_verifier(ts, &body);

    let mut timings: Vec<Timings> = cases.iter().map(|_| Default::default()).collect();
    let mut svix_ns = Vec::new();
    for round in 0..rounds {
        for (case, t) in cases.iter().zip(&mut timings) {
            let verify = || {
                black_box(
                    case.verifier
                        .verify(black_box(&case.headers), black_box(&body))
                        .is_ok(),
                );
            };
            let bare = || {
                let mut mac =
                    Hmac::<Sha256>::new_from_slice(black_box(&case.key)).expect("any key length");
                mac.update(black_box(&case.content));
                black_box(mac.finalize().into_bytes());
            };
            let prekeyed = || {
                let mut mac = black_box(&case.keyed).clone();
                mac.update(black_box(&case.content));
                black_box(mac.finalize().into_bytes());
            };
            if round % 2 == 0 {
                t[0].push(time_ns(iterations, verify));
                t[1].push(time_ns(iterations, bare));
                t[2].push(time_ns(iterations, prekeyed));
            } else {
                t[2].push(time_ns(iterations, prekeyed));
                t[1].push(time_ns(iterations, bare));
                t[0].push(time_ns(iterations, verify));
            }
        }
        if let Some(svix) = &svix {
            svix_ns.push(time_ns(iterations, svix));
        }
    }

    let ratio =
        |a: &[f64], b: &[f64]| Stat::of(&a.iter().zip(b).map(|(a, b)| a / b).collect::<Vec<_>>());
    let schemes: Vec<VerifyRow> = cases
        .iter()
        .zip(&timings)
        .map(|(case, [verify, bare, prekeyed])| VerifyRow {
            scheme: case.name.to_owned(),
            verify_ns: Stat::of(verify),
            bare_hmac_ns: Stat::of(bare),
            prekeyed_hmac_ns: Stat::of(prekeyed),
            x_bare_hmac: ratio(verify, bare),
            x_prekeyed_hmac: ratio(verify, prekeyed),
        })
        .collect();
    let svix = (!svix_ns.is_empty()).then(|| {
        let [standard, bare, _] = &timings[0];
        Svix {
            verify_ns: Stat::of(&svix_ns),
            x_bare_hmac: ratio(&svix_ns, bare),
            x_standard_verify: ratio(&svix_ns, standard),
        }
    });
    for row in &schemes {
        eprintln!(
            "  verify {:<8} {:>7.0} ns, bare HMAC {:>7.0} ns: {:.3}x",
            row.scheme, row.verify_ns.median, row.bare_hmac_ns.median, row.x_bare_hmac.median
        );
    }
    VerifySection {
        rounds,
        iterations,
        schemes,
        svix,
    }
}

/// svix's `verify` of the same body with Standard Webhooks headers signed now
/// (svix reads the system clock), as a closure to time.
#[cfg(feature = "http")]
fn svix_verifier(ts: i64, body: &[u8]) -> Option<impl Fn() + '_> {
    let mut map = http::HeaderMap::new();
    for (name, value) in Signer::new(Scheme::standard(), SECRET)
        .expect("a valid secret")
        .sign(ID, ts, body)
    {
        let name = http::HeaderName::from_bytes(name.as_bytes()).expect("a header name");
        let value = http::HeaderValue::from_str(&value).expect("a header value");
        map.insert(name, value);
    }
    let svix = svix::webhooks::Webhook::new(SECRET).expect("a valid secret");
    assert!(svix.verify(body, &map).is_ok(), "svix");
    Some(move || {
        black_box(svix.verify(black_box(body), black_box(&map)).is_ok());
    })
}

#[cfg(not(feature = "http"))]
fn svix_verifier(_ts: i64, _body: &[u8]) -> Option<fn()> {
    None
}
