//! The embedded store: our log is the record, sled an index rebuilt from it.
//!
//! # Commit protocol
//!
//! 1. `insert`: look the dedup key up in sled (outside the lock: sled holds
//!    only durable events), then under one mutex among the records not yet
//!    applied to sled (the in-flight map), looking in sled again if something
//!    was applied in between; if absent, assign the next LSN, append the
//!    record's frame to the log buffer and note the key in flight. This is the
//!    atomic insert-if-absent.
//! 2. The caller waits for its LSN to be durable. The first waiter finding no
//!    flush under way becomes the leader: it takes the whole buffer, writes it
//!    with one `write` and one `fdatasync`, marks everything up to the buffer's
//!    last LSN durable and wakes every waiter (group commit: no sleeps, no
//!    polling). Those that arrived during the flush form the next batch.
//! 3. Only then is the batch handed to the applier thread, which writes each
//!    event to sled (the event, then its dedup marker), one retention entry per
//!    batch, and removes the batch's keys from the in-flight map.
//!
//! sled 0.34 is not trusted with anything after a crash: measured with a
//! power-cut file system it loses what it had synced and can fail to open. So
//! the log keeps every live event and outcome for good (old segments are
//! compacted, see [`compact`], never dropped because sled synced), and
//! sled is trusted on open only after a clean close (the `clean` file, written
//! last, durably, and removed durably before sled is written again).
//! Otherwise — a crash, a power cut, or sled failing or panicking on open —
//! sled is deleted and rebuilt from the log.

mod clean;
mod commit;
mod compact;
mod migrate;
mod open;
mod trees;
mod upkeep;
mod wal;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use crossbeam_channel::{Receiver, Sender};

use self::clean::{SavedCounts, sync_tree, write_clean};
use self::commit::Core;
use self::trees::{Applied, Index, seq_of};
use self::upkeep::GC_STEP;
use self::wal::WalWriter;
use super::backend::BackendStats;
use super::latency::Latencies;
use super::local::Tables;
use super::record::{self, EventRecordRef};
use super::{Change, Durability, Insert, NewEvent, Standing, StoreCounts, StoreError, Stored};
use crate::clock::{Clock, unix_millis};
use crate::sync::lock;

pub(crate) use self::open::OpenFailure;

/// A sled failure as the store reports it: an I/O error as such, anything
/// else as corruption. (A function, not a `From` impl: sled stays out of
/// [`StoreError`]'s public impls.)
fn store_error(e: sled::Error) -> StoreError {
    match e {
        sled::Error::Io(io) => StoreError::Io(io),
        other => StoreError::Corrupt(other.to_string()),
    }
}

/// Settings of a sled store.
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) durability: Durability,
    pub(crate) retention: Duration,
    pub(crate) cache_bytes: u64,
    pub(crate) max_pending: u64,
    pub(crate) clock: Arc<dyn Clock>,
}

/// The embedded store. Dropping it shuts it down cleanly.
pub(crate) struct SledStore {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// The store's state, shared by its handle and its threads.
struct Shared {
    path: PathBuf,
    /// Holds the store's lock (`flock` on `.lock`) for as long as it is open.
    _lock: File,
    /// Taken while an outcome is given its LSN, and by the compactor while it
    /// reads the state it carries forward: no carried state is older than a
    /// change logged before it.
    changes: Mutex<()>,
    /// Read handles on log segments, by first LSN, for reading events.
    files: Mutex<HashMap<u64, Arc<File>>>,
    /// sled and its trees; swapped for a rebuilt one when sled fails for
    /// good (`None` while that happens).
    index: std::sync::RwLock<Option<Arc<Index>>>,
    core: Mutex<Core>,
    /// Waiters by the parity of the flush that makes them durable.
    durable: [Condvar; 2],
    wal: Mutex<WalWriter>,
    settings: Settings,
    pending: AtomicU64,
    retrying: AtomicU64,
    dead: AtomicU64,
    markers: AtomicU64,
    fsync: Latencies,
    applied_lsn: AtomicU64,
    to_applier: Sender<Option<Vec<Applied>>>,
    /// Told after each applied batch (the worker's wake-up).
    subscriber: Mutex<Option<Sender<()>>>,
    stop: AtomicBool,
    /// Test seam: the applier treats the next batch as refused by sled.
    #[cfg(test)]
    fail_next_apply: std::sync::atomic::AtomicU32,
    /// Test seam: the next log write fails as if the disk were full.
    #[cfg(test)]
    fail_next_write: AtomicBool,
}

impl Drop for SledStore {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

impl Tables for SledStore {
    fn stats(&self) -> BackendStats {
        let sled_bytes = self
            .shared
            .index()
            .map_or(0, |index| index.db.size_on_disk().unwrap_or(0));
        BackendStats {
            fsync: Some(self.shared.fsync.summary()),
            disk_bytes: Some(sled_bytes + lock(&self.shared.wal).disk_bytes()),
        }
    }

