//! Fuzzes `Verifier::verify` with arbitrary header values and bodies, and checks
//! that whatever a `Signer` signs, the matching verifier accepts (round trip).
//!
//! Input layout:
//!
//! | bytes | meaning |
//! |---|---|
//! | 1 | low 3 bits: scheme (mod 6); bit 3: drop the id header; bit 4: drop the timestamp header; bit 5: drop the signature header; bit 6: add a second signature header (the first one wins); bit 7: upper-case the header names |
//! | 2 | round trip: signing timestamp offset from the verifier's "now", `i16` little-endian |
//! | 2 + n | id header value: length `u16` LE (clamped), then the bytes |
//! | 2 + n | timestamp header value, the same way |
//! | 2 + n | signature header value, the same way |
//! | rest | the body |
//!
//! Header values are made text with `String::from_utf8_lossy`.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use webhook_inbox::{
    DEFAULT_MAX_HEADER_LEN, HeaderProblem, ManualClock, Scheme, Signer, Verifier, VerifyError,
};

/// One preset with the keys and clock of its published (or computed) test vector,
/// so the seed corpus starts from deliveries that verify.
struct Case {
    scheme: fn() -> Scheme,
    secret: &'static str,
    now: i64,
    id_header: Option<&'static str>,
    timestamp_header: Option<&'static str>,
    signature_header: &'static str,
}

const CASES: [Case; 6] = [
    Case {
        scheme: Scheme::standard,
        secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        now: 1_614_265_330,
        id_header: Some("webhook-id"),
        timestamp_header: Some("webhook-timestamp"),
        signature_header: "webhook-signature",
    },
    Case {
        scheme: Scheme::bluum,
        secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        now: 1_614_265_330,
        id_header: Some("webhook-id"),
        timestamp_header: Some("webhook-timestamp"),
        signature_header: "webhook-signature",
    },
    Case {
        scheme: Scheme::stripe,
        secret: "whsec_test_secret",
        now: 1_492_774_577,
        id_header: None,
        timestamp_header: None,
        signature_header: "Stripe-Signature",
    },
    Case {
        scheme: Scheme::github,
        secret: "It's a Secret to Everybody",
        now: 1_700_000_000,
        id_header: Some("X-GitHub-Delivery"),
        timestamp_header: None,
        signature_header: "X-Hub-Signature-256",
    },
    Case {
        scheme: Scheme::slack,
        secret: "8f742231b10e8888abcd99yyyzzz85a5",
        now: 1_531_420_618,
        id_header: None,
        timestamp_header: Some("X-Slack-Request-Timestamp"),
        signature_header: "X-Slack-Signature",
    },
    Case {
        scheme: Scheme::shopify,
        secret: "shop-secret",
        now: 1_700_000_000,
        id_header: Some("X-Shopify-Event-Id"),
        timestamp_header: None,
        signature_header: "X-Shopify-Hmac-Sha256",
    },
];

/// A second, configured-first secret: deliveries signed with the case's secret
/// match key index 1, so the rotation loop runs on every call.
const OTHER_SECRET: &str = "whsec_dGhlIG90aGVyIHNlY3JldA==";
/// The Standard Webhooks reference Ed25519 key pair (`v1a`).
const PUBLIC_KEY: &str = "whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4=";
const SIGNING_KEY: &str =
    "whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6Kvg==";
const TOLERANCE: i64 = 300;

struct Built {
    verifier: Verifier,
    signer: Signer,
    ed25519: Option<Signer>,
}

fn built(index: usize) -> &'static Built {
    static BUILT: [OnceLock<Built>; 6] = [const { OnceLock::new() }; 6];
    BUILT[index].get_or_init(|| {
        let case = &CASES[index];
        let scheme = (case.scheme)();
        let ed25519 = scheme.name() == "standard";
        let mut builder = Verifier::builder(scheme.clone())
            .secret(OTHER_SECRET)
            .secret(case.secret)
            .clock(ManualClock::at_unix(case.now));
        if ed25519 {
            builder = builder.public_key(PUBLIC_KEY);
        }
        Built {
            verifier: builder.build().expect("verifier"),
            signer: Signer::new(scheme.clone(), case.secret).expect("signer"),
            ed25519: ed25519.then(|| Signer::ed25519(scheme, SIGNING_KEY).expect("ed25519 signer")),
        }
    })
}

