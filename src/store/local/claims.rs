//! The claims of this process: leases with their tokens, the scan for
//! fresh events, the events hidden until the tables' readers see their
//! outcome, and per-key order; and how a claim takes due events from them.

use std::collections::{HashMap, HashSet, VecDeque};

use super::keys::{self, Keys};
use super::{Local, Tables};
use crate::store::backend::{ClaimRequest, Claimed, Token};
use crate::store::{Standing, StoreError, Stored};

/// Events read from the tables per step of a scan.
pub(super) const STEP: usize = 512;
/// Events waiting behind their ordering key, at most: past it the scan for
/// fresh events pauses until keys are released (memory stays bounded when a
/// key is stuck behind a long retry).
pub(super) const MAX_WAITING: usize = 100_000;

/// One claimed event.
#[derive(Debug, Clone, Copy)]
pub(super) struct Lease {
    pub(super) token: Token,
    pub(super) until_ms: i64,
    /// Where the event stood in the tables when last written.
    pub(super) standing: Standing,
    /// Left alone by its holder ([`Outcome::Keep`]).
    pub(super) kept: bool,
}

/// The claims of this process.
#[derive(Default)]
pub(super) struct Claims {
    pub(super) next_token: Token,
    pub(super) leases: HashMap<u64, Lease>,
    /// The last seq read by the scan for fresh events.
    pub(super) cursor: u64,
    /// (position, seqs): finished events not to hand out until the tables'
    /// readers see their outcome.
    pub(super) settling: VecDeque<(u64, Vec<u64>)>,
    pub(super) hidden: HashSet<u64>,
    pub(super) keys: Option<Keys>,
}

impl Claims {
    pub(super) fn excluded(&self, seq: u64) -> bool {
        self.leases.contains_key(&seq)
            || self.hidden.contains(&seq)
            || self.keys.as_ref().is_some_and(|k| k.is_waiting(seq))
    }

    /// Drops the leases that ended before `now_ms`; a fresh event is found
    /// again by the scan, a retrying one by the due scan.
    pub(super) fn expire(&mut self, now_ms: i64) {
        let mut rewind = None::<u64>;
        let mut kept = Vec::new();
        self.leases.retain(|&seq, lease| {
            let live = lease.until_ms >= now_ms;
            if !live && lease.standing == Standing::Fresh {
                rewind = Some(rewind.map_or(seq, |r| r.min(seq)));
            }
            if !live && lease.kept {
                kept.push(seq);
            }
            live
        });
        if let Some(seq) = rewind {
            self.rewind(seq);
        }
        self.restore(kept);
    }

    /// The claims that kept these events ended: they hold their keys again.
    pub(super) fn restore(&mut self, kept: impl IntoIterator<Item = u64>) {
        if let Some(keys) = self.keys.as_mut() {
            for seq in kept {
                keys.restore(seq);
            }
        }
    }

    /// Makes the scan read event `seq` again.
    pub(super) fn rewind(&mut self, seq: u64) {
        self.cursor = self.cursor.min(seq.saturating_sub(1));
    }

    /// Leases `stored` under a new token.
    pub(super) fn lease(&mut self, stored: Stored, until_ms: i64) -> Claimed {
        self.next_token += 1;
        let token = self.next_token;
        self.leases.insert(
            stored.seq,
            Lease {
                token,
                until_ms,
                standing: stored.standing(),
                kept: false,
            },
        );
        Claimed { stored, token }
    }
}

impl<T: Tables> Local<T> {
    /// Registers the retrying events already stored under their keys, so a
    /// later event of the same key waits for them, and the fresh events
    /// before them of their keys, which they wait for (once per pointer;
    /// fresh events after them register as the scan for fresh events meets
    /// them).
    pub(super) fn prime_keys(&self, claims: &mut Claims) -> Result<(), StoreError> {
        let Some(keys) = claims.keys.as_mut() else {
            return Ok(());
        };
        if keys.primed {
            return Ok(());
        }
        // The last retrying event of each key.
        let mut last_retrying: HashMap<String, u64> = HashMap::new();
        self.each_event(u64::MAX, &mut |stored| {
            if stored.standing() == Standing::Retrying
                && let Some(key) = keys::key_at(keys.pointer(), &stored.event.body)
            {
                last_retrying.insert(key, stored.seq);
            }
        })?;
        let Some(&upto) = last_retrying.values().max() else {
            keys.primed = true;
            return Ok(());
        };
        // In seq order, so the first of each key is registered first.
        self.each_event(upto, &mut |stored| {
            let register = match stored.standing() {
                Standing::Retrying => true,
                Standing::Fresh => keys::key_at(keys.pointer(), &stored.event.body)
                    .and_then(|key| last_retrying.get(&key))
                    .is_some_and(|&last| stored.seq < last),
                Standing::Dead => false,
            };
            if register {
                keys.admit(stored.seq, &stored.event.body);
            }
        })?;
        keys.primed = true;
        Ok(())
    }