    fn oldest_pending(&self) -> Result<Option<SystemTime>, StoreError> {
        self.shared.open()?;
        let index = self.shared.index()?;
        let trees = &index.trees;
        // Events are kept in acceptance order; the first one that is not a
        // dead letter is the oldest pending. Both trees are keyed by seq, so
        // they are walked side by side (past the dead letters older than it:
        // purging them keeps `stats()` quick).
        let mut dead = trees.dead.iter().keys().peekable();
        for item in trees.events.iter() {
            let (key, value) = item.map_err(store_error)?;
            let mut is_dead = false;
            while let Some(next) = dead.peek() {
                match next {
                    Ok(d) if d.as_ref() < key.as_ref() => {
                        dead.next();
                    }
                    Ok(d) => {
                        is_dead = d.as_ref() == key.as_ref();
                        break;
                    }
                    Err(_) => {
                        if let Some(Err(e)) = dead.next() {
                            return Err(store_error(e));
                        }
                    }
                }
            }
            if is_dead {
                continue;
            }
            let seq = seq_of(&key)?;
            if let Some(event) = self.shared.load_event(trees, seq, &value)? {
                return Ok(Some(crate::clock::from_unix_millis(event.received_at_ms)));
            }
        }
        Ok(None)
    }

    fn close(&self) -> Result<(), StoreError> {
        let shared = &self.shared;
        if shared.stop.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        // Flush whatever a buffered store still holds, then refuse new work.
        let last = {
            let mut core = lock(&shared.core);
            core.closed = true;
            core.next_lsn - 1
        };
        let flushed = shared.wait_durable(last);
        let _ = shared.to_applier.send(None);
        for handle in lock(&self.threads).drain(..) {
            let _ = handle.join();
        }
        flushed?;
        let core = lock(&shared.core);
        if let Some(reason) = core.degraded.clone() {
            // No clean file: the next open rebuilds sled from the log.
            return Err(StoreError::Io(std::io::Error::other(reason)));
        }
        drop(core);
        let applied = shared.applied_lsn.load(Ordering::SeqCst);
        if applied != lock(&shared.wal).last_lsn() {
            return Ok(());
        }
        // sled is complete up to the log's end: make every file of it durable,
        // then say so with the clean file, which the next open trusts.
        let index = shared.index()?;
        index
            .trees
            .meta
            .insert(b"applied_lsn", &applied.to_be_bytes())
            .map_err(store_error)?;
        index.db.flush().map_err(store_error)?;
        sync_tree(&shared.path.join("sled"))?;
        write_clean(
            &shared.path,
            SavedCounts {
                lsn: applied,
                counts: self.counts(),
            },
        )?;
        Ok(())
    }

