//! Several replicas, one inbox: the PostgreSQL backend (feature `postgres`).
//!
//! [`Inbox::connect`] (or [`Inbox::postgres`] for settings) opens the same
//! [`Inbox`] over a shared database: `ingest` on any replica verifies,
//! deduplicates and commits to it, and the [`Worker`](crate::Worker)s of every
//! replica share the work with the same retries, dead letters, replay and
//! per-key ordering as the embedded store. Its tables live in one schema
//! (default [`DEFAULT_SCHEMA`]), created and migrated on connect;
//! [`migration_sql`] prints the same SQL for teams that apply migrations
//! with their own tool.
//!
//! Every query runs on the backend's own threads, so calling the inbox from
//! async code never trips the `postgres` crate's "runtime inside a runtime"
//! panic; like the embedded store's `fsync`, it blocks the calling thread
//! while the database commits, so call it from `spawn_blocking` (the
//! [`axum`](crate::axum) helper does).
//!
//! ```no_run
//! use webhook_inbox::Inbox;
//!
//! let inbox = Inbox::connect("postgres://hooks@db.internal/hooks")?;
//! println!("{} pending", inbox.stats().pending);
//! # Ok::<(), webhook_inbox::OpenError>(())
//! ```

use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::inbox::{DEFAULT_MAX_PENDING, DEFAULT_RETENTION, Inbox, OpenError};
use crate::store::postgres::{Connected, Settings, schema};

/// The schema the inbox's tables live in unless [`PostgresBuilder::schema`] names another.
///
/// ```
/// assert_eq!(webhook_inbox::postgres::DEFAULT_SCHEMA, "webhook_inbox");
/// ```
pub const DEFAULT_SCHEMA: &str = "webhook_inbox";

/// Connections each replica keeps for claims, outcomes and operator calls
/// unless [`PostgresBuilder::pool_size`] says otherwise (ingest has one more
/// of its own, and so have wake-up notifications).
///
/// ```
/// assert_eq!(webhook_inbox::postgres::DEFAULT_POOL_SIZE, 4);
/// ```
pub const DEFAULT_POOL_SIZE: usize = 4;

/// The SQL that creates (or migrates to) the current schema in `schema`,
/// as `connect` applies it: for teams that run migrations with their own
/// tool (`webhook-inbox migrate --print`). Applying it twice is harmless.
///
/// ```
/// let sql = webhook_inbox::postgres::migration_sql("hooks")?;
/// assert!(sql.contains(r#"CREATE TABLE IF NOT EXISTS "hooks".events"#));
/// assert!(webhook_inbox::postgres::migration_sql("no; drop").is_err());
/// # Ok::<(), webhook_inbox::OpenError>(())
/// ```
pub fn migration_sql(schema: &str) -> Result<String, OpenError> {
    schema::check_name(schema)?;
    Ok(schema::script(schema))
}

/// Connects an [`Inbox`] to PostgreSQL with settings other than the
/// defaults; see [`Inbox::postgres`].
///
/// ```no_run
/// use std::time::Duration;
/// use webhook_inbox::Inbox;
///
/// let inbox = Inbox::postgres("postgres://hooks@db.internal/hooks")
///     .schema("payments_hooks")
///     .pool_size(8)
///     .retention(Duration::from_secs(3 * 24 * 3600))
///     .connect()?;
/// # drop(inbox);
/// # Ok::<(), webhook_inbox::OpenError>(())
/// ```
#[must_use]
pub struct PostgresBuilder {
    url: String,
    schema: String,
    pool_size: usize,
    listen: bool,
    migrate: bool,
    retention: Duration,
    max_pending: u64,
    clock: Arc<dyn Clock>,
}

impl PostgresBuilder {
    /// The schema of the inbox's tables (created if missing). Defaults to
    /// [`DEFAULT_SCHEMA`]. A name is 1–63 lowercase ASCII letters, digits
    /// and `_`, not starting with a digit; anything else is refused with
    /// [`OpenError::InvalidSchema`].
    ///
    /// ```
    /// let b = webhook_inbox::Inbox::postgres("postgres://localhost/hooks").schema("hooks_eu");
    /// # let _ = b;
    /// ```
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// Connections for claims, outcomes and operator calls. Defaults to
    /// [`DEFAULT_POOL_SIZE`]; at least 1.
    ///
    /// ```
    /// let b = webhook_inbox::Inbox::postgres("postgres://localhost/hooks").pool_size(2);
    /// # let _ = b;
    /// ```
    pub fn pool_size(mut self, connections: usize) -> Self {
        self.pool_size = connections.max(1);
        self
    }

