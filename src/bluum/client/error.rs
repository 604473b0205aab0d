//! What a call can fail with, and how an error answer becomes one.

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use super::{EXCERPT_CHARS, MESSAGE_CHARS};

/// At most `max` characters of `text`, control characters escaped
/// (`\n`, `\u{1b}`), an ellipsis marking a cut.
pub(super) fn excerpt(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (count, c) in text.trim().chars().enumerate() {
        if count >= max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// An error answer in either of the shapes Bluum's pages show: nested,
/// `{"error": {"type"?, "code"?, "message", "param"?}}` (what the emulator
/// sends), or flat, `{"code": "BLUM-…", "message", "param"?}` (Bluum's
/// errors pages).
#[derive(Deserialize)]
#[serde(untagged)]
enum ErrorBody {
    Nested { error: ErrorDetail },
    Flat(FlatError),
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    code: Option<String>,
    message: String,
    #[serde(default)]
    param: Option<String>,
}

#[derive(Deserialize)]
struct FlatError {
    code: String,
    message: String,
    #[serde(default)]
    param: Option<String>,
}

impl ErrorBody {
    /// The error's code, message and field. A flat body counts only when its
    /// code is one of Bluum's (`BLUM-…`): a proxy's or gateway's own
    /// `{"code", "message"}` must not pass for "no such webhook".
    fn read(body: &[u8]) -> Option<ErrorDetail> {
        match serde_json::from_slice::<Self>(body).ok()? {
            Self::Nested { error } => Some(error),
            Self::Flat(flat) if flat.code.starts_with("BLUM-") => Some(ErrorDetail {
                code: Some(flat.code),
                message: flat.message,
                param: flat.param,
            }),
            Self::Flat(_) => None,
        }
    }
}

/// The longest wait a `Retry-After` may ask for: anything longer is read as
/// this (a server asking for hours is not waited on blindly).
pub(super) const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Reads a `Retry-After` value: delay-seconds (`120`) or an HTTP date
/// (`Wed, 21 Oct 2026 07:28:00 GMT`, compared with `now`; one in the past is
/// a zero wait), capped at [`MAX_RETRY_AFTER`]. Anything else is `None`.
pub(super) fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() || value.len() > 64 {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for a u64 is still "very long".
        let secs = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(MAX_RETRY_AFTER),
    )
}

/// Maps a non-2xx answer to its [`ClientError`]; `retry_after` is the
/// answer's `Retry-After`, already read.
pub(super) fn error_from_answer(
    status: u16,
    body: &[u8],
    retry_after: Option<Duration>,
) -> ClientError {
    let Some(error) = ErrorBody::read(body) else {
        let text = String::from_utf8_lossy(body);
        let message = if text.trim().is_empty() {
            "(empty body)".to_owned()
        } else {
            excerpt(&text, EXCERPT_CHARS)
        };
        if status == 429 {
            return ClientError::RateLimited {
                retry_after,
                code: String::new(),
                message,
            };
        }
        return ClientError::Api {
            status,
            code: String::new(),
            message,
        };
    };
    let code = excerpt(error.code.as_deref().unwrap_or(""), 64);
    let message = excerpt(&error.message, MESSAGE_CHARS);
    match status {
        401 => ClientError::Unauthorized { code, message },
        403 => ClientError::InvestorScopedKey { code, message },
        400 | 409 | 413 | 422 => ClientError::Invalid {
            param: error.param.map(|p| excerpt(&p, 64)),
            code,
            message,
        },
        404 => ClientError::NotFound { code, message },
        429 => ClientError::RateLimited {
            retry_after,
            code,
            message,
        },
        _ => ClientError::Api {
            status,
            code,
            message,
        },
    }
}

/// `retry after 3s`, or that the server gave no usable `Retry-After`.
struct Wait<'a>(&'a Option<Duration>);

impl fmt::Display for Wait<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            // Whole seconds, rounded up: waiting less is waiting too little.
            Some(wait) => write!(
                f,
                "retry after {}s",
                wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
            ),
            None => f.write_str("no Retry-After given"),
        }
    }
}

/// ` (BLUM-400-002)`, or nothing when there is no code.
struct Code<'a>(&'a str);

impl fmt::Display for Code<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            Ok(())
        } else {
            write!(f, " ({})", self.0)
        }
    }
}

/// What an [`ClientError::Invalid`] refused and why, up to the message:
/// `` invalid `eventTypeNames` (BLUM-400-004) `` when a field is named,
/// `Bluum refused the request (BLUM-409-001)` when Bluum gave only a code,
/// `invalid request` when there is neither (refused before being sent).
struct Refused<'a> {
    param: Option<&'a str>,
    code: &'a str,
}

impl fmt::Display for Refused<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.param, self.code.is_empty()) {
            (Some(param), _) => write!(f, "invalid `{param}`{}", Code(self.code)),
            (None, false) => write!(f, "Bluum refused the request{}", Code(self.code)),
            (None, true) => f.write_str("invalid request"),
        }
    }
}

