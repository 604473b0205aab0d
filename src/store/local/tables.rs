//! What an in-process store provides beneath the claims: ordered tables of
//! events, progress and markers, with changes logged in order.

use std::time::SystemTime;

use crossbeam_channel::Receiver;

use super::super::{Change, Insert, NewEvent, StoreCounts, StoreError, Stored};
use crate::store::backend::BackendStats;

/// The tables of a store that one process owns (the embedded sled store, the
/// in-memory store). [`super::Local`] builds the claims on top.
pub(crate) trait Tables: Send + Sync + 'static {
    /// Inserts `event` unless its (source, id) is already stored, atomically;
    /// returns once the insert is as durable as the store promises. A
    /// duplicate of an event that is not yet durable waits for it too.
    fn insert(&self, event: NewEvent<'_>) -> Result<Insert, StoreError>;

    /// Pending, dead and dedup-marker counts.
    fn counts(&self) -> StoreCounts;

    /// Removes dedup markers accepted before `now - retention`, in small steps;
    /// returns how many were removed.
    fn collect_expired(&self, now: SystemTime) -> Result<usize, StoreError>;

    /// What the store measures beyond the counts.
    fn stats(&self) -> BackendStats;

    /// When the oldest event still waiting for its handler (fresh or
    /// retrying; dead letters not) was received.
    fn oldest_pending(&self) -> Result<Option<SystemTime>, StoreError>;

    /// Makes everything durable and stops; later calls answer [`StoreError::Closed`].
    fn close(&self) -> Result<(), StoreError>;

    /// Logs `changes` in order; returns once they are as durable as the
    /// store promises, with the position of the last one. Readers see
    /// them once [`Tables::applied_lsn`] has reached it.
    fn record(&self, changes: &[Change]) -> Result<u64, StoreError>;

    /// The last position whose change the readers below see.
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
}
