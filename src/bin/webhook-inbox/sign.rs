//! `webhook-inbox sign`: the headers a sender would attach to a body.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use webhook_inbox::{Clock, Scheme, SystemClock};

use crate::common::{self, Failure};

/// Flags of `webhook-inbox sign`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long, value_name = "NAME", help = common::SCHEME_HELP)]
    scheme: Scheme,
    #[command(flatten)]
    key: common::SigningKey,
    /// Delivery id [default: a fresh `msg_<hex>`]. Ignored by schemes without an id header.
    #[arg(long, value_name = "ID", value_parser = parse_id)]
    id: Option<String>,
    /// Signing time in Unix seconds [default: now]. Ignored by schemes without a timestamp.
    #[arg(
        long,
        value_name = "UNIX_SECS",
        allow_negative_numbers = true,
        value_parser = clap::value_parser!(i64).range(0..)
    )]
    timestamp: Option<i64>,
    /// File holding the raw body (`-` for stdin); read as bytes, need not be UTF-8.
    #[arg(long, value_name = "FILE")]
    body_file: PathBuf,
}

/// An id must fit on one header line: no control characters (CR, LF, …).
fn parse_id(text: &str) -> Result<String, String> {
    if text.chars().any(char::is_control) {
        return Err("a header value cannot hold control characters such as newlines".into());
    }
    Ok(text.to_owned())
}

/// Signs the body and prints one `Name: value` line per header.
pub fn run(args: Args) -> Result<(), Failure> {
    let signer = args.key.signer(args.scheme)?;
    let body = common::read_body(&args.body_file)?;
    let timestamp = args.timestamp.unwrap_or_else(|| SystemClock.unix_seconds());
    let id = args.id.unwrap_or_else(|| fresh_id(&body));

    let mut out = String::new();
    for (name, value) in signer.sign(&id, timestamp, &body) {
        let _ = writeln!(out, "{name}: {value}");
    }
    common::print(&out)
}

/// A new delivery id, `msg_` and 32 hex digits hashed from the time, the process
/// id and the body, so two runs (or two bodies in the same nanosecond) differ.
pub fn fresh_id(body: &[u8]) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let digest = Sha256::new()
        .chain_update(nanos.to_le_bytes())
        .chain_update(std::process::id().to_le_bytes())
        .chain_update(Sha256::digest(body))
        .finalize();
    format!("msg_{}", hex::encode(digest.get(..16).unwrap_or_default()))
}
