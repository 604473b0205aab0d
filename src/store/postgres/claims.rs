//! Claims on the shared database: leases under fencing tokens, heartbeats,
//! outcomes in batches, and the ordering keys claims compare.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use super::pool::failed;
use super::{Shared, big, stored};
use crate::store::backend::{ClaimRequest, Claimed, Finish, Outcome, Token};
use crate::store::local::keys::key_at;
use crate::store::record::encode_progress;
use crate::store::{Progress, Standing, StoreError};
use crate::sync::lock;

/// Events keyed per statement.
const KEY_STEP: i64 = 500;

/// Hands out up to `request.limit` due events under new tokens.
pub(super) fn claim(
    shared: &Shared,
    request: &ClaimRequest<'_>,
) -> Result<Vec<Claimed>, StoreError> {
    shared.check_open()?;
    if request.limit == 0 {
        return Ok(Vec::new());
    }
    if let Some(pointer) = request.ordering {
        key(shared, pointer)?;
    }
    let (now, until, ordered) = (
        request.now_ms,
        request.lease_until_ms,
        request.ordering.is_some(),
    );
    let limit = i32::try_from(request.limit).unwrap_or(i32::MAX);
    let rows = shared.run(move |conn, sql| {
        let st = conn.statement("claim", &sql.claim)?;
        conn.client
            .query(&st, &[&now, &limit, &until, &ordered])
            .map_err(failed)
    })?;
    shared.claimed_at.fetch_max(now, Ordering::SeqCst);
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let token: i64 = row.try_get(8).map_err(failed)?;
        out.push(Claimed {
            stored: stored(row)?,
            token: u64::try_from(token).unwrap_or(0),
        });
    }
    let mut held = lock(&shared.held);
    for c in &out {
        held.insert(c.stored.seq, c.token);
    }
    Ok(out)
}

/// Reads the ordering key at `pointer` of every event not keyed yet, so
/// the claim can compare keys. A pointer other than the last one this
/// process used re-keys every event first.
fn key(shared: &Shared, pointer: &str) -> Result<(), StoreError> {
    let (known, through) = lock(&shared.pointer).clone();
    let rekey = known.as_deref() != Some(pointer);
    let mut through = if rekey { 0 } else { through };
    let owned = pointer.to_owned();
    let top = shared.run(move |conn, sql| {
        if rekey {
            reset_keys(conn, sql, &owned)?;
        }
        let st = conn.statement("top", &sql.top)?;
        let top: i64 = conn
            .client
            .query_one(&st, &[])
            .and_then(|r| r.try_get(0))
            .map_err(failed)?;
        loop {
            let st = conn.statement("unkeyed", &sql.unkeyed)?;
            let rows = conn
                .client
                .query(&st, &[&through, &top, &KEY_STEP])
                .map_err(failed)?;
            let mut seqs = Vec::with_capacity(rows.len());
            let mut keys = Vec::with_capacity(rows.len());
            for row in &rows {
                let seq: i64 = row.try_get(0).map_err(failed)?;
                let body: &[u8] = row.try_get(1).map_err(failed)?;
                seqs.push(seq);
                keys.push(key_at(&owned, body));
            }
            if !seqs.is_empty() {
                let st = conn.statement("set_keys", &sql.set_keys)?;
                conn.client.execute(&st, &[&seqs, &keys]).map_err(failed)?;
            }
            match seqs.last() {
                Some(&last) if i64::try_from(rows.len()).unwrap_or(0) == KEY_STEP => through = last,
                _ => return Ok(top),
            }
        }
    })?;
    *lock(&shared.pointer) = (Some(pointer.to_owned()), top);
    Ok(())
}

/// Records `pointer` as the one events are keyed under; if it differs from
/// the one recorded, every event is to be keyed again.
fn reset_keys(
    conn: &mut super::pool::Conn,
    sql: &super::Sql,
    pointer: &str,
) -> Result<(), StoreError> {
    let fill = |text: &str| super::schema::fill(text, &sql.schema);
    let mut tx = conn.client.transaction().map_err(failed)?;
    let known: Option<String> = tx
        .query_opt(
            &fill("SELECT value FROM {s}.meta WHERE name = 'ordering_pointer' FOR UPDATE"),
            &[],
        )
        .map_err(failed)?
        .map(|r| r.try_get(0))
        .transpose()
        .map_err(failed)?;
    if known.as_deref() != Some(pointer) {
        tx.execute(
            &fill("UPDATE {s}.events SET keyed = false, order_key = NULL WHERE keyed"),
            &[],
        )
        .map_err(failed)?;
        tx.execute(
            &fill(
                "INSERT INTO {s}.meta (name, value) VALUES ('ordering_pointer', $1)
                 ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
            ),
            &[&pointer],
        )
        .map_err(failed)?;
    }
    tx.commit().map_err(failed)
}

/// Extends the leases still held by their tokens.
pub(super) fn heartbeat(
    shared: &Shared,
    claims: &[(u64, Token)],
    until_ms: i64,
) -> Result<Vec<bool>, StoreError> {
    shared.check_open()?;
    let seqs: Vec<i64> = claims.iter().map(|&(s, _)| big(s)).collect();
    let tokens: Vec<i64> = claims.iter().map(|&(_, t)| big(t)).collect();
    let rows = shared.run(move |conn, sql| {
        let st = conn.statement("heartbeat", &sql.heartbeat)?;
        conn.client
            .query(&st, &[&seqs, &tokens, &until_ms])
            .map_err(failed)
    })?;
    let mut alive = HashSet::with_capacity(rows.len());
    for row in &rows {
        let seq: i64 = row.try_get(0).map_err(failed)?;
        let token: i64 = row.try_get(1).map_err(failed)?;
        alive.insert((seq, token));
    }
    let answers: Vec<bool> = claims
        .iter()
        .map(|&(s, t)| alive.contains(&(big(s), big(t))))
        .collect();
    let mut held = lock(&shared.held);
    for (&(seq, token), &ok) in claims.iter().zip(&answers) {
        if !ok && held.get(&seq) == Some(&token) {
            held.remove(&seq);
        }
    }
    Ok(answers)
}

