//! The `webhook-inbox` binary, run as a real process.
#![cfg(feature = "cli")]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

const BIN: &str = env!("CARGO_BIN_EXE_webhook-inbox");

const T: i64 = 1_700_000_000;
const GITHUB_SECRET: &str = "It's a Secret to Everybody";
const GITHUB_BODY: &[u8] = b"Hello, World!";
const GITHUB_SHA256: &str =
    "X-Hub-Signature-256: sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
const GITHUB_SHA1: &str = "X-Hub-Signature: sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59";
const STANDARD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SIGNING_KEY: &str =
    "whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6Kvg==";
const PUBLIC_KEY: &str = "whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4=";

/// A secret for each preset, distinctive enough that finding it in output means a leak.
fn secret_for(scheme: &str) -> &'static str {
    match scheme {
        "standard" | "bluum" => STANDARD_SECRET,
        "stripe" => "whsec_stripe-cli-test-secret-7f3a9c",
        _ => "cli-test-secret-do-not-print-42b1e8",
    }
}

const PRESETS: [&str; 6] = ["standard", "bluum", "stripe", "github", "slack", "shopify"];

/// A body in its own file under the temp dir, removed when dropped.
struct BodyFile(PathBuf);

impl BodyFile {
    fn new(body: &[u8]) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "webhook-inbox-cli-test-{}-{}.body",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, body).expect("write temp body");
        Self(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("temp dir path is UTF-8")
    }
}

impl Drop for BodyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str]) -> Run {
    run_with_stdin(args, &[])
}

/// Runs the binary and checks, for every run, that no secret or signing key
/// given on the command line shows up in its output.
fn run_with_stdin(args: &[&str], stdin: &[u8]) -> Run {
    Run::from(exec(args, stdin, None))
}

impl From<std::process::Output> for Run {
    fn from(out: std::process::Output) -> Self {
        Run {
            code: out.status.code().expect("exited, not killed"),
            stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
        }
    }
}

/// Runs the binary with `WEBHOOK_INBOX_STORE` set to `store_env` (unset when
/// `None`, whatever the test's environment says); checks no secret leaked.
fn exec(args: &[&str], stdin: &[u8], store_env: Option<&Path>) -> std::process::Output {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_remove("WEBHOOK_INBOX_STORE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = store_env {
        command.env("WEBHOOK_INBOX_STORE", dir);
    }
    let mut child = command.spawn().expect("spawn webhook-inbox");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(stdin)
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait for webhook-inbox");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    for secret in secrets_in(args) {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "a secret leaked into the output of {args:?}: {stdout} {stderr}"
        );
    }
    out
}

fn secrets_in<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut found = Vec::new();
    for (i, arg) in args.iter().enumerate() {
        for flag in ["--secret", "--signing-key"] {
            if *arg == flag {
                found.extend(args.get(i + 1).copied());
            } else if let Some(value) = arg.strip_prefix(flag).and_then(|v| v.strip_prefix('=')) {
                found.push(value);
            }
        }
    }
    found.retain(|s| !s.is_empty());
    found
}

/// `sign` at timestamp `T` with a fixed id; returns the header lines.
fn sign(scheme: &str, key_flag: &str, key: &str, body: &BodyFile) -> Vec<String> {
    let ts = T.to_string();
    let args = [
        "sign",
        "--scheme",
        scheme,
        key_flag,
        key,
        "--id",
        "msg_cli_1",
        "--timestamp",
        &ts,
        "--body-file",
        body.path(),
    ];
    let r = run(&args);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.is_empty(), "{r:?}");
    r.stdout.lines().map(str::to_owned).collect()
}

/// `verify` with these extra flags, each header passed as `-H`.
fn verify(scheme: &str, flags: &[&str], headers: &[String], body: &BodyFile) -> Run {
    let mut args = vec!["verify", "--scheme", scheme];
    args.extend_from_slice(flags);
    for h in headers {
        args.extend(["-H", h.as_str()]);
    }
    args.extend(["--body-file", body.path()]);
    run(&args)
}

fn now_flag() -> String {
    T.to_string()
}

