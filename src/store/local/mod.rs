//! The seam for stores one process owns: claims, leases and per-key order
//! kept in this process's memory, over [`Tables`] that hold the events.
//!
//! Only this process can open the store (the embedded store takes a file
//! lock), so every worker that could claim an event asks this one object:
//! a lease here excludes every other worker. A restart drops all leases —
//! rightly, since the workers that held them are gone with the process.

mod claims;
pub(crate) mod keys;
pub(crate) mod memory;
mod operators;
pub(crate) mod tables;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};

use claims::Claims;
use keys::Keys;
pub(crate) use tables::Tables;

use super::backend::{
    Backend, BackendStats, Changed, ClaimRequest, Claimed, DeadChange, DeadSelection, Filter,
    Finish, Listing, Outcome, Token,
};
use super::{Change, Insert, NewEvent, Standing, StoreCounts, StoreError, Stored};
use crate::sync::lock;

/// The wake-up subscribers.
type Wakers = Mutex<Vec<Sender<()>>>;

/// A [`Backend`] over tables this process owns.
pub(crate) struct Local<T: Tables> {
    tables: Arc<T>,
    claims: Mutex<Claims>,
    /// Serialises operator changes (replay, purge), so none counts an event twice.
    operator: Mutex<()>,
    wakers: Arc<Wakers>,
    /// Set by [`Backend::close`]: the claims answer [`StoreError::Closed`] too.
    closed: AtomicBool,
}

impl<T: Tables> Local<T> {
    /// Claims over `tables`. A thread forwards the tables' wake-ups to every
    /// subscriber; it ends within a second of this value being dropped.
    pub(crate) fn new(tables: T) -> Self {
        Self::over(Arc::new(tables))
    }

    /// Claims over tables another [`Local`] may have used: none of its
    /// claims carry over, as after a restart of the process (the conformance
    /// suite's "reopen" of the in-memory store).
    pub(crate) fn over(tables: Arc<T>) -> Self {
        let wakers: Arc<Wakers> = Arc::default();
        let applied = tables.subscribe();
        let weak = Arc::downgrade(&wakers);
        let _ = std::thread::Builder::new()
            .name("webhook-inbox-wake".into())
            .spawn(move || forward_wakeups(&applied, &weak));
        Self {
            tables,
            claims: Mutex::default(),
            operator: Mutex::default(),
            wakers,
            closed: AtomicBool::new(false),
        }
    }

    fn check_open(&self) -> Result<(), StoreError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Closed);
        }
        Ok(())
    }

    /// Drops the claims whose outcome the tables' readers now see.
    fn settle(&self, claims: &mut Claims) {
        let applied = self.tables.applied_lsn();
        while claims
            .settling
            .front()
            .is_some_and(|(lsn, _)| *lsn <= applied)
        {
            if let Some((_, seqs)) = claims.settling.pop_front() {
                for seq in seqs {
                    claims.hidden.remove(&seq);
                }
            }
        }
    }

    /// Tells every subscriber that something may be claimable.
    fn wake(&self) {
        notify(&self.wakers);
    }
}

/// Forwards the tables' wake-ups until the subscribers' list is gone.
fn forward_wakeups(applied: &Receiver<()>, wakers: &Weak<Wakers>) {
    loop {
        match applied.recv_timeout(Duration::from_secs(1)) {
            Ok(()) => match wakers.upgrade() {
                Some(wakers) => notify(&wakers),
                None => return,
            },
            Err(RecvTimeoutError::Timeout) if wakers.strong_count() > 0 => {}
            Err(_) => return,
        }
    }
}

fn notify(wakers: &Wakers) {
    lock(wakers).retain(|w| !matches!(w.try_send(()), Err(TrySendError::Disconnected(()))));
}

impl<T: Tables> Backend for Local<T> {
    fn insert(&self, event: NewEvent<'_>) -> Result<Insert, StoreError> {
        self.check_open()?;
        self.tables.insert(event)
    }

    fn claim(&self, request: &ClaimRequest<'_>) -> Result<Vec<Claimed>, StoreError> {
        self.check_open()?;
        let mut claims = lock(&self.claims);
        self.settle(&mut claims);
        claims.expire(request.now_ms);
        match (request.ordering, claims.keys.as_ref()) {
            (Some(pointer), Some(keys)) if keys.pointer() == pointer => {}
            (Some(pointer), _) => claims.keys = Some(Keys::new(pointer)),
            (None, _) => claims.keys = None,
        }
        self.prime_keys(&mut claims)?;
        let mut out = Vec::new();
        self.take_ready(&mut claims, request, &mut out)?;
        self.take_due(&mut claims, request, &mut out)?;
        self.take_fresh(&mut claims, request, &mut out)?;
        Ok(out)
    }

    fn heartbeat(&self, held: &[(u64, Token)], until_ms: i64) -> Result<Vec<bool>, StoreError> {
        self.check_open()?;
        let mut claims = lock(&self.claims);
        Ok(held
            .iter()
            .map(|&(seq, token)| match claims.leases.get_mut(&seq) {
                Some(lease) if lease.token == token => {
                    lease.until_ms = lease.until_ms.max(until_ms);
                    true
                }
                _ => false,
            })
            .collect())
    }

