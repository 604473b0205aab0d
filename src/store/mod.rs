//! Persistence behind one seam, [`backend::Backend`]: the ingestor, the
//! worker and the operator calls see only it. The embedded sled store and the
//! in-memory store implement it through [`local::Local`] (claims kept in this
//! process, over tables it owns); a shared database implements it directly.
//! The store is the bottom floor: it imports nothing from ingest, the inbox or
//! the worker.

pub(crate) mod backend;
#[cfg(test)]
pub(crate) mod conformance;
#[cfg(test)]
pub(crate) mod faults;
pub(crate) mod latency;
pub(crate) mod lifecycle;
pub(crate) mod local;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
pub(crate) mod record;
pub(crate) mod sled;

use std::time::{Duration, SystemTime};

pub(crate) use record::{EventRecord, Progress};

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
    /// failed write or sync is retried at the next interval (what it had
    /// acknowledged since the last good sync may be lost if the machine dies
    /// meanwhile). Use only where that is acceptable.
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
    /// Accepted, not yet handled, not dead (retrying ones included).
    pub(crate) pending: u64,
    /// Pending events that failed at least once.
    pub(crate) retrying: u64,
    pub(crate) dead: u64,
    pub(crate) markers: u64,
}

/// Where a stored event stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Standing {
    /// Never attempted, or attempted without a recorded outcome.
    Fresh,
    /// Failed at least once; a next attempt is scheduled.
    Retrying,
    /// Parked in the dead letters.
    Dead,
}

impl Standing {
    /// The standing a progress record gives (none: fresh).
    pub(crate) fn of(progress: Option<&Progress>) -> Self {
        match progress {
            None => Self::Fresh,
            Some(p) if p.dead_at_ms.is_some() => Self::Dead,
            Some(_) => Self::Retrying,
        }
    }
}

/// A change to a stored event, logged and applied in order.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    /// Done with it (handled, or a dead letter purged): the event's body and
    /// progress go, its dedup marker stays.
    Forget { seq: u64, was: Standing },
    /// Its new progress: a failed attempt, a burial, a replay.
    Progress {
        seq: u64,
        was: Standing,
        progress: Progress,
    },
}

/// A stored event with its progress.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub(crate) seq: u64,
    pub(crate) event: EventRecord,
    pub(crate) progress: Option<Progress>,
}

impl Stored {
    pub(crate) fn standing(&self) -> Standing {
        Standing::of(self.progress.as_ref())
    }
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
    Io(std::io::Error),
    /// Stored data could not be read back.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The store has been shut down.
    #[error("the store is closed")]
    Closed,
    /// The database failed or could not be reached (PostgreSQL backend).
    #[error("the database failed: {0}")]
    Database(String),
}

// The cause is in the message, so it is not also given as `source()`:
// printed with its chain, an error says each cause once.
impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}
