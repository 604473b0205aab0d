//! The in-memory store: the reference model the conformance suite checks
//! every backend against, and a store for users' own unit tests. Nothing
//! here survives the process.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crossbeam_channel::{Receiver, Sender};

use super::super::backend::BackendStats;
use super::super::{
    Change, EventRecord, Insert, NewEvent, Progress, Standing, StoreCounts, StoreError, Stored,
};
use super::Tables;
use crate::clock::{from_unix_millis, unix_millis};
use crate::sync::lock;

/// Everything the memory store holds.
#[derive(Default)]
struct State {
    closed: bool,
    /// The last seq handed out (seqs start at 1).
    last_seq: u64,
    /// The number of changes recorded: every one is visible at once.
    lsn: u64,
    events: BTreeMap<u64, (EventRecord, Option<Progress>)>,
    /// (source, id) → (seq, accepted at ms).
    markers: HashMap<(String, String), (u64, i64)>,
    /// (next attempt ms, seq) of the retrying events.
    due: BTreeSet<(i64, u64)>,
    dead: BTreeSet<u64>,
    counts: StoreCounts,
}

impl State {
    fn stored(&self, seq: u64) -> Option<Stored> {
        self.events.get(&seq).map(|(event, progress)| Stored {
            seq,
            event: event.clone(),
            progress: progress.clone(),
        })
    }

    /// Moves event `seq` out of its standing's counts and indexes.
    fn unindex(&mut self, seq: u64) {
        let Some((_, progress)) = self.events.get(&seq) else {
            return;
        };
        match Standing::of(progress.as_ref()) {
            Standing::Fresh => self.counts.pending -= 1,
            Standing::Retrying => {
                self.counts.pending -= 1;
                self.counts.retrying -= 1;
            }
            Standing::Dead => self.counts.dead -= 1,
        }
        if let Some(p) = progress {
            let key = (p.next_at_ms, seq);
            self.due.remove(&key);
        }
        self.dead.remove(&seq);
    }

    /// Puts event `seq` into its standing's counts and indexes.
    fn index(&mut self, seq: u64) {
        let Some((_, progress)) = self.events.get(&seq) else {
            return;
        };
        match (Standing::of(progress.as_ref()), progress) {
            (Standing::Fresh, _) => self.counts.pending += 1,
            (Standing::Retrying, Some(p)) => {
                self.counts.pending += 1;
                self.counts.retrying += 1;
                self.due.insert((p.next_at_ms, seq));
            }
            (_, _) => {
                self.counts.dead += 1;
                self.dead.insert(seq);
            }
        }
    }
}

/// Tables in memory.
pub(crate) struct Memory {
    state: Mutex<State>,
    retention: Duration,
    max_pending: u64,
    subscriber: Mutex<Option<Sender<()>>>,
}

impl Memory {
    /// An empty store keeping markers for `retention` and at most
    /// `max_pending` events pending.
    pub(crate) fn new(retention: Duration, max_pending: u64) -> Self {
        Self {
            state: Mutex::default(),
            retention,
            max_pending,
            subscriber: Mutex::new(None),
        }
    }

    fn open(&self) -> Result<std::sync::MutexGuard<'_, State>, StoreError> {
        let state = lock(&self.state);
        if state.closed {
            return Err(StoreError::Closed);
        }
        Ok(state)
    }

    fn wake(&self) {
        if let Some(tx) = lock(&self.subscriber).as_ref() {
            let _ = tx.try_send(());
        }
    }
}

impl Tables for Memory {
    fn insert(&self, event: NewEvent<'_>) -> Result<Insert, StoreError> {
        let mut state = self.open()?;
        let key = (event.source.to_owned(), event.id.to_owned());
        if let Some(&(seq, _)) = state.markers.get(&key) {
            return Ok(Insert::Duplicate { seq });
        }
        let pending = state.counts.pending;
        if pending >= self.max_pending {
            return Ok(Insert::Overloaded {
                pending,
                limit: self.max_pending,
            });
        }
        state.last_seq += 1;
        let seq = state.last_seq;
        let received_at_ms = unix_millis(event.received_at);
        let record = EventRecord {
            source: event.source.to_owned(),
            id: event.id.to_owned(),
            event_type: event.event_type.to_owned(),
            received_at_ms,
            headers: event
                .headers
                .iter()
                .map(|(name, value)| ((*name).to_owned(), value.to_string()))
                .collect(),
            body: event.body.to_vec(),
        };
        state.events.insert(seq, (record, None));
        state.markers.insert(key, (seq, received_at_ms));
        state.counts.markers += 1;
        state.index(seq);
        drop(state);
        self.wake();
        Ok(Insert::Accepted { seq })
    }