    fn insert(&self, event: NewEvent<'_>) -> Result<Insert, StoreError> {
        let shared = &self.shared;
        let received_ms = unix_millis(event.received_at);
        let key = record::dedup_key(event.source, event.id);

        // The sled lookup happens outside the lock (sled holds only durable
        // events). An event applied between this lookup and the in-flight check
        // below moves `applied_lsn`, which triggers a second lookup under the lock.
        let applied_before = shared.applied_lsn.load(Ordering::SeqCst);
        if let Some(seq) = shared.stored_seq(&key)? {
            return Ok(Insert::Duplicate { seq });
        }
        // Encoded only now: a duplicate already in sled costs no encoding.
        let payload = record::accept_payload(&EventRecordRef {
            source: event.source,
            id: event.id,
            event_type: event.event_type,
            received_at_ms: received_ms,
            headers: &event.headers,
            body: event.body,
        });
        let crc = wal::payload_crc(&payload);
        let mut core = lock(&shared.core);
        if core.closed {
            return Err(StoreError::Closed);
        }
        if let Some(reason) = &core.degraded {
            return Err(StoreError::Io(std::io::Error::other(reason.clone())));
        }
        if let Some(&seq) = core.in_flight.get(&key) {
            drop(core);
            // Acknowledge a duplicate only once the original is durable.
            shared.wait_durable(seq)?;
            return Ok(Insert::Duplicate { seq });
        }
        if shared.applied_lsn.load(Ordering::SeqCst) != applied_before
            && let Some(seq) = shared.stored_seq(&key)?
        {
            return Ok(Insert::Duplicate { seq });
        }
        let pending = shared.pending.load(Ordering::SeqCst);
        if pending >= shared.settings.max_pending {
            return Ok(Insert::Overloaded {
                pending,
                limit: shared.settings.max_pending,
            });
        }
        let lsn = core.next_lsn;
        core.next_lsn += 1;
        wal::encode_frame(&mut core.buffer, lsn, &payload, &crc);
        core.in_flight.insert(key.clone(), lsn);
        core.batch.push(Applied {
            lsn,
            key,
            received_ms,
            payload,
            at: None,
        });
        shared.pending.fetch_add(1, Ordering::SeqCst);
        drop(core);

        if shared.settings.durability == Durability::Fsync {
            shared.wait_durable(lsn)?;
        }
        Ok(Insert::Accepted { seq: lsn })
    }

    fn counts(&self) -> StoreCounts {
        let get = |a: &AtomicU64| a.load(Ordering::SeqCst);
        StoreCounts {
            pending: get(&self.shared.pending),
            retrying: get(&self.shared.retrying),
            dead: get(&self.shared.dead),
            markers: get(&self.shared.markers),
        }
    }

    fn collect_expired(&self, now: SystemTime) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            let (batches, removed) = self.shared.collect_step(now)?;
            total += removed;
            if batches < GC_STEP {
                return Ok(total);
            }
        }
    }

    fn record(&self, changes: &[Change]) -> Result<u64, StoreError> {
        let shared = &self.shared;
        if changes.is_empty() {
            return Ok(0);
        }
        let payloads: Vec<(Vec<u8>, crc32fast::Hasher)> = changes
            .iter()
            .map(|change| {
                let payload = match change {
                    Change::Forget { seq, .. } => record::forget_payload(*seq),
                    Change::Progress { seq, progress, .. } => {
                        record::progress_payload(*seq, progress)
                    }
                };
                let crc = wal::payload_crc(&payload);
                (payload, crc)
            })
            .collect();
        let changing = lock(&shared.changes);
        let mut core = lock(&shared.core);
        if core.closed {
            return Err(StoreError::Closed);
        }
        let mut last = core.next_lsn - 1;
        for (payload, crc) in payloads {
            last = core.next_lsn;
            core.next_lsn += 1;
            wal::encode_frame(&mut core.buffer, last, &payload, &crc);
            core.batch.push(Applied::change(last, payload));
        }
        drop(core);
        drop(changing);
        if shared.settings.durability == Durability::Fsync {
            shared.wait_durable(last)?;
        }
        for change in changes {
            let (was, now) = match change {
                Change::Forget { was, .. } => (*was, None),
                Change::Progress { was, progress, .. } => {
                    (*was, Some(Standing::of(Some(progress))))
                }
            };
            shared.count(was, -1);
            if let Some(now) = now {
                shared.count(now, 1);
            }
        }
        Ok(last)
    }

    fn applied_lsn(&self) -> u64 {
        self.shared.applied_lsn.load(Ordering::SeqCst)
    }

    fn sync_applied(&self) -> Result<(), StoreError> {
        self.shared.sync_applied()
    }