/// Splits off a `u16`-length-prefixed field (the length clamped to what is left).
fn field<'a>(data: &mut &'a [u8]) -> &'a [u8] {
    let len = match *data {
        [a, b, ..] => usize::from(u16::from_le_bytes([*a, *b])),
        _ => 0,
    };
    let rest = data.get(2..).unwrap_or_default();
    let (value, rest) = rest.split_at(len.min(rest.len()));
    *data = rest;
    value
}

fn name(name: &str, upper: bool) -> String {
    if upper {
        name.to_ascii_uppercase()
    } else {
        name.to_owned()
    }
}

fuzz_target!(|data: &[u8]| {
    let [control, d0, d1, rest @ ..] = data else {
        return;
    };
    let index = usize::from(control & 7) % CASES.len();
    let flag = |bit: u8| control & (1 << bit) != 0;
    let offset = i64::from(i16::from_le_bytes([*d0, *d1]));
    let mut rest = rest;
    let id = String::from_utf8_lossy(field(&mut rest)).into_owned();
    let timestamp = String::from_utf8_lossy(field(&mut rest)).into_owned();
    let signature = String::from_utf8_lossy(field(&mut rest)).into_owned();
    let body = rest;

    let case = &CASES[index];
    let built = built(index);
    let upper = flag(7);

    // 1. Arbitrary headers: any answer but a panic, and a well-formed one.
    let mut headers: Vec<(String, String)> = Vec::with_capacity(4);
    if let (Some(h), false) = (case.id_header, flag(3)) {
        headers.push((name(h, upper), id.clone()));
    }
    if let (Some(h), false) = (case.timestamp_header, flag(4)) {
        headers.push((name(h, upper), timestamp.clone()));
    }
    if !flag(5) {
        headers.push((name(case.signature_header, upper), signature.clone()));
    }
    if flag(6) {
        headers.push((name(case.signature_header, upper), timestamp.clone()));
    }
    match built.verifier.verify(&headers, body) {
        Ok(verified) => {
            assert_eq!(verified.body(), body);
            if case.id_header.is_some() && !flag(3) {
                assert_eq!(verified.id(), Some(id.as_str()));
            }
        }
        Err(err) => {
            assert!(matches!(err.status(), 400 | 401));
            let shown = err.to_string();
            assert!(
                !shown.contains(case.secret),
                "the secret in an error: {shown}"
            );
        }
    }

    // 2. Round trip: what the signer signs within the window verifies, with the
    //    signing key's index; outside the window it is refused as a replay.
    let ts = case.now + offset;
    let has_timestamp = built.verifier.scheme().has_timestamp();
    let in_window = !has_timestamp || offset.abs() <= TOLERANCE;
    let signers = [
        Some((&built.signer, 1)),
        built.ed25519.as_ref().map(|s| (s, 2)),
    ];
    for (signer, key_index) in signers.into_iter().flatten() {
        let signed = signer.sign(&id, ts, body);
        let result = built.verifier.verify(&signed, body);
        if case.id_header.is_some() && id.len() > DEFAULT_MAX_HEADER_LEN {
            // Over the header limit: refused before any MAC (after a stale
            // timestamp, which is checked first).
            assert!(result.is_err());
            if in_window {
                assert!(
                    matches!(
                        result,
                        Err(VerifyError::MalformedHeader {
                            problem: HeaderProblem::TooLong { .. },
                            ..
                        })
                    ),
                    "{result:?}"
                );
            }
        } else if in_window {
            let verified = result.unwrap_or_else(|e| panic!("round trip refused: {e}"));
            assert_eq!(verified.key_index(), key_index);
            assert_eq!(verified.body(), body);
            assert_eq!(verified.timestamp(), has_timestamp.then_some(ts));
            if case.id_header.is_some() {
                assert_eq!(verified.id(), Some(id.as_str()));
            }
            // One byte changed in the body: no longer genuine.
            let mut tampered = body.to_vec();
            match tampered.last_mut() {
                Some(last) => *last ^= 1,
                None => tampered.push(b' '),
            }
            assert!(matches!(
                built.verifier.verify(&signed, &tampered),
                Err(VerifyError::NoMatchingSignature { .. })
            ));
        } else if offset > 0 {
            assert!(matches!(result, Err(VerifyError::TimestampInFuture { .. })));
        } else {
            assert!(matches!(result, Err(VerifyError::TimestampTooOld { .. })));
        }
    }
});
