//! Fault injection for tests, at the storage seam: [`Faults`] wraps any
//! [`Backend`] and, by switches a test flips while workers run, refuses
//! inserts or finishes, fails or swallows heartbeats, holds back or delays
//! claims and finishes, and counts every call. This is where injected store
//! failures live, rather than in flags inside a store.
//!
//! ```text
//! let faults = Faults::new(Box::new(Local::new(Memory::new(retention, max))));
//! let plan = faults.plan();
//! let inbox = Inbox::memory_builder().with_backend(PathBuf::new(), Box::new(faults));
//! plan.refuse_outcomes(2); // the worker's next two outcome writes fail
//! ```
//!
//! [`Faults::sibling`] gives a second handle on the same store with its own
//! switches: two inboxes over one store, one worker on each, so that only
//! one of them misbehaves (its heartbeats lost, say) while both compete for
//! the same events.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::Receiver;

use super::backend::{
    Backend, BackendStats, Changed, ClaimRequest, Claimed, DeadChange, DeadSelection, Filter,
    Finish, Listing, Outcome, Token,
};
use super::{Insert, NewEvent, StoreCounts, StoreError, Stored};
use crate::sync::lock;

/// What a heartbeat does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Heartbeats {
    /// Passed to the store.
    #[default]
    Pass,
    /// Answered with [`StoreError::Io`]; the store hears nothing.
    Fail,
    /// Answered `Ok(all true)` without telling the store: the worker believes
    /// it keeps its leases, and they run out.
    Swallow,
}

/// Calls made through one [`Faults`] handle.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Calls {
    pub(crate) inserts: u64,
    pub(crate) claims: u64,
    pub(crate) heartbeats: u64,
    pub(crate) finishes: u64,
    /// Calls answered by the wrapper (refused, failed, swallowed, held
    /// back): the store never heard of them.
    pub(crate) intercepted: u64,
    /// Items ([`Finish`]es) in the finish calls that were refused.
    pub(crate) refused_items: u64,
}

/// The switches of one handle.
#[derive(Debug, Default)]
struct Switches {
    refuse_inserts: u64,
    refuse_finishes: u64,
    refuse_outcomes: u64,
    heartbeats: Heartbeats,
    hold_claims: bool,
    claim_delay: Duration,
    finish_delay: Duration,
    calls: Calls,
}

/// The switches of a [`Faults`] handle, shared with the test that flips them.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    switches: Mutex<Switches>,
    /// Wakes delayed calls when a delay changes.
    changed: Condvar,
}

impl Plan {
    /// Refuses the next `n` inserts with [`StoreError::Io`].
    pub(crate) fn refuse_inserts(&self, n: u64) {
        lock(&self.switches).refuse_inserts = n;
    }

    /// Refuses the next `n` finish calls, whatever they carry (releases
    /// included), with [`StoreError::Io`]; nothing of them is recorded.
    pub(crate) fn refuse_finishes(&self, n: u64) {
        lock(&self.switches).refuse_finishes = n;
    }

    /// Refuses the next `n` finish calls that record something (any outcome
    /// but [`Outcome::Release`]); a batch of releases passes, so a worker
    /// can still give its claims back.
    pub(crate) fn refuse_outcomes(&self, n: u64) {
        lock(&self.switches).refuse_outcomes = n;
    }

    /// What heartbeats do from now on.
    pub(crate) fn heartbeats(&self, mode: Heartbeats) {
        lock(&self.switches).heartbeats = mode;
    }

    /// While `on`, claims answer "nothing due" without asking the store: a
    /// worker cut off from new work that still beats and finishes.
    pub(crate) fn hold_claims(&self, on: bool) {
        lock(&self.switches).hold_claims = on;
    }

    /// Delays each claim by `delay` before it reaches the store (zero: no
    /// delay; a change wakes claims already waiting).
    pub(crate) fn delay_claims(&self, delay: Duration) {
        lock(&self.switches).claim_delay = delay;
        self.changed.notify_all();
    }

    /// Delays each finish by `delay` before it reaches the store (zero: no
    /// delay; a change wakes finishes already waiting).
    pub(crate) fn delay_finishes(&self, delay: Duration) {
        lock(&self.switches).finish_delay = delay;
        self.changed.notify_all();
    }

    /// The calls so far.
    pub(crate) fn calls(&self) -> Calls {
        lock(&self.switches).calls
    }

