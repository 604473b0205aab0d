//! Group commit, and the applier: how a record gets from the log buffer
//! into the log (one `write` and one `fdatasync` per batch, see the protocol
//! in [`super`]) and from there into sled.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Condvar, MutexGuard};
use std::time::Duration;

use crossbeam_channel::Receiver;

use super::Shared;
use super::trees::{Applied, Trees, apply_batch};
use super::wal::{self, Location, WalWriter};
use crate::store::{Durability, StoreError};
use crate::sync::lock;

/// How long the applier waits before trying a batch sled refused again.
const APPLY_RETRY: Duration = Duration::from_millis(100);
/// After this many refusals in a row sled is rebuilt from the log.
pub(super) const REINDEX_AFTER: u32 = 5;

#[derive(Default)]
pub(super) struct Core {
    pub(super) next_lsn: u64,
    pub(super) buffer: Vec<u8>,
    pub(super) spare: Vec<u8>,
    pub(super) batch: Vec<Applied>,
    pub(super) in_flight: HashMap<Vec<u8>, u64>,
    pub(super) flushing: bool,
    /// Flushes started so far; the one under way when `flushing`.
    pub(super) flush_no: u64,
    /// The last LSN of the batch being written.
    pub(super) flushing_last: u64,
    pub(super) durable_lsn: u64,
    pub(super) failed: Vec<(u64, u64)>,
    /// A buffered batch whose write failed, kept for the background thread to retry.
    pub(super) retrying: Option<String>,
    /// sled refused the applier's last batch; it is retried until sled takes
    /// it, and new events are refused (503) meanwhile.
    pub(super) degraded: Option<String>,
    pub(super) closed: bool,
}

impl Core {
    /// Drops a batch's keys from the in-flight map (unless a later event took
    /// the key over): they are in sled now, or were never stored.
    fn forget_in_flight(&mut self, batch: &[Applied]) {
        for a in batch {
            if self.in_flight.get(&a.key) == Some(&a.lsn) {
                self.in_flight.remove(&a.key);
            }
        }
    }
}

impl Shared {
    /// `fdatasync`s the log, timing it for [`Stats::fsync`](crate::Stats::fsync).
    fn timed_sync(&self, writer: &mut WalWriter, batch_bytes: u64) -> std::io::Result<()> {
        let started = std::time::Instant::now();
        let synced = writer.sync(batch_bytes);
        self.fsync.record(started.elapsed());
        synced
    }

    /// Waits until everything logged so far is applied to sled.
    pub(super) fn sync_applied(&self) -> Result<(), StoreError> {
        let shared = self;
        let target = {
            let core = lock(&shared.core);
            // Records whose write failed are not stored: nothing to wait for.
            let mut target = core.next_lsn - 1;
            for &(from, to) in core.failed.iter().rev() {
                if (from..=to).contains(&target) {
                    target = from - 1;
                }
            }
            target
        };
        shared.wait_durable(target)?;
        while shared.applied_lsn.load(Ordering::SeqCst) < target {
            let core = lock(&shared.core);
            if let Some(reason) = &core.degraded {
                return Err(StoreError::Io(std::io::Error::other(reason.clone())));
            }
            drop(core);
            std::thread::sleep(Duration::from_micros(200));
        }
        Ok(())
    }

    /// Waits until `lsn` is durable, leading a group commit when no flush is under way.
    pub(super) fn wait_durable(&self, lsn: u64) -> Result<(), StoreError> {
        let mut core = lock(&self.core);
        loop {
            if core
                .failed
                .iter()
                .any(|&(from, to)| (from..=to).contains(&lsn))
            {
                return Err(StoreError::Io(std::io::Error::other(
                    "writing the event to the log failed; it was not stored",
                )));
            }
            if core.durable_lsn >= lsn {
                return Ok(());
            }
            if let (Some(reason), false) = (&core.retrying, core.flushing) {
                // A buffered write failed and the background thread retries it;
                // do not spin on it here.
                return Err(StoreError::Io(std::io::Error::other(reason.clone())));
            }
            if core.flushing {
                // Wait with the batch the event is in: the one being written, or
                // the next. A finished flush wakes its own batch, and just one
                // waiter of the next to lead it, instead of every thread.
                let in_next = lsn > core.flushing_last;
                let cv = &self.durable[usize::from((core.flush_no + u64::from(in_next)) % 2 == 1)];
                core = cv
                    .wait(core)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            } else {
                core = self.lead_flush(core);
            }
        }
    }

