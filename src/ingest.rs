//! `Ingestor::ingest`: verify, deduplicate and persist in one call, durable before it returns.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{ConfigError, VerifyError};
use crate::headers::HeaderSource;
use crate::identity::{self, EventProblem};
use crate::inbox::Inbox;
use crate::store::{Insert, NewEvent, StoreError};
use crate::verify::Verifier;

/// The default largest body accepted: 1 MiB.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;
/// The largest `max_body` an ingestor accepts: 64 MiB (the log's frames are bounded).
pub const MAX_BODY_LIMIT: usize = 64 * 1024 * 1024;
/// What an overloaded or failing inbox asks the sender to wait before retrying.
pub const RETRY_AFTER: Duration = Duration::from_secs(30);

/// Receives deliveries from one provider (or endpoint) into an [`Inbox`].
///
/// `ingest` is synchronous and returns after about one `fdatasync` (shared with
/// concurrent callers); call it from a blocking context (`spawn_blocking` in
/// async frameworks). Cheap to clone; `Send + Sync`.
///
/// ```
/// use webhook_inbox::{Inbox, Ingested, Scheme, Signer, Verifier};
///
/// # let dir = std::env::temp_dir().join(format!("ingestor-doc-{}", std::process::id()));
/// let inbox = Inbox::open(&dir)?;
/// let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// let ingestor = inbox.ingestor(Verifier::new(Scheme::bluum(), [secret])?).build()?;
///
/// let body = br#"{"event":"order.filled","timestamp":"2026-11-28T14:00:00Z","data":{"id":"ord_1"}}"#;
/// let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
/// let headers = Signer::new(Scheme::bluum(), secret)?.sign("evt_1", now, body);
///
/// let first = ingestor.ingest(&headers, body)?;
/// assert!(matches!(first, Ingested::Accepted { .. }));
/// let again = ingestor.ingest(&headers, body)?;          // the sender retried
/// assert_eq!(again, Ingested::Duplicate { id: "evt_1".into() });
/// assert_eq!(inbox.stats().pending, 1);
/// # drop(ingestor); inbox.close()?; std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Ingestor {
    inner: Arc<IngestorInner>,
}

struct IngestorInner {
    inbox: Inbox,
    verifier: Verifier,
    source: String,
    max_body: usize,
    /// Keeps a flood of refusals from filling the logs (feature `tracing`).
    refusals: crate::trace::RefusalLimiter,
}

/// Builds an [`Ingestor`]; see [`Inbox::ingestor`].
///
/// ```
/// use webhook_inbox::{Inbox, Scheme, Verifier};
///
/// # let dir = std::env::temp_dir().join(format!("ingestor-builder-{}", std::process::id()));
/// let inbox = Inbox::open(&dir)?;
/// let payments = inbox
///     .ingestor(Verifier::new(Scheme::stripe(), ["whsec_test"])?)
///     .source("stripe-payments")
///     .max_body(256 * 1024)
///     .build()?;
/// assert_eq!(payments.source(), "stripe-payments");
/// # drop(payments); inbox.close()?; std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
pub struct IngestorBuilder {
    inbox: Inbox,
    verifier: Verifier,
    source: Option<String>,
    max_body: usize,
}

impl IngestorBuilder {
    pub(crate) fn new(inbox: Inbox, verifier: Verifier) -> Self {
        Self {
            inbox,
            verifier,
            source: None,
            max_body: DEFAULT_MAX_BODY,
        }
    }

    /// The source name: with the event id it forms the dedup key, so two
    /// ingestors with different sources never deduplicate each other's ids.
    /// 1 to 64 printable characters. Defaults to the scheme's name.
    ///
    /// ```
    /// # use webhook_inbox::{Inbox, Scheme, Verifier};
    /// # let dir = std::env::temp_dir().join(format!("ingestor-source-{}", std::process::id()));
    /// # let inbox = Inbox::open(&dir)?;
    /// let bad = inbox.ingestor(Verifier::new(Scheme::github(), ["s"])?).source("").build();
    /// assert!(bad.is_err());
    /// # inbox.close()?; std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn source(mut self, name: impl Into<String>) -> Self {
        self.source = Some(name.into());
        self
    }

    /// The largest body accepted, checked before anything is hashed; larger
    /// ones are refused with 413. Defaults to [`DEFAULT_MAX_BODY`] (1 MiB); at
    /// most [`MAX_BODY_LIMIT`] (64 MiB), checked by `build`.
    ///
    /// ```
    /// # use webhook_inbox::{Inbox, Scheme, Verifier};
    /// # let dir = std::env::temp_dir().join(format!("ingestor-max-{}", std::process::id()));
    /// # let inbox = Inbox::open(&dir)?;
    /// let small = inbox.ingestor(Verifier::new(Scheme::github(), ["s"])?).max_body(4096).build()?;
    /// # drop(small); inbox.close()?; std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// Checks the source name, the body limit, and that the inbox's dedup
    /// retention covers the verifier's replay window (at least twice its
    /// tolerance, for schemes with a timestamp), and builds the ingestor.
    ///
    /// ```
    /// # use webhook_inbox::{Inbox, Scheme, Verifier};
    /// # let dir = std::env::temp_dir().join(format!("ingestor-build-{}", std::process::id()));
    /// # let inbox = Inbox::open(&dir)?;
    /// let ingestor = inbox.ingestor(Verifier::new(Scheme::shopify(), ["s"])?).build()?;
    /// # drop(ingestor); inbox.close()?; std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn build(self) -> Result<Ingestor, ConfigError> {
        let source = self
            .source
            .unwrap_or_else(|| self.verifier.scheme().name().to_owned());
        if source.is_empty() || source.len() > 64 || source.chars().any(char::is_control) {
            return Err(ConfigError::InvalidSource(source));
        }
        if self.max_body > MAX_BODY_LIMIT {
            return Err(ConfigError::BodyLimitTooLarge {
                limit: self.max_body,
                max: MAX_BODY_LIMIT,
            });
        }
        // A delivery signed `tolerance` ahead of the clock is accepted at once
        // and still verifies until `2 × tolerance` later: its marker must last.
        if self.verifier.scheme().has_timestamp() {
            let tolerance = self.verifier.tolerance();
            let needed = tolerance.saturating_mul(2);
            let retention = self.inbox.retention();
            if retention < needed {
                return Err(ConfigError::RetentionTooShort {
                    retention,
                    tolerance,
                    needed,
                });
            }
        }
        Ok(Ingestor {
            inner: Arc::new(IngestorInner {
                inbox: self.inbox,
                verifier: self.verifier,
                source,
                max_body: self.max_body,
                refusals: crate::trace::RefusalLimiter::new(),
            }),
        })
    }
}

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