    /// Waits until `delay(switches)` has passed since now (re-read on each
    /// change, so shortening it lets the caller go).
    fn wait(&self, delay: impl Fn(&Switches) -> Duration) {
        let started = Instant::now();
        let mut switches = lock(&self.switches);
        loop {
            let left = delay(&switches).saturating_sub(started.elapsed());
            if left.is_zero() {
                return;
            }
            switches = match self.changed.wait_timeout(switches, left) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }
}

/// Takes one from `n` if it is not zero.
fn take(n: &mut u64) -> bool {
    let some = *n > 0;
    *n = n.saturating_sub(u64::from(some));
    some
}

fn injected(what: &str) -> StoreError {
    StoreError::Io(std::io::Error::other(format!("injected fault: {what}")))
}

/// A [`Backend`] that passes every call to the one it wraps, unless its
/// [`Plan`] says otherwise.
pub(crate) struct Faults {
    inner: Arc<dyn Backend>,
    plan: Arc<Plan>,
}

impl Faults {
    /// Wraps `inner`, every switch off.
    pub(crate) fn new(inner: Box<dyn Backend>) -> Self {
        Self {
            inner: Arc::from(inner),
            plan: Arc::default(),
        }
    }

    /// Another handle on the same store, with switches and counts of its own.
    pub(crate) fn sibling(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            plan: Arc::default(),
        }
    }

    /// This handle's switches (keep it before boxing the handle into an inbox).
    pub(crate) fn plan(&self) -> Arc<Plan> {
        Arc::clone(&self.plan)
    }

    fn switches(&self) -> std::sync::MutexGuard<'_, Switches> {
        lock(&self.plan.switches)
    }
}

impl Backend for Faults {
    fn insert(&self, event: NewEvent<'_>) -> Result<Insert, StoreError> {
        {
            let mut s = self.switches();
            s.calls.inserts += 1;
            if take(&mut s.refuse_inserts) {
                s.calls.intercepted += 1;
                return Err(injected("insert refused"));
            }
        }
        self.inner.insert(event)
    }

    fn claim(&self, request: &ClaimRequest<'_>) -> Result<Vec<Claimed>, StoreError> {
        {
            let mut s = self.switches();
            s.calls.claims += 1;
            if s.hold_claims {
                s.calls.intercepted += 1;
                return Ok(Vec::new());
            }
        }
        self.plan.wait(|s| s.claim_delay);
        self.inner.claim(request)
    }

    fn heartbeat(&self, claims: &[(u64, Token)], until_ms: i64) -> Result<Vec<bool>, StoreError> {
        let mode = {
            let mut s = self.switches();
            s.calls.heartbeats += 1;
            if s.heartbeats != Heartbeats::Pass {
                s.calls.intercepted += 1;
            }
            s.heartbeats
        };
        match mode {
            Heartbeats::Pass => self.inner.heartbeat(claims, until_ms),
            Heartbeats::Fail => Err(injected("heartbeat failed")),
            Heartbeats::Swallow => Ok(vec![true; claims.len()]),
        }
    }

    fn finish(&self, outcomes: &[Finish]) -> Result<Vec<bool>, StoreError> {
        {
            let mut s = self.switches();
            s.calls.finishes += 1;
            let records = outcomes
                .iter()
                .any(|f| !matches!(f.outcome, Outcome::Release));
            if (records && take(&mut s.refuse_outcomes)) || take(&mut s.refuse_finishes) {
                s.calls.intercepted += 1;
                s.calls.refused_items += outcomes.len() as u64;
                return Err(injected("finish refused"));
            }
        }
        self.plan.wait(|s| s.finish_delay);
        self.inner.finish(outcomes)
    }

    fn next_due(&self) -> Result<Option<i64>, StoreError> {
        self.inner.next_due()
    }

    fn subscribe(&self) -> Receiver<()> {
        self.inner.subscribe()
    }

    fn list(&self, filter: &Filter, after: u64, limit: usize) -> Result<Listing, StoreError> {
        self.inner.list(filter, after, limit)
    }

    fn event(&self, source: Option<&str>, id: &str) -> Result<Option<Stored>, StoreError> {
        self.inner.event(source, id)
    }

    fn change_dead(
        &self,
        which: &DeadSelection<'_>,
        change: DeadChange,
    ) -> Result<Changed, StoreError> {
        self.inner.change_dead(which, change)
    }

    fn counts(&self) -> StoreCounts {
        self.inner.counts()
    }

    fn oldest_pending(&self) -> Result<Option<SystemTime>, StoreError> {
        self.inner.oldest_pending()
    }

    fn collect_expired(&self, now: SystemTime) -> Result<usize, StoreError> {
        self.inner.collect_expired(now)
    }

    fn stats(&self) -> BackendStats {
        self.inner.stats()
    }

