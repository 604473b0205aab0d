//! The verification contract, one rule per test: raw bytes, rotation, the
//! replay window at its exact edges, bounded work, HTTP status mapping.

use std::collections::HashMap;
use std::time::Duration;

use webhook_inbox::{
    Algorithm, ConfigError, Encoding, HeaderProblem, KeyFormat, ManualClock, Scheme,
    SignatureFormat, SignedContent, Signer, Verifier, VerifyError,
};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const T: i64 = 1_764_331_200;
const BODY: &[u8] =
    br#"{"event":"order.filled","timestamp":"2026-11-28T12:00:00Z","data":{"id":"ord_1"}}"#;

fn bluum_at(now: i64) -> Verifier {
    Verifier::builder(Scheme::bluum())
        .secret(SECRET)
        .clock(ManualClock::at_unix(now))
        .build()
        .expect("valid secret")
}

fn signed(id: &str, ts: i64, body: &[u8]) -> Vec<(String, String)> {
    Signer::new(Scheme::bluum(), SECRET)
        .expect("valid secret")
        .sign(id, ts, body)
}

fn set(headers: &mut [(String, String)], name: &str, value: &str) {
    for (k, v) in headers.iter_mut() {
        if k.eq_ignore_ascii_case(name) {
            *v = value.to_owned();
        }
    }
}

#[test]
fn tolerance_edges_are_inclusive() {
    let headers = signed("evt_1", T, BODY);
    assert!(bluum_at(T + 300).verify(&headers, BODY).is_ok());
    assert!(bluum_at(T - 300).verify(&headers, BODY).is_ok());
    assert_eq!(
        bluum_at(T + 301).verify(&headers, BODY).unwrap_err(),
        VerifyError::TimestampTooOld {
            age_secs: 301,
            tolerance_secs: 300
        }
    );
    assert_eq!(
        bluum_at(T - 301).verify(&headers, BODY).unwrap_err(),
        VerifyError::TimestampInFuture {
            ahead_secs: 301,
            tolerance_secs: 300
        }
    );
}

#[test]
fn tolerance_is_configurable_and_follows_the_clock() {
    let clock = ManualClock::at_unix(T);
    let verifier = Verifier::builder(Scheme::bluum())
        .secret(SECRET)
        .tolerance(Duration::from_secs(10))
        .clock(clock.clone())
        .build()
        .unwrap();
    let headers = signed("evt_1", T, BODY);
    assert!(verifier.verify(&headers, BODY).is_ok());
    clock.advance(Duration::from_secs(11));
    assert!(matches!(
        verifier.verify(&headers, BODY),
        Err(VerifyError::TimestampTooOld { age_secs: 11, .. })
    ));
}

#[test]
fn extreme_timestamps_are_errors_not_overflows() {
    for ts in [
        "0",
        "999999999999999999",
        "9223372036854775807",
        "-9223372036854775808",
        "",
    ] {
        let mut headers = signed("evt_1", T, BODY);
        set(&mut headers, "webhook-timestamp", ts);
        let err = bluum_at(T).verify(&headers, BODY).unwrap_err();
        assert_eq!(
            err.status(),
            if ts == "0" || ts == "999999999999999999" {
                401
            } else {
                400
            },
            "{ts}: {err}"
        );
    }
    // A clock at the ends of time does not overflow either.
    let headers = signed("evt_1", T, BODY);
    assert!(bluum_at(i64::MAX / 1000).verify(&headers, BODY).is_err());
    assert!(bluum_at(i64::MIN / 1000).verify(&headers, BODY).is_err());
}

#[test]
fn any_of_several_secrets_passes_and_reports_which() {
    let old = "whsec_aGVsbG8gd29ybGQgdGhpcyBpcyBvbGQ=";
    let verifier = Verifier::builder(Scheme::bluum())
        .secrets([SECRET, old])
        .clock(ManualClock::at_unix(T))
        .build()
        .unwrap();
    let by_new = signed("evt_1", T, BODY);
    let by_old = Signer::new(Scheme::bluum(), old)
        .unwrap()
        .sign("evt_1", T, BODY);
    assert_eq!(verifier.verify(&by_new, BODY).unwrap().key_index(), 0);
    assert_eq!(verifier.verify(&by_old, BODY).unwrap().key_index(), 1);
    let other = Signer::new(Scheme::bluum(), "whsec_b3RoZXI=")
        .unwrap()
        .sign("evt_1", T, BODY);
    assert_eq!(
        verifier.verify(&other, BODY).unwrap_err(),
        VerifyError::NoMatchingSignature {
            tried: 1,
            ignored: 0,
            keys: 2
        }
    );
}