#[test]
fn sign_then_verify_round_trips_for_every_preset() {
    let body = BodyFile::new(br#"{"event":"order.filled","data":{"id":"ord_1"}}"#);
    let now = now_flag();
    for scheme in PRESETS {
        let secret = secret_for(scheme);
        let headers = sign(scheme, "--secret", secret, &body);
        assert!(!headers.is_empty(), "{scheme}");
        assert!(
            headers.iter().all(|h| h.contains(": ")),
            "{scheme}: {headers:?}"
        );

        let ok = verify(
            scheme,
            &["--secret", secret, "--now", &now],
            &headers,
            &body,
        );
        assert_eq!(ok.code, 0, "{scheme}: {ok:?}");
        let mut lines = ok.stdout.lines();
        assert_eq!(lines.next(), Some("valid"), "{scheme}");
        assert!(
            lines.next().is_some_and(|l| l.contains("key=secret#0")),
            "{scheme}: {ok:?}"
        );
        assert!(ok.stderr.is_empty(), "{scheme}: {ok:?}");

        let other = verify(
            scheme,
            &[
                "--secret",
                "whsec_b3RoZXItc2VjcmV0LWZvci1jbGk=",
                "--now",
                &now,
            ],
            &headers,
            &body,
        );
        assert_eq!(other.code, 1, "{scheme}: {other:?}");
        assert!(other.stderr.starts_with("invalid: "), "{scheme}: {other:?}");
        assert!(other.stdout.is_empty(), "{scheme}: {other:?}");
    }
}

#[test]
fn standard_sign_output_has_id_timestamp_and_signature() {
    let body = BodyFile::new(b"{}");
    let headers = sign("standard", "--secret", STANDARD_SECRET, &body);
    assert_eq!(headers.len(), 3, "{headers:?}");
    assert_eq!(headers[0], "webhook-id: msg_cli_1");
    assert_eq!(headers[1], format!("webhook-timestamp: {T}"));
    assert!(
        headers[2].starts_with("webhook-signature: v1,"),
        "{headers:?}"
    );

    let verified = verify(
        "standard",
        &["--secret", STANDARD_SECRET, "--now", &now_flag()],
        &headers,
        &body,
    );
    assert_eq!(
        verified.stdout,
        format!("valid\nid=msg_cli_1 timestamp={T} key=secret#0\n")
    );
}

#[test]
fn github_public_vector_verifies() {
    let body = BodyFile::new(GITHUB_BODY);
    let r = verify(
        "github",
        &["--secret", GITHUB_SECRET],
        &[GITHUB_SHA256.to_owned()],
        &body,
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "valid\nkey=secret#0\n");
}

#[test]
fn tampered_body_is_refused_saying_what_was_tried() {
    let body = BodyFile::new(b"Hello, World?");
    let r = verify(
        "github",
        &["--secret", GITHUB_SECRET],
        &[GITHUB_SHA256.to_owned()],
        &body,
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.is_empty(), "{r:?}");
    assert!(r.stderr.starts_with("invalid: "), "{r:?}");
    assert!(r.stderr.contains("tried 1 signature"), "{r:?}");
}

#[test]
fn stale_timestamp_is_too_old() {
    let body = BodyFile::new(b"{}");
    let headers = sign("standard", "--secret", STANDARD_SECRET, &body);
    let later = (T + 301).to_string();
    let r = verify(
        "standard",
        &["--secret", STANDARD_SECRET, "--now", &later],
        &headers,
        &body,
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.starts_with("invalid: "), "{r:?}");
    assert!(r.stderr.contains("too old"), "{r:?}");
    assert!(r.stderr.contains("301 s"), "{r:?}");

    let wider = verify(
        "standard",
        &[
            "--secret",
            STANDARD_SECRET,
            "--now",
            &later,
            "--tolerance",
            "600",
        ],
        &headers,
        &body,
    );
    assert_eq!(wider.code, 0, "{wider:?}");
}

#[test]
fn future_timestamp_is_refused() {
    let body = BodyFile::new(b"{}");
    let headers = sign("slack", "--secret", secret_for("slack"), &body);
    let earlier = (T - 1_000).to_string();
    let r = verify(
        "slack",
        &["--secret", secret_for("slack"), "--now", &earlier],
        &headers,
        &body,
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("in the future"), "{r:?}");
}

#[test]
fn missing_header_is_named() {
    let body = BodyFile::new(b"{}");
    let headers: Vec<String> = sign("standard", "--secret", STANDARD_SECRET, &body)
        .into_iter()
        .filter(|h| !h.starts_with("webhook-timestamp:"))
        .collect();
    let r = verify(
        "standard",
        &["--secret", STANDARD_SECRET, "--now", &now_flag()],
        &headers,
        &body,
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.starts_with("invalid: "), "{r:?}");
    assert!(r.stderr.contains("`webhook-timestamp`"), "{r:?}");

    let github = verify("github", &["--secret", GITHUB_SECRET], &[], &body);
    assert_eq!(github.code, 1, "{github:?}");
    assert!(
        github
            .stderr
            .contains("missing header `X-Hub-Signature-256`"),
        "{github:?}"
    );
}

#[test]
fn sha1_passes_only_with_allow_sha1() {
    let body = BodyFile::new(GITHUB_BODY);
    let headers = [GITHUB_SHA1.to_owned()];
    let without = verify("github", &["--secret", GITHUB_SECRET], &headers, &body);
    assert_eq!(without.code, 1, "{without:?}");
    assert!(without.stdout.is_empty(), "{without:?}");

    let with = verify(
        "github",
        &["--secret", GITHUB_SECRET, "--allow-sha1"],
        &headers,
        &body,
    );
    assert_eq!(with.code, 0, "{with:?}");
    assert!(with.stdout.starts_with("valid\n"), "{with:?}");

    let tampered = BodyFile::new(b"Hello, World?");
    let bad = verify(
        "github",
        &["--secret", GITHUB_SECRET, "--allow-sha1"],
        &headers,
        &tampered,
    );
    assert_eq!(bad.code, 1, "{bad:?}");

    let not_github = verify(
        "stripe",
        &["--secret", secret_for("stripe"), "--allow-sha1"],
        &headers,
        &body,
    );
    assert_eq!(not_github.code, 2, "{not_github:?}");
    assert!(not_github.stderr.contains("--allow-sha1"), "{not_github:?}");
}

#[test]
fn ed25519_signing_key_verifies_with_public_key() {
    let body = BodyFile::new(br#"{"test": 2432232314}"#);
    let headers = sign("standard", "--signing-key", SIGNING_KEY, &body);
    assert!(
        headers
            .iter()
            .any(|h| h.starts_with("webhook-signature: v1a,")),
        "{headers:?}"
    );
    let now = now_flag();
    let r = verify(
        "standard",
        &["--public-key", PUBLIC_KEY, "--now", &now],
        &headers,
        &body,
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("key=public-key#0"), "{r:?}");

    // With an HMAC secret configured first, the public key is still found.
    let both = verify(
        "standard",
        &[
            "--secret",
            STANDARD_SECRET,
            "--public-key",
            PUBLIC_KEY,
            "--now",
            &now,
        ],
        &headers,
        &body,
    );
    assert_eq!(both.code, 0, "{both:?}");
    assert!(both.stdout.contains("key=public-key#0"), "{both:?}");

    let hmac_only = verify(
        "standard",
        &["--secret", STANDARD_SECRET, "--now", &now],
        &headers,
        &body,
    );
    assert_eq!(hmac_only.code, 1, "{hmac_only:?}");
}

#[test]
fn rotation_reports_which_secret_matched() {
    let body = BodyFile::new(GITHUB_BODY);
    let r = verify(
        "github",
        &["--secret", "the-new-secret-9d2c", "--secret", GITHUB_SECRET],
        &[GITHUB_SHA256.to_owned()],
        &body,
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "valid\nkey=secret#1\n");
}

#[test]
fn non_utf8_body_round_trips_through_files_and_stdin() {
    let raw: &[u8] = b"\xff\xfe\x00binary\x80body\n";
    let body = BodyFile::new(raw);
    let now = now_flag();
    for scheme in PRESETS {
        let secret = secret_for(scheme);
        let headers = sign(scheme, "--secret", secret, &body);
        let ok = verify(
            scheme,
            &["--secret", secret, "--now", &now],
            &headers,
            &body,
        );
        assert_eq!(ok.code, 0, "{scheme}: {ok:?}");

        let mut args = vec!["verify", "--scheme", scheme, "--secret", secret];
        args.extend(["--now", &now, "--body-file", "-"]);
        for h in &headers {
            args.extend(["-H", h.as_str()]);
        }
        let from_stdin = run_with_stdin(&args, raw);
        assert_eq!(from_stdin.code, 0, "{scheme}: {from_stdin:?}");
        let one_byte_off = run_with_stdin(&args, &raw[1..]);
        assert_eq!(one_byte_off.code, 1, "{scheme}: {one_byte_off:?}");
    }

    let ts = T.to_string();
    let signed_from_stdin = run_with_stdin(
        &[
            "sign",
            "--scheme",
            "stripe",
            "--secret",
            secret_for("stripe"),
            "--timestamp",
            &ts,
            "--body-file",
            "-",
        ],
        raw,
    );
    assert_eq!(signed_from_stdin.code, 0, "{signed_from_stdin:?}");
    assert_eq!(
        signed_from_stdin.stdout.lines().collect::<Vec<_>>(),
        sign("stripe", "--secret", secret_for("stripe"), &body)
    );
}

#[test]
fn defaults_are_a_fresh_id_and_the_current_time() {
    let body = BodyFile::new(b"{}");
    let signed = |_: usize| {
        let r = run(&[
            "sign",
            "--scheme",
            "standard",
            "--secret",
            STANDARD_SECRET,
            "--body-file",
            body.path(),
        ]);
        assert_eq!(r.code, 0, "{r:?}");
        r.stdout.lines().map(str::to_owned).collect::<Vec<_>>()
    };
    let (first, second) = (signed(0), signed(1));

    let id = first[0]
        .strip_prefix("webhook-id: msg_")
        .expect("id header");
    assert_eq!(id.len(), 32, "{first:?}");
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "{first:?}"
    );
    assert_ne!(first[0], second[0], "two runs got the same id");

    let ts: i64 = first[1]
        .strip_prefix("webhook-timestamp: ")
        .and_then(|t| t.parse().ok())
        .expect("timestamp header");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let now = i64::try_from(now).expect("fits i64");
    assert!((now - ts).abs() < 60, "timestamp {ts} is not now ({now})");

    // No --now: checked against the system clock.
    let r = verify("standard", &["--secret", STANDARD_SECRET], &first, &body);
    assert_eq!(r.code, 0, "{r:?}");
}

#[test]
fn usage_errors_exit_2() {
    let body = BodyFile::new(GITHUB_BODY);
    let missing = std::env::temp_dir().join(format!(
        "webhook-inbox-cli-test-{}-does-not-exist",
        std::process::id()
    ));
    let missing = missing.to_str().expect("UTF-8 path");

    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["verify", "--scheme", "paypal", "--secret", GITHUB_SECRET],
            "unknown scheme `paypal`",
        ),
        (
            vec!["sign", "--scheme", "paypal", "--secret", GITHUB_SECRET],
            "unknown scheme `paypal`",
        ),
        (
            vec!["verify", "--scheme", "github", "--secret", ""],
            "secret #0 is invalid",
        ),
        (
            vec!["sign", "--scheme", "github", "--secret", ""],
            "secret #0 is invalid",
        ),
        (
            vec!["verify", "--scheme", "standard", "--secret", "whsec_"],
            "secret #0 is invalid",
        ),
        (
            vec![
                "verify",
                "--scheme",
                "standard",
                "--secret",
                "whsec_not*base64*cli-secret",
            ],
            "secret #0 is invalid",
        ),
        (
            vec!["verify", "--scheme", "github", "--public-key", PUBLIC_KEY],
            "Ed25519 key #0 is invalid",
        ),
        (
            vec!["sign", "--scheme", "github", "--signing-key", SIGNING_KEY],
            "Ed25519 key #0 is invalid",
        ),
        (
            vec!["verify", "--scheme", "github"],
            "--secret <SECRET>|--secret-file <FILE>|--public-key <KEY>",
        ),
        (
            vec![
                "sign",
                "--scheme",
                "standard",
                "--secret",
                STANDARD_SECRET,
                "--signing-key",
                SIGNING_KEY,
            ],
            "cannot be used with",
        ),
        (
            vec![
                "verify",
                "--scheme",
                "github",
                "--secret",
                GITHUB_SECRET,
                "-H",
                "X-Hub-Signature-256 sha256=00",
            ],
            "Name: value",
        ),
        (
            vec![
                "verify",
                "--scheme",
                "github",
                "--secret",
                GITHUB_SECRET,
                "--tolerance",
                "soon",
            ],
            "--tolerance",
        ),
        (
            vec![
                "sign",
                "--scheme",
                "github",
                "--secret",
                GITHUB_SECRET,
                "--timestamp",
                "-5",
            ],
            "--timestamp",
        ),
        (
            vec![
                "sign",
                "--scheme",
                "github",
                "--secret",
                GITHUB_SECRET,
                "--id",
                "a\nb",
            ],
            "control characters",
        ),
        (vec!["frobnicate"], "frobnicate"),
    ];
    for (mut args, expected) in cases {
        if args[0] == "verify" {
            args.extend(["-H", GITHUB_SHA256]);
        }
        args.extend(["--body-file", body.path()]);
        let r = run(&args);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(r.stdout.is_empty(), "{args:?}: {r:?}");
        assert!(r.stderr.contains(expected), "{args:?}: {r:?}");
    }

    let unreadable = [
        vec!["sign", "--scheme", "github", "--secret", GITHUB_SECRET],
        vec!["verify", "--scheme", "github", "--secret", GITHUB_SECRET],
    ];
    for mut args in unreadable {
        args.extend(["--body-file", missing]);
        let r = run(&args);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(
            r.stderr.contains("cannot read body file"),
            "{args:?}: {r:?}"
        );
        assert!(r.stderr.contains(missing), "{args:?}: {r:?}");
    }
}

