//! What the subcommands share: failures and their exit status, reading bodies
//! and secrets, writing output, making sender-controlled text safe to print.

use std::borrow::Cow;
use std::fmt;
use std::io::{self, Read, Write};
use std::path::Path;
use std::process::ExitCode;

use webhook_inbox::ConfigError;

/// Why a subcommand did not succeed; decides the exit status and the stderr line.
#[derive(Debug)]
pub enum Failure {
    /// The input was checked and refused (exit 1). The message is printed as is.
    Rejected(String),
    /// Bad flags, an unreadable file or an invalid configuration (exit 2).
    Usage(String),
    /// The store or the receiver could not be used: in use, missing, not a
    /// store, an I/O error, a connection failure (exit 2).
    Unavailable(String),
}

impl Failure {
    /// The process exit status for this failure.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Self::Rejected(_) => ExitCode::from(1),
            Self::Usage(_) | Self::Unavailable(_) => ExitCode::from(2),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rejected(message) => f.write_str(message),
            Self::Usage(message) | Self::Unavailable(message) => write!(f, "error: {message}"),
        }
    }
}

impl From<ConfigError> for Failure {
    /// `ConfigError` messages name secrets by position only, never by value.
    fn from(err: ConfigError) -> Self {
        Self::Usage(err.to_string())
    }
}

/// Reads the body as raw bytes from `path`, or from stdin when `path` is `-`.
pub fn read_body(path: &Path) -> Result<Vec<u8>, Failure> {
    if path.as_os_str() == "-" {
        let mut body = Vec::new();
        io::stdin()
            .lock()
            .read_to_end(&mut body)
            .map_err(|e| Failure::Usage(format!("cannot read the body from stdin: {e}")))?;
        Ok(body)
    } else {
        std::fs::read(path)
            .map_err(|e| Failure::Usage(format!("cannot read body file `{}`: {e}", path.display())))
    }
}

/// Reads a secret from a file (one line; the trailing newline is dropped), so
/// it need not appear on the command line, where `ps` and shell history see it.
pub fn read_secret(path: &Path) -> Result<webhook_inbox::Secret, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::Usage(format!("cannot read secret file `{}`: {e}", path.display()))
    })?;
    Ok(webhook_inbox::Secret::new(
        text.trim_end_matches(['\n', '\r']),
    ))
}

/// Writes `text` to stdout in one go; a closed or failing stdout is reported, not a panic.
pub fn print(text: &str) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Failure::Usage(format!("cannot write to stdout: {e}")))
}

/// Writes raw bytes to stdout (a body need not be UTF-8).
pub fn print_bytes(bytes: &[u8]) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|e| Failure::Usage(format!("cannot write to stdout: {e}")))
}

/// Writes `value` as pretty-printed JSON and a newline.
pub fn print_json(value: &serde_json::Value) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Failure::Usage(format!("cannot format the JSON output: {e}")))?;
    print(&format!("{text}\n"))
}

/// `text` with control characters (newlines, escape sequences, …) escaped as
/// `\n`, `\u{1b}`: ids, types, errors and headers come from senders and
/// handlers, and must not move the cursor or recolour an operator's terminal.
pub fn clean(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// At most `max` characters of `text`, cleaned; an ellipsis marks a cut.
pub fn truncate(text: &str, max: usize) -> String {
    let cleaned = clean(text);
    if cleaned.chars().count() <= max {
        return cleaned.into_owned();
    }
    let mut out: String = cleaned.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `1 dead letter`, `2 dead letters`.
pub fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Checks an event-type pattern as the router does: `*`, `domain.*`, or an
/// exact type (no `*`, no spaces or control characters).
pub fn parse_pattern(text: &str) -> Result<String, String> {
    let name = text.strip_suffix(".*").unwrap_or(text);
    let valid = text == "*"
        || (!name.is_empty()
            && !name.contains('*')
            && !name.chars().any(|c| c.is_whitespace() || c.is_control()));
    if valid {
        Ok(text.to_owned())
    } else {
        Err("expected an event type (`order.filled`), a domain (`order.*`) or `*`".to_owned())
    }
}

/// The key a delivery is signed with, as `sign` and `send` take it: exactly one
/// of `--secret`, `--secret-file`, `--signing-key`.
#[derive(Debug, clap::Args)]
#[group(id = "key", required = true, multiple = false)]
pub struct SigningKey {
    /// HMAC secret, as the provider hands it out (`whsec_…` for standard/bluum).
    #[arg(long, value_name = "SECRET", allow_hyphen_values = true)]
    secret: Option<webhook_inbox::Secret>,
    /// File holding the HMAC secret (keeps it off the command line), instead of --secret.
    #[arg(long, value_name = "FILE")]
    secret_file: Option<std::path::PathBuf>,
    /// Ed25519 signing key `whsk_<base64>` (standard/bluum), instead of --secret.
    #[arg(long, value_name = "KEY", allow_hyphen_values = true)]
    signing_key: Option<webhook_inbox::Secret>,
}

impl SigningKey {
    /// A signer for `scheme` with this key. Secrets stay wrapped in `Secret`
    /// (whose `Debug` prints `***`) until used.
    pub fn signer(self, scheme: webhook_inbox::Scheme) -> Result<webhook_inbox::Signer, Failure> {
        use webhook_inbox::Signer;
        let secret = match (self.secret, &self.secret_file) {
            (None, Some(path)) => Some(read_secret(path)?),
            (secret, _) => secret,
        };
        Ok(match (secret, self.signing_key) {
            (_, Some(key)) => Signer::ed25519(scheme, key)?,
            (Some(secret), None) => Signer::new(scheme, secret)?,
            (None, None) => {
                return Err(Failure::Usage(
                    "one of --secret, --secret-file or --signing-key is required".into(),
                ));
            }
        })
    }
}

/// The help text shared by every `--scheme` flag.
pub const SCHEME_HELP: &str = "Provider scheme: standard, bluum, stripe, github, slack or shopify";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(clean("plain text"), "plain text");
        assert_eq!(clean("a\nb\x1b[31m"), "a\\nb\\u{1b}[31m");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abcd", 4), "abcd");
        assert_eq!(truncate("a\nb", 10), "a\\nb");
    }

    #[test]
    fn patterns_are_checked_like_the_router_does() {
        for ok in ["*", "order.*", "order.filled", "kyc"] {
            assert_eq!(parse_pattern(ok), Ok(ok.to_owned()));
        }
        for bad in ["", ".*", "order*", "or der", "a.*.*", "**"] {
            assert!(parse_pattern(bad).is_err(), "{bad}");
        }
    }
}
