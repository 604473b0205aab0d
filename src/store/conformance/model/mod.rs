//! The model-based test: random sequences of operations run against the
//! backend under test and against [`Model`], a few plain maps that say what
//! the contract allows, checked after every step.
//!
//! The model is not the in-memory store (which is itself under test): it
//! knows events by the seq the backend gave them, and per event only its
//! standing, its ordering key and its claim.
//!
//! Where the contract leaves a choice, the model accepts either answer and
//! follows the backend: a claim's outcome after its lease ended and a later
//! claim passed it by without handing the event to anyone (a backend may
//! have dropped the claim then, or keep it until the event is claimed
//! again). A claim answers a subset of what is claimable; claiming again at
//! the same time until nothing comes must hand out all of it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestRunner};

use super::super::backend::{
    Backend, ClaimRequest, DeadChange, DeadSelection, Filter, Finish, Outcome, Token,
};
use super::super::{Insert, NewEvent, StoreCounts, lifecycle};
use super::{Config, Factory, Harness, sync};
use crate::clock::from_unix_millis;

const T0: i64 = 1_700_000_000_000;
const LEASE: i64 = 30_000;
const POINTER: &str = "/k";
const SOURCE: &str = "shop";
/// More than any case ever has.
const CLAIM_ALL: usize = 64;

mod state;

use state::{Claim, Done, Event, Lease, Model, Op, Standing, op};

/// The backend under test and the model, stepped together.
struct Run {
    harness: Box<dyn Harness>,
    backend: Option<Box<dyn Backend>>,
    model: Model,
    /// Every step so far, for failure messages.
    log: String,
}

type Step = Result<(), TestCaseError>;

fn fail(message: String) -> TestCaseError {
    TestCaseError::fail(message)
}

impl Run {
    fn backend(&self) -> &dyn Backend {
        match &self.backend {
            Some(b) => &**b,
            None => unreachable!("the backend is open between steps"),
        }
    }

    fn ensure(&self, ok: bool, what: impl FnOnce() -> String) -> Step {
        if ok {
            Ok(())
        } else {
            Err(fail(format!("{}\nsteps:\n{}", what(), self.log)))
        }
    }

