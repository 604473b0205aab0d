//! Every entry of the published signature vectors (`tests/data/signatures.json`,
//! copied from the providers' docs and the Standard Webhooks test suites) holds.

use serde_json::Value;
use webhook_inbox::{Algorithm, ConfigError, ManualClock, Scheme, Signer, Verifier, VerifyError};

fn vectors() -> Value {
    let text = include_str!("data/signatures.json");
    serde_json::from_str(text).expect("the vector file is JSON")
}

fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("{key} in {v}"))
}

fn headers(v: &Value) -> Vec<(String, String)> {
    v["headers"]
        .as_object()
        .expect("headers object")
        .iter()
        .map(|(k, val)| (k.clone(), val.as_str().expect("header value").to_owned()))
        .collect()
}

fn verifier(v: &Value) -> Verifier {
    let scheme = Scheme::preset(str_field(v, "scheme")).expect("known scheme");
    let mut builder = Verifier::builder(scheme);
    if let Some(secret) = v["secret"].as_str() {
        builder = builder.secret(secret);
    }
    if let Some(key) = v["public_key"].as_str() {
        builder = builder.public_key(key);
    }
    if let Some(now) = v["now"].as_i64() {
        builder = builder.clock(ManualClock::at_unix(now));
    }
    builder.build().expect("vector keys are valid")
}

fn check(v: &Value) -> Result<(), VerifyError> {
    let body = str_field(v, "body").as_bytes();
    verifier(v).verify(&headers(v), body).map(|_| ())
}

#[test]
fn every_valid_vector_verifies() {
    let all = vectors();
    let valid = all["valid"].as_array().expect("valid list");
    assert!(valid.len() >= 9);
    for v in valid {
        if let Err(e) = check(v) {
            panic!("{} did not verify: {e}", str_field(v, "name"));
        }
    }
}

#[test]
fn every_invalid_vector_fails_for_its_reason() {
    let all = vectors();
    for v in all["invalid"].as_array().expect("invalid list") {
        let name = str_field(v, "name");
        let err = check(v).expect_err(name);
        let no_match = |tried, ignored| VerifyError::NoMatchingSignature {
            tried,
            ignored,
            keys: 1,
        };
        let missing = |h: &str| VerifyError::MissingHeader { name: h.into() };
        let expected = match name {
            "standard-bare-v1"
            | "standard-prefix-of-valid"
            | "standard-flipped-char"
            | "standard-bad-base64"
            | "standard-reserialized-body"
            | "standard-id-swapped" => Some(no_match(1, 0)),
            "standard-unknown-version-only" | "stripe-v0-only" => Some(no_match(0, 1)),
            "standard-too-old" => Some(VerifyError::TimestampTooOld {
                age_secs: 301,
                tolerance_secs: 300,
            }),
            "standard-from-future" => Some(VerifyError::TimestampInFuture {
                ahead_secs: 301,
                tolerance_secs: 300,
            }),
            "standard-missing-signature" => Some(missing("webhook-signature")),
            "standard-non-numeric-timestamp" => Some(VerifyError::MalformedHeader {
                name: "webhook-timestamp".into(),
                problem: webhook_inbox::HeaderProblem::NotATimestamp,
            }),
            "github-sha1-only" => Some(missing("X-Hub-Signature-256")),
            // A vector added to the shared file later still has to fail (checked above).
            _ => None,
        };
        if let Some(expected) = expected {
            assert_eq!(err, expected, "{name}: {}", v["why"]);
        }
    }
}

#[test]
fn every_rejected_secret_is_refused_when_the_verifier_is_built() {
    let all = vectors();
    for secret in all["secrets_rejected"].as_array().expect("secrets list") {
        let secret = secret.as_str().expect("string");
        let err = Verifier::new(Scheme::standard(), [secret]).expect_err(secret);
        assert!(
            matches!(err, ConfigError::InvalidSecret { index: 0, .. }),
            "{secret:?}: {err:?}"
        );
        assert!(matches!(
            Signer::new(Scheme::standard(), secret),
            Err(ConfigError::InvalidSecret { .. })
        ));
    }
}

#[test]
fn github_sha1_passes_only_when_enabled() {
    let all = vectors();
    let v = all["invalid"]
        .as_array()
        .expect("invalid list")
        .iter()
        .find(|v| v["name"] == "github-sha1-only")
        .expect("sha1 vector");
    let scheme =
        Scheme::github().also_signature_header("X-Hub-Signature", "sha1", Algorithm::HmacSha1);
    let verifier = Verifier::new(scheme, [str_field(v, "secret")]).expect("valid secret");
    let sent = headers(v);
    let verified = verifier.verify(&sent, str_field(v, "body").as_bytes());
    assert!(verified.is_ok(), "SHA-1 refused once enabled: {verified:?}");
}

#[test]
fn signer_reproduces_the_published_signatures() {
    let all = vectors();
    for v in all["valid"].as_array().expect("valid list") {
        let name = str_field(v, "name");
        let scheme = Scheme::preset(str_field(v, "scheme")).expect("scheme");
        let signer = match (v["secret"].as_str(), v["signing_key"].as_str()) {
            (_, Some(key)) => Signer::ed25519(scheme, key),
            (Some(secret), None) => Signer::new(scheme, secret),
            _ => continue,
        }
        .expect("valid key");
        let sent = headers(v);
        let get = |h: &str| {
            sent.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(h))
                .map(|(_, v)| v.as_str())
        };
        let id = get("webhook-id").unwrap_or("");
        let ts = v["now"].as_i64().unwrap_or(0);
        let produced = signer.sign(id, ts, str_field(v, "body").as_bytes());
        let (sig_name, sig_value) = produced.last().expect("a signature header");
        let original = get(sig_name).expect("same header name");
        // Vectors with several signatures (rotation) contain ours among them.
        assert!(
            original
                .split([' ', ','])
                .any(|part| sig_value.ends_with(part) && part.len() > 8),
            "{name}: produced {sig_value}, published {original}"
        );
    }
}