    fn close(&self) -> Result<(), StoreError> {
        self.inner.close()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::local::Local;
    use crate::store::local::memory::Memory;

    fn memory() -> Faults {
        Faults::new(Box::new(Local::new(Memory::new(
            Duration::from_secs(3600),
            1000,
        ))))
    }

    fn insert(store: &dyn Backend, id: &str) -> Result<Insert, StoreError> {
        store.insert(NewEvent {
            source: "test",
            id,
            event_type: "order.filled",
            received_at: SystemTime::now(),
            headers: Vec::new(),
            body: b"{}",
        })
    }

    fn claim(store: &dyn Backend, now_ms: i64, lease_ms: i64) -> Vec<Claimed> {
        store
            .claim(&ClaimRequest {
                limit: 10,
                now_ms,
                lease_until_ms: now_ms + lease_ms,
                ordering: None,
            })
            .unwrap()
    }

    #[test]
    fn refused_inserts_store_nothing_then_pass_again() {
        let faults = memory();
        let plan = faults.plan();
        plan.refuse_inserts(2);
        for _ in 0..2 {
            assert!(matches!(insert(&faults, "a"), Err(StoreError::Io(_))));
        }
        assert_eq!(faults.counts().pending, 0);
        assert_eq!(faults.counts().markers, 0);
        // Not a duplicate: the refused inserts never reached the store.
        assert!(matches!(insert(&faults, "a"), Ok(Insert::Accepted { .. })));
        let calls = plan.calls();
        assert_eq!((calls.inserts, calls.intercepted), (3, 2));
    }

    #[test]
    fn refused_outcomes_spare_releases_and_refused_finishes_do_not() {
        let faults = memory();
        let plan = faults.plan();
        insert(&faults, "a").unwrap();
        let claimed = claim(&faults, 1_000, 60_000);
        let (seq, token) = (claimed[0].stored.seq, claimed[0].token);
        let done = |outcome| Finish {
            seq,
            token,
            outcome,
        };
        plan.refuse_outcomes(1);
        // A release passes (and gives the event back) ...
        assert_eq!(faults.finish(&[done(Outcome::Release)]).unwrap(), [true]);
        let claimed = claim(&faults, 1_000, 60_000);
        let token = claimed[0].token;
        let done = |outcome| Finish {
            seq,
            token,
            outcome,
        };
        // ... an outcome is refused, and nothing of it is recorded ...
        assert!(faults.finish(&[done(Outcome::Forget)]).is_err());
        assert_eq!(faults.counts().pending, 1);
        // ... and refuse_finishes refuses releases too.
        plan.refuse_finishes(1);
        assert!(faults.finish(&[done(Outcome::Release)]).is_err());
        assert_eq!(faults.finish(&[done(Outcome::Forget)]).unwrap(), [true]);
        assert_eq!(faults.counts().pending, 0);
        let calls = plan.calls();
        assert_eq!(
            (calls.finishes, calls.intercepted, calls.refused_items),
            (4, 2, 2)
        );
    }

    #[test]
    fn swallowed_heartbeats_answer_alive_but_the_lease_runs_out() {
        let faults = memory();
        let plan = faults.plan();
        let other = faults.sibling();
        insert(&faults, "a").unwrap();
        let mine = claim(&faults, 1_000, 1_000);
        let held = [(mine[0].stored.seq, mine[0].token)];
        plan.heartbeats(Heartbeats::Swallow);
        assert_eq!(faults.heartbeat(&held, 10_000).unwrap(), [true]);
        // The store never heard it: past the lease, the sibling claims it.
        let theirs = claim(&other, 2_500, 1_000);
        assert_eq!(theirs.len(), 1);
        assert_ne!(theirs[0].token, held[0].1);
        // The first holder's outcome is refused.
        let late = Finish {
            seq: held[0].0,
            token: held[0].1,
            outcome: Outcome::Forget,
        };
        assert_eq!(faults.finish(&[late]).unwrap(), [false]);
        // A failing heartbeat is an error, and passing ones reach the store.
        plan.heartbeats(Heartbeats::Fail);
        assert!(faults.heartbeat(&held, 10_000).is_err());
        plan.heartbeats(Heartbeats::Pass);
        assert_eq!(faults.heartbeat(&held, 10_000).unwrap(), [false]);
        assert_eq!(plan.calls().intercepted, 2);
        assert_eq!(other.plan().calls().claims, 1);
    }

    #[test]
    fn held_claims_get_nothing_and_delays_hold_until_cleared() {
        let faults = Arc::new(memory());
        let plan = faults.plan();
        insert(faults.as_ref(), "a").unwrap();
        plan.hold_claims(true);
        assert!(claim(faults.as_ref(), 1_000, 1_000).is_empty());
        plan.hold_claims(false);
        plan.delay_claims(Duration::from_secs(60));
        let started = Instant::now();
        let waiting = {
            let faults = Arc::clone(&faults);
            std::thread::spawn(move || claim(faults.as_ref(), 1_000, 1_000).len())
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while plan.calls().claims < 2 {
            assert!(Instant::now() < deadline, "the claim never started");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(50));
        assert!(!waiting.is_finished(), "the delay did not hold the claim");
        plan.delay_claims(Duration::ZERO);
        assert_eq!(waiting.join().unwrap(), 1);
        assert!(started.elapsed() < Duration::from_secs(30));
        plan.delay_finishes(Duration::from_millis(30));
        let started = Instant::now();
        faults.finish(&[]).unwrap();
        assert!(started.elapsed() >= Duration::from_millis(30));
    }
}