    fn insert(&mut self, id: String, key: u8) -> Step {
        let body = match key {
            0 => "{}".to_owned(),
            k => format!(r#"{{"k":"key{k}"}}"#),
        };
        let event = NewEvent {
            source: SOURCE,
            id: &id,
            event_type: "order.created",
            received_at: from_unix_millis(self.model.now),
            headers: Vec::new(),
            body: body.as_bytes(),
        };
        let got = self.backend().insert(event);
        let _ = write!(self.log, " -> {got:?}");
        let m = &mut self.model;
        match (m.markers.get(&id), got) {
            (Some(&seq), Ok(Insert::Duplicate { seq: got })) if got == seq => Ok(()),
            (None, Ok(Insert::Accepted { seq })) if seq > m.last_seq => {
                m.last_seq = seq;
                m.markers.insert(id.clone(), seq);
                m.events.insert(
                    seq,
                    Event {
                        key,
                        standing: Standing::Fresh,
                    },
                );
                if !m.ids.iter().any(|(known, _)| *known == id) {
                    m.ids.push((id, key));
                }
                Ok(())
            }
            (expected, got) => {
                let expected = format!("{expected:?}");
                self.ensure(false, || format!("insert: marker {expected}, got {got:?}"))
            }
        }
    }

    /// One claim at the model's now; answers the seqs handed out.
    fn claim(&mut self, limit: usize) -> Result<Vec<u64>, TestCaseError> {
        let now = self.model.now;
        sync(self.backend());
        let request = ClaimRequest {
            limit,
            now_ms: now,
            lease_until_ms: now + LEASE,
            ordering: self.model.ordered.then_some(POINTER),
        };
        let claimed = match self.backend().claim(&request) {
            Ok(claimed) => claimed,
            Err(e) => return Err(fail(format!("claim: {e}\n{}", self.log))),
        };
        self.model.expire(now);
        let claimable = self.model.claimable(now);
        let seqs: Vec<u64> = claimed.iter().map(|c| c.stored.seq).collect();
        let _ = write!(self.log, " -> {seqs:?} (claimable {claimable:?})");
        let distinct: BTreeSet<u64> = seqs.iter().copied().collect();
        self.ensure(seqs.len() <= limit && distinct.len() == seqs.len(), || {
            format!("claim: {seqs:?}, limit {limit}")
        })?;
        self.ensure(distinct.is_subset(&claimable), || {
            format!("claim handed out {seqs:?}; claimable: {claimable:?}")
        })?;
        for c in claimed {
            let fresh_token = self.model.handed.iter().all(|&(_, t)| t != c.token);
            self.ensure(fresh_token, || {
                format!("token {} handed out twice", c.token)
            })?;
            self.model.leases.insert(
                c.stored.seq,
                Lease {
                    token: c.token,
                    until: now + LEASE,
                    kept: false,
                },
            );
            self.model.lapsed.remove(&c.stored.seq);
            self.model.handed.push((c.stored.seq, c.token));
        }
        Ok(seqs)
    }

    fn heartbeat(&mut self, seq: u64, token: Token) -> Step {
        let until = self.model.now + LEASE;
        let got = self.backend().heartbeat(&[(seq, token)], until);
        let _ = write!(self.log, " ({seq}, {token}) -> {got:?}");
        let got = match got {
            Ok(got) if got.len() == 1 => got[0],
            other => return self.ensure(false, || format!("heartbeat: {other:?}")),
        };
        match self.model.claim_of(seq, token) {
            Claim::Held => {
                if let Some(lease) = self.model.leases.get_mut(&seq) {
                    lease.until = lease.until.max(until);
                }
                self.ensure(got, || {
                    format!("heartbeat of the held claim ({seq}, {token}) refused")
                })
            }
            Claim::Lapsed => {
                if got {
                    self.model.lapsed.remove(&seq);
                    let lease = Lease {
                        token,
                        until,
                        kept: false,
                    };
                    self.model.leases.insert(seq, lease);
                }
                Ok(())
            }
            Claim::Stale => self.ensure(!got, || {
                format!("heartbeat of a stale claim ({seq}, {token}) held")
            }),
        }
    }

    fn finish(&mut self, seq: u64, token: Token, done: Done) -> Step {
        let now = self.model.now;
        let progress = |p: Option<Standing>| {
            let attempts = match p {
                Some(Standing::Retrying { attempts, .. }) => attempts,
                _ => 0,
            };
            lifecycle::fail(None, attempts + 1, now, "failed")
        };
        let standing = self.model.events.get(&seq).map(|e| e.standing);
        let outcome = match done {
            Done::Forget => Outcome::Forget,
            Done::Retry(after) => {
                Outcome::Progress(lifecycle::retry(progress(standing), now + after))
            }
            Done::Dead => Outcome::Progress(lifecycle::bury(progress(standing), now)),
            Done::Release => Outcome::Release,
            Done::Keep => Outcome::Keep,
        };
        let got = self.backend().finish(&[Finish {
            seq,
            token,
            outcome,
        }]);
        let _ = write!(self.log, " ({seq}, {token}) -> {got:?}");
        let got = match got {
            Ok(got) if got.len() == 1 => got[0],
            other => return self.ensure(false, || format!("finish: {other:?}")),
        };
        let claim = self.model.claim_of(seq, token);
        match claim {
            Claim::Held => self.ensure(got, || {
                format!("finish of the held claim ({seq}, {token}) refused")
            })?,
            Claim::Lapsed => {}
            Claim::Stale => self.ensure(!got, || {
                format!("finish of a stale claim ({seq}, {token}) recorded")
            })?,
        }
        if !got {
            return Ok(());
        }
        let m = &mut self.model;
        m.lapsed.remove(&seq);
        match done {
            Done::Keep => {
                if let Some(lease) = m.leases.get_mut(&seq) {
                    lease.kept = true;
                }
                return Ok(());
            }
            Done::Release => {}
            Done::Forget => {
                m.events.remove(&seq);
            }
            Done::Retry(after) => {
                if let Some(e) = m.events.get_mut(&seq) {
                    let attempts = match e.standing {
                        Standing::Retrying { attempts, .. } => attempts + 1,
                        _ => 1,
                    };
                    e.standing = Standing::Retrying {
                        next_at: now + after,
                        attempts,
                    };
                }
            }
            Done::Dead => {
                if let Some(e) = m.events.get_mut(&seq) {
                    e.standing = Standing::Dead { dead_at: now };
                }
            }
        }
        m.leases.remove(&seq);
        Ok(())
    }

    fn change_dead(&mut self, change: DeadChange) -> Step {
        let filter = Filter::default();
        let all = DeadSelection::Matching {
            filter: &filter,
            after: 0,
            limit: 1_000,
        };
        let got = self.backend().change_dead(&all, change);
        let _ = write!(self.log, " -> {got:?}");
        let done = match got {
            Ok(changed) => changed.done,
            Err(e) => return self.ensure(false, || format!("change_dead: {e}")),
        };
        let m = &mut self.model;
        let mut expected = 0;
        let dead: Vec<(u64, i64)> = m
            .events
            .iter()
            .filter_map(|(&seq, e)| match e.standing {
                Standing::Dead { dead_at } => Some((seq, dead_at)),
                _ => None,
            })
            .collect();
        for (seq, dead_at) in dead {
            match change {
                DeadChange::Replay { now_ms } => {
                    expected += 1;
                    if let Some(e) = m.events.get_mut(&seq) {
                        e.standing = Standing::Retrying {
                            next_at: now_ms,
                            attempts: 0,
                        };
                    }
                }
                DeadChange::Purge { dead_before_ms } if dead_at <= dead_before_ms => {
                    expected += 1;
                    m.events.remove(&seq);
                }
                DeadChange::Purge { .. } => {}
            }
        }
        self.ensure(done == expected, || {
            format!("change_dead changed {done}, expected {expected}")
        })
    }

    fn step(&mut self, op: &Op) -> Step {
        let _ = write!(self.log, "  {op:?}");
        match *op {
            Op::Ingest { key } => {
                let id = format!("evt_{}", self.model.ids.len());
                self.insert(id, key)?;
            }
            Op::Again { pick } => {
                let ids = &self.model.ids;
                if let Some((id, key)) = ids.get(pick % ids.len().max(1)).cloned() {
                    self.insert(id, key)?;
                }
            }
            Op::Claim { limit } => {
                self.claim(limit)?;
            }
            Op::ClaimAll => {
                let now = self.model.now;
                self.model.expire(now);
                let claimable = self.model.claimable(now);
                let mut all = BTreeSet::new();
                for _ in 0..4 {
                    let seqs = self.claim(CLAIM_ALL)?;
                    if seqs.is_empty() {
                        break;
                    }
                    all.extend(seqs);
                }
                self.ensure(all == claimable, || {
                    format!(
                        "claiming until nothing came handed out {all:?}; claimable: {claimable:?}"
                    )
                })?;
            }
            Op::Advance { ms } => self.model.now += ms,
            Op::Heartbeat { pick, live } => {
                if let Some((seq, token)) = self.model.pick(pick, live) {
                    self.heartbeat(seq, token)?;
                }
            }
            Op::Finish { pick, live, done } => {
                if let Some((seq, token)) = self.model.pick(pick, live) {
                    self.finish(seq, token, done)?;
                }
            }
            Op::ReplayDead => {
                let now_ms = self.model.now;
                self.change_dead(DeadChange::Replay { now_ms })?;
            }
            Op::PurgeDead { age } => {
                let dead_before_ms = self.model.now - age;
                self.change_dead(DeadChange::Purge { dead_before_ms })?;
            }
            Op::Collect => {
                // Every marker and every re-dated retention entry is older
                // than the cutoff; writes are visible first (sync).
                sync(self.backend());
                let retention =
                    i64::try_from(Config::default().retention.as_millis()).unwrap_or(i64::MAX);
                self.model.now += retention + 1;
                let got = self
                    .backend()
                    .collect_expired(from_unix_millis(self.model.now));
                let _ = write!(self.log, " -> {got:?}");
                let m = &mut self.model;
                let before = m.markers.len();
                m.markers.retain(|_, seq| m.events.contains_key(seq));
                let expected = before - m.markers.len();
                self.ensure(matches!(got, Ok(n) if n == expected), || {
                    format!("collected {got:?}, expected {expected}")
                })?;
            }
            Op::Reopen => {
                if let Some(old) = self.backend.take() {
                    self.backend = Some(self.harness.reopen(old));
                }
                let m = &mut self.model;
                m.leases.clear();
                m.lapsed.clear();
                m.handed.clear();
            }
        }
        sync(self.backend());
        let got = self.backend().counts();
        let expected = self.model.counts();
        let _ = writeln!(self.log);
        self.ensure(got == expected, || {
            format!("counts {got:?}, expected {expected:?}")
        })
    }
}

/// Runs `cases` random cases of up to 40 steps against fresh backends of
/// `factory` (`CONFORMANCE_CASES` in the environment overrides the number,
/// for a longer search).
pub(super) fn check(factory: &Factory, cases: u32) {
    let cases = std::env::var("CONFORMANCE_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(cases);
    let config = RunnerConfig {
        cases,
        failure_persistence: None,
        max_shrink_iters: 512,
        ..RunnerConfig::default()
    };
    let mut runner = TestRunner::new(config);
    let strategy = (any::<bool>(), prop::collection::vec(op(), 1..=40));
    let result = runner.run(&strategy, |(ordered, ops)| {
        let mut harness = factory(Config::default());
        let backend = harness.open();
        let mut run = Run {
            harness,
            backend: Some(backend),
            model: Model {
                now: T0,
                ordered,
                ..Model::default()
            },
            log: format!("ordered: {ordered}\n"),
        };
        for op in &ops {
            run.step(op)?;
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