#[test]
fn secrets_never_appear_in_output() {
    // `run` checks every run; this one adds the cases most likely to echo a value.
    let body = BodyFile::new(b"{}");
    let secret = "-looks-like-a-flag-secret-3e9f";
    let with_equals = format!("--secret={secret}");
    let runs = [
        vec!["sign", "--scheme", "github", "--secret", secret],
        vec!["sign", "--scheme", "github", &with_equals],
        vec![
            "verify", "--scheme", "github", "--secret", secret, "-H", "bad",
        ],
        vec![
            "verify", "--scheme", "standard", "--secret", secret, "-H", "a: b",
        ],
        vec![
            "verify", "--scheme", "nope", "--secret", secret, "-H", "a: b",
        ],
        vec![
            "sign", "--scheme", "stripe", "--secret", secret, "--secret", secret,
        ],
        vec!["sign", "--scheme", "standard", "--signing-key", secret],
        vec![
            "sign",
            "--scheme",
            "standard",
            "--signing-key",
            "whsk_AAAA-not-a-key",
        ],
    ];
    for mut args in runs {
        args.extend(["--body-file", body.path()]);
        let r = run(&args);
        assert!(r.code == 0 || r.code == 2, "{args:?}: {r:?}");
        assert!(!r.stdout.contains(secret) && !r.stderr.contains(secret));
    }
    assert_eq!(
        secrets_in(&["--secret", "a", "--secret=b", "--signing-key", "c"]),
        ["a", "b", "c"]
    );
}

