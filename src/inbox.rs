//! The inbox: one embedded store on disk, shared by every ingestor (and the worker).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::VerifyError;
use crate::clock::{Clock, SystemClock};
use crate::ingest::{IngestError, Ingested, IngestorBuilder};
use crate::store::backend::Backend;
use crate::store::local::Local;
use crate::store::local::memory::Memory;
use crate::store::sled_store::{OpenFailure, Settings, SledStore};
use crate::store::{Durability, StoreError};
use crate::verify::Verifier;

/// How long dedup markers are kept by default: 7 days, past every provider's retry horizon
/// (Bluum's last retry comes about 11 hours after the first attempt).
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// The default bound on pending events; past it `ingest` answers 503.
pub const DEFAULT_MAX_PENDING: u64 = 1_000_000;
/// The default memory sled may use for its cache.
pub const DEFAULT_CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// A durable, deduplicating store of received events, embedded in a directory.
///
/// Open one per process and directory (a second opener gets
/// [`OpenError::InUse`]); clone it freely — clones share the store. Dropping
/// the last clone (or calling [`close`](Self::close)) shuts it down cleanly.
///
/// ```
/// use webhook_inbox::{Inbox, Scheme, Verifier};
///
/// let dir = tempfile_dir();
/// let inbox = Inbox::open(&dir)?;
/// let bluum = inbox
///     .ingestor(Verifier::new(Scheme::bluum(), ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"])?)
///     .build()?;
/// assert_eq!(inbox.stats().pending, 0);
/// # drop(bluum); inbox.close()?; std::fs::remove_dir_all(&dir)?;
/// # fn tempfile_dir() -> std::path::PathBuf {
/// #     std::env::temp_dir().join(format!("inbox-doc-{}-{:?}", std::process::id(), std::thread::current().id()))
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Inbox {
    inner: Arc<InboxInner>,
}

pub(crate) struct InboxInner {
    pub(crate) path: PathBuf,
    pub(crate) store: Box<dyn Backend>,
    pub(crate) counters: Counters,
    pub(crate) clock: Arc<dyn Clock>,
    /// How long dedup markers are kept; ingestors check it covers their replay window.
    pub(crate) retention: Duration,
    /// Metrics hooks, installed at most once (by the admin layer); shared
    /// with the worker's handler threads, which must not hold the inbox.
    pub(crate) instruments: Arc<std::sync::OnceLock<Arc<dyn Instruments>>>,
}

/// What a handler attempt came to, for [`Instruments::handler_finished`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "admin"), allow(dead_code))]
pub(crate) enum HandlerOutcome {
    /// The handler returned `Ok`.
    Ok,
    /// The handler returned an error.
    Error,
    /// The handler panicked.
    Panicked,
    /// No handler matched the type.
    Unmatched,
}

/// Hooks the admin layer installs to count deliveries and handler runs
/// (feature `admin`). Without it each call site costs one atomic load.
#[cfg_attr(not(feature = "admin"), allow(dead_code))]
pub(crate) trait Instruments: std::any::Any + Send + Sync {
    /// One delivery through `ingest` of the ingestor named `source`.
    fn delivery(&self, source: &str, outcome: &Result<Ingested, IngestError>, took: Duration);
    /// A handler thread took an event.
    fn handler_started(&self);
    /// A handler thread finished one; `pattern` is the router pattern that
    /// matched (`None`: no handler did).
    fn handler_finished(&self, pattern: Option<&str>, outcome: HandlerOutcome, took: Duration);
}

impl Drop for InboxInner {
    fn drop(&mut self) {
        let _ = self.store.close();
    }
}

/// Opens an [`Inbox`] with settings other than the defaults; see [`Inbox::builder`].
///
/// ```
/// use std::time::Duration;
/// use webhook_inbox::{Durability, Inbox};
///
/// let dir = std::env::temp_dir().join(format!("inbox-builder-{}", std::process::id()));
/// let inbox = Inbox::builder(&dir)
///     .durability(Durability::Fsync)
///     .retention(Duration::from_secs(3 * 24 * 3600))
///     .max_pending(10_000)
///     .open()?;
/// # inbox.close()?; std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
pub struct InboxBuilder {
    /// The store's directory; `None`: in memory.
    path: Option<PathBuf>,
    durability: Durability,
    retention: Duration,
    max_pending: u64,
    cache_bytes: u64,
    clock: Arc<dyn Clock>,
    create: bool,
}