    fn counts(&self) -> StoreCounts {
        lock(&self.state).counts
    }

    fn collect_expired(&self, now: SystemTime) -> Result<usize, StoreError> {
        let mut state = self.open()?;
        let retention = i64::try_from(self.retention.as_millis()).unwrap_or(i64::MAX);
        let cutoff = unix_millis(now).saturating_sub(retention);
        let State {
            markers, events, ..
        } = &mut *state;
        let before = markers.len();
        // A marker whose event is still stored stays (as in the embedded store).
        markers.retain(|_, (seq, at)| *at >= cutoff || events.contains_key(seq));
        let removed = before - markers.len();
        state.counts.markers -= removed as u64;
        Ok(removed)
    }

    fn stats(&self) -> BackendStats {
        BackendStats::default()
    }

    fn oldest_pending(&self) -> Result<Option<SystemTime>, StoreError> {
        let state = self.open()?;
        Ok(state
            .events
            .iter()
            .find(|(_, (_, p))| Standing::of(p.as_ref()) != Standing::Dead)
            .map(|(_, (e, _))| from_unix_millis(e.received_at_ms)))
    }

    fn close(&self) -> Result<(), StoreError> {
        lock(&self.state).closed = true;
        *lock(&self.subscriber) = None;
        Ok(())
    }

    fn record(&self, changes: &[Change]) -> Result<u64, StoreError> {
        let mut state = self.open()?;
        for change in changes {
            state.lsn += 1;
            match change {
                Change::Forget { seq, .. } => {
                    state.unindex(*seq);
                    state.events.remove(seq);
                }
                Change::Progress { seq, progress, .. } => {
                    if !state.events.contains_key(seq) {
                        continue;
                    }
                    state.unindex(*seq);
                    if let Some((_, p)) = state.events.get_mut(seq) {
                        *p = Some(progress.clone());
                    }
                    state.index(*seq);
                }
            }
        }
        let lsn = state.lsn;
        drop(state);
        if !changes.is_empty() {
            self.wake();
        }
        Ok(lsn)
    }

    fn applied_lsn(&self) -> u64 {
        lock(&self.state).lsn
    }

    fn sync_applied(&self) -> Result<(), StoreError> {
        self.open().map(drop)
    }

    fn subscribe(&self) -> Receiver<()> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        *lock(&self.subscriber) = Some(tx);
        rx
    }

    fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Stored>, StoreError> {
        let state = self.open()?;
        let Some(from) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        Ok(state
            .events
            .range(from..)
            .take(limit)
            .map(|(&seq, (event, progress))| Stored {
                seq,
                event: event.clone(),
                progress: progress.clone(),
            })
            .collect())
    }

    fn due(
        &self,
        until_ms: i64,
        limit: usize,
        skip: &dyn Fn(u64) -> bool,
    ) -> Result<Vec<Stored>, StoreError> {
        let state = self.open()?;
        Ok(state
            .due
            .range(..=(until_ms, u64::MAX))
            .filter(|(_, seq)| !skip(*seq))
            .take(limit)
            .filter_map(|&(_, seq)| state.stored(seq))
            .collect())
    }

    fn next_due(&self, skip: &dyn Fn(u64) -> bool) -> Result<Option<i64>, StoreError> {
        let state = self.open()?;
        Ok(state
            .due
            .iter()
            .find(|(_, seq)| !skip(*seq))
            .map(|&(at, _)| at))
    }

    fn dead_after(&self, after: u64, limit: usize) -> Result<Vec<Stored>, StoreError> {
        let state = self.open()?;
        let Some(from) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        Ok(state
            .dead
            .range(from..)
            .take(limit)
            .filter_map(|&seq| state.stored(seq))
            .collect())
    }

    fn get(&self, seq: u64) -> Result<Option<Stored>, StoreError> {
        Ok(self.open()?.stored(seq))
    }

    fn find(&self, id: &str) -> Result<Vec<u64>, StoreError> {
        let state = self.open()?;
        let mut seqs: Vec<u64> = state
            .markers
            .iter()
            .filter(|((_, marker_id), _)| marker_id == id)
            .map(|(_, &(seq, _))| seq)
            .collect();
        seqs.sort_unstable();
        Ok(seqs)
    }
}
