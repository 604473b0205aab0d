//! `Ingestor::ingest`: verify, deduplicate and persist in one call, durable before it returns.

mod trace;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{ConfigError, VerifyError};
use crate::headers::HeaderSource;
use crate::identity;
use crate::inbox::Inbox;
use crate::limits::MAX_BODY_LIMIT;
use crate::outcome::{IngestError, Ingested};
use crate::stats::Counters;
use crate::store::{Insert, NewEvent};
use crate::verify::Verifier;

/// The default largest body accepted: 1 MiB.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;

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
    refusals: trace::RefusalLimiter,
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

impl Inbox {
    /// An ingestor that verifies deliveries with `verifier` and stores them in
    /// this inbox, under the scheme's name as source unless renamed.
    ///
    /// ```
    /// use webhook_inbox::{Inbox, Scheme, Verifier};
    ///
    /// let dir = std::env::temp_dir().join(format!("inbox-ingestor-{}", std::process::id()));
    /// let inbox = Inbox::open(&dir)?;
    /// let github = inbox.ingestor(Verifier::new(Scheme::github(), ["s3cret"])?).build()?;
    /// assert_eq!(github.source(), "github");
    /// # drop(github); inbox.close()?; std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn ingestor(&self, verifier: Verifier) -> IngestorBuilder {
        IngestorBuilder::new(self.clone(), verifier)
    }
}

impl IngestorBuilder {
    fn new(inbox: Inbox, verifier: Verifier) -> Self {
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
                refusals: trace::RefusalLimiter::new(),
            }),
        })
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
        trace::ingested(
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

impl Counters {
    /// Counts one delivery and its outcome.
    pub(crate) fn record(&self, outcome: &Result<Ingested, IngestError>) {
        let bump = |a: &AtomicU64| a.fetch_add(1, Ordering::Relaxed);
        bump(&self.received);
        match outcome {
            Ok(Ingested::Accepted { .. }) => bump(&self.accepted),
            Ok(Ingested::Duplicate { .. }) => bump(&self.duplicates),
            Err(IngestError::Rejected(e)) => bump(match e {
                VerifyError::MissingHeader { .. } => &self.missing_header,
                VerifyError::TimestampTooOld { .. } | VerifyError::TimestampInFuture { .. } => {
                    &self.stale_timestamp
                }
                VerifyError::NoMatchingSignature { .. } => &self.bad_signature,
                _ => &self.malformed_header,
            }),
            Err(IngestError::MalformedEvent(_)) => bump(&self.malformed_event),
            Err(IngestError::TooLarge { .. }) => bump(&self.too_large),
            Err(IngestError::Overloaded { .. }) => bump(&self.overloaded),
            Err(_) => bump(&self.storage),
        };
    }
}