    /// Whether workers are woken by `LISTEN`/`NOTIFY` (the default), with a
    /// poll every second behind it. Pass `false` behind PgBouncer in
    /// transaction pooling mode, which cannot `LISTEN`: workers then poll
    /// four times a second.
    ///
    /// ```
    /// let b = webhook_inbox::Inbox::postgres("postgres://pgbouncer/hooks").listen(false);
    /// # let _ = b;
    /// ```
    pub fn listen(mut self, listen: bool) -> Self {
        self.listen = listen;
        self
    }

    /// Whether `connect` creates or migrates the schema (the default). Pass
    /// `false` when migrations are applied with another tool (see
    /// [`migration_sql`]): `connect` then only checks that the schema is
    /// the version this build knows, and fails with
    /// [`OpenError::SchemaMissing`] or [`OpenError::SchemaTooNew`] if not.
    ///
    /// ```
    /// let b = webhook_inbox::Inbox::postgres("postgres://localhost/hooks").migrate(false);
    /// # let _ = b;
    /// ```
    pub fn migrate(mut self, migrate: bool) -> Self {
        self.migrate = migrate;
        self
    }

    /// How long a dedup marker is kept after its event was accepted, as
    /// [`InboxBuilder::retention`](crate::InboxBuilder::retention). Defaults to [`DEFAULT_RETENTION`]. One
    /// replica at a time removes expired markers, every minute.
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = webhook_inbox::Inbox::postgres("postgres://localhost/hooks")
    ///     .retention(Duration::from_secs(86_400));
    /// # let _ = b;
    /// ```
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// The most events that may wait for handling, across all replicas; past
    /// it `ingest` answers overloaded. Defaults to [`DEFAULT_MAX_PENDING`].
    ///
    /// ```
    /// let b = webhook_inbox::Inbox::postgres("postgres://localhost/hooks").max_pending(50_000);
    /// # let _ = b;
    /// ```
    pub fn max_pending(mut self, events: u64) -> Self {
        self.max_pending = events;
        self
    }

    /// The clock for acceptance times, retries, leases and retention.
    /// Defaults to [`SystemClock`]. Replicas should agree on the time:
    /// leases are compared across them.
    ///
    /// ```
    /// use webhook_inbox::ManualClock;
    /// let b = webhook_inbox::Inbox::postgres("postgres://localhost/hooks")
    ///     .clock(ManualClock::at_unix(1_800_000_000));
    /// # let _ = b;
    /// ```
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Connects, creates or migrates the schema (under an advisory lock, so
    /// replicas starting together migrate once), and starts the backend's
    /// threads.
    ///
    /// # Errors
    ///
    /// [`OpenError::InvalidSchema`], [`OpenError::Database`] (the URL is
    /// malformed, or the server is unreachable or refuses), and
    /// [`OpenError::SchemaTooNew`] when a newer build migrated the schema.
    ///
    /// ```no_run
    /// let inbox = webhook_inbox::Inbox::postgres("postgres://localhost/hooks").connect()?;
    /// # drop(inbox);
    /// # Ok::<(), webhook_inbox::OpenError>(())
    /// ```
    pub fn connect(self) -> Result<Inbox, OpenError> {
        let settings = Settings {
            url: self.url,
            schema: self.schema,
            pool_size: self.pool_size,
            listen: self.listen,
            migrate: self.migrate,
            retention: self.retention,
            max_pending: self.max_pending,
            clock: Arc::clone(&self.clock),
        };
        let Connected { backend, label } = crate::store::postgres::connect(settings)?;
        Ok(Inbox::memory_builder()
            .clock_arc(self.clock)
            .retention(self.retention)
            .with_labelled_backend(label, std::path::PathBuf::new(), Box::new(backend)))
    }
}

impl Inbox {
    /// Connects to the inbox in PostgreSQL at `url` (`postgres://user:password@host/db`)
    /// with the defaults: schema [`DEFAULT_SCHEMA`], migrated on connect, 7-day
    /// dedup retention. Several processes may connect to one database.
    ///
    /// ```no_run
    /// use webhook_inbox::Inbox;
    ///
    /// let inbox = Inbox::connect("postgres://hooks@localhost/hooks")?;
    /// # drop(inbox);
    /// # Ok::<(), webhook_inbox::OpenError>(())
    /// ```
    pub fn connect(url: &str) -> Result<Self, OpenError> {
        Self::postgres(url).connect()
    }

    /// A builder to connect to PostgreSQL at `url` with other settings.
    ///
    /// ```
    /// let builder = webhook_inbox::Inbox::postgres("postgres://localhost/hooks").pool_size(2);
    /// # let _ = builder;
    /// ```
    pub fn postgres(url: &str) -> PostgresBuilder {
        PostgresBuilder {
            url: url.to_owned(),
            schema: DEFAULT_SCHEMA.to_owned(),
            pool_size: DEFAULT_POOL_SIZE,
            listen: true,
            migrate: true,
            retention: DEFAULT_RETENTION,
            max_pending: DEFAULT_MAX_PENDING,
            clock: Arc::new(SystemClock),
        }
    }
}
