//! Persistence behind one narrow seam. The ingestor (and the worker) see only
//! [`Store`]; the embedded sled store implements it, and a shared backend can
//! implement it later without touching them.

pub(crate) mod record;
pub(crate) mod sled_store;
pub(crate) mod wal;

use std::time::{Duration, SystemTime};

/// When `ingest` may return `Accepted`.
///
/// ```
/// use std::time::Duration;
/// use webhook_inbox::Durability;
///
/// assert_eq!(Durability::default(), Durability::Fsync);
/// let relaxed = Durability::Buffered(Duration::from_millis(50));
/// # let _ = relaxed;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// Only after the event is on disk and `fdatasync` has returned: an
    /// acknowledged event survives `kill -9` and power loss. Concurrent callers
    /// share one write and one `fdatasync` (group commit). The default.
    #[default]
    Fsync,
    /// As soon as the event is in memory; a background thread writes and syncs
    /// every interval (at most every 100 ms). **A crash can lose the last
    /// interval of acknowledged events** — the sender will not retry them. A
    /// failed write is retried at the next interval; a failed sync poisons the
    /// store (what it had acknowledged since the last sync may be lost). Use
    /// only where that is acceptable.
    Buffered(Duration),
}

/// A verified event, ready to be stored.
#[derive(Debug, Clone)]
pub(crate) struct NewEvent<'a> {
    pub(crate) source: &'a str,
    pub(crate) id: &'a str,
    pub(crate) event_type: &'a str,
    pub(crate) received_at: SystemTime,
    pub(crate) headers: Vec<(&'a str, std::borrow::Cow<'a, str>)>,
    pub(crate) body: &'a [u8],
}

/// What an insert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Insert {
    /// Stored for the first time, under this sequence number.
    Accepted { seq: u64 },
    /// Already stored (under this sequence number); nothing was written.
    Duplicate { seq: u64 },
    /// Not stored: the bound on pending events is reached.
    Overloaded { pending: u64, limit: u64 },
}

/// Counts the store keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StoreCounts {
    pub(crate) pending: u64,
    pub(crate) dead: u64,
    pub(crate) markers: u64,
}

/// A storage failure. Ingest maps it to 503 so the sender retries later.
///
/// ```
/// use webhook_inbox::StoreError;
///
/// let e = StoreError::Closed;
/// assert_eq!(e.to_string(), "the store is closed");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Reading or writing the store's files failed (for example, the disk is full).
    #[error("storage I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// A sync to disk failed earlier; what reached the disk is unknown, so the
    /// store refuses further writes until it is reopened (and recovers from its log).
    #[error("the store failed to sync to disk and must be reopened: {0}")]
    Poisoned(String),
    /// Stored data could not be read back.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The store has been shut down.
    #[error("the store is closed")]
    Closed,
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        match e {
            sled::Error::Io(io) => Self::Io(io),
            other => Self::Corrupt(other.to_string()),
        }
    }
}

/// The persistence seam.
pub(crate) trait Store: Send + Sync {
    /// Inserts `event` unless its (source, id) is already stored, atomically;
    /// returns once the insert is as durable as the store's [`Durability`] says.
    /// A duplicate of an event that is not yet durable waits for it too.
    fn insert(&self, event: NewEvent<'_>) -> Result<Insert, StoreError>;

    /// Pending, dead and dedup-marker counts.
    fn counts(&self) -> StoreCounts;

    /// Removes dedup markers accepted before `now - retention`, in small steps;
    /// returns how many were removed.
    fn collect_expired(&self, now: SystemTime) -> Result<usize, StoreError>;

    /// Bytes the store occupies on disk.
    fn disk_bytes(&self) -> u64;

    /// Makes everything durable and stops; later calls answer [`StoreError::Closed`].
    fn close(&self) -> Result<(), StoreError>;
}
