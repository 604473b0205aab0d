//! An event's life as pure functions of its [`Progress`]:
//!
//! ```text
//! fresh ──fail+retry──▶ retrying ──fail+retry──▶ retrying
//!   │                      │
//!   └──────fail+bury───────┴──▶ dead ──replay──▶ retrying (due now)
//! any ──forget──▶ gone (handled, skipped, or purged; the dedup marker stays)
//! ```
//!
//! The worker and the operator calls change an event only through these, so
//! its fields are edited in one place. Forgetting is [`Outcome::Forget`](super::backend::Outcome::Forget):
//! nothing of the progress is left to compute.

use super::Progress;

/// Attempt `attempt` failed at `now_ms` with `error`: the progress so far
/// (none for a fresh event) with the attempt counted and the failure in its
/// history. Follow with [`retry`] or [`bury`].
pub(crate) fn fail(progress: Option<Progress>, attempt: u32, now_ms: i64, error: &str) -> Progress {
    let mut progress = progress.unwrap_or(Progress::new(now_ms));
    progress.attempts = attempt;
    progress.push_failure(attempt, now_ms, error);
    progress
}

/// Another attempt is due at `at_ms`.
pub(crate) fn retry(mut progress: Progress, at_ms: i64) -> Progress {
    progress.next_at_ms = at_ms;
    progress.dead_at_ms = None;
    progress
}

/// No attempt is left: a dead letter since `now_ms`.
pub(crate) fn bury(mut progress: Progress, now_ms: i64) -> Progress {
    progress.dead_at_ms = Some(now_ms);
    progress
}

/// A dead letter put back to work: due at `now_ms`, attempts counted
/// afresh, its history kept.
pub(crate) fn replay(mut progress: Progress, now_ms: i64) -> Progress {
    progress.attempts = 0;
    progress.next_at_ms = now_ms;
    progress.dead_at_ms = None;
    progress
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Standing;

    #[test]
    fn an_event_fails_retries_dies_and_is_replayed() {
        let first = fail(None, 1, 1_000, "down");
        let retrying = retry(first, 2_000);
        assert_eq!(Standing::of(Some(&retrying)), Standing::Retrying);
        assert_eq!((retrying.attempts, retrying.next_at_ms), (1, 2_000));
        let dead = bury(fail(Some(retrying), 2, 2_000, "still down"), 2_000);
        assert_eq!(Standing::of(Some(&dead)), Standing::Dead);
        assert_eq!(dead.errors.len(), 2);
        let replayed = replay(dead, 9_000);
        assert_eq!(Standing::of(Some(&replayed)), Standing::Retrying);
        assert_eq!((replayed.attempts, replayed.next_at_ms), (0, 9_000));
        assert_eq!(replayed.errors.len(), 2, "the history is kept");
    }
}