    /// Calls `f` with every stored event up to seq `upto`, in seq order.
    pub(super) fn each_event(
        &self,
        upto: u64,
        f: &mut dyn FnMut(&Stored),
    ) -> Result<(), StoreError> {
        let mut after = 0;
        loop {
            let page = self.tables.events_after(after, STEP)?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for stored in page.iter().take_while(|s| s.seq <= upto) {
                f(stored);
            }
            if after >= upto {
                break;
            }
        }
        Ok(())
    }

    /// The events waiting behind a key that are now first of it.
    pub(super) fn take_ready(
        &self,
        claims: &mut Claims,
        request: &ClaimRequest<'_>,
        out: &mut Vec<Claimed>,
    ) -> Result<(), StoreError> {
        let ready = claims.keys.as_ref().map(Keys::ready).unwrap_or_default();
        for seq in ready {
            if out.len() >= request.limit {
                break;
            }
            let Some(keys) = claims.keys.as_mut() else {
                break;
            };
            match self.tables.get(seq)? {
                Some(stored) if stored.standing() != Standing::Dead => {
                    keys.admit(seq, &stored.event.body);
                    let due = stored
                        .progress
                        .as_ref()
                        .is_none_or(|p| p.next_at_ms <= request.now_ms);
                    if due && !claims.leases.contains_key(&seq) && !claims.hidden.contains(&seq) {
                        out.push(claims.lease(stored, request.lease_until_ms));
                    }
                }
                // Gone or dead: the key passes on.
                _ => keys.finished(seq),
            }
        }
        Ok(())
    }

    /// Retries due by now, by due time.
    pub(super) fn take_due(
        &self,
        claims: &mut Claims,
        request: &ClaimRequest<'_>,
        out: &mut Vec<Claimed>,
    ) -> Result<(), StoreError> {
        let room = request.limit.saturating_sub(out.len());
        if room == 0 {
            return Ok(());
        }
        let due = {
            let c = &*claims;
            self.tables
                .due(request.now_ms, room, &|seq| c.excluded(seq))?
        };
        for stored in due {
            if let Some(keys) = claims.keys.as_mut()
                && !keys.admit(stored.seq, &stored.event.body)
            {
                continue;
            }
            out.push(claims.lease(stored, request.lease_until_ms));
        }
        Ok(())
    }

    /// Fresh events in acceptance order, from the scan's cursor.
    pub(super) fn take_fresh(
        &self,
        claims: &mut Claims,
        request: &ClaimRequest<'_>,
        out: &mut Vec<Claimed>,
    ) -> Result<(), StoreError> {
        let full = |claims: &Claims, out: &Vec<Claimed>| {
            out.len() >= request.limit
                || claims
                    .keys
                    .as_ref()
                    .is_some_and(|k| k.waiting_count() >= MAX_WAITING)
        };
        while !full(claims, out) {
            let room = request.limit.saturating_sub(out.len()).clamp(1, STEP);
            let batch = self.tables.events_after(claims.cursor, room)?;
            if batch.is_empty() {
                break;
            }
            for stored in batch {
                if full(claims, out) {
                    return Ok(());
                }
                claims.cursor = stored.seq;
                if stored.standing() != Standing::Fresh || claims.excluded(stored.seq) {
                    continue;
                }
                if let Some(keys) = claims.keys.as_mut()
                    && !keys.admit(stored.seq, &stored.event.body)
                {
                    continue;
                }
                out.push(claims.lease(stored, request.lease_until_ms));
            }
        }
        Ok(())
    }
}
