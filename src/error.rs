//! Errors: one enum for a delivery that fails verification, one for a bad configuration.

use std::fmt;

/// Why a delivery was not accepted as genuine.
///
/// Every variant maps to an HTTP status with [`status`](Self::status): the
/// request is malformed (400) or not authentic (401). The `Display` text says
/// what differed — which header, by how much, how many signatures were tried —
/// so it can be logged and shown to the engineer debugging "the signature
/// doesn't match". It never contains a secret or an expected signature.
///
/// ```
/// use webhook_inbox::{Scheme, Verifier, VerifyError};
///
/// let verifier = Verifier::new(Scheme::github(), ["It's a Secret to Everybody"])?;
/// let err = verifier.verify(&[("X-Hub-Signature-256", "sha256=00")], b"Hello").unwrap_err();
/// assert!(matches!(err, VerifyError::NoMatchingSignature { tried: 1, .. }));
/// assert_eq!(err.status(), 401);
/// # Ok::<(), webhook_inbox::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// A header the scheme needs is absent.
    #[error("missing header `{name}`")]
    MissingHeader {
        /// The header's name as the scheme spells it.
        name: String,
    },
    /// A header is present but cannot be read.
    #[error("malformed header `{name}`: {problem}")]
    MalformedHeader {
        /// The header's name as the scheme spells it.
        name: String,
        /// What is wrong with it.
        problem: HeaderProblem,
    },
    /// The signed timestamp is older than the tolerance allows (a replay, or a
    /// delivery held up too long).
    #[error("timestamp too old: signed {age_secs} s ago, tolerance is {tolerance_secs} s")]
    TimestampTooOld {
        /// How many seconds before "now" the delivery was signed.
        age_secs: u64,
        /// The configured tolerance, in seconds.
        tolerance_secs: u64,
    },
    /// The signed timestamp is further in the future than the tolerance allows
    /// (usually a sender or receiver clock that is off).
    #[error(
        "timestamp in the future: signed {ahead_secs} s ahead of now, tolerance is {tolerance_secs} s"
    )]
    TimestampInFuture {
        /// How many seconds after "now" the delivery claims to be signed.
        ahead_secs: u64,
        /// The configured tolerance, in seconds.
        tolerance_secs: u64,
    },
    /// No signature in the request matched any configured key.
    #[error("{}", NoMatch { tried: *tried, ignored: *ignored, keys: *keys })]
    NoMatchingSignature {
        /// Signatures with an accepted version label that were checked.
        tried: usize,
        /// Entries skipped because their version label is not accepted (`v0`, `v2`, …).
        ignored: usize,
        /// Keys (secrets and public keys) each signature was checked against.
        keys: usize,
    },
}

impl VerifyError {
    /// The HTTP status to answer with: 400 for a malformed request, 401 for one
    /// that is not authentic.
    ///
    /// ```
    /// use webhook_inbox::VerifyError;
    ///
    /// let missing = VerifyError::MissingHeader { name: "webhook-id".into() };
    /// assert_eq!(missing.status(), 400);
    /// ```
    pub fn status(&self) -> u16 {
        match self {
            Self::MissingHeader { .. } | Self::MalformedHeader { .. } => 400,
            Self::TimestampTooOld { .. }
            | Self::TimestampInFuture { .. }
            | Self::NoMatchingSignature { .. } => 401,
        }
    }
}

struct NoMatch {
    tried: usize,
    ignored: usize,
    keys: usize,
}

impl fmt::Display for NoMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        if self.tried == 0 {
            write!(f, "no signature with an accepted version label")?;
        } else {
            write!(
                f,
                "no signature matched: tried {} signature{} against {} key{}",
                self.tried,
                plural(self.tried),
                self.keys,
                plural(self.keys)
            )?;
        }
        if self.ignored > 0 {
            write!(
                f,
                "; ignored {} entr{} with an unaccepted version label",
                self.ignored,
                if self.ignored == 1 { "y" } else { "ies" }
            )?;
        }
        Ok(())
    }
}