#[test]
fn help_exits_0() {
    let commands = [
        "sign", "verify", "send", "stats", "list", "show", "replay", "purge",
    ];
    let top = run(&["--help"]);
    assert_eq!(top.code, 0, "{top:?}");
    assert!(top.stdout.contains("Usage: webhook-inbox"), "{top:?}");
    assert!(top.stdout.contains("Exit status"), "{top:?}");
    for command in commands {
        assert!(
            top.stdout.contains(&format!("\n  {command} ")),
            "{command}: {top:?}"
        );
        let r = run(&[command, "--help"]);
        assert_eq!(r.code, 0, "{command}: {r:?}");
        let usage = format!("Usage: webhook-inbox {command}");
        assert!(r.stdout.contains(&usage), "{command}: {r:?}");
    }
}

#[test]
fn secrets_can_come_from_files_instead_of_the_command_line() {
    let body = BodyFile::new(GITHUB_BODY);
    // The secret file ends with a newline, as `echo` writes it; it is dropped.
    let secret_file = BodyFile::new(format!("{GITHUB_SECRET}\n").as_bytes());
    let r = verify(
        "github",
        &["--secret-file", secret_file.path()],
        &[GITHUB_SHA256.to_owned()],
        &body,
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stdout.contains(GITHUB_SECRET) && !r.stderr.contains(GITHUB_SECRET));

    let headers = sign("github", "--secret-file", secret_file.path(), &body);
    assert!(headers.iter().any(|h| h == GITHUB_SHA256), "{headers:?}");

    let missing = verify(
        "github",
        &["--secret-file", "/nonexistent/secret"],
        &[GITHUB_SHA256.to_owned()],
        &body,
    );
    assert_eq!(missing.code, 2, "{missing:?}");
    assert!(
        missing.stderr.contains("cannot read secret file"),
        "{missing:?}"
    );
}

// ---------------------------------------------------------------------------
// Store commands (stats, list, show, replay, purge) on real sled stores, seeded
// with the library; and `send` against a real receiver.
// ---------------------------------------------------------------------------

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{TempDir, bluum_body, bluum_headers};
use serde_json::Value;
use webhook_inbox::{
    Backoff, Event, EventState, HandlerError, Inbox, Ingested, Ingestor, Reply, Router, Scheme,
    Signer, Verifier, Worker, WorkerConfig,
};

/// Handled by the worker: no longer stored.
const HANDLED_ID: &str = "evt_order_1";
/// Fails once (retryable), then for good: a dead letter with two errors.
const DEAD_ID: &str = "evt_kyc_1";
const DEAD_TYPE: &str = "kyc.document.rejected";
const KYC_FIRST: &str = "kyc provider timed out";
const KYC_LAST: &str = "investor inv_42 is unknown";
/// How the library records a permanent error.
const KYC_LAST_RECORDED: &str = "investor inv_42 is unknown (permanent)";
/// Fails with a retryable error; its next attempt is an hour away.
const RETRYING_ID: &str = "evt_transfer_1";
const LEDGER: &str = "ledger unavailable: 503";
/// Accepted after the worker stopped: pending, never attempted.
const FRESH_ID: &str = "evt_order_2";
/// A GitHub delivery whose body is not UTF-8, also pending. GitHub does not
/// sign its delivery id, so the event id is the body's SHA-256.
const BINARY_ID: &str = "sha256:1e481f562303c75f3fd337cc261fe0889d54bf8f6ffe5c9e9834b8218b6cb26c";
const BINARY_DELIVERY: &str = "gh_delivery_1";
const BINARY_BODY: &[u8] = b"\xff\xfe\x00binary\x80body";

fn bluum_ingestor(inbox: &Inbox) -> Ingestor {
    inbox
        .ingestor(Verifier::new(Scheme::bluum(), [STANDARD_SECRET]).expect("secret"))
        .build()
        .expect("ingestor")
}

fn accept(ingestor: &Ingestor, id: &str, event_type: &str, n: u64) {
    let body = bluum_body(event_type, n);
    let outcome = ingestor.ingest(&bluum_headers(id, &body), &body);
    assert!(
        matches!(outcome, Ok(Ingested::Accepted { .. })),
        "{outcome:?}"
    );
}

/// Polls `done` every 5 ms, for up to 10 s.
fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A closed store holding one dead letter (two errors), one retrying event,
/// two pending ones (one with a binary body) and the marker of a handled one.
fn seeded_store(name: &str) -> TempDir {
    let dir = TempDir::new(name);
    let inbox = Inbox::open(dir.path()).expect("open");
    let bluum = bluum_ingestor(&inbox);
    let router = Router::builder()
        .on("order.*", |_e: &Event| Ok(()))
        .on("kyc.*", |e: &Event| {
            Err(if e.attempt() == 1 {
                HandlerError::retry(KYC_FIRST)
            } else {
                HandlerError::permanent(KYC_LAST)
            })
        })
        .on("transfer.*", |_e: &Event| Err(HandlerError::retry(LEDGER)))
        .build()
        .expect("router");
    let config = WorkerConfig::default()
        .backoff_for("kyc.*", Backoff::ladder([Duration::from_millis(1)]))
        .backoff_for("transfer.*", Backoff::ladder([Duration::from_secs(3600)]));
    let worker = Worker::start(&inbox, router, config).expect("worker");
    accept(&bluum, HANDLED_ID, "order.filled", 1);
    accept(&bluum, DEAD_ID, DEAD_TYPE, 2);
    accept(&bluum, RETRYING_ID, "transfer.deposit.completed", 3);
    wait_for("one handled, one dead, two retries", || {
        let s = worker.stats();
        (s.handled, s.dead_lettered, s.retried) == (1, 1, 2)
    });
    worker.shutdown().expect("shutdown");

    accept(&bluum, FRESH_ID, "order.canceled", 4);
    let github = inbox
        .ingestor(Verifier::new(Scheme::github(), [GITHUB_SECRET]).expect("secret"))
        .build()
        .expect("ingestor");
    let mut headers = Signer::new(Scheme::github(), GITHUB_SECRET)
        .expect("signer")
        .sign(BINARY_DELIVERY, 0, BINARY_BODY);
    headers.push(("X-GitHub-Event".into(), "push".into()));
    let outcome = github.ingest(&headers, BINARY_BODY);
    assert!(
        matches!(outcome, Ok(Ingested::Accepted { .. })),
        "{outcome:?}"
    );
    drop((bluum, github));
    inbox.close().expect("close");
    dir
}