    fn finish(&self, outcomes: &[Finish]) -> Result<Vec<bool>, StoreError> {
        self.check_open()?;
        let mut claims = lock(&self.claims);
        let mut recorded = vec![false; outcomes.len()];
        let mut changes = Vec::new();
        // Claims an earlier outcome of this batch ends: a later one for the
        // same claim is refused, as it would be in a batch of its own.
        let mut ended = HashSet::new();
        for (i, finish) in outcomes.iter().enumerate() {
            let Some(lease) = claims.leases.get(&finish.seq).copied() else {
                continue;
            };
            if lease.token != finish.token || ended.contains(&finish.seq) {
                continue;
            }
            if matches!(
                finish.outcome,
                Outcome::Forget | Outcome::Progress(_) | Outcome::Release
            ) {
                ended.insert(finish.seq);
            }
            recorded[i] = true;
            let (seq, was) = (finish.seq, lease.standing);
            match &finish.outcome {
                Outcome::Forget => changes.push(Change::Forget { seq, was }),
                Outcome::Progress(progress) | Outcome::Attempt(progress) => {
                    changes.push(Change::Progress {
                        seq,
                        was,
                        progress: progress.clone(),
                    });
                }
                Outcome::Keep | Outcome::Release => {}
            }
        }
        // One write for the batch; on failure nothing changed, the claims included.
        let lsn = self.tables.record(&changes)?;
        let mut settled = Vec::new();
        for (finish, _) in outcomes.iter().zip(&recorded).filter(|(_, r)| **r) {
            let seq = finish.seq;
            match &finish.outcome {
                Outcome::Forget => {
                    claims.leases.remove(&seq);
                    if let Some(keys) = claims.keys.as_mut() {
                        keys.finished(seq);
                    }
                    settled.push(seq);
                }
                Outcome::Progress(progress) => {
                    let kept = claims.leases.remove(&seq).is_some_and(|l| l.kept);
                    if progress.dead_at_ms.is_some() {
                        if let Some(keys) = claims.keys.as_mut() {
                            keys.finished(seq);
                        }
                    } else if kept {
                        claims.restore([seq]);
                    }
                    settled.push(seq);
                }
                Outcome::Attempt(progress) => {
                    if let Some(lease) = claims.leases.get_mut(&seq) {
                        lease.standing = Standing::of(Some(progress));
                    }
                }
                Outcome::Keep => {
                    if let Some(lease) = claims.leases.get_mut(&seq) {
                        lease.kept = true;
                    }
                    if let Some(keys) = claims.keys.as_mut() {
                        keys.set_aside(seq);
                    }
                }
                Outcome::Release => {
                    if let Some(lease) = claims.leases.remove(&seq) {
                        if lease.standing == Standing::Fresh {
                            claims.rewind(seq);
                        }
                        if lease.kept {
                            claims.restore([seq]);
                        }
                    }
                }
            }
        }
        if !settled.is_empty() {
            claims.hidden.extend(settled.iter().copied());
            claims.settling.push_back((lsn, settled));
        }
        drop(claims);
        self.wake();
        Ok(recorded)
    }

    fn next_due(&self) -> Result<Option<i64>, StoreError> {
        self.check_open()?;
        let mut claims = lock(&self.claims);
        self.settle(&mut claims);
        self.tables.next_due(&|seq| claims.excluded(seq))
    }

    fn subscribe(&self) -> Receiver<()> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        lock(&self.wakers).push(tx);
        rx
    }

    fn list(&self, filter: &Filter, after: u64, limit: usize) -> Result<Listing, StoreError> {
        self.check_open()?;
        operators::list(self.tables.as_ref(), filter, after, limit)
    }

    fn event(&self, source: Option<&str>, id: &str) -> Result<Option<Stored>, StoreError> {
        self.check_open()?;
        operators::event(self.tables.as_ref(), source, id)
    }

    fn change_dead(
        &self,
        which: &DeadSelection<'_>,
        change: DeadChange,
    ) -> Result<Changed, StoreError> {
        self.check_open()?;
        let _one_at_a_time = lock(&self.operator);
        let changed = operators::change_dead(self.tables.as_ref(), which, change)?;
        if changed.done > 0 {
            if matches!(change, DeadChange::Replay { .. })
                && let Some(keys) = lock(&self.claims).keys.as_mut()
            {
                // Replayed events are retrying again and hold their keys: the
                // next claim registers them, as after a restart.
                keys.primed = false;
            }
            self.wake();
        }
        Ok(changed)
    }

    fn counts(&self) -> StoreCounts {
        self.tables.counts()
    }

    fn oldest_pending(&self) -> Result<Option<SystemTime>, StoreError> {
        self.check_open()?;
        self.tables.oldest_pending()
    }

    fn collect_expired(&self, now: SystemTime) -> Result<usize, StoreError> {
        self.check_open()?;
        self.tables.collect_expired(now)
    }

    fn stats(&self) -> BackendStats {
        self.tables.stats()
    }

    fn close(&self) -> Result<(), StoreError> {
        self.closed.store(true, Ordering::SeqCst);
        let closed = self.tables.close();
        lock(&self.wakers).clear();
        closed
    }
}
