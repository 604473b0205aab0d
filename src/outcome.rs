//! What one delivery came to: [`Ingested`] (answer 200) or an
//! [`IngestError`] (nothing stored), and the [`Reply`] to answer with.

use std::time::Duration;

use crate::error::VerifyError;
use crate::identity::EventProblem;
use crate::store::StoreError;

/// What an overloaded or failing inbox asks the sender to wait before retrying.
pub const RETRY_AFTER: Duration = Duration::from_secs(30);

/// A delivery that was taken in: answer 200 either way.
///
/// ```
/// use webhook_inbox::Ingested;
///
/// let dup = Ingested::Duplicate { id: "evt_1".into() };
/// assert_eq!((dup.id(), dup.status()), ("evt_1", 200));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingested {
    /// Stored for the first time, durably; `seq` orders it among all events.
    Accepted {
        /// The event id (from a header, a JSON field, or `sha256:` of the body).
        id: String,
        /// The store's sequence number for the event.
        seq: u64,
    },
    /// Already stored: nothing was written.
    Duplicate {
        /// The event id.
        id: String,
    },
}

impl Ingested {
    /// The event id.
    ///
    /// ```
    /// use webhook_inbox::Ingested;
    ///
    /// assert_eq!(Ingested::Accepted { id: "a".into(), seq: 1 }.id(), "a");
    /// ```
    pub fn id(&self) -> &str {
        match self {
            Self::Accepted { id, .. } | Self::Duplicate { id } => id,
        }
    }

    /// Always 200: a duplicate is acknowledged like the original so the sender stops retrying.
    ///
    /// ```
    /// use webhook_inbox::Ingested;
    ///
    /// assert_eq!(Ingested::Accepted { id: "a".into(), seq: 1 }.status(), 200);
    /// ```
    pub fn status(&self) -> u16 {
        200
    }
}

/// Why a delivery was not taken in. Nothing was stored.
///
/// ```
/// use webhook_inbox::IngestError;
///
/// let e = IngestError::TooLarge { len: 2_000_000, limit: 1_048_576 };
/// assert_eq!(e.status(), 413);
/// assert_eq!(e.retry_after(), None);
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    /// The body is over the limit (413).
    #[error("body is {len} bytes, the limit is {limit}")]
    TooLarge {
        /// The body's length.
        len: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The delivery failed verification (400 malformed, 401 not authentic).
    #[error(transparent)]
    Rejected(#[from] VerifyError),
    /// The delivery is genuine but its id or type cannot be read (400).
    #[error(transparent)]
    MalformedEvent(#[from] EventProblem),
    /// Too many events are pending (503, retry later).
    #[error("overloaded: {pending} events pending, the limit is {limit}")]
    Overloaded {
        /// Events pending now.
        pending: u64,
        /// The configured bound.
        limit: u64,
    },
    /// The store failed (503, retry later).
    #[error(transparent)]
    Storage(#[from] StoreError),
}

impl IngestError {
    /// The HTTP status to answer with.
    ///
    /// ```
    /// use webhook_inbox::{IngestError, StoreError};
    ///
    /// assert_eq!(IngestError::Storage(StoreError::Closed).status(), 503);
    /// ```
    pub fn status(&self) -> u16 {
        match self {
            Self::TooLarge { .. } => 413,
            Self::Rejected(e) => e.status(),
            Self::MalformedEvent(_) => 400,
            Self::Overloaded { .. } | Self::Storage(_) => 503,
        }
    }

    /// For 503 answers, how long the sender should wait (the `Retry-After` header).
    ///
    /// ```
    /// use webhook_inbox::IngestError;
    ///
    /// let e = IngestError::Overloaded { pending: 10, limit: 10 };
    /// assert_eq!(e.retry_after(), Some(std::time::Duration::from_secs(30)));
    /// ```
    pub fn retry_after(&self) -> Option<Duration> {
        (self.status() == 503).then_some(RETRY_AFTER)
    }
}

/// The HTTP answer for an `ingest` outcome, for any framework: status, an
/// optional `Retry-After` in seconds, and a short plain-text body. The body
/// never says more than the sender needs (no key counts, no internals).
///
/// ```
/// use webhook_inbox::{Ingested, Reply};
///
/// let reply = Reply::from(&Ok(Ingested::Duplicate { id: "evt_1".into() }));
/// assert_eq!((reply.status, reply.retry_after_secs, reply.body.as_str()), (200, None, "duplicate"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reply {
    /// The HTTP status code.
    pub status: u16,
    /// Seconds for a `Retry-After` header, on 503.
    pub retry_after_secs: Option<u64>,
    /// A short plain-text body.
    pub body: String,
}

impl Reply {
    /// 503 with `Retry-After`, the answer `ingest` gives when the store
    /// failed: for the failures your HTTP layer has before `ingest` gets to
    /// answer (a blocking task that could not run, a body that could not be read).
    ///
    /// ```
    /// use webhook_inbox::Reply;
    ///
    /// let r = Reply::unavailable();
    /// assert_eq!((r.status, r.retry_after_secs), (503, Some(webhook_inbox::RETRY_AFTER.as_secs())));
    /// ```
    pub fn unavailable() -> Self {
        Self {
            status: 503,
            retry_after_secs: Some(RETRY_AFTER.as_secs()),
            body: "temporarily unavailable".to_owned(),
        }
    }
}

impl From<&Result<Ingested, IngestError>> for Reply {
    fn from(outcome: &Result<Ingested, IngestError>) -> Self {
        match outcome {
            Ok(ok) => Self {
                status: ok.status(),
                retry_after_secs: None,
                body: match ok {
                    Ingested::Accepted { .. } => "accepted",
                    Ingested::Duplicate { .. } => "duplicate",
                }
                .to_owned(),
            },
            Err(e) => Self {
                status: e.status(),
                retry_after_secs: e.retry_after().map(|d| d.as_secs()),
                body: match e {
                    IngestError::Rejected(VerifyError::NoMatchingSignature { .. }) => {
                        "invalid signature".to_owned()
                    }
                    IngestError::Storage(_) => Self::unavailable().body,
                    other => other.to_string(),
                },
            },
        }
    }
}
