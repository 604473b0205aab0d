//! The inbox: one embedded store on disk, shared by every ingestor (and the worker).

mod instruments;
mod open;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub(crate) use self::instruments::{HandlerOutcome, Instruments};
pub use self::open::{
    DEFAULT_CACHE_BYTES, DEFAULT_MAX_PENDING, DEFAULT_RETENTION, InboxBuilder, OpenError,
};
use crate::clock::Clock;
use crate::stats::{Counters, FsyncStats, Rejections, Stats};
use crate::store::StoreError;
use crate::store::backend::Backend;

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
    /// What the store is, for operators: its directory, `memory`, or a
    /// database URL without its password, and the schema.
    pub(crate) label: String,
    pub(crate) store: Box<dyn Backend>,
    pub(crate) counters: Counters,
    pub(crate) clock: Arc<dyn Clock>,
    /// How long dedup markers are kept; ingestors check it covers their replay window.
    pub(crate) retention: Duration,
    /// Metrics hooks, installed at most once (by the admin layer); shared
    /// with the worker's handler threads, which must not hold the inbox.
    pub(crate) instruments: Arc<std::sync::OnceLock<Arc<dyn Instruments>>>,
}

impl Drop for InboxInner {
    fn drop(&mut self) {
        let _ = self.store.close();
    }
}

impl Inbox {
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
            .field("store", &self.inner.label)
            .finish_non_exhaustive()
    }
}