fn path_of(dir: &TempDir) -> &str {
    dir.path().to_str().expect("UTF-8 temp path")
}

/// `webhook-inbox <args> --store <dir>`.
fn on_store(dir: &TempDir, args: &[&str]) -> Run {
    let mut all = args.to_vec();
    all.extend(["--store", path_of(dir)]);
    run(&all)
}

fn json_of(r: &Run) -> Value {
    assert_eq!(r.code, 0, "{r:?}");
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {r:?}"))
}

/// The table rows (header and hint lines left out) whose ID column is `id`.
fn row<'a>(r: &'a Run, id: &str) -> Option<&'a str> {
    r.stdout
        .lines()
        .find(|line| line.split_whitespace().nth(2) == Some(id))
}

fn ids_in_table(r: &Run) -> Vec<&str> {
    r.stdout
        .lines()
        .skip(1)
        .take_while(|line| !line.is_empty())
        .filter_map(|line| line.split_whitespace().nth(2))
        .collect()
}

/// Reopens the store with the library (after the CLI has exited).
fn reopen(dir: &TempDir) -> Inbox {
    Inbox::builder(dir.path())
        .create(false)
        .open()
        .expect("reopen")
}

#[test]
fn stats_shows_the_store_counts() {
    let dir = seeded_store("cli-stats");
    let json = json_of(&on_store(&dir, &["stats", "--json"]));
    assert_eq!(json["pending"], 3, "{json}");
    assert_eq!(json["retrying"], 1, "{json}");
    assert_eq!(json["dead"], 1, "{json}");
    assert_eq!(json["dedup_markers"], 5, "{json}");
    assert_eq!(json["store"], path_of(&dir), "{json}");
    let age = json["oldest_pending_age_secs"].as_f64().expect("an age");
    assert!((0.0..60.0).contains(&age), "{json}");
    assert!(json["disk_bytes"].as_u64().expect("bytes") > 0, "{json}");
    // Per-process counters are not shown: they would always read 0 here.
    assert!(json.get("received").is_none(), "{json}");

    let r = on_store(&dir, &["stats"]);
    assert_eq!(r.code, 0, "{r:?}");
    for line in [
        "pending          3 (2 not attempted yet, 1 retrying)",
        "dead letters     1",
        "dedup markers    5",
    ] {
        assert!(r.stdout.contains(line), "{line}: {r:?}");
    }
    assert!(r.stdout.contains("oldest pending   "), "{r:?}");
    assert!(r.stdout.contains("Inbox::stats"), "{r:?}");

    // The store given by the environment instead of --store.
    let from_env = Run::from(exec(&["stats", "--json"], &[], Some(dir.path())));
    assert_eq!(json_of(&from_env)["dead"], 1, "{from_env:?}");
    let neither = run(&["stats"]);
    assert_eq!(neither.code, 2, "{neither:?}");
    assert!(
        neither.stderr.contains("WEBHOOK_INBOX_STORE"),
        "{neither:?}"
    );
}