impl InboxBuilder {
    /// Whether `open` may create the store when the directory is missing or
    /// empty. Defaults to `true`; tools that inspect an existing store (such
    /// as the `webhook-inbox` CLI) pass `false` and get
    /// [`OpenError::NotFound`] for a mistyped path instead of a new, empty store.
    ///
    /// ```
    /// use webhook_inbox::{Inbox, OpenError};
    ///
    /// let dir = std::env::temp_dir().join(format!("inbox-nocreate-{}", std::process::id()));
    /// let err = Inbox::builder(&dir).create(false).open().unwrap_err();
    /// assert!(matches!(err, OpenError::NotFound { .. }));
    /// assert!(!dir.exists());
    /// ```
    pub fn create(mut self, create: bool) -> Self {
        self.create = create;
        self
    }

    /// When `ingest` may return `Accepted`. Defaults to [`Durability::Fsync`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use webhook_inbox::{Durability, Inbox};
    ///
    /// let b = Inbox::builder("unused").durability(Durability::Buffered(Duration::from_millis(20)));
    /// # let _ = b;
    /// ```
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// How long a dedup marker is kept after its event was accepted; a delivery
    /// of the same id after that is accepted again. A marker whose event is
    /// still stored (pending, retrying, dead) is kept until one retention
    /// after the event is gone. Defaults to [`DEFAULT_RETENTION`] (7 days).
    ///
    /// It must cover the replay window: building an ingestor whose verifier
    /// checks timestamps with tolerance `t` fails with
    /// [`ConfigError::RetentionTooShort`](crate::ConfigError::RetentionTooShort)
    /// when the retention is under `2 × t` (a delivery signed `t` ahead of
    /// the clock still verifies `2 × t` after it was accepted). Schemes
    /// without a timestamp have no window to cover: a copy sent after the
    /// retention is accepted again.
    ///
    /// ```
    /// use std::time::Duration;
    /// use webhook_inbox::Inbox;
    ///
    /// let b = Inbox::builder("unused").retention(Duration::from_secs(86_400));
    /// # let _ = b;
    /// ```
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// The most events that may wait for handling; past it `ingest` answers
    /// overloaded (503 with Retry-After) and writes nothing. Defaults to
    /// [`DEFAULT_MAX_PENDING`].
    ///
    /// ```
    /// use webhook_inbox::Inbox;
    ///
    /// let b = Inbox::builder("unused").max_pending(50_000);
    /// # let _ = b;
    /// ```
    pub fn max_pending(mut self, events: u64) -> Self {
        self.max_pending = events;
        self
    }

    /// Memory for sled's page cache. Defaults to [`DEFAULT_CACHE_BYTES`] (64 MiB).
    ///
    /// ```
    /// use webhook_inbox::Inbox;
    ///
    /// let b = Inbox::builder("unused").cache_capacity(16 << 20);
    /// # let _ = b;
    /// ```
    pub fn cache_capacity(mut self, bytes: u64) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// The clock for acceptance times and retention. Defaults to [`SystemClock`].
    ///
    /// ```
    /// use webhook_inbox::{Inbox, ManualClock};
    ///
    /// let b = Inbox::builder("unused").clock(ManualClock::at_unix(0));
    /// # let _ = b;
    /// ```
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Opens the store, creating it if needed, and replays its log after a crash.
    ///
    /// ```
    /// use webhook_inbox::{Inbox, OpenError};
    ///
    /// let dir = std::env::temp_dir().join(format!("inbox-twice-{}", std::process::id()));
    /// let first = Inbox::builder(&dir).open()?;
    /// assert!(matches!(Inbox::open(&dir), Err(OpenError::InUse { .. })));
    /// # first.close()?; std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(self) -> Result<Inbox, OpenError> {
        let Some(path) = self.path.clone() else {
            return Ok(self.open_memory());
        };
        let settings = Settings {
            durability: self.durability,
            retention: self.retention,
            cache_bytes: self.cache_bytes,
            max_pending: self.max_pending,
            clock: Arc::clone(&self.clock),
        };
        let store = SledStore::open(&path, settings, self.create).map_err(|failure| {
            let path = path.clone();
            match failure {
                OpenFailure::InUse => OpenError::InUse { path },
                OpenFailure::NotFound => OpenError::NotFound { path },
                OpenFailure::NotAStore => OpenError::NotAStore { path },
                OpenFailure::Io(source) => OpenError::Io { path, source },
                OpenFailure::Corrupt(detail) => OpenError::Corrupt { path, detail },
            }
        })?;
        Ok(self.with_backend(path, Box::new(Local::new(store))))
    }

    /// An in-memory inbox (whatever the path).
    fn open_memory(self) -> Inbox {
        let memory = Memory::new(self.retention, self.max_pending);
        self.with_backend(PathBuf::new(), Box::new(Local::new(memory)))
    }

    /// The inbox over `store`, with this builder's clock and retention: how
    /// every backend is opened once it is connected.
    pub(crate) fn with_backend(self, path: PathBuf, store: Box<dyn Backend>) -> Inbox {
        Inbox {
            inner: Arc::new(InboxInner {
                path,
                store,
                counters: Counters::default(),
                clock: self.clock,
                retention: self.retention,
                instruments: Arc::default(),
            }),
        }
    }
}

