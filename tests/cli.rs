//! The `webhook-inbox` binary, run as a real process.
#![cfg(feature = "cli")]

use std::io::Write;
use std::path::PathBuf;
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
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn webhook-inbox");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(stdin)
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait for webhook-inbox");
    let run = Run {
        code: out.status.code().expect("exited, not killed"),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    };
    for secret in secrets_in(args) {
        assert!(
            !run.stdout.contains(secret) && !run.stderr.contains(secret),
            "a secret leaked into the output of {args:?}: {run:?}"
        );
    }
    run
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
    for args in [&["--help"][..], &["sign", "--help"], &["verify", "--help"]] {
        let r = run(args);
        assert_eq!(r.code, 0, "{args:?}: {r:?}");
        assert!(r.stdout.contains("Usage: webhook-inbox"), "{args:?}: {r:?}");
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
