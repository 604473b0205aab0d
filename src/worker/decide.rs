//! What a handler's result comes to: the outcome to record and the report,
//! by the event's backoff and the store's lifecycle functions.

use crate::backoff::{Backoff, Jitter};
use crate::clock::from_unix_millis;
use crate::pattern::Patterns;
use crate::router::{Dispatch, HandlerError, UnknownTypes};
use crate::store::backend::Outcome;
use crate::store::{Progress, lifecycle};

use super::Report;
use super::handlers::Job;

/// How a caught panic's error message starts.
pub(super) const PANICKED: &str = "the handler panicked: ";

/// Retry schedules by event type, and the jitter they draw from.
pub(super) struct Policy {
    pub(super) backoff: Backoff,
    pub(super) backoffs: Patterns<Backoff>,
    pub(super) jitter: Jitter,
}

impl Policy {
    /// The outcome to record for a job's result, and the report.
    pub(super) fn decide(&mut self, job: &Job, result: Dispatch, now_ms: i64) -> (Outcome, Report) {
        let error = match result {
            Dispatch::Ran(Ok(())) => return (Outcome::Forget, Report::Handled),
            Dispatch::Unknown(UnknownTypes::Keep) => return (Outcome::Keep, Report::Kept),
            Dispatch::Unknown(UnknownTypes::DeadLetter) => HandlerError::permanent(format!(
                "no handler for event type `{}`",
                job.event.event_type()
            )),
            Dispatch::Unknown(UnknownTypes::Complete) => return (Outcome::Forget, Report::Skipped),
            Dispatch::Ran(Err(e)) => e,
            Dispatch::Panicked(what) => HandlerError::retry(format!("{PANICKED}{what}")),
        };
        let (progress, report) = self.failed(job, &error, now_ms);
        (Outcome::Progress(progress), report)
    }

    /// The progress and report of a job whose attempt failed with `error`:
    /// the next attempt by the backoff, or a dead letter.
    pub(super) fn failed(
        &mut self,
        job: &Job,
        error: &HandlerError,
        now_ms: i64,
    ) -> (Progress, Report) {
        let attempt = job.event.attempt();
        let backoff = self
            .backoffs
            .get(job.event.event_type())
            .unwrap_or(&self.backoff);
        let delay = if error.is_permanent() {
            None
        } else {
            backoff
                .delay_after(attempt, &mut self.jitter)
                .map(|d| error.requested_wait().unwrap_or(d))
        };
        let message = match delay {
            None if !error.is_permanent() => format!(
                "{error} (attempt {attempt} of {}: no attempt left)",
                backoff.max_attempts()
            ),
            _ => error.to_string(),
        };
        let failed = lifecycle::fail(job.progress.clone(), attempt, now_ms, &message);
        match delay {
            Some(delay) => {
                let wait = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
                let progress = lifecycle::retry(failed, now_ms.saturating_add(wait));
                let next_attempt = from_unix_millis(progress.next_at_ms);
                let report = Report::Retrying {
                    attempt,
                    next_attempt,
                    error: message,
                };
                (progress, report)
            }
            None => (
                lifecycle::bury(failed, now_ms),
                Report::DeadLettered {
                    attempt,
                    error: message,
                },
            ),
        }
    }
}
