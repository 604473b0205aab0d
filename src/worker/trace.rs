//! `tracing` spans and events for handler attempts (feature `tracing`);
//! without the feature every function here is an empty inline and costs
//! nothing.
//!
//! - A `webhook_inbox.handle` span around every handler run (fields `source`,
//!   `id`, `event_type`, `attempt`, `seq`), so your handler's own events carry
//!   the event they belong to.
//! - `webhook_inbox::worker` events for each recorded outcome: `debug`
//!   handled or skipped, `warn` retrying or slow, `error` dead-lettered.

use super::Report;
use crate::router::Event;

/// Runs `run` (a handler attempt) inside a `webhook_inbox.handle` span.
#[cfg(feature = "tracing")]
pub(crate) fn handling<T>(event: &Event, run: impl FnOnce() -> T) -> T {
    tracing::info_span!(
        "webhook_inbox.handle",
        source = event.source(),
        id = event.id(),
        event_type = event.event_type(),
        attempt = event.attempt(),
        seq = event.seq(),
    )
    .in_scope(run)
}

#[cfg(not(feature = "tracing"))]
#[inline(always)]
pub(crate) fn handling<T>(_: &Event, run: impl FnOnce() -> T) -> T {
    run()
}

/// Reports a recorded outcome (or a slow handler).
#[cfg(feature = "tracing")]
pub(crate) fn reported(event: &Event, report: &Report) {
    let (id, event_type, attempt) = (event.id(), event.event_type(), event.attempt());
    match report {
        Report::Handled => {
            tracing::debug!(target: "webhook_inbox::worker", id, event_type, attempt, "handled");
        }
        Report::Skipped => {
            tracing::debug!(target: "webhook_inbox::worker", id, event_type, "no handler: completed");
        }
        Report::Kept => {
            tracing::debug!(target: "webhook_inbox::worker", id, event_type, "no handler: kept pending");
        }
        Report::Retrying {
            attempt,
            next_attempt,
            error,
        } => {
            // The worker's clock may be injected: log the due time, not "in N s".
            let next_attempt_unix_ms = crate::clock::unix_millis(*next_attempt);
            tracing::warn!(target: "webhook_inbox::worker", id, event_type, attempt, next_attempt_unix_ms, error = error.as_str(), "retrying");
        }
        Report::DeadLettered { attempt, error } => {
            tracing::error!(target: "webhook_inbox::worker", id, event_type, attempt, error = error.as_str(), "dead-lettered");
        }
        Report::Slow { running_for } => {
            let running_secs = running_for.as_secs();
            tracing::warn!(target: "webhook_inbox::worker", id, event_type, attempt, running_secs, "slow handler");
        }
        Report::LeaseLost { attempt } => {
            tracing::warn!(target: "webhook_inbox::worker", id, event_type, attempt, "outcome refused: the lease had run out and another worker claimed the event");
        }
    }
}

#[cfg(not(feature = "tracing"))]
#[inline(always)]
pub(crate) fn reported(_: &Event, _: &Report) {}
