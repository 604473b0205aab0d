//! `webhook-inbox verify`: is this delivery genuine?

use std::path::PathBuf;
use std::time::Duration;

use webhook_inbox::{Algorithm, ManualClock, Scheme, Secret, Verified, Verifier};

use crate::common::{self, Failure};

/// Flags of `webhook-inbox verify`.
#[derive(Debug, clap::Args)]
#[command(group(
    clap::ArgGroup::new("keys").required(true).multiple(true).args(["secrets", "secret_files", "public_keys"])
))]
pub struct Args {
    #[arg(long, value_name = "NAME", help = common::SCHEME_HELP)]
    scheme: Scheme,
    /// HMAC secret; repeat for rotation (any match passes).
    #[arg(long = "secret", value_name = "SECRET", allow_hyphen_values = true)]
    secrets: Vec<Secret>,
    /// File holding an HMAC secret (keeps it off the command line); repeatable.
    #[arg(long = "secret-file", value_name = "FILE")]
    secret_files: Vec<PathBuf>,
    /// Ed25519 public key `whpk_<base64>` (standard/bluum); repeatable.
    #[arg(long = "public-key", value_name = "KEY")]
    public_keys: Vec<String>,
    /// Check the timestamp against this Unix time instead of the system clock.
    #[arg(long, value_name = "UNIX_SECS", allow_negative_numbers = true)]
    now: Option<i64>,
    /// Replay window in seconds, either way [default: 300].
    #[arg(long, value_name = "SECS")]
    tolerance: Option<u64>,
    /// Also accept GitHub's legacy `X-Hub-Signature: sha1=…` (github only).
    #[arg(long)]
    allow_sha1: bool,
    /// A request header, `Name: value`; repeat for each header.
    #[arg(
        short = 'H',
        long = "header",
        value_name = "NAME: VALUE",
        value_parser = parse_header
    )]
    headers: Vec<(String, String)>,
    /// File holding the raw body (`-` for stdin); read as bytes, need not be UTF-8.
    #[arg(long, value_name = "FILE")]
    body_file: PathBuf,
}

/// Splits `Name: value` at the first colon; surrounding whitespace is dropped.
fn parse_header(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| "expected `Name: value` (no colon found)".to_owned())?;
    let name = name.trim();
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err("expected `Name: value` (the header name is empty or has spaces)".to_owned());
    }
    Ok((name.to_owned(), value.trim().to_owned()))
}

/// Verifies the delivery: `valid` and its details on stdout, or `invalid: <reason>` on stderr.
pub fn run(args: Args) -> Result<(), Failure> {
    let mut scheme = args.scheme;
    if args.allow_sha1 {
        if scheme.name() != Scheme::github().name() {
            return Err(Failure::Usage(format!(
                "--allow-sha1 applies to --scheme github only, not `{}`",
                scheme.name()
            )));
        }
        scheme = scheme.also_signature_header("X-Hub-Signature", "sha1", Algorithm::HmacSha1);
    }
    let mut secrets = args.secrets;
    for path in &args.secret_files {
        secrets.push(common::read_secret(path)?);
    }
    let secret_count = secrets.len();
    let mut builder = Verifier::builder(scheme).secrets(secrets);
    for key in args.public_keys {
        builder = builder.public_key(key);
    }
    if let Some(now) = args.now {
        builder = builder.clock(ManualClock::at_unix(now));
    }
    if let Some(secs) = args.tolerance {
        builder = builder.tolerance(Duration::from_secs(secs));
    }
    let verifier = builder.build()?;
    let body = common::read_body(&args.body_file)?;

    match verifier.verify(&args.headers, &body) {
        Ok(verified) => common::print(&format!("valid\n{}\n", describe(&verified, secret_count))),
        Err(reason) => Err(Failure::Rejected(format!("invalid: {reason}"))),
    }
}

/// `id=… timestamp=… key=secret#0`: what was verified and which key matched.
fn describe(verified: &Verified<'_>, secret_count: usize) -> String {
    let mut parts = Vec::with_capacity(3);
    if let Some(id) = verified.id() {
        // The id is sender-controlled text: escape it before it reaches a terminal.
        parts.push(format!("id={}", id.escape_debug()));
    }
    if let Some(ts) = verified.timestamp() {
        parts.push(format!("timestamp={ts}"));
    }
    let index = verified.key_index();
    parts.push(match index.checked_sub(secret_count) {
        Some(public) => format!("key=public-key#{public}"),
        None => format!("key=secret#{index}"),
    });
    parts.join(" ")
}
