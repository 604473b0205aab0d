//! The storage seam every backend implements: insert-if-absent, claims with
//! leases and fencing tokens, outcomes in batches, the operator calls, upkeep.
//!
//! Nothing here names a log position, a file or a sled type: the embedded
//! store, the in-memory store and a shared database all fit behind it, and
//! the conformance suite (`store::conformance`) is its contract.

use std::time::SystemTime;

use crossbeam_channel::Receiver;

use super::latency::LatencySummary;
use super::{Insert, NewEvent, Progress, Standing, StoreCounts, StoreError, Stored};

/// A claim's fencing token: the outcome of a claimed event is recorded only
/// with the token of its current claim.
pub(crate) type Token = u64;

/// "Give this worker up to `limit` due events, leased until `lease_until_ms`."
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClaimRequest<'a> {
    /// At most this many events.
    pub(crate) limit: usize,
    /// Now, by the inbox's clock (ms since the epoch): retries due at or
    /// before it are due; leases that ended before it have expired.
    pub(crate) now_ms: i64,
    /// When the leases of the events handed out end, unless extended.
    pub(crate) lease_until_ms: i64,
    /// The JSON pointer of the ordering key, if events are ordered per key:
    /// an event whose key has an earlier unfinished event is not claimable.
    pub(crate) ordering: Option<&'a str>,
}

/// One claimed event and the token its outcome must carry.
#[derive(Debug, Clone)]
pub(crate) struct Claimed {
    pub(crate) stored: Stored,
    pub(crate) token: Token,
}

/// What to record for a claimed event.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    /// Done with it (handled, or skipped): the body and progress go, the
    /// dedup marker stays. Ends the claim.
    Forget,
    /// Its new progress: retrying at `next_at_ms`, or dead (`dead_at_ms`).
    /// Ends the claim.
    Progress(Progress),
    /// The attempt is starting: its progress is recorded now (so a crash
    /// mid-handler still counts the attempt); the claim goes on.
    Attempt(Progress),
    /// Left as it is, not offered to this claim's holder again: the claim
    /// goes on (the holder keeps it alive, and releases it when it stops),
    /// but it no longer holds back its ordering key.
    Keep,
    /// Not run: given back as it was, claimable again at once.
    Release,
}

/// An outcome for the event `seq` claimed under `token`.
#[derive(Debug, Clone)]
pub(crate) struct Finish {
    pub(crate) seq: u64,
    pub(crate) token: Token,
    pub(crate) outcome: Outcome,
}

/// Which events an operator call looks at.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter {
    pub(crate) standing: Option<Standing>,
    pub(crate) source: Option<String>,
    /// An event type pattern (`order.*`).
    pub(crate) event_type: Option<String>,
    /// Received at or after (ms since the epoch).
    pub(crate) since_ms: Option<i64>,
    /// Received before (ms since the epoch).
    pub(crate) until_ms: Option<i64>,
}

impl Filter {
    /// Whether `stored` passes.
    pub(crate) fn matches(&self, stored: &Stored) -> bool {
        let e = &stored.event;
        self.standing.is_none_or(|s| s == stored.standing())
            && self.source.as_deref().is_none_or(|s| s == e.source)
            && self
                .event_type
                .as_deref()
                .is_none_or(|p| crate::pattern::matches(p, &e.event_type))
            && self.since_ms.is_none_or(|t| e.received_at_ms >= t)
            && self.until_ms.is_none_or(|t| e.received_at_ms < t)
    }
}

/// An operator's change to dead letters.
#[derive(Debug, Clone, Copy)]
pub(crate) enum DeadChange {
    /// Due now, attempts counted afresh, history kept.
    Replay { now_ms: i64 },
    /// Deleted for good (markers stay), if dead at or before `dead_before_ms`.
    Purge { dead_before_ms: i64 },
}

/// Which dead letters an operator change applies to.
#[derive(Debug, Clone)]
pub(crate) enum DeadSelection<'a> {
    /// The dead letters with this event id (any source, or one source).
    Id {
        source: Option<&'a str>,
        id: &'a str,
    },
    /// Those passing `filter`, after seq `after`, at most `limit`.
    Matching {
        filter: &'a Filter,
        after: u64,
        limit: usize,
    },
}

/// One page of events: the events, and where the next page starts.
#[derive(Debug, Clone, Default)]
pub(crate) struct Listing {
    pub(crate) events: Vec<Stored>,
    pub(crate) next: Option<u64>,
}

impl Listing {
    /// Up to `limit` events passing `filter` after seq `after`, read in
    /// steps of `step` by `fetch(cursor)` (events after `cursor` in seq
    /// order; a short step means the end): how every backend pages.
    pub(crate) fn collect(
        filter: &Filter,
        after: u64,
        limit: usize,
        step: usize,
        mut fetch: impl FnMut(u64) -> Result<Vec<Stored>, StoreError>,
    ) -> Result<Self, StoreError> {
        let mut cursor = after;
        let mut events = Vec::new();
        if limit == 0 {
            return Ok(Self {
                events,
                next: Some(after),
            });
        }
        loop {
            let batch = fetch(cursor)?;
            let exhausted = batch.len() < step;
            for stored in batch {
                cursor = stored.seq;
                if filter.matches(&stored) {
                    events.push(stored);
                    if events.len() == limit {
                        return Ok(Self {
                            events,
                            next: Some(cursor),
                        });
                    }
                }
            }
            if exhausted {
                return Ok(Self { events, next: None });
            }
        }
    }
}