/// An outcome as the `apply` function's columns: kind, progress, state, due.
fn columns(outcome: &Outcome) -> (i16, Option<Vec<u8>>, i16, i64) {
    let of = |p: &Progress| {
        (
            Some(encode_progress(p)),
            state(Standing::of(Some(p))),
            p.next_at_ms,
        )
    };
    match outcome {
        Outcome::Forget => (0, None, 0, 0),
        Outcome::Progress(p) => {
            let (bytes, state, due) = of(p);
            (1, bytes, state, due)
        }
        Outcome::Attempt(p) => {
            let (bytes, state, due) = of(p);
            (2, bytes, state, due)
        }
        Outcome::Keep => (3, None, 0, 0),
        Outcome::Release => (4, None, 0, 0),
    }
}

/// A standing as the `state` column.
pub(super) fn state(standing: Standing) -> i16 {
    match standing {
        Standing::Fresh => 0,
        Standing::Retrying => 1,
        Standing::Dead => 2,
    }
}

/// Arrays for one call of `apply`.
#[derive(Default)]
pub(super) struct Batch {
    pub(super) at: Vec<usize>,
    pub(super) seqs: Vec<i64>,
    pub(super) tokens: Vec<Option<i64>>,
    pub(super) kinds: Vec<i16>,
    pub(super) progress: Vec<Option<Vec<u8>>>,
    pub(super) states: Vec<i16>,
    pub(super) due: Vec<i64>,
}

impl Batch {
    pub(super) fn push(&mut self, at: usize, seq: u64, token: Option<Token>, outcome: &Outcome) {
        let (kind, progress, state, due) = columns(outcome);
        self.at.push(at);
        self.seqs.push(big(seq));
        self.tokens.push(token.map(big));
        self.kinds.push(kind);
        self.progress.push(progress);
        self.states.push(state);
        self.due.push(due);
    }
}

/// Applies `rounds` in one transaction (each round has each seq at most
/// once); answers, per round, the positions recorded.
pub(super) fn apply(shared: &Shared, rounds: Vec<Batch>) -> Result<Vec<usize>, StoreError> {
    shared.run(move |conn, sql| {
        let st = conn.statement("apply", &sql.apply)?;
        let mut tx = conn.client.transaction().map_err(failed)?;
        let mut recorded = Vec::new();
        for b in &rounds {
            let rows = tx
                .query(
                    &st,
                    &[&b.seqs, &b.tokens, &b.kinds, &b.progress, &b.states, &b.due],
                )
                .map_err(failed)?;
            for row in &rows {
                let ord: i64 = row.try_get(0).map_err(failed)?;
                if let Some(&at) = usize::try_from(ord - 1).ok().and_then(|i| b.at.get(i)) {
                    recorded.push(at);
                }
            }
        }
        tx.commit().map_err(failed)?;
        Ok(recorded)
    })
}

/// Records `outcomes`: one transaction; an outcome whose token is not the
/// event's claim is refused.
pub(super) fn finish(shared: &Shared, outcomes: &[Finish]) -> Result<Vec<bool>, StoreError> {
    shared.check_open()?;
    // Outcomes for one claim go in order, one per round.
    let mut rounds: Vec<Batch> = Vec::new();
    let mut seen: Vec<HashSet<u64>> = Vec::new();
    for (i, f) in outcomes.iter().enumerate() {
        let round = seen
            .iter()
            .position(|s| !s.contains(&f.seq))
            .unwrap_or(seen.len());
        if round == seen.len() {
            seen.push(HashSet::new());
            rounds.push(Batch::default());
        }
        seen[round].insert(f.seq);
        rounds[round].push(i, f.seq, Some(f.token), &f.outcome);
    }
    let recorded = apply(shared, rounds)?;
    let mut answers = vec![false; outcomes.len()];
    for i in recorded {
        answers[i] = true;
    }
    let mut held = lock(&shared.held);
    for (f, &ok) in outcomes.iter().zip(&answers) {
        let ends = matches!(
            f.outcome,
            Outcome::Forget | Outcome::Progress(_) | Outcome::Release
        );
        if ok && ends && held.get(&f.seq) == Some(&f.token) {
            held.remove(&f.seq);
        }
    }
    drop(held);
    if answers.iter().any(|&r| r) {
        shared.wake.changed();
    }
    Ok(answers)
}

/// Gives back every claim this process still holds.
pub(super) fn release_all(shared: &Shared) -> Result<(), StoreError> {
    let held: Vec<(u64, Token)> = lock(&shared.held).drain().collect();
    if held.is_empty() {
        return Ok(());
    }
    let seqs: Vec<i64> = held.iter().map(|&(s, _)| big(s)).collect();
    let tokens: Vec<i64> = held.iter().map(|&(_, t)| big(t)).collect();
    shared.run(move |conn, sql| {
        let st = conn.statement("release", &sql.release)?;
        conn.client
            .execute(&st, &[&seqs, &tokens])
            .map_err(failed)?;
        Ok(())
    })?;
    shared.wake.changed();
    Ok(())
}