#[test]
fn list_prints_a_table_and_filters() {
    let dir = seeded_store("cli-list");
    let all = on_store(&dir, &["list"]);
    assert_eq!(all.code, 0, "{all:?}");
    let header = all.stdout.lines().next().expect("a header");
    for column in [
        "SEQ",
        "SOURCE",
        "ID",
        "TYPE",
        "STATE",
        "ATTEMPTS",
        "RECEIVED",
        "LAST ERROR",
    ] {
        assert!(header.contains(column), "{column}: {all:?}");
    }
    assert_eq!(
        ids_in_table(&all),
        [DEAD_ID, RETRYING_ID, FRESH_ID, BINARY_ID],
        "{all:?}"
    );
    let dead = row(&all, DEAD_ID).expect("dead row");
    for cell in ["bluum", DEAD_TYPE, " dead ", " 2 ", KYC_LAST] {
        assert!(dead.contains(cell), "{cell}: {dead}");
    }
    // RECEIVED is RFC 3339 UTC, as is the NEXT/DEAD AT of the retrying one.
    let retrying = row(&all, RETRYING_ID).expect("retrying row");
    let stamps: Vec<&str> = retrying
        .split_whitespace()
        .filter(|cell| cell.len() == 20 && cell.ends_with('Z') && cell.as_bytes()[10] == b'T')
        .collect();
    assert_eq!(stamps.len(), 2, "{retrying}");
    assert!(retrying.contains(LEDGER), "{retrying}");
    let binary = row(&all, BINARY_ID).expect("github row");
    assert!(
        binary.contains("github") && binary.contains("push"),
        "{binary}"
    );
    // Columns line up: every row starts its ID where the header does.
    let id_at = header.find("ID ").expect("ID column");
    for id in [DEAD_ID, RETRYING_ID, FRESH_ID, BINARY_ID] {
        assert_eq!(
            row(&all, id).and_then(|r| r.find(id)),
            Some(id_at),
            "{all:?}"
        );
    }
    assert!(!all.stdout.contains("--after"), "{all:?}");

    let only_dead = on_store(&dir, &["list", "--state", "dead"]);
    assert_eq!(ids_in_table(&only_dead), [DEAD_ID], "{only_dead:?}");
    let orders = on_store(&dir, &["list", "--type", "order.*"]);
    assert_eq!(ids_in_table(&orders), [FRESH_ID], "{orders:?}");
    let none = on_store(&dir, &["list", "--type", "payout.*"]);
    assert_eq!(
        (none.code, none.stdout.as_str()),
        (0, "no stored events match\n")
    );

    // Paging: the hint names the --after of the next page.
    let first = on_store(&dir, &["list", "--limit", "2"]);
    assert_eq!(ids_in_table(&first), [DEAD_ID, RETRYING_ID], "{first:?}");
    let after = first
        .stdout
        .split("--after ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("a hint with --after");
    let second = on_store(&dir, &["list", "--limit", "2", "--after", after]);
    assert_eq!(ids_in_table(&second), [FRESH_ID, BINARY_ID], "{second:?}");

    for bad in [
        &["list", "--type", "order*"][..],
        &["list", "--state", "stuck"],
        &["list", "--limit", "0"],
    ] {
        let r = on_store(&dir, bad);
        assert_eq!(r.code, 2, "{bad:?}: {r:?}");
        assert!(r.stdout.is_empty(), "{bad:?}: {r:?}");
    }
}

#[test]
fn list_json_has_ids_states_and_paging() {
    let dir = seeded_store("cli-list-json");
    let json = json_of(&on_store(&dir, &["list", "--json"]));
    let events = json["events"].as_array().expect("events");
    let pairs: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["id"].as_str().unwrap_or(""),
                e["state"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        pairs,
        [
            (DEAD_ID, "dead"),
            (RETRYING_ID, "retrying"),
            (FRESH_ID, "pending"),
            (BINARY_ID, "pending"),
        ]
    );
    assert!(json["next"].is_null(), "{json}");
    let dead = &events[0];
    assert_eq!(dead["type"], DEAD_TYPE);
    assert_eq!(dead["attempts"], 2);
    assert_eq!(dead["last_error"], KYC_LAST_RECORDED);
    assert_eq!(dead["errors"].as_array().map(Vec::len), Some(2), "{dead}");
    assert!(
        dead["dead_at"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{dead}"
    );
    assert!(events[1]["next_attempt"].is_string(), "{json}");
    assert!(events[2]["next_attempt"].is_null(), "{json}");
    assert!(dead.get("body").is_none(), "list leaves bodies out: {dead}");

    let page = json_of(&on_store(
        &dir,
        &["list", "--json", "--state", "pending", "--limit", "1"],
    ));
    assert_eq!(page["events"][0]["id"], FRESH_ID, "{page}");
    assert_eq!(page["next"], events[2]["seq"], "{page}");
}

#[test]
fn show_prints_history_headers_and_the_pretty_body() {
    let dir = seeded_store("cli-show");
    let r = on_store(&dir, &["show", DEAD_ID]);
    assert_eq!(r.code, 0, "{r:?}");
    for expected in [
        &format!("id:           {DEAD_ID}\n"),
        "source:       bluum\n",
        &format!("type:         {DEAD_TYPE}\n"),
        "state:        dead\n",
        "attempts:     2\n",
        "dead since:   ",
        "errors (2, oldest first):\n",
        &format!("webhook-id: {DEAD_ID}\n"),
        "webhook-signature: v1,",
        "body (1",
        " bytes, JSON):\n{\n  \"event\": \"kyc.document.rejected\",\n",
        "\n  \"data\": {\n    \"id\": \"ord_2\",\n    \"investor_id\": \"inv_42\",\n",
    ] {
        assert!(r.stdout.contains(expected), "{expected:?}: {}", r.stdout);
    }
    let history: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("attempt "))
        .collect();
    assert_eq!(history.len(), 2, "{r:?}");
    assert!(
        history[0].contains("attempt 1") && history[0].ends_with(KYC_FIRST),
        "{history:?}"
    );
    assert!(
        history[1].contains("attempt 2") && history[1].ends_with(KYC_LAST_RECORDED),
        "{history:?}"
    );
    assert!(!r.stdout.contains("next attempt:"), "{r:?}");

    let retrying = on_store(&dir, &["show", RETRYING_ID]);
    assert!(
        retrying.stdout.contains("state:        retrying\n"),
        "{retrying:?}"
    );
    let next = retrying
        .stdout
        .lines()
        .find(|l| l.starts_with("next attempt:"))
        .expect("a next attempt");
    assert!(
        next.contains("Z (in 59m") || next.contains("Z (in 1h"),
        "{next}"
    );

    let binary = on_store(&dir, &["show", BINARY_ID]);
    assert_eq!(binary.code, 0, "{binary:?}");
    assert!(
        binary
            .stdout
            .contains("body (14 bytes, not UTF-8, shown as hex):\n"),
        "{binary:?}"
    );
    assert!(
        binary
            .stdout
            .contains("00000000  ff fe 00 62 69 6e 61 72  79 80 62 6f 64 79"),
        "{binary:?}"
    );
    assert!(
        binary.stdout.contains("errors:       none recorded"),
        "{binary:?}"
    );
    let raw = exec(
        &["show", BINARY_ID, "--raw", "--store", path_of(&dir)],
        &[],
        None,
    );
    assert_eq!(raw.stdout, BINARY_BODY);
}

#[test]
fn show_json_and_unknown_ids() {
    let dir = seeded_store("cli-show-json");
    let json = json_of(&on_store(&dir, &["show", DEAD_ID, "--json"]));
    assert_eq!(json["id"], DEAD_ID);
    assert_eq!(json["state"], "dead");
    assert_eq!(json["body_encoding"], "utf-8");
    assert_eq!(
        json["body"].as_str().map(str::as_bytes),
        Some(&bluum_body(DEAD_TYPE, 2)[..])
    );
    let errors: Vec<(u64, &str)> = json["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| {
            (
                e["attempt"].as_u64().unwrap_or(0),
                e["error"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(errors, [(1, KYC_FIRST), (2, KYC_LAST_RECORDED)]);
    let headers = json["headers"].as_array().expect("headers");
    assert!(
        headers
            .iter()
            .any(|h| h["name"] == "webhook-id" && h["value"] == DEAD_ID),
        "{json}"
    );
    let binary = json_of(&on_store(&dir, &["show", BINARY_ID, "--json"]));
    assert_eq!(binary["body_encoding"], "base64");
    assert_eq!(binary["body"], "//4AYmluYXJ5gGJvZHk=");

    for id in [HANDLED_ID, "evt_never_seen"] {
        let r = on_store(&dir, &["show", id]);
        assert_eq!(r.code, 1, "{r:?}");
        assert!(r.stdout.is_empty(), "{r:?}");
        assert!(
            r.stderr.contains("not found") && r.stderr.contains(id),
            "{r:?}"
        );
    }
}

#[test]
fn replay_puts_dead_letters_back_to_work() {
    let dir = seeded_store("cli-replay");
    let none = json_of(&on_store(&dir, &["replay", "--type", "order.*", "--json"]));
    assert_eq!(none, serde_json::json!({ "replayed": 0 }));
    let not_dead = on_store(&dir, &["replay", RETRYING_ID]);
    assert_eq!(not_dead.code, 1, "{not_dead:?}");
    assert!(
        not_dead.stderr.contains("no dead letter has id"),
        "{not_dead:?}"
    );

    let r = on_store(&dir, &["replay", "--all-dead"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.starts_with("replayed 1 dead letter\n"), "{r:?}");
    assert!(r.stdout.contains("worker"), "{r:?}");

    let inbox = reopen(&dir);
    let event = inbox.event(DEAD_ID).expect("read").expect("still stored");
    // Back to work: scheduled (`retrying`) and due now, attempts counted
    // afresh, history kept.
    assert_eq!(event.state, EventState::Retrying);
    assert_eq!((event.attempts, event.dead_at), (0, None));
    let due = event
        .next_attempt
        .expect("a retrying event has its next attempt");
    assert!(due <= std::time::SystemTime::now(), "due now: {event:?}");
    assert_eq!(event.errors.len(), 2, "history kept");
    assert_eq!((inbox.stats().dead, inbox.stats().pending), (0, 4));
    inbox.close().expect("close");

    for selectors in [
        &["replay"][..],
        &["replay", DEAD_ID, "--all-dead"],
        &["replay", "--type", "x", "--all-dead"],
    ] {
        let r = on_store(&dir, selectors);
        assert_eq!(r.code, 2, "{selectors:?}: {r:?}");
    }
}

#[test]
fn replay_by_id_and_type() {
    let dir = seeded_store("cli-replay-id");
    let by_type = on_store(&dir, &["replay", "--type", "kyc.*", "--json"]);
    assert_eq!(json_of(&by_type)["replayed"], 1, "{by_type:?}");
    // Now pending: a second replay by id finds no dead letter.
    let again = on_store(&dir, &["replay", DEAD_ID]);
    assert_eq!(again.code, 1, "{again:?}");
    let inbox = reopen(&dir);
    let event = inbox.event(DEAD_ID).expect("read").expect("still stored");
    assert_ne!(event.state, EventState::Dead);
    assert_eq!(inbox.stats().dead, 0);
    inbox.close().expect("close");
}

#[test]
fn purge_requires_dead_and_deletes_dead_letters() {
    let dir = seeded_store("cli-purge");
    let bare = on_store(&dir, &["purge"]);
    assert_eq!(bare.code, 2, "{bare:?}");
    assert!(bare.stderr.contains("--dead"), "{bare:?}");
    for garbage in ["soon", "30", "1.5h", "-1d"] {
        let flag = format!("--older-than={garbage}");
        let r = on_store(&dir, &["purge", "--dead", &flag]);
        assert_eq!(r.code, 2, "{garbage}: {r:?}");
        assert!(r.stderr.contains("unit"), "{garbage}: {r:?}");
    }
    let young = on_store(&dir, &["purge", "--dead", "--older-than", "1d"]);
    assert_eq!(young.code, 0, "{young:?}");
    assert_eq!(young.stdout, "purged 0 dead letters dead for at least 1d\n");

    let r = on_store(&dir, &["purge", "--dead", "--older-than", "0s", "--json"]);
    assert_eq!(json_of(&r), serde_json::json!({ "purged": 1 }));
    let inbox = reopen(&dir);
    assert!(inbox.event(DEAD_ID).expect("read").is_none());
    let stats = inbox.stats();
    assert_eq!((stats.dead, stats.pending, stats.dedup_markers), (0, 3, 5));
    inbox.close().expect("close");
}

#[test]
fn a_store_in_use_is_refused_with_what_to_do() {
    let dir = seeded_store("cli-in-use");
    let service = reopen(&dir);
    for args in [&["stats"][..], &["list"], &["replay", "--all-dead"]] {
        let r = on_store(&dir, args);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(r.stdout.is_empty(), "{r:?}");
        for expected in [
            path_of(&dir),
            "in use",
            "the service",
            "one process per store",
            "Inbox::replay",
        ] {
            assert!(r.stderr.contains(expected), "{expected}: {r:?}");
        }
    }
    // Nothing was replayed behind the service's back.
    assert_eq!(service.stats().dead, 1);
    service.close().expect("close");
}

#[test]
fn a_missing_store_or_another_directory_is_refused_and_left_alone() {
    let parent = TempDir::new("cli-not-a-store");
    let missing = parent.path().join("typo");
    let missing_str = missing.to_str().expect("UTF-8");
    let r = run(&["stats", "--store", missing_str]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("no store at") && r.stderr.contains(missing_str),
        "{r:?}"
    );
    assert!(!missing.exists(), "the CLI created {}", missing.display());

    std::fs::create_dir_all(parent.path()).expect("mkdir");
    let empty = run(&["list", "--store", path_of(&parent)]);
    assert_eq!(empty.code, 2, "{empty:?}");
    assert!(empty.stderr.contains("no store at"), "{empty:?}");
    assert_eq!(std::fs::read_dir(parent.path()).expect("ls").count(), 0);

    std::fs::write(parent.path().join("notes.txt"), b"not a store").expect("write");
    for args in [&["stats"][..], &["purge", "--dead"]] {
        let r = on_store(&parent, args);
        assert_eq!(r.code, 2, "{r:?}");
        assert!(r.stderr.contains("not a webhook-inbox store"), "{r:?}");
        assert!(r.stderr.contains(path_of(&parent)), "{r:?}");
    }
    let names: Vec<_> = std::fs::read_dir(parent.path())
        .expect("ls")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["notes.txt"]);
}

/// An HTTP receiver on 127.0.0.1 that ingests with the library (one route per
/// preset: `/bluum`, `/stripe`, …) and answers with `Reply`.
struct Receiver {
    url: String,
    inbox: Inbox,
    requests: Arc<AtomicUsize>,
    server: Arc<tiny_http::Server>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: TempDir,
}

impl Receiver {
    fn start(name: &str) -> Self {
        let dir = TempDir::new(name);
        let inbox = Inbox::open(dir.path()).expect("open");
        let ingestors: HashMap<&str, Ingestor> = PRESETS
            .iter()
            .map(|&preset| {
                let scheme: Scheme = preset.parse().expect("preset");
                let verifier = Verifier::new(scheme, [secret_for(preset)]).expect("secret");
                (preset, inbox.ingestor(verifier).build().expect("ingestor"))
            })
            .collect();
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("listen"));
        let addr = server.server_addr().to_ip().expect("an IP address");
        let requests = Arc::new(AtomicUsize::new(0));
        let (serving, counted) = (Arc::clone(&server), Arc::clone(&requests));
        let thread = std::thread::spawn(move || {
            for mut request in serving.incoming_requests() {
                counted.fetch_add(1, Ordering::SeqCst);
                let headers: Vec<(String, String)> = request
                    .headers()
                    .iter()
                    .map(|h| {
                        (
                            h.field.as_str().as_str().to_owned(),
                            h.value.as_str().to_owned(),
                        )
                    })
                    .collect();
                let mut body = Vec::new();
                let _ = std::io::Read::read_to_end(request.as_reader(), &mut body);
                let route = request.url().trim_start_matches('/').to_owned();
                let (status, text) = match ingestors.get(route.as_str()) {
                    Some(ingestor) => {
                        let reply = Reply::from(&ingestor.ingest(&headers, &body));
                        (reply.status, reply.body)
                    }
                    None => (404, "no such route".to_owned()),
                };
                let response = tiny_http::Response::from_string(text).with_status_code(status);
                let _ = request.respond(response);
            }
        });
        Self {
            url: format!("http://{addr}"),
            inbox,
            requests,
            server,
            thread: Some(thread),
            _dir: dir,
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn send_args<'a>(url: &'a str, scheme: &'a str, secret: &'a str, id: &'a str) -> Vec<&'a str> {
    vec![
        "send",
        "--url",
        url,
        "--scheme",
        scheme,
        "--secret",
        secret,
        "--type",
        "order.filled",
        "--data",
        r#"{"id":"ord_1","amount":"10.50","price":189.4200}"#,
        "--id",
        id,
    ]
}

#[test]
fn send_repeat_shows_accepted_then_duplicate() {
    let receiver = Receiver::start("cli-send");
    let url = format!("{}/bluum", receiver.url);
    let mut args = send_args(&url, "bluum", STANDARD_SECRET, "evt_send_1");
    args.extend(["--repeat", "2"]);
    let r = run(&args);
    assert_eq!(r.code, 0, "{r:?}");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{r:?}");
    assert!(
        lines[0].starts_with("sending evt_send_1 (order.filled, "),
        "{r:?}"
    );
    assert_eq!(
        lines[1..],
        ["attempt 1: 200 accepted", "attempt 2: 200 duplicate"]
    );

    let stored = receiver
        .inbox
        .event("evt_send_1")
        .expect("read")
        .expect("stored");
    assert_eq!(
        (stored.source.as_str(), stored.event_type.as_str()),
        ("bluum", "order.filled")
    );
    let body: Value = serde_json::from_slice(&stored.body).expect("JSON body");
    assert_eq!(body["event"], "order.filled");
    assert!(
        body["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{body}"
    );
    // The data is sent as written: the decimal keeps its trailing zeros.
    let text = String::from_utf8(stored.body).expect("UTF-8");
    assert!(
        text.ends_with(r#""data":{"id":"ord_1","amount":"10.50","price":189.4200}}"#),
        "{text}"
    );
    assert_eq!(receiver.requests.load(Ordering::SeqCst), 2);
}

#[test]
fn send_with_a_wrong_secret_is_refused() {
    let receiver = Receiver::start("cli-send-401");
    let url = format!("{}/bluum", receiver.url);
    let wrong = "whsec_dGhlLXdyb25nLXNlY3JldC1mb3ItY2xp";
    let r = run(&send_args(&url, "bluum", wrong, "evt_forged"));
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout.contains("attempt 1: 401 invalid signature"),
        "{r:?}"
    );
    assert!(
        r.stderr.contains("refused") && r.stderr.contains("401"),
        "{r:?}"
    );
    assert!(receiver.inbox.event("evt_forged").expect("read").is_none());
}

/// The stored event with id `id`, or (GitHub, Shopify: their delivery id is
/// not signed, so the event id is the body's hash) with `id` in its headers.
fn stored_delivery(inbox: &Inbox, id: &str) -> webhook_inbox::StoredEvent {
    if let Some(stored) = inbox.event(id).expect("read") {
        return stored;
    }
    inbox
        .events(&webhook_inbox::EventQuery::all())
        .expect("read")
        .events
        .into_iter()
        .find(|e| e.headers.iter().any(|(_, v)| v == id))
        .unwrap_or_else(|| panic!("{id} not stored"))
}

#[test]
fn send_builds_an_envelope_each_preset_accepts() {
    let receiver = Receiver::start("cli-send-presets");
    for preset in PRESETS {
        let url = format!("{}/{preset}", receiver.url);
        let id = format!("evt_{preset}_1");
        let secret_file = BodyFile::new(secret_for(preset).as_bytes());
        let mut args = send_args(&url, preset, secret_for(preset), &id);
        args.splice(5..7, ["--secret-file", secret_file.path()]);
        args.push("--json");
        let json = json_of(&run(&args));
        assert_eq!(json["id"], id.as_str(), "{preset}: {json}");
        assert_eq!(json["attempts"][0]["status"], 200, "{preset}: {json}");
        assert_eq!(json["attempts"][0]["body"], "accepted", "{preset}: {json}");
        let stored = stored_delivery(&receiver.inbox, &id);
        assert_eq!(stored.source, preset);
        assert_eq!(stored.event_type, "order.filled", "{preset}");
    }
    // Fresh ids by default: two sends are two events.
    let url = format!("{}/stripe", receiver.url);
    for _ in 0..2 {
        let mut args = send_args(&url, "stripe", secret_for("stripe"), "");
        args.truncate(args.len() - 2);
        let r = run(&args);
        assert!(
            r.stdout.contains("sending evt_") && r.stdout.contains("200 accepted"),
            "{r:?}"
        );
    }
    assert_eq!(receiver.inbox.stats().pending, 8);
}

#[test]
fn send_refuses_bad_input_and_reports_unreachable_receivers() {
    let receiver = Receiver::start("cli-send-errors");
    let url = format!("{}/bluum", receiver.url);
    let mut bad_json = send_args(&url, "bluum", STANDARD_SECRET, "evt_bad");
    bad_json[10] = "{id: 1}";
    let r = run(&bad_json);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("--data is not valid JSON"), "{r:?}");
    assert_eq!(
        receiver.requests.load(Ordering::SeqCst),
        0,
        "nothing was sent"
    );

    let non_ascii_id = run(&send_args(&url, "bluum", STANDARD_SECRET, "é id"));
    assert_eq!(non_ascii_id.code, 2, "{non_ascii_id:?}");
    assert!(
        non_ascii_id.stderr.contains("printable ASCII"),
        "{non_ascii_id:?}"
    );
    let mut no_time = send_args(&url, "bluum", STANDARD_SECRET, "evt_no_time");
    no_time.extend(["--timeout", "0s"]);
    let r = run(&no_time);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("at least 1s"), "{r:?}");
    assert_eq!(
        receiver.requests.load(Ordering::SeqCst),
        0,
        "nothing was sent"
    );

    let ftp = run(&send_args(
        "ftp://127.0.0.1:1/hooks",
        "bluum",
        STANDARD_SECRET,
        "evt_ftp",
    ));
    assert_eq!(ftp.code, 2, "{ftp:?}");
    assert!(ftp.stderr.contains("http:// or https://"), "{ftp:?}");

    // A port nobody listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let closed = format!("http://127.0.0.1:{port}/bluum");
    let r = run(&send_args(&closed, "bluum", STANDARD_SECRET, "evt_nobody"));
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains(&format!("cannot deliver to {closed}")),
        "{r:?}"
    );
    assert!(!r.stderr.contains("panicked"), "{r:?}");
}