    fn subscribe(&self) -> Receiver<()> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        *lock(&self.shared.subscriber) = Some(tx);
        rx
    }

    fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Stored>, StoreError> {
        self.shared.open()?;
        let index = self.shared.index()?;
        let trees = &index.trees;
        let mut out = Vec::new();
        let Some(from) = after.checked_add(1) else {
            return Ok(out);
        };
        for item in trees.events.range(from.to_be_bytes()..).take(limit) {
            let (key, value) = item.map_err(store_error)?;
            let seq = seq_of(&key)?;
            if let Some(event) = self.shared.load_event(trees, seq, &value)? {
                out.push(Stored {
                    seq,
                    event,
                    progress: self.shared.progress_of(seq)?,
                });
            }
        }
        Ok(out)
    }

    fn due(
        &self,
        until_ms: i64,
        limit: usize,
        skip: &dyn Fn(u64) -> bool,
    ) -> Result<Vec<Stored>, StoreError> {
        let mut out = Vec::new();
        for item in self
            .shared
            .index()?
            .trees
            .due
            .range(..=record::due_key(until_ms, u64::MAX))
        {
            if out.len() >= limit {
                break;
            }
            let (key, _) = item.map_err(store_error)?;
            let (Some(seq), Some(at)) = (record::due_seq(&key), record::due_at(&key)) else {
                continue;
            };
            if skip(seq) {
                continue;
            }
            // The applier may be moving this event's entry right now: take it
            // only when the progress agrees with the index.
            if let Some(stored) = self.get(seq)?
                && stored
                    .progress
                    .as_ref()
                    .is_some_and(|p| p.dead_at_ms.is_none() && p.next_at_ms == at)
            {
                out.push(stored);
            }
        }
        Ok(out)
    }

    fn next_due(&self, skip: &dyn Fn(u64) -> bool) -> Result<Option<i64>, StoreError> {
        for item in self.shared.index()?.trees.due.iter() {
            let (key, _) = item.map_err(store_error)?;
            if let (Some(seq), Some(at)) = (record::due_seq(&key), record::due_at(&key))
                && !skip(seq)
            {
                return Ok(Some(at));
            }
        }
        Ok(None)
    }

    fn dead_after(&self, after: u64, limit: usize) -> Result<Vec<Stored>, StoreError> {
        let mut out = Vec::new();
        let Some(from) = after.checked_add(1) else {
            return Ok(out);
        };
        for item in self.shared.index()?.trees.dead.range(from.to_be_bytes()..) {
            if out.len() >= limit {
                break;
            }
            let (key, _) = item.map_err(store_error)?;
            if let Some(stored) = self.get(seq_of(&key)?)?
                && stored.standing() == Standing::Dead
            {
                out.push(stored);
            }
        }
        Ok(out)
    }

    fn get(&self, seq: u64) -> Result<Option<Stored>, StoreError> {
        let index = self.shared.index()?;
        let Some(value) = index
            .trees
            .events
            .get(seq.to_be_bytes())
            .map_err(store_error)?
        else {
            return Ok(None);
        };
        let Some(event) = self.shared.load_event(&index.trees, seq, &value)? else {
            return Ok(None);
        };
        Ok(Some(Stored {
            seq,
            event,
            progress: self.shared.progress_of(seq)?,
        }))
    }

    fn find(&self, id: &str) -> Result<Vec<u64>, StoreError> {
        // Dedup keys are `source NUL id`: visit each source once, jumping
        // past it, and look the id up under it.
        let dedup = &self.shared.index()?.trees.dedup;
        let mut seqs = Vec::new();
        let mut from: Vec<u8> = Vec::new();
        while let Some(item) = dedup.range(from.as_slice()..).next() {
            let (key, _) = item.map_err(store_error)?;
            let source = key.split(|&b| b == 0).next().unwrap_or_default();
            let mut wanted = source.to_vec();
            wanted.push(0);
            wanted.extend_from_slice(id.as_bytes());
            if let Some(value) = dedup.get(&wanted).map_err(store_error)? {
                seqs.extend(record::dedup_seq(&value));
            }
            from = source.to_vec();
            from.push(1);
        }
        Ok(seqs)
    }
}