impl Ingestor {
    /// Verifies a delivery, reads its id and type, and stores it unless its id
    /// was seen before (from this source, within the retention) — returning only
    /// once it is durable. Pass the headers as your framework has them and the
    /// raw body bytes.
    ///
    /// Every refusal writes nothing. A duplicate of an event whose first copy is
    /// still being written waits until that copy is durable, so a 200 always
    /// means the event is on disk.
    ///
    /// ```
    /// # use webhook_inbox::{Inbox, IngestError, Scheme, Verifier};
    /// # let dir = std::env::temp_dir().join(format!("ingest-doc-{}", std::process::id()));
    /// # let inbox = Inbox::open(&dir)?;
    /// let ingestor = inbox.ingestor(Verifier::new(Scheme::bluum(), ["whsec_aGk="])?).build()?;
    /// let err = ingestor.ingest(&[("webhook-id", "evt_1")], b"{}").unwrap_err();
    /// assert_eq!(err.status(), 400); // missing headers
    /// assert_eq!(inbox.stats().pending, 0);
    /// # drop(ingestor); inbox.close()?; std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn ingest<H: HeaderSource + ?Sized>(
        &self,
        headers: &H,
        body: &[u8],
    ) -> Result<Ingested, IngestError> {
        let started = std::time::Instant::now();
        let outcome = self.ingest_unrecorded(headers, body);
        self.inner.inbox.inner().counters.record(&outcome);
        let inner = &*self.inner;
        if let Some(instruments) = inner.inbox.inner().instruments.get() {
            instruments.delivery(&inner.source, &outcome, started.elapsed());
        }
        crate::trace::ingested(
            &inner.source,
            &inner.refusals,
            &*inner.inbox.inner().clock,
            &outcome,
            started.elapsed(),
        );
        outcome
    }

    fn ingest_unrecorded<H: HeaderSource + ?Sized>(
        &self,
        headers: &H,
        body: &[u8],
    ) -> Result<Ingested, IngestError> {
        let inner = &*self.inner;
        if body.len() > inner.max_body {
            return Err(IngestError::TooLarge {
                len: body.len(),
                limit: inner.max_body,
            });
        }
        let verified = inner.verifier.verify(headers, body)?;
        let scheme = inner.verifier.scheme();
        let identity = identity::identify(scheme, headers, &verified)?;
        let kept = scheme
            .header_names()
            .chain(["content-type"])
            .filter_map(|name| {
                headers
                    .header(name)
                    .map(|v| (name, String::from_utf8_lossy(v)))
            })
            .collect();
        let store = &inner.inbox.inner().store;
        let event = NewEvent {
            source: &inner.source,
            id: &identity.id,
            event_type: &identity.event_type,
            received_at: inner.inbox.inner().clock.now(),
            headers: kept,
            body,
        };
        match store.insert(event)? {
            Insert::Accepted { seq } => Ok(Ingested::Accepted {
                id: identity.id,
                seq,
            }),
            Insert::Duplicate { .. } => Ok(Ingested::Duplicate { id: identity.id }),
            Insert::Overloaded { pending, limit } => {
                Err(IngestError::Overloaded { pending, limit })
            }
        }
    }

    /// The largest body this ingestor accepts (413 above it). Give your HTTP
    /// framework the same limit, so it reads no more than that and its own
    /// limit does not refuse smaller deliveries first.
    ///
    /// ```
    /// # use webhook_inbox::{Inbox, Scheme, Verifier, DEFAULT_MAX_BODY};
    /// # let dir = std::env::temp_dir().join(format!("ingest-maxbody-{}", std::process::id()));
    /// # let inbox = Inbox::open(&dir)?;
    /// let i = inbox.ingestor(Verifier::new(Scheme::bluum(), ["whsec_aGk="])?).build()?;
    /// assert_eq!(i.max_body(), DEFAULT_MAX_BODY);
    /// # drop(i); inbox.close()?; std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn max_body(&self) -> usize {
        self.inner.max_body
    }

    /// The source name events from this ingestor are stored under.
    ///
    /// ```
    /// # use webhook_inbox::{Inbox, Scheme, Verifier};
    /// # let dir = std::env::temp_dir().join(format!("ingest-source-{}", std::process::id()));
    /// # let inbox = Inbox::open(&dir)?;
    /// let i = inbox.ingestor(Verifier::new(Scheme::slack(), ["s"])?).build()?;
    /// assert_eq!(i.source(), "slack");
    /// # drop(i); inbox.close()?; std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn source(&self) -> &str {
        &self.inner.source
    }
}

impl fmt::Debug for Ingestor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ingestor")
            .field("source", &self.inner.source)
            .field("verifier", &self.inner.verifier)
            .field("max_body", &self.inner.max_body)
            .finish_non_exhaustive()
    }
}
