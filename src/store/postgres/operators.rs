//! The operator calls on the shared database: paged listings, one event by
//! id, and replay or purge of dead letters (a page per transaction).

use super::claims::{Batch, apply, state};
use super::pool::failed;
use super::{Shared, big, stored};
use crate::store::backend::{Changed, DeadChange, DeadSelection, Filter, Listing, Outcome};
use crate::store::{StoreError, Stored, lifecycle};

/// Events read per step.
const STEP: i64 = 512;

/// Up to `limit` events passing `filter` after seq `after`.
pub(super) fn list(
    shared: &Shared,
    filter: &Filter,
    after: u64,
    limit: usize,
) -> Result<Listing, StoreError> {
    shared.check_open()?;
    // The type pattern is matched by `collect`; the rest in SQL too.
    let step = usize::try_from(STEP).unwrap_or(usize::MAX);
    Listing::collect(filter, after, limit, step, |cursor| {
        page(shared, filter, cursor)
    })
}

/// One step of events after `cursor`, filtered by all but the type.
fn page(shared: &Shared, filter: &Filter, cursor: u64) -> Result<Vec<Stored>, StoreError> {
    let standing = filter.standing.map(state);
    let source = filter.source.clone();
    let (since, until) = (filter.since_ms, filter.until_ms);
    let after = big(cursor);
    let rows = shared.run(move |conn, sql| {
        let st = conn.statement("list", &sql.list)?;
        conn.client
            .query(&st, &[&after, &standing, &source, &since, &until, &STEP])
            .map_err(failed)
    })?;
    rows.iter().map(stored).collect()
}

/// The stored event with `id` (from `source`, or any source).
pub(super) fn event(
    shared: &Shared,
    source: Option<&str>,
    id: &str,
) -> Result<Option<Stored>, StoreError> {
    let (source, id) = (source.map(str::to_owned), id.to_owned());
    let row = shared.run(move |conn, sql| {
        let st = conn.statement("event", &sql.event)?;
        conn.client.query_opt(&st, &[&id, &source]).map_err(failed)
    })?;
    row.as_ref().map(stored).transpose()
}

/// The outcome `change` gives dead letter `stored`, if any.
fn outcome(stored: Stored, change: DeadChange) -> Option<(u64, Outcome)> {
    let progress = stored.progress?;
    match change {
        DeadChange::Replay { now_ms } => Some((
            stored.seq,
            Outcome::Progress(lifecycle::replay(progress, now_ms)),
        )),
        DeadChange::Purge { dead_before_ms } => {
            (progress.dead_at_ms? <= dead_before_ms).then_some((stored.seq, Outcome::Forget))
        }
    }
}

/// Applies `changes` to dead letters (still dead: `apply` checks); answers how many.
fn change(shared: &Shared, changes: &[(u64, Outcome)]) -> Result<usize, StoreError> {
    if changes.is_empty() {
        return Ok(0);
    }
    let mut batch = Batch::default();
    for (i, (seq, outcome)) in changes.iter().enumerate() {
        batch.push(i, *seq, None, outcome);
    }
    Ok(apply(shared, vec![batch])?.len())
}

/// The dead letters after `cursor`, a step of them.
fn dead_page(shared: &Shared, cursor: u64) -> Result<Vec<Stored>, StoreError> {
    let after = big(cursor);
    let rows = shared.run(move |conn, sql| {
        let st = conn.statement("dead_page", &sql.dead_page)?;
        conn.client.query(&st, &[&after, &STEP]).map_err(failed)
    })?;
    rows.iter().map(stored).collect()
}

/// Replays or purges the dead letters `which` selects, a page per transaction.
pub(super) fn change_dead(
    shared: &Shared,
    which: &DeadSelection<'_>,
    change_to: DeadChange,
) -> Result<Changed, StoreError> {
    shared.check_open()?;
    match which {
        DeadSelection::Id { source, id } => {
            let (source, id) = (source.map(str::to_owned), (*id).to_owned());
            let rows = shared.run(move |conn, sql| {
                let st = conn.statement("dead_by_id", &sql.dead_by_id)?;
                conn.client.query(&st, &[&id, &source]).map_err(failed)
            })?;
            let mut changes = Vec::new();
            for row in &rows {
                changes.extend(outcome(stored(row)?, change_to));
            }
            Ok(Changed {
                done: change(shared, &changes)?,
                more: false,
            })
        }
        DeadSelection::Matching {
            filter,
            after,
            limit,
        } => Changed::page_through(
            filter,
            *after,
            *limit,
            usize::try_from(STEP).unwrap_or(usize::MAX),
            |cursor| dead_page(shared, cursor),
            |stored| outcome(stored, change_to),
            |changes| change(shared, changes),
        ),
    }
}
