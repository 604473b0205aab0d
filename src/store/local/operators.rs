//! The operator calls over in-process tables: paged listings, one event by
//! id, replay and purge of dead letters.

use super::super::backend::{Changed, DeadChange, DeadSelection, Filter, Listing};
use super::super::{Change, Standing, StoreError, Stored, lifecycle};
use super::Tables;

/// Events read per step.
const STEP: usize = 512;

/// Up to `limit` events passing `filter` after seq `after`.
pub(super) fn list(
    tables: &dyn Tables,
    filter: &Filter,
    after: u64,
    limit: usize,
) -> Result<Listing, StoreError> {
    tables.sync_applied()?;
    let dead_only = filter.standing == Some(Standing::Dead);
    Listing::collect(filter, after, limit, STEP, |cursor| {
        if dead_only {
            tables.dead_after(cursor, STEP)
        } else {
            tables.events_after(cursor, STEP)
        }
    })
}

/// The latest stored event with `id`, from `source` or any source.
pub(super) fn event(
    tables: &dyn Tables,
    source: Option<&str>,
    id: &str,
) -> Result<Option<Stored>, StoreError> {
    tables.sync_applied()?;
    let mut found: Option<Stored> = None;
    for seq in tables.find(id)? {
        if let Some(stored) = tables.get(seq)?
            && source.is_none_or(|s| s == stored.event.source)
            && found.as_ref().is_none_or(|f| f.seq < seq)
        {
            found = Some(stored);
        }
    }
    Ok(found)
}

/// The change `change` makes to dead letter `stored`, if any.
fn dead_change(stored: Stored, change: DeadChange) -> Option<Change> {
    let progress = stored.progress?;
    match change {
        DeadChange::Replay { now_ms } => Some(Change::Progress {
            seq: stored.seq,
            was: Standing::Dead,
            progress: lifecycle::replay(progress, now_ms),
        }),
        DeadChange::Purge { dead_before_ms } => {
            (progress.dead_at_ms? <= dead_before_ms).then_some(Change::Forget {
                seq: stored.seq,
                was: Standing::Dead,
            })
        }
    }
}

/// Records `change` for each dead letter `which` selects, a page (one write)
/// at a time. Idempotent: after a failure part-way, calling again finishes.
pub(super) fn change_dead(
    tables: &dyn Tables,
    which: &DeadSelection<'_>,
    change: DeadChange,
) -> Result<Changed, StoreError> {
    tables.sync_applied()?;
    let changed = match which {
        DeadSelection::Id { source, id } => {
            let mut changes = Vec::new();
            for seq in tables.find(id)? {
                if let Some(stored) = tables.get(seq)?
                    && stored.standing() == Standing::Dead
                    && source.is_none_or(|s| s == stored.event.source)
                {
                    changes.extend(dead_change(stored, change));
                }
            }
            tables.record(&changes)?;
            Changed {
                done: changes.len(),
                more: false,
            }
        }
        DeadSelection::Matching {
            filter,
            after,
            limit,
        } => Changed::page_through(
            filter,
            *after,
            *limit,
            STEP,
            |cursor| tables.dead_after(cursor, STEP),
            |stored| dead_change(stored, change),
            |changes| {
                tables.record(changes)?;
                Ok(changes.len())
            },
        )?,
    };
    tables.sync_applied()?;
    Ok(changed)
}