/// Why a call did not succeed. Every text in it that came from the server has
/// its control characters escaped and its length capped.
///
/// ```
/// use webhook_inbox::bluum::client::{Client, ClientError, SANDBOX};
///
/// let client = Client::new(SANDBOX, "key", "secret");
/// let err = client.get_webhook("wh_1/../../event-types").unwrap_err();
/// if let ClientError::Invalid { param, message, .. } = &err {
///     assert_eq!(param.as_deref(), Some("id"));
///     assert!(message.contains("letters, digits"));
/// }
/// assert!(err.to_string().starts_with("invalid `id`"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// 401: no credentials, malformed ones, an unknown key or a wrong secret.
    #[error("Bluum refused the API key and secret{}: {message}", Code(code))]
    Unauthorized {
        /// Bluum's error code, such as `BLUM-401-003`.
        code: String,
        /// Bluum's message.
        message: String,
    },
    /// 403 with Bluum's JSON error: the key may not manage webhooks. The
    /// webhook management routes refuse only investor-scoped keys with 403
    /// (`BLUM-403-001`), so the text says to use a tenant-wide key, then
    /// quotes Bluum's own message in case the refusal was about something
    /// else.
    #[error(
        "this API key is not allowed to manage webhooks{}: webhook management is \
         tenant-level; an investor-scoped key is refused: use a tenant-wide API key \
         (Bluum said: {message})",
        Code(code)
    )]
    InvestorScopedKey {
        /// Bluum's error code, such as `BLUM-403-001`.
        code: String,
        /// Bluum's message.
        message: String,
    },
    /// 400, 409, 413 or 422: the request was refused — or refused here
    /// before being sent (then `code` is empty).
    ///
    /// Reads `` invalid `eventTypeNames` (BLUM-400-004): … `` when a field
    /// is named, `Bluum refused the request (BLUM-409-001): …` when it is
    /// not, and `invalid request: …` when there is neither field nor code.
    #[error("{}: {message}", Refused { param: param.as_deref(), code })]
    Invalid {
        /// The offending field (`eventTypeNames`, `url`, …), when named.
        param: Option<String>,
        /// Bluum's error code, such as `BLUM-400-004`; empty if refused locally.
        code: String,
        /// What is wrong.
        message: String,
    },
    /// 404: no webhook with that id (or no such route: check the base URL).
    #[error("not found{}: {message}", Code(code))]
    NotFound {
        /// Bluum's error code, such as `BLUM-404-001`.
        code: String,
        /// Bluum's message.
        message: String,
    },
    /// 429: too many requests for these credentials (Bluum documents a
    /// per-key-pair rate limit and `BLUM-429-001`). Wait `retry_after`, when
    /// given, before trying again.
    ///
    /// ```
    /// use std::time::Duration;
    /// use webhook_inbox::bluum::client::ClientError;
    ///
    /// let err = ClientError::RateLimited {
    ///     retry_after: Some(Duration::from_secs(2)),
    ///     code: "BLUM-429-001".into(),
    ///     message: "Rate limit exceeded.".into(),
    /// };
    /// assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));
    /// assert_eq!(
    ///     err.to_string(),
    ///     "Bluum is rate-limiting these credentials (BLUM-429-001), retry after 2s: Rate limit exceeded."
    /// );
    /// ```
    #[error(
        "Bluum is rate-limiting these credentials{}, {}: {message}",
        Code(code),
        Wait(retry_after)
    )]
    RateLimited {
        /// The server's `Retry-After` (seconds or an HTTP date), capped at
        /// one hour; `None` when absent or unreadable.
        retry_after: Option<Duration>,
        /// Bluum's error code, such as `BLUM-429-001`; empty if the body had none.
        code: String,
        /// Bluum's message, or a short excerpt of a body that was not JSON.
        message: String,
    },
    /// Any other non-2xx answer, or one whose body is not Bluum's JSON error
    /// (then `code` is empty and `message` is an excerpt of the body).
    #[error("Bluum answered HTTP {status}{}: {message}", Code(code))]
    Api {
        /// The HTTP status.
        status: u16,
        /// Bluum's error code, empty if the body had none.
        code: String,
        /// Bluum's message, or a short excerpt of a body that was not JSON.
        message: String,
    },
    /// No answer: the connection failed or was refused, timed out, or TLS
    /// failed. The text names the URL.
    #[error("cannot reach Bluum: {0}")]
    Transport(String),
    /// A 2xx answer whose body is not the JSON expected.
    #[error("cannot read Bluum's answer: {0}")]
    Decode(String),
}

impl ClientError {
    /// How long the server asked to wait before trying again: the
    /// `Retry-After` of a [`ClientError::RateLimited`], `None` otherwise.
    ///
    /// ```
    /// use webhook_inbox::bluum::client::ClientError;
    ///
    /// let err = ClientError::Transport("connection refused".into());
    /// assert_eq!(err.retry_after(), None);
    /// ```
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}