    /// Writes and syncs everything buffered, as the group-commit leader.
    pub(super) fn lead_flush<'a>(&'a self, mut core: MutexGuard<'a, Core>) -> MutexGuard<'a, Core> {
        if core.buffer.is_empty() {
            return core;
        }
        core.flushing = true;
        core.flush_no += 1;
        core.flushing_last = core.next_lsn - 1;
        // Swap in the spare buffer so appends during the write reuse its capacity.
        let spare = std::mem::take(&mut core.spare);
        let mut frames = std::mem::replace(&mut core.buffer, spare);
        let mut batch = std::mem::take(&mut core.batch);
        let first = batch.first().map_or(0, |a| a.lsn);
        let last = batch.last().map_or(0, |a| a.lsn);
        drop(core);
        wal::mark_batch_start(&mut frames, true);

        let outcome = {
            let mut writer = lock(&self.wal);
            #[cfg(test)]
            let written = if self.fail_next_write.swap(false, Ordering::SeqCst) {
                Err(std::io::Error::other("injected: no space left on device"))
            } else {
                writer.append(&frames, last)
            };
            #[cfg(not(test))]
            let written = writer.append(&frames, last);
            match written {
                Err(e) => Err((false, e)),
                Ok(at) => match self.timed_sync(&mut writer, frames.len() as u64) {
                    Err(e) => Err((true, e)),
                    Ok(()) => {
                        // The batch is durable whatever happens next; a segment
                        // that cannot be started now is retried at the next batch.
                        let _ = writer.maybe_rotate();
                        Ok(at)
                    }
                },
            }
        };

        let mut core = lock(&self.core);
        core.flushing = false;
        let failed = outcome.is_err();
        match outcome {
            Ok((segment, offset)) => {
                let lens: Vec<usize> = batch.iter().map(|a| a.payload.len()).collect();
                for (a, at) in
                    batch
                        .iter_mut()
                        .zip(Location::of_frames(segment, offset, lens.into_iter()))
                {
                    a.at = Some(at);
                }
                core.durable_lsn = last;
                core.retrying = None;
                frames.clear();
                core.spare = frames;
                // In LSN order, under the lock: the applier sees batches in order.
                let _ = self.to_applier.send(Some(batch));
            }
            Err((_, e)) if matches!(self.settings.durability, Durability::Buffered(_)) => {
                core.retrying = Some(format!("writing the log failed, retrying: {e}"));
                // Buffered events were acknowledged already: keep them, in LSN
                // order before anything appended since, and retry at the next flush
                // (after a failed sync the log first zeroes what it had written).
                wal::mark_batch_start(&mut frames, false);
                frames.extend_from_slice(&core.buffer);
                core.buffer = frames;
                let later = std::mem::replace(&mut core.batch, batch);
                core.batch.extend(later);
            }
            Err((_, _)) => {
                // Nothing of the batch is acknowledged; after a failed sync the
                // log zeroes and syncs those bytes again before the next batch
                // (see `WalWriter::append`), so the store heals as soon as the
                // disk answers again, without a reopen.
                core.forget_in_flight(&batch);
                let accepts = batch.iter().filter(|a| a.is_accept()).count();
                self.pending.fetch_sub(accepts as u64, Ordering::SeqCst);
                // Failed ranges are kept for good (waiters may still look), merged
                // when contiguous: one entry per episode of failures, not per batch.
                match core.failed.last_mut() {
                    Some(range) if range.1 + 1 == first => range.1 = last,
                    _ => core.failed.push((first, last)),
                }
            }
        }
        let this = usize::from(core.flush_no % 2 == 1);
        if failed {
            self.durable.iter().for_each(Condvar::notify_all);
        } else {
            self.durable[this].notify_all();
            self.durable[1 - this].notify_one();
        }
        core
    }

    pub(super) fn apply_loop(&self, batches: &Receiver<Option<Vec<Applied>>>) {
        while let Ok(Some(batch)) = batches.recv() {
            let mut failures = 0u32;
            let applied = loop {
                let result = match self.index() {
                    Ok(index) => self.apply(&index.trees, &batch),
                    Err(e) => Err(sled::Error::Unsupported(e.to_string())),
                };
                match result {
                    Ok(n) => {
                        lock(&self.core).degraded = None;
                        break n;
                    }
                    Err(e) => {
                        // sled refused the write (a full disk, say). The batch is
                        // safe in the log; new events are refused (503) while
                        // the same batch is tried again (applying is idempotent).
                        // sled keeps refusing once it failed, so after a few
                        // tries it is rebuilt from the log, until that works.
                        lock(&self.core).degraded =
                            Some(format!("the store's index refused a write: {e}"));
                        if self.stop.load(Ordering::SeqCst) {
                            return;
                        }
                        std::thread::sleep(APPLY_RETRY);
                        failures += 1;
                        if failures.is_multiple_of(REINDEX_AFTER) {
                            let _ = self.reindex();
                        }
                    }
                }
            };
            self.markers.fetch_add(applied, Ordering::SeqCst);
            if let Some(last) = batch.last() {
                // Before the in-flight keys go: see `insert`.
                self.applied_lsn.store(last.lsn, Ordering::SeqCst);
            }
            lock(&self.core).forget_in_flight(&batch);
            if let Some(tx) = lock(&self.subscriber).as_ref() {
                let _ = tx.try_send(());
            }
        }
    }

    /// Applies a batch at run time (a test may make sled refuse it once).
    fn apply(&self, trees: &Trees, batch: &[Applied]) -> sled::Result<u64> {
        #[cfg(test)]
        if self
            .fail_next_apply
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(sled::Error::Unsupported("injected failure".into()));
        }
        apply_batch(trees, batch, false)
    }
}
