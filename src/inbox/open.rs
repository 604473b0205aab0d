//! Opening an inbox: [`InboxBuilder`] and its defaults, and why opening
//! can fail ([`OpenError`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::{Inbox, InboxInner};
use crate::clock::{Clock, SystemClock};
use crate::stats::Counters;
use crate::store::Durability;
use crate::store::backend::Backend;
use crate::store::local::Local;
use crate::store::local::memory::Memory;
use crate::store::sled::{OpenFailure, Settings, SledStore};

/// How long dedup markers are kept by default: 7 days, past every provider's retry horizon
/// (Bluum's last retry comes about 11 hours after the first attempt).
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// The default bound on pending events; past it `ingest` answers 503.
pub const DEFAULT_MAX_PENDING: u64 = 1_000_000;
/// The default memory sled may use for its cache.
pub const DEFAULT_CACHE_BYTES: u64 = 64 * 1024 * 1024;

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
                OpenFailure::Io(error) => OpenError::Io { path, error },
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

    /// The clock, shared as it is.
    #[cfg(feature = "postgres")]
    pub(crate) fn clock_arc(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The inbox over `store`, with this builder's clock and retention: how
    /// every backend is opened once it is connected.
    pub(crate) fn with_backend(self, path: PathBuf, store: Box<dyn Backend>) -> Inbox {
        let label = if path.as_os_str().is_empty() {
            "memory".to_owned()
        } else {
            path.display().to_string()
        };
        self.with_labelled_backend(label, path, store)
    }

    /// As [`with_backend`](Self::with_backend), with what operators see as the store.
    pub(crate) fn with_labelled_backend(
        self,
        label: String,
        path: PathBuf,
        store: Box<dyn Backend>,
    ) -> Inbox {
        Inbox {
            inner: Arc::new(InboxInner {
                label,
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
    #[error("cannot open the store at {}: {error}", path.display())]
    Io {
        /// The store's directory.
        path: PathBuf,
        /// The underlying error (in the message too, so not a `source()`).
        error: std::io::Error,
    },
    /// The directory holds data that is not a readable store.
    #[error("the store at {} is corrupt or not a webhook-inbox store: {detail}", path.display())]
    Corrupt {
        /// The store's directory.
        path: PathBuf,
        /// What could not be read.
        detail: String,
    },
    /// PostgreSQL: the URL is malformed, or the server is unreachable,
    /// refuses the login, or failed while the schema was checked.
    #[error("cannot connect the inbox to PostgreSQL: {detail}")]
    Database {
        /// What failed (never the password).
        detail: String,
    },
    /// PostgreSQL: the schema name is not 1–63 lowercase ASCII letters,
    /// digits and `_` starting with a letter or `_`.
    #[error(
        "invalid schema name {name:?}: use 1-63 lowercase ASCII letters, digits and '_', not starting with a digit"
    )]
    InvalidSchema {
        /// The name as given (truncated to 80 bytes).
        name: String,
    },
    /// PostgreSQL: the schema was migrated by a newer build of this crate;
    /// this build refuses to touch it.
    #[error(
        "schema {schema:?} is at version {found}, newer than this build knows ({known}): upgrade webhook-inbox"
    )]
    SchemaTooNew {
        /// The schema.
        schema: String,
        /// Its version.
        found: i32,
        /// The newest version this build knows.
        known: i32,
    },
    /// PostgreSQL: the schema is missing or older than this build, and
    /// migrating on connect was turned off.
    #[error(
        "schema {schema:?} is at version {found}, this build needs {known}: apply `webhook-inbox migrate --print` or connect with migrate(true)"
    )]
    SchemaMissing {
        /// The schema.
        schema: String,
        /// Its version (0: absent).
        found: i32,
        /// The version this build needs.
        known: i32,
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
}
