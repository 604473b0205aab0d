//! The background thread: buffered syncs, sled's own flushes, log
//! compaction and the collection of expired dedup markers.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use super::compact::{self, Holds};
use super::trees::Applied;
use super::wal;
use super::{Shared, store_error};
use crate::clock::unix_millis;
use crate::store::record;
use crate::store::{Durability, StoreError};
use crate::sync::lock;

/// How often the background thread wakes (compaction, collection, buffered syncs).
const TICK: Duration = Duration::from_millis(100);
/// How often sled is asked to write out its own state. Not for durability
/// (the log is the record), only so sled's own log stays short.
const SLED_FLUSH_EVERY: Duration = Duration::from_secs(30);
/// How often the oldest sealed segment is looked at again when nothing new
/// was sealed.
const COMPACT_EVERY: Duration = Duration::from_secs(30);
/// Retention entries (one per applied batch) handled per collection step, so
/// collection never holds up ingest for long.
pub(super) const GC_STEP: usize = 64;

impl Shared {
    pub(super) fn background_loop(&self) {
        let mut since_flush = Duration::ZERO;
        let mut since_compact = Duration::ZERO;
        let mut sealed_seen = 0;
        let mut since_sync = Duration::ZERO;
        let tick = match self.settings.durability {
            Durability::Buffered(every) => TICK.min(every).max(Duration::from_millis(1)),
            Durability::Fsync => TICK,
        };
        while !self.stop.load(Ordering::SeqCst) {
            std::thread::sleep(tick);
            since_flush += tick;
            since_compact += tick;
            since_sync += tick;
            if let Durability::Buffered(every) = self.settings.durability
                && since_sync >= every
            {
                since_sync = Duration::ZERO;
                let core = lock(&self.core);
                if !core.flushing {
                    drop(self.lead_flush(core));
                }
            }
            if since_flush >= SLED_FLUSH_EVERY {
                since_flush = Duration::ZERO;
                if let Ok(index) = self.index() {
                    let _ = index.db.flush();
                }
            }
            // Look at the oldest sealed segment when a segment was sealed since
            // the last look, and every so often (the backlog may have drained).
            let sealed = lock(&self.wal).sealed_count();
            if sealed > 0 && (sealed > sealed_seen || since_compact >= COMPACT_EVERY) {
                since_compact = Duration::ZERO;
                // Several in a row while they are mostly garbage.
                while !self.stop.load(Ordering::SeqCst) {
                    if !matches!(self.compact(false), Ok(true)) {
                        break;
                    }
                }
            }
            sealed_seen = lock(&self.wal).sealed_count();
            let _ = self.collect_step(self.settings.clock.now());
        }
    }