#[test]
fn any_of_several_signatures_passes() {
    let mut headers = signed("evt_1", T, BODY);
    let good = headers[2].1.clone();
    let stuffed = format!("v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= v2,xyz {good} v1,");
    set(&mut headers, "webhook-signature", &stuffed);
    assert!(bluum_at(T).verify(&headers, BODY).is_ok());
}

#[test]
fn non_utf8_bodies_verify_over_their_raw_bytes() {
    let body = b"\xff\xfe\x00binary\x80";
    for scheme in ["standard", "stripe", "github", "slack", "shopify"] {
        let scheme = Scheme::preset(scheme).unwrap();
        let headers = Signer::new(scheme.clone(), SECRET)
            .unwrap()
            .sign("evt_1", T, body);
        let verifier = Verifier::builder(scheme.clone())
            .secret(SECRET)
            .clock(ManualClock::at_unix(T))
            .build()
            .unwrap();
        assert!(verifier.verify(&headers, body).is_ok(), "{}", scheme.name());
        assert!(
            verifier
                .verify(&headers, b"\xff\xfe\x00binary\x81")
                .is_err(),
            "{}",
            scheme.name()
        );
    }
}

#[test]
fn oversized_headers_and_signature_floods_are_refused_before_any_mac() {
    let mut headers = signed("evt_1", T, BODY);
    let long = "v1,".to_owned() + &"A".repeat(9000);
    set(&mut headers, "webhook-signature", &long);
    assert_eq!(
        bluum_at(T).verify(&headers, BODY).unwrap_err(),
        VerifyError::MalformedHeader {
            name: "webhook-signature".into(),
            problem: HeaderProblem::TooLong {
                len: 9003,
                limit: 8192
            }
        }
    );

    let mut headers = signed("evt_1", T, BODY);
    let good = headers[2].1.clone();
    let flood = vec!["v1,AAAA"; 16].join(" ") + " " + &good;
    set(&mut headers, "webhook-signature", &flood);
    let err = bluum_at(T).verify(&headers, BODY).unwrap_err();
    assert_eq!(err.status(), 400);
    assert!(matches!(
        err,
        VerifyError::MalformedHeader {
            problem: HeaderProblem::TooManySignatures {
                count: 17,
                limit: 16
            },
            ..
        }
    ));

    let mut headers = signed("evt_1", T, BODY);
    set(&mut headers, "webhook-id", &"i".repeat(8193));
    assert!(matches!(
        bluum_at(T).verify(&headers, BODY),
        Err(VerifyError::MalformedHeader {
            problem: HeaderProblem::TooLong { .. },
            ..
        })
    ));
}

#[test]
fn every_signed_part_is_bound() {
    let headers = signed("evt_1", T, BODY);
    let verifier = bluum_at(T);
    let mut other_id = headers.clone();
    set(&mut other_id, "webhook-id", "evt_2");
    let mut other_ts = headers.clone();
    set(&mut other_ts, "webhook-timestamp", &(T + 1).to_string());
    for tampered in [other_id, other_ts] {
        assert!(matches!(
            verifier.verify(&tampered, BODY),
            Err(VerifyError::NoMatchingSignature { tried: 1, .. })
        ));
    }
    // The timestamp is signed as sent: a leading zero is a different message.
    let mut padded = headers.clone();
    set(&mut padded, "webhook-timestamp", &format!("0{T}"));
    assert!(verifier.verify(&padded, BODY).is_err());
}

#[test]
fn errors_map_to_http_statuses() {
    let verifier = bluum_at(T);
    let headers = signed("evt_1", T, BODY);
    let without = |name: &str| -> Vec<(String, String)> {
        headers.iter().filter(|(k, _)| k != name).cloned().collect()
    };
    for missing in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let err = verifier.verify(&without(missing), BODY).unwrap_err();
        assert_eq!(
            err,
            VerifyError::MissingHeader {
                name: missing.into()
            }
        );
        assert_eq!(err.status(), 400);
        assert_eq!(err.to_string(), format!("missing header `{missing}`"));
    }
    assert_eq!(verifier.verify(&headers, b"{}").unwrap_err().status(), 401);
    assert_eq!(
        bluum_at(T + 1000)
            .verify(&headers, BODY)
            .unwrap_err()
            .status(),
        401
    );
}

#[test]
fn messages_say_what_differed_and_never_the_secret() {
    let verifier = bluum_at(T + 301);
    let headers = signed("evt_1", T, BODY);
    let msg = verifier.verify(&headers, BODY).unwrap_err().to_string();
    assert_eq!(
        msg,
        "timestamp too old: signed 301 s ago, tolerance is 300 s"
    );
    let msg = bluum_at(T)
        .verify(&headers, b"tampered")
        .unwrap_err()
        .to_string();
    assert_eq!(msg, "no signature matched: tried 1 signature against 1 key");
    let err = Verifier::new(Scheme::standard(), ["whsec_!!!not-base64!!!"]).unwrap_err();
    assert!(!err.to_string().contains("not-base64!!!"), "{err}");
}