/// Why an inbox could not be opened.
///
/// ```
/// use webhook_inbox::OpenError;
///
/// let e = OpenError::InUse { path: "/var/lib/hooks".into() };
/// assert!(e.to_string().contains("in use by another process"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Another process (or another `Inbox` in this one) has the store open.
    #[error("the store at {} is in use by another process (or already open in this one): stop it or use another directory", path.display())]
    InUse {
        /// The store's directory.
        path: PathBuf,
    },
    /// There is no store at this path and [`InboxBuilder::create`] was `false`.
    #[error("there is no store at {} (no such directory, or it is empty)", path.display())]
    NotFound {
        /// The store's directory.
        path: PathBuf,
    },
    /// The directory exists and holds other files but no store; nothing was
    /// created in it.
    #[error("{} is not a webhook-inbox store: it holds other files and no `sled` or `wal` directory or `format` file", path.display())]
    NotAStore {
        /// The directory.
        path: PathBuf,
    },
    /// The directory could not be created, read or written.
    #[error("cannot open the store at {}: {source}", path.display())]
    Io {
        /// The store's directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The directory holds data that is not a readable store.
    #[error("the store at {} is corrupt or not a webhook-inbox store: {detail}", path.display())]
    Corrupt {
        /// The store's directory.
        path: PathBuf,
        /// What could not be read.
        detail: String,
    },
}

