//! Persistence behind one narrow seam. The ingestor (and the worker) see only
//! [`Store`]; the embedded sled store implements it, and a shared backend can
//! implement it later without touching them.

pub(crate) mod latency;
pub(crate) mod record;
pub(crate) mod sled;

use std::time::{Duration, SystemTime};

use crossbeam_channel::Receiver;

/// The sled backend under the name its callers import it by.
pub(crate) use self::sled as sled_store;
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
    Io(#[from] std::io::Error),
    /// Stored data could not be read back.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The store has been shut down.
    #[error("the store is closed")]
    Closed,
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

    /// How long the log's `fdatasync` calls took since the store was opened.
    fn fsync_latency(&self) -> latency::LatencySummary;

    /// When the oldest event still waiting for its handler (fresh or
    /// retrying; dead letters not) was received.
    fn oldest_pending(&self) -> Result<Option<SystemTime>, StoreError>;

    /// Makes everything durable and stops; later calls answer [`StoreError::Closed`].
    fn close(&self) -> Result<(), StoreError>;

    /// Logs `changes` in order; returns once they are as durable as the
    /// store's [`Durability`] says, with the LSN of the last one. Readers see
    /// them once [`Store::applied_lsn`] has reached it.
    fn record(&self, changes: &[Change]) -> Result<u64, StoreError>;

    /// The last LSN whose change the readers below see.
    fn applied_lsn(&self) -> u64;

    /// Waits until everything recorded so far is visible to the readers below.
    fn sync_applied(&self) -> Result<(), StoreError>;

    /// A channel that gets a message after each applied batch (new events,
    /// changes). One subscriber at a time: a new call replaces the last.
    fn subscribe(&self) -> Receiver<()>;

    /// Up to `limit` events after seq `after` in seq order, with their
    /// progress, whatever their standing.
    fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Stored>, StoreError>;

    /// Retrying events due at or before `until_ms`, by due time, skipping
    /// seqs for which `skip` is true; up to `limit`.
    fn due(
        &self,
        until_ms: i64,
        limit: usize,
        skip: &dyn Fn(u64) -> bool,
    ) -> Result<Vec<Stored>, StoreError>;

    /// The due time of the first retrying event `skip` does not exclude.
    fn next_due(&self, skip: &dyn Fn(u64) -> bool) -> Result<Option<i64>, StoreError>;

    /// Up to `limit` dead letters after seq `after`, in seq order.
    fn dead_after(&self, after: u64, limit: usize) -> Result<Vec<Stored>, StoreError>;

    /// The event stored under `seq`, if it is still stored.
    fn get(&self, seq: u64) -> Result<Option<Stored>, StoreError>;

    /// The seqs under which event id `id` was accepted, from any source.
    fn find(&self, id: &str) -> Result<Vec<u64>, StoreError>;

    /// Takes the store's single worker slot; false if a worker holds it.
    fn claim_worker(&self) -> bool;

    /// Frees the worker slot.
    fn release_worker(&self);
}
