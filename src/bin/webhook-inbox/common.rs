//! What the subcommands share: failures and their exit status, reading bodies,
//! writing output.

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
}

impl Failure {
    /// The process exit status for this failure.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Self::Rejected(_) => ExitCode::from(1),
            Self::Usage(_) => ExitCode::from(2),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rejected(message) => f.write_str(message),
            Self::Usage(message) => write!(f, "error: {message}"),
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

/// The help text shared by every `--scheme` flag.
pub const SCHEME_HELP: &str = "Provider scheme: standard, bluum, stripe, github, slack or shopify";