impl Inbox {
    /// Opens (or creates) the inbox in directory `path` with the defaults:
    /// [`Durability::Fsync`], 7-day dedup retention, a 64 MiB cache.
    ///
    /// ```
    /// use webhook_inbox::Inbox;
    ///
    /// let dir = std::env::temp_dir().join(format!("inbox-open-{}", std::process::id()));
    /// let inbox = Inbox::open(&dir)?;
    /// assert_eq!(inbox.path(), dir.as_path());
    /// # inbox.close()?; std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        Self::builder(path).open()
    }

    /// An inbox in memory, for tests: the same ingest, worker and operator
    /// calls as on disk, with the defaults of [`Inbox::open`].
    ///
    /// **Not durable**: everything is gone with the process (or the last
    /// clone). `Accepted` means only "stored in memory"; never use it to
    /// receive real deliveries.
    ///
    /// ```
    /// use webhook_inbox::Inbox;
    ///
    /// let inbox = Inbox::memory();
    /// assert_eq!(inbox.stats().pending, 0);
    /// ```
    pub fn memory() -> Self {
        Self::memory_builder().open_memory()
    }

    /// A builder for an in-memory inbox (see [`Inbox::memory`]): its clock,
    /// retention and bound on pending events can be set; durability, cache
    /// size and `create` have no effect.
    ///
    /// ```
    /// use webhook_inbox::{Inbox, ManualClock};
    ///
    /// let inbox = Inbox::memory_builder().clock(ManualClock::at_unix(1_800_000_000)).open()?;
    /// assert!(inbox.path().as_os_str().is_empty());
    /// # Ok::<(), webhook_inbox::OpenError>(())
    /// ```
    pub fn memory_builder() -> InboxBuilder {
        InboxBuilder {
            path: None,
            ..Self::builder("")
        }
    }

    /// A builder to open the inbox in `path` with other settings.
    ///
    /// ```
    /// use webhook_inbox::Inbox;
    ///
    /// let builder = Inbox::builder("/var/lib/webhooks");
    /// # let _ = builder;
    /// ```
    pub fn builder(path: impl AsRef<Path>) -> InboxBuilder {
        InboxBuilder {
            path: Some(path.as_ref().to_owned()),
            durability: Durability::default(),
            retention: DEFAULT_RETENTION,
            max_pending: DEFAULT_MAX_PENDING,
            cache_bytes: DEFAULT_CACHE_BYTES,
            clock: Arc::new(SystemClock),
            create: true,
        }
    }

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

    /// Counters since the inbox was opened (received, accepted, duplicates,
    /// rejections by reason) and the store's current counts (pending, dead,
    /// dedup markers).
    ///
    /// ```
    /// use webhook_inbox::Inbox;
    ///
    /// let dir = std::env::temp_dir().join(format!("inbox-stats-{}", std::process::id()));
    /// let inbox = Inbox::open(&dir)?;
    /// let stats = inbox.stats();
    /// assert_eq!((stats.received, stats.pending, stats.dead), (0, 0, 0));
    /// # inbox.close()?; std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stats(&self) -> Stats {
        let c = &self.inner.counters;
        let counts = self.inner.store.counts();
        let backend = self.inner.store.stats();
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            received: get(&c.received),
            accepted: get(&c.accepted),
            duplicates: get(&c.duplicates),
            rejected: Rejections {
                missing_header: get(&c.missing_header),
                malformed_header: get(&c.malformed_header),
                bad_signature: get(&c.bad_signature),
                stale_timestamp: get(&c.stale_timestamp),
                malformed_event: get(&c.malformed_event),
                too_large: get(&c.too_large),
                overloaded: get(&c.overloaded),
                storage: get(&c.storage),
            },
            pending: counts.pending,
            retrying: counts.retrying,
            dead: counts.dead,
            dedup_markers: counts.markers,
            oldest_pending_age: self
                .inner
                .store
                .oldest_pending()
                .ok()
                .flatten()
                .map(|t| self.inner.clock.now().duration_since(t).unwrap_or_default()),
            fsync: backend.fsync.map(|f| FsyncStats {
                count: f.count,
                mean: f.mean,
                p99: f.p99,
                max: f.max,
            }),
            disk_bytes: backend.disk_bytes,
        }
    }

    /// Removes the dedup markers older than the retention now (a background
    /// thread also does this continuously, a few batches' markers per step).
    /// Returns how many were removed.
    ///
    /// ```
    /// use webhook_inbox::Inbox;
    ///
    /// let dir = std::env::temp_dir().join(format!("inbox-gc-{}", std::process::id()));
    /// let inbox = Inbox::open(&dir)?;
    /// assert_eq!(inbox.collect_expired()?, 0);
    /// # inbox.close()?; std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn collect_expired(&self) -> Result<usize, crate::OperatorError> {
        Ok(self.inner.store.collect_expired(self.inner.clock.now())?)
    }

    /// How long dedup markers are kept (see [`InboxBuilder::retention`]).
    ///
    /// ```
    /// use webhook_inbox::{Inbox, DEFAULT_RETENTION};
    ///
    /// let dir = std::env::temp_dir().join(format!("inbox-retention-{}", std::process::id()));
    /// let inbox = Inbox::open(&dir)?;
    /// assert_eq!(inbox.retention(), DEFAULT_RETENTION);
    /// # inbox.close()?; std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn retention(&self) -> Duration {
        self.inner.retention
    }

    /// The store's directory (empty for an in-memory inbox).
    ///
    /// ```
    /// use webhook_inbox::Inbox;
    ///
    /// let dir = std::env::temp_dir().join(format!("inbox-path-{}", std::process::id()));
    /// let inbox = Inbox::open(&dir)?;
    /// assert!(inbox.path().ends_with(dir.file_name().unwrap()));
    /// # inbox.close()?; std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Shuts the store down now: waits for pending writes, stops the
    /// background threads, and makes the index durable so the next open
    /// need not rebuild it from the log. Every clone (and ingestor) of this inbox then
    /// answers [`StoreError::Closed`]. Dropping the last clone does the same.
    ///
    /// ```
    /// use webhook_inbox::Inbox;
    ///
    /// let dir = std::env::temp_dir().join(format!("inbox-close-{}", std::process::id()));
    /// Inbox::open(&dir)?.close()?;
    /// Inbox::open(&dir)?.close()?; // the directory is free again
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn close(self) -> Result<(), StoreError> {
        self.inner.store.close()
    }

    pub(crate) fn inner(&self) -> &InboxInner {
        &self.inner
    }

    /// The shared state, for holders that must not keep the store open (`Weak`).
    #[cfg_attr(not(feature = "admin"), allow(dead_code))]
    pub(crate) fn arc(&self) -> &Arc<InboxInner> {
        &self.inner
    }

    /// An inbox handle from its shared state.
    #[cfg_attr(not(feature = "admin"), allow(dead_code))]
    pub(crate) fn from_inner(inner: Arc<InboxInner>) -> Self {
        Self { inner }
    }
}

