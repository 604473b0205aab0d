//! What an inbox counts: the [`Stats`] snapshot [`Inbox::stats`](crate::Inbox::stats)
//! returns, and the live [`Counters`] every ingestor bumps.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// A snapshot of an inbox's counters; see [`Inbox::stats`](crate::Inbox::stats).
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
    pub(crate) received: AtomicU64,
    pub(crate) accepted: AtomicU64,
    pub(crate) duplicates: AtomicU64,
    pub(crate) missing_header: AtomicU64,
    pub(crate) malformed_header: AtomicU64,
    pub(crate) bad_signature: AtomicU64,
    pub(crate) stale_timestamp: AtomicU64,
    pub(crate) malformed_event: AtomicU64,
    pub(crate) too_large: AtomicU64,
    pub(crate) overloaded: AtomicU64,
    pub(crate) storage: AtomicU64,
}
