//! The operations the model test draws, and the model of the contract it
//! checks the backend against, in plain maps.

#[allow(clippy::wildcard_imports)]
use super::*;

/// What a finish records, in the model's terms.
#[derive(Debug, Clone, Copy)]
pub(super) enum Done {
    Forget,
    /// Retry this long after now.
    Retry(i64),
    Dead,
    Release,
    Keep,
}

#[derive(Debug, Clone)]
pub(super) enum Op {
    /// A new event, with ordering key `key` (0: none).
    Ingest {
        key: u8,
    },
    /// An event id seen before (a duplicate, unless its marker was collected).
    Again {
        pick: usize,
    },
    Claim {
        limit: usize,
    },
    /// Claims at the same time until nothing comes.
    ClaimAll,
    Advance {
        ms: i64,
    },
    /// `live`: one of the model's claims; else any claim ever handed out.
    Heartbeat {
        pick: usize,
        live: bool,
    },
    Finish {
        pick: usize,
        live: bool,
        done: Done,
    },
    ReplayDead,
    /// Purges the dead letters that died at least `age` ms ago.
    PurgeDead {
        age: i64,
    },
    /// Collects markers with the clock past the retention of every marker.
    Collect,
    Reopen,
}

pub(super) fn op() -> impl Strategy<Value = Op> {
    let done = prop_oneof![
        3 => Just(Done::Forget),
        2 => (0..2 * LEASE).prop_map(Done::Retry),
        2 => Just(Done::Dead),
        1 => Just(Done::Release),
        2 => Just(Done::Keep),
    ];
    prop_oneof![
        // Mostly one key, so events wait for each other.
        6 => prop_oneof![1 => Just(0u8), 3 => Just(1), 1 => Just(2)].prop_map(|key| Op::Ingest { key }),
        1 => any::<usize>().prop_map(|pick| Op::Again { pick }),
        3 => (1..4usize).prop_map(|limit| Op::Claim { limit }),
        2 => Just(Op::ClaimAll),
        3 => prop_oneof![1..1_000i64, Just(LEASE + 1), 1..3 * LEASE].prop_map(|ms| Op::Advance { ms }),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(pick, live)| Op::Heartbeat { pick, live }),
        6 => (any::<usize>(), prop::bool::weighted(0.8), done)
            .prop_map(|(pick, live, done)| Op::Finish { pick, live, done }),
        1 => Just(Op::ReplayDead),
        1 => prop_oneof![Just(0i64), 1..2 * LEASE].prop_map(|age| Op::PurgeDead { age }),
        1 => Just(Op::Collect),
        2 => Just(Op::Reopen),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Standing {
    Fresh,
    Retrying { next_at: i64, attempts: u32 },
    Dead { dead_at: i64 },
}

#[derive(Debug, Clone)]
pub(super) struct Event {
    pub(super) key: u8,
    pub(super) standing: Standing,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Lease {
    pub(super) token: Token,
    pub(super) until: i64,
    pub(super) kept: bool,
}

/// What a claim's token is, in the model.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Claim {
    /// The event's claim: its outcome is recorded.
    Held,
    /// Its lease ended and a claim passed it by: either answer.
    Lapsed,
    /// Finished, or the event was claimed again: refused.
    Stale,
}

#[derive(Debug, Default)]
pub(super) struct Model {
    pub(super) now: i64,
    pub(super) ordered: bool,
    /// The stored events by seq.
    pub(super) events: BTreeMap<u64, Event>,
    /// Event id → seq, for each dedup marker.
    pub(super) markers: BTreeMap<String, u64>,
    pub(super) leases: BTreeMap<u64, Lease>,
    /// Claims whose lease ended, passed by a later claim.
    pub(super) lapsed: BTreeMap<u64, Token>,
    /// Every claim handed out since the last reopen.
    pub(super) handed: Vec<(u64, Token)>,
    /// Every id ingested, with its ordering key.
    pub(super) ids: Vec<(String, u8)>,
    pub(super) last_seq: u64,
}

impl Model {
    pub(super) fn counts(&self) -> StoreCounts {
        let mut counts = StoreCounts {
            markers: self.markers.len() as u64,
            ..StoreCounts::default()
        };
        for event in self.events.values() {
            match event.standing {
                Standing::Fresh => counts.pending += 1,
                Standing::Retrying { .. } => {
                    counts.pending += 1;
                    counts.retrying += 1;
                }
                Standing::Dead { .. } => counts.dead += 1,
            }
        }
        counts
    }

    /// A claim at `now` ends the leases that ended before it.
    pub(super) fn expire(&mut self, now: i64) {
        let ended: Vec<u64> = self
            .leases
            .iter()
            .filter(|(_, l)| l.until < now)
            .map(|(&seq, _)| seq)
            .collect();
        for seq in ended {
            if let Some(lease) = self.leases.remove(&seq) {
                self.lapsed.insert(seq, lease.token);
            }
        }
    }

    /// Whether an earlier unfinished event of `seq`'s key holds it back: one
    /// not dead, and not left alone by a claim in force ([`Outcome::Keep`]).
    pub(super) fn held_back(&self, seq: u64, key: u8) -> bool {
        self.ordered
            && key != 0
            && self.events.range(..seq).any(|(earlier, e)| {
                e.key == key
                    && !matches!(e.standing, Standing::Dead { .. })
                    && !self.leases.get(earlier).is_some_and(|l| l.kept)
            })
    }

    /// The events a claim at `now` may hand out (after [`Model::expire`]).
    pub(super) fn claimable(&self, now: i64) -> BTreeSet<u64> {
        self.events
            .iter()
            .filter(|(seq, e)| {
                let due = match e.standing {
                    Standing::Fresh => true,
                    Standing::Retrying { next_at, .. } => next_at <= now,
                    Standing::Dead { .. } => false,
                };
                due && !self.leases.contains_key(seq) && !self.held_back(**seq, e.key)
            })
            .map(|(&seq, _)| seq)
            .collect()
    }

    pub(super) fn claim_of(&self, seq: u64, token: Token) -> Claim {
        if self.leases.get(&seq).is_some_and(|l| l.token == token) {
            Claim::Held
        } else if self.lapsed.get(&seq) == Some(&token) {
            Claim::Lapsed
        } else {
            Claim::Stale
        }
    }

    pub(super) fn pick(&self, pick: usize, live: bool) -> Option<(u64, Token)> {
        if live {
            let held: Vec<(u64, Token)> = self.leases.iter().map(|(&s, l)| (s, l.token)).collect();
            held.get(pick % held.len().max(1)).copied()
        } else {
            self.handed.get(pick % self.handed.len().max(1)).copied()
        }
    }
}