    /// Retires the oldest sealed log segment if at most half of it is still
    /// needed (or whatever it holds when `force`): writes the current state of
    /// every event it holds forward into the active segment (see
    /// [`super::compact`]), waits until that is durable, then deletes it.
    /// Returns whether a segment was removed.
    pub(super) fn compact(&self, force: bool) -> Result<bool, StoreError> {
        let Some(path) = lock(&self.wal).oldest_sealed() else {
            return Ok(false);
        };
        let corrupt = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::InvalidData => StoreError::Corrupt(e.to_string()),
            _ => StoreError::Io(e),
        };
        let records = wal::read_sealed(&path).map_err(corrupt)?;
        let used: usize = records.iter().map(|r| r.payload.len() + 16).sum();
        let changing = lock(&self.changes);
        self.sync_applied()?;
        let index = self.index()?;
        let trees = &index.trees;
        let mut seen = HashSet::new();
        let mut carried: Vec<Vec<u8>> = Vec::new();
        for r in &records {
            let (seq, key, event) = match compact::holds(r).map_err(StoreError::Corrupt)? {
                Holds::Event { seq, key } => (seq, key, true),
                Holds::Marker { seq, key } => (seq, key.to_vec(), false),
                Holds::Change => continue,
            };
            if !seen.insert(seq) {
                continue;
            }
            let stored = if event {
                trees.events.get(seq.to_be_bytes()).map_err(store_error)?
            } else {
                None
            };
            if let Some(value) = stored {
                let progress = trees.progress.get(seq.to_be_bytes()).map_err(store_error)?;
                let event = self.event_value(&value)?;
                carried.push(compact::carry_payload(seq, &event, progress.as_deref()));
            } else if let Some(marker) = trees.dedup.get(&key).map_err(store_error)?
                && record::dedup_seq(&marker) == Some(seq)
            {
                let accepted_ms = marker
                    .get(8..16)
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map_or(0, record::from_ordered_i64);
                carried.push(compact::marker_payload(seq, accepted_ms, &key));
            }
        }
        let live: usize = carried.iter().map(|p| p.len() + 16).sum();
        if !force && live * 2 > used {
            return Ok(false);
        }
        let last = {
            let mut core = lock(&self.core);
            if core.closed {
                return Err(StoreError::Closed);
            }
            let mut last = core.next_lsn - 1;
            for payload in carried {
                last = core.next_lsn;
                core.next_lsn += 1;
                let crc = wal::payload_crc(&payload);
                wal::encode_frame(&mut core.buffer, last, &payload, &crc);
                core.batch.push(Applied::change(last, payload));
            }
            last
        };
        drop(changing);
        self.wait_durable(last)?;
        // Readers must find the events at their new places first.
        self.sync_applied()?;
        lock(&self.wal).remove_oldest(&path)?;
        if let Some(segment) = wal::first_lsn_of(&path) {
            lock(&self.files).remove(&segment);
        }
        Ok(true)
    }

    /// Removes the dedup markers of up to [`GC_STEP`] batches accepted before
    /// the retention; returns how many markers went. The marker of an event
    /// still stored (pending, retrying, dead) stays, and is looked at again
    /// one retention later: while the event is there it is still deduplicated,
    /// and findable by id.
    pub(super) fn collect_step(&self, now: SystemTime) -> Result<(usize, usize), StoreError> {
        let retention = i64::try_from(self.settings.retention.as_millis()).unwrap_or(i64::MAX);
        let now_ms = unix_millis(now);
        let cutoff = now_ms.saturating_sub(retention);
        let (mut batches, mut removed) = (0, 0);
        let upto = record::expiry_key(cutoff, 0);
        let index = self.index()?;
        let trees = &index.trees;
        for item in trees.expiry.range(..upto).take(GC_STEP) {
            batches += 1;
            let (key, keys) = item.map_err(store_error)?;
            let mut kept = Vec::new();
            for dedup_key in record::decode_keys(&keys).map_err(StoreError::Corrupt)? {
                let stored = match trees.dedup.get(&dedup_key).map_err(store_error)? {
                    Some(value) => record::dedup_seq(&value)
                        .map(|seq| trees.events.contains_key(seq.to_be_bytes()))
                        .transpose()
                        .map_err(store_error)?
                        .unwrap_or(false),
                    None => continue,
                };
                if stored {
                    kept.push(dedup_key);
                } else if trees
                    .dedup
                    .remove(dedup_key)
                    .map_err(store_error)?
                    .is_some()
                {
                    self.markers.fetch_sub(1, Ordering::SeqCst);
                    removed += 1;
                }
            }
            if let Some(first) = kept.first() {
                // Written before the old entry goes: a crash in between leaves
                // a harmless second entry, never a marker no entry points to.
                let seq = trees
                    .dedup
                    .get(first)
                    .map_err(store_error)?
                    .and_then(|v| record::dedup_seq(&v));
                let keys: Vec<&[u8]> = kept.iter().map(Vec::as_slice).collect();
                trees
                    .expiry
                    .insert(
                        record::expiry_key(now_ms, seq.unwrap_or(0)),
                        record::encode_keys(&keys),
                    )
                    .map_err(store_error)?;
            }
            trees.expiry.remove(&key).map_err(store_error)?;
        }
        Ok((batches, removed))
    }
}