impl fmt::Debug for Inbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inbox")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

/// A snapshot of an inbox's counters; see [`Inbox::stats`].
///
/// ```
/// use webhook_inbox::Stats;
///
/// let s = Stats::default();
/// assert_eq!(s.rejected.total(), 0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Deliveries passed to `ingest` since the inbox was opened.
    pub received: u64,
    /// Deliveries stored for the first time.
    pub accepted: u64,
    /// Deliveries of an event already stored (answered 200, nothing written).
    pub duplicates: u64,
    /// Deliveries refused, by reason.
    pub rejected: Rejections,
    /// Events stored and not yet handled (retrying ones included; dead
    /// letters not).
    pub pending: u64,
    /// Pending events scheduled for another attempt: failed at least once,
    /// or replayed dead letters waiting to run (see [`EventState::Retrying`](crate::EventState::Retrying)).
    pub retrying: u64,
    /// Events parked after failing for good.
    pub dead: u64,
    /// Dedup markers held (one per event id seen within the retention).
    pub dedup_markers: u64,
    /// How long ago the oldest event still waiting for its handler (fresh or
    /// retrying) was received; `None` when nothing is pending (or the store
    /// could not be read: `pending` says which). The backlog's age: alert when
    /// it grows past what your handlers should take — a replayed dead letter
    /// counts from when it was first received.
    pub oldest_pending_age: Option<Duration>,
    /// The log's `fdatasync` calls since the inbox was opened (each one
    /// acknowledges a whole group of deliveries); `None` for a backend
    /// without a log of its own (in memory).
    pub fsync: Option<FsyncStats>,
    /// Bytes the store occupies on disk; `None` when the backend does not
    /// know (in memory).
    pub disk_bytes: Option<u64>,
}

/// How long the store's `fdatasync` calls took; see [`Stats::fsync`]. An
/// acknowledged delivery waited for one of them, so a rising `p99` is the
/// disk slowing your 2xx answers down.
///
/// ```
/// use webhook_inbox::FsyncStats;
///
/// let f = FsyncStats::default();
/// assert_eq!((f.count, f.max), (0, std::time::Duration::ZERO));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FsyncStats {
    /// Calls made.
    pub count: u64,
    /// Their mean duration.
    pub mean: Duration,
    /// The 99th percentile, rounded up to a power of two of microseconds
    /// (never more than `max`).
    pub p99: Duration,
    /// The slowest.
    pub max: Duration,
}

/// Refused deliveries by reason; see [`Stats::rejected`].
///
/// ```
/// use webhook_inbox::Rejections;
///
/// assert_eq!(Rejections::default().bad_signature, 0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rejections {
    /// A header the scheme needs was absent (400).
    pub missing_header: u64,
    /// A header was unreadable, too long or held too many signatures (400).
    pub malformed_header: u64,
    /// No signature matched (401).
    pub bad_signature: u64,
    /// The timestamp was outside the tolerance (401).
    pub stale_timestamp: u64,
    /// The event's id or type could not be read (400).
    pub malformed_event: u64,
    /// The body was over the limit (413).
    pub too_large: u64,
    /// Too many events pending (503).
    pub overloaded: u64,
    /// The store failed (503).
    pub storage: u64,
}

impl Rejections {
    /// All refused deliveries.
    ///
    /// ```
    /// use webhook_inbox::Rejections;
    ///
    /// assert_eq!(Rejections::default().total(), 0);
    /// ```
    pub fn total(&self) -> u64 {
        self.missing_header
            + self.malformed_header
            + self.bad_signature
            + self.stale_timestamp
            + self.malformed_event
            + self.too_large
            + self.overloaded
            + self.storage
    }
}

/// Live counters shared by every ingestor of an inbox.
#[derive(Default)]
pub(crate) struct Counters {
    received: AtomicU64,
    accepted: AtomicU64,
    duplicates: AtomicU64,
    missing_header: AtomicU64,
    malformed_header: AtomicU64,
    bad_signature: AtomicU64,
    stale_timestamp: AtomicU64,
    malformed_event: AtomicU64,
    too_large: AtomicU64,
    overloaded: AtomicU64,
    storage: AtomicU64,
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