/// What is wrong with a header that is present but unusable.
///
/// ```
/// use webhook_inbox::HeaderProblem;
///
/// let p = HeaderProblem::TooLong { len: 9000, limit: 8192 };
/// assert_eq!(p.to_string(), "9000 bytes long, the limit is 8192");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderProblem {
    /// Longer than the verifier's header length limit.
    #[error("{len} bytes long, the limit is {limit}")]
    TooLong {
        /// The header's length in bytes.
        len: usize,
        /// The configured limit.
        limit: usize,
    },
    /// Holds more signature entries than the verifier's limit.
    #[error("{count} or more signatures, the limit is {limit}")]
    TooManySignatures {
        /// How many entries were counted before giving up.
        count: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The signature header holds no timestamp entry (Stripe's `t=`).
    #[error("no timestamp entry")]
    NoTimestamp,
    /// Not a whole number of seconds since the Unix epoch.
    #[error("not a Unix timestamp in seconds")]
    NotATimestamp,
    /// Holds bytes that are not UTF-8 where text is required.
    #[error("not valid UTF-8")]
    NotUtf8,
}

/// A verifier, signer or scheme that cannot be built as configured.
///
/// These surface when the verifier is built (at start-up), never when a request
/// arrives. None of the messages contain a secret.
///
/// ```
/// use webhook_inbox::{ConfigError, Scheme, Verifier};
///
/// let err = Verifier::new(Scheme::standard(), ["whsec_"]).unwrap_err();
/// assert!(matches!(err, ConfigError::InvalidSecret { index: 0, .. }));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A secret is empty or cannot be decoded as the scheme's key format says.
    #[error("secret #{index} is invalid: {reason}")]
    InvalidSecret {
        /// Position of the secret in the order they were given, from 0.
        index: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An Ed25519 public or signing key is malformed.
    #[error("Ed25519 key #{index} is invalid: {reason}")]
    InvalidKey {
        /// Position of the key in the order they were given, from 0.
        index: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No secret or public key was given.
    #[error("no secret or public key configured: at least one is required")]
    NoKeys,
    /// A signed-content template cannot be parsed.
    #[error("invalid signed-content template {template:?}: {reason}")]
    InvalidTemplate {
        /// The template as given.
        template: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The scheme's parts do not fit together.
    #[error("scheme `{scheme}` is inconsistent: {reason}")]
    InconsistentScheme {
        /// The scheme's name.
        scheme: String,
        /// What does not fit.
        reason: &'static str,
    },
    /// An ingestor's source name is empty, longer than 64 bytes or holds control characters.
    #[error("invalid source name {0:?}: 1 to 64 printable characters")]
    InvalidSource(String),
    /// An ingestor's `max_body` is over [`MAX_BODY_LIMIT`](crate::MAX_BODY_LIMIT).
    #[error("max_body of {limit} bytes is over the limit of {max}")]
    BodyLimitTooLarge {
        /// The requested limit.
        limit: usize,
        /// The largest allowed.
        max: usize,
    },
    /// The inbox's dedup retention is shorter than the replay window of an
    /// ingestor's verifier: a delivery accepted at one edge of the window
    /// (signed `tolerance` in the future) still verifies `2 × tolerance`
    /// later, so its dedup marker must live at least that long or a replay
    /// inside the window would be accepted again. Raise
    /// [`InboxBuilder::retention`](crate::InboxBuilder::retention) or lower
    /// [`VerifierBuilder::tolerance`](crate::VerifierBuilder::tolerance).
    #[error(
        "the inbox's dedup retention of {}s is shorter than the replay window of this ingestor: a tolerance of {}s needs a retention of at least {}s",
        retention.as_secs(), tolerance.as_secs(), needed.as_secs()
    )]
    RetentionTooShort {
        /// The inbox's retention.
        retention: std::time::Duration,
        /// The verifier's timestamp tolerance.
        tolerance: std::time::Duration,
        /// The shortest retention that covers it: twice the tolerance.
        needed: std::time::Duration,
    },
    /// A router pattern is not an event type, a `domain.*` wildcard or `*`.
    #[error("invalid handler pattern {0:?}: use `order.filled`, `order.*` or `*`")]
    InvalidPattern(String),
    /// The same pattern was registered twice (two handlers, or two backoffs).
    #[error("the pattern {0:?} is registered twice")]
    DuplicatePattern(String),
    /// A worker setting is out of range.
    #[error("invalid worker setting `{setting}`: {reason}")]
    InvalidWorkerSetting {
        /// The setting.
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A scheme name that is not one of the presets.
    #[error(
        "unknown scheme `{0}`: expected one of standard, bluum, stripe, github, slack, shopify"
    )]
    UnknownScheme(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_match_message_counts_what_was_tried() {
        let e = VerifyError::NoMatchingSignature {
            tried: 3,
            ignored: 1,
            keys: 2,
        };
        assert_eq!(
            e.to_string(),
            "no signature matched: tried 3 signatures against 2 keys; ignored 1 entry with an unaccepted version label"
        );
        let none = VerifyError::NoMatchingSignature {
            tried: 0,
            ignored: 2,
            keys: 1,
        };
        assert_eq!(
            none.to_string(),
            "no signature with an accepted version label; ignored 2 entries with an unaccepted version label"
        );
    }
}