/// What a dead-letter change did: how many, and whether more may match.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Changed {
    pub(crate) done: usize,
    pub(crate) more: bool,
}

impl Changed {
    /// Changes the dead letters passing `filter` after seq `after`, at most
    /// `limit`, a step at a time: `fetch(cursor)` reads the dead letters after
    /// `cursor` (a step shorter than `step` is the last), `change` gives one
    /// its change (if any), `record` writes a step's changes (one write) and
    /// answers how many it made. How every backend pages a dead-letter change.
    pub(crate) fn page_through<C>(
        filter: &Filter,
        after: u64,
        limit: usize,
        step: usize,
        mut fetch: impl FnMut(u64) -> Result<Vec<Stored>, StoreError>,
        change: impl Fn(Stored) -> Option<C>,
        mut record: impl FnMut(&[C]) -> Result<usize, StoreError>,
    ) -> Result<Self, StoreError> {
        let mut cursor = after;
        let mut done = 0;
        loop {
            let batch = fetch(cursor)?;
            let exhausted = batch.len() < step;
            let mut changes = Vec::new();
            let mut full = false;
            for stored in batch {
                if done + changes.len() >= limit {
                    full = true;
                    break;
                }
                cursor = stored.seq;
                if filter.matches(&stored) {
                    changes.extend(change(stored));
                }
            }
            done += record(&changes)?;
            if full || exhausted {
                return Ok(Self { done, more: full });
            }
        }
    }
}

/// What a backend measures that another may not.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct BackendStats {
    /// The log's `fdatasync` calls, for a backend with a log of its own.
    pub(crate) fsync: Option<LatencySummary>,
    /// Bytes on disk, for a backend that knows them.
    pub(crate) disk_bytes: Option<u64>,
}

/// The persistence seam.
pub(crate) trait Backend: Send + Sync {
    /// Inserts `event` unless its (source, id) is already stored, atomically;
    /// returns once the insert is as durable as the backend promises. A
    /// duplicate of an insert still in flight waits for it.
    fn insert(&self, event: NewEvent<'_>) -> Result<Insert, StoreError>;

    /// Up to `request.limit` due events (fresh ones in acceptance order,
    /// retries due by `now_ms`), each leased to the caller until
    /// `lease_until_ms` under a new token. A leased event is handed to
    /// nobody else until its lease ends or its claim is finished.
    fn claim(&self, request: &ClaimRequest<'_>) -> Result<Vec<Claimed>, StoreError>;

    /// Extends the leases of `claims` (seq, token) to `until_ms`; answers,
    /// for each, whether the claim is still held (false: it expired and may
    /// have gone to someone else — its outcome will be refused).
    fn heartbeat(&self, claims: &[(u64, Token)], until_ms: i64) -> Result<Vec<bool>, StoreError>;

    /// Records `outcomes` (one write for the batch); answers, for each,
    /// whether it was recorded (false: its token is no longer the event's
    /// claim, and nothing was written for it).
    fn finish(&self, outcomes: &[Finish]) -> Result<Vec<bool>, StoreError>;

    /// When the next retry is due (ms since the epoch), for the worker's nap.
    fn next_due(&self) -> Result<Option<i64>, StoreError>;

    /// A channel that gets a message when new events or changes may have
    /// become claimable: a hint (a worker still polls), one per subscriber.
    fn subscribe(&self) -> Receiver<()>;

    /// How often a worker looks for work when no wake-up came: a shared
    /// database, whose wake-ups from other processes are hints, is polled
    /// less often than a store this process owns.
    fn idle_poll(&self) -> std::time::Duration {
        std::time::Duration::from_millis(100)
    }

    /// Events passing `filter` after seq `after`, in acceptance order, at
    /// most `limit`.
    fn list(&self, filter: &Filter, after: u64, limit: usize) -> Result<Listing, StoreError>;

    /// The latest stored event with `id` (from `source`, or any source).
    fn event(&self, source: Option<&str>, id: &str) -> Result<Option<Stored>, StoreError>;

    /// Replays or purges the dead letters `which` selects.
    fn change_dead(
        &self,
        which: &DeadSelection<'_>,
        change: DeadChange,
    ) -> Result<Changed, StoreError>;

    /// Pending, retrying, dead and dedup-marker counts (kept, not scanned).
    fn counts(&self) -> StoreCounts;

    /// When the oldest event still waiting for its handler was received.
    fn oldest_pending(&self) -> Result<Option<SystemTime>, StoreError>;

    /// Removes dedup markers accepted before `now - retention`, in small
    /// steps; returns how many were removed.
    fn collect_expired(&self, now: SystemTime) -> Result<usize, StoreError>;

    /// What this backend measures beyond the counts.
    fn stats(&self) -> BackendStats;

    /// Makes everything durable and stops; later calls answer [`StoreError::Closed`].
    fn close(&self) -> Result<(), StoreError>;
}