#[test]
fn stripe_needs_its_timestamp_entry() {
    let verifier = Verifier::new(Scheme::stripe(), ["whsec_test"]).unwrap();
    let err = verifier
        .verify(&[("Stripe-Signature", "v1=00")], b"{}")
        .unwrap_err();
    assert_eq!(
        err,
        VerifyError::MalformedHeader {
            name: "Stripe-Signature".into(),
            problem: HeaderProblem::NoTimestamp
        }
    );
}

#[test]
fn bluum_header_layout_is_one_line_of_configuration() {
    let scheme = Scheme::bluum()
        .signature_header("X-Bluum-Signature")
        .timestamp_header("X-Bluum-Timestamp")
        .id_header("X-Bluum-Event-Id");
    let headers = Signer::new(scheme.clone(), SECRET)
        .unwrap()
        .sign("evt_9", T, BODY);
    let names: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        ["X-Bluum-Event-Id", "X-Bluum-Timestamp", "X-Bluum-Signature"]
    );
    let verifier = Verifier::builder(scheme)
        .secret(SECRET)
        .clock(ManualClock::at_unix(T))
        .build()
        .unwrap();
    assert_eq!(verifier.verify(&headers, BODY).unwrap().id(), Some("evt_9"));
}

#[test]
fn custom_schemes_are_data() {
    let scheme = Scheme::custom("acme", "X-Acme-Signature")
        .signature_format(SignatureFormat::new(Some(b';'), Some(b':')))
        .accept("hmac", Algorithm::HmacSha256)
        .timestamp_header("X-Acme-Time")
        .id_header("X-Acme-Id")
        .signed_content(SignedContent::parse("acme|{id}|{timestamp}|{body}").unwrap())
        .encoding(Encoding::Base64)
        .key_format(KeyFormat::Hex);
    let headers = Signer::new(scheme.clone(), "00112233")
        .unwrap()
        .sign("a-1", T, BODY);
    assert!(headers[2].1.starts_with("hmac:"), "{headers:?}");
    let verifier = Verifier::builder(scheme.clone())
        .secret("00112233")
        .clock(ManualClock::at_unix(T))
        .build()
        .unwrap();
    assert!(verifier.verify(&headers, BODY).is_ok());

    let inconsistent = scheme.clone().without_timestamp();
    assert!(matches!(
        Verifier::new(inconsistent, ["00"]),
        Err(ConfigError::InconsistentScheme { .. })
    ));
    assert!(matches!(
        Verifier::new(scheme, ["zz"]),
        Err(ConfigError::InvalidSecret { index: 0, .. })
    ));
}

#[test]
fn keys_are_checked_when_the_verifier_is_built() {
    assert_eq!(
        Verifier::new(Scheme::github(), Vec::<String>::new()).unwrap_err(),
        ConfigError::NoKeys
    );
    assert!(matches!(
        Verifier::builder(Scheme::stripe())
            .public_key("whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4=")
            .build(),
        Err(ConfigError::InvalidKey { index: 0, .. })
    ));
    assert!(matches!(
        Verifier::builder(Scheme::standard())
            .public_key("whpk_AAAA")
            .build(),
        Err(ConfigError::InvalidKey { .. })
    ));
    assert!(matches!(
        Verifier::builder(Scheme::github())
            .secret("ok")
            .secret("")
            .build(),
        Err(ConfigError::InvalidSecret { index: 1, .. })
    ));
}

#[test]
fn ed25519_and_hmac_keys_can_be_mixed() {
    let signing = "whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6Kvg==";
    let public = "whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4=";
    let headers = Signer::ed25519(Scheme::standard(), signing)
        .unwrap()
        .sign("msg_1", T, BODY);
    let verifier = Verifier::builder(Scheme::standard())
        .secret(SECRET)
        .public_key(public)
        .clock(ManualClock::at_unix(T))
        .build()
        .unwrap();
    assert_eq!(verifier.verify(&headers, BODY).unwrap().key_index(), 1);
    assert!(verifier.verify(&headers, b"other").is_err());
}

#[test]
fn every_header_source_works() {
    let headers = signed("evt_1", T, BODY);
    let verifier = bluum_at(T);
    let borrowed: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert!(verifier.verify(borrowed.as_slice(), BODY).is_ok());
    let upper: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| (k.to_uppercase(), v.clone()))
        .collect();
    assert!(verifier.verify(&upper, BODY).is_ok());
    #[cfg(feature = "http")]
    {
        let mut map = http::HeaderMap::new();
        for (k, v) in &headers {
            map.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        assert_eq!(verifier.verify(&map, BODY).unwrap().id(), Some("evt_1"));
    }
}
