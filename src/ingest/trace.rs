//! `tracing` events for ingest outcomes (feature `tracing`); without the
//! feature every function here is an empty inline and costs nothing.
//!
//! `webhook_inbox::ingest` events: one per delivery, `debug` when accepted
//! or a duplicate, `error` when the store failed. A refusal (with its
//! reason and the status answered) is a `warn` at most once per
//! 10 s per ingestor and kind of refusal (`kind`), carrying how
//! many of that kind were `suppressed` (logged at `debug`) since the last
//! warn; every other refusal is a `debug` line. Unauthenticated senders
//! cause refusals, so a flood of them cannot fill the logs; the exact
//! counts are in [`Inbox::stats`](crate::Inbox::stats).

use std::time::Duration;

use crate::clock::Clock;
#[cfg(feature = "tracing")]
use crate::error::VerifyError;
use crate::outcome::{IngestError, Ingested};

/// The shortest time between two `warn` lines for one kind of refusal, per
/// ingestor.
#[cfg(feature = "tracing")]
pub(crate) const REFUSAL_WARN_EVERY: Duration = Duration::from_secs(10);

/// The kinds of refusal, each limited on its own (as [`crate::Rejections`] counts them).
#[cfg(feature = "tracing")]
const KINDS: [&str; 7] = [
    "missing_header",
    "malformed_header",
    "bad_signature",
    "stale_timestamp",
    "malformed_event",
    "too_large",
    "overloaded",
];

/// Which of [`KINDS`] a refusal is; `None` for a storage failure (always an `error`).
#[cfg(feature = "tracing")]
fn kind_of(e: &IngestError) -> Option<usize> {
    Some(match e {
        IngestError::Rejected(VerifyError::MissingHeader { .. }) => 0,
        IngestError::Rejected(VerifyError::NoMatchingSignature { .. }) => 2,
        IngestError::Rejected(
            VerifyError::TimestampTooOld { .. } | VerifyError::TimestampInFuture { .. },
        ) => 3,
        IngestError::Rejected(_) => 1,
        IngestError::MalformedEvent(_) => 4,
        IngestError::TooLarge { .. } => 5,
        IngestError::Overloaded { .. } => 6,
        _ => return None,
    })
}

/// Per ingestor: when each kind of refusal may next be a `warn`, and how many
/// of it went to `debug` since the last one.
#[cfg(feature = "tracing")]
#[derive(Default)]
pub(crate) struct RefusalLimiter {
    slots: [RefusalSlot; KINDS.len()],
}

#[cfg(feature = "tracing")]
#[derive(Default)]
struct RefusalSlot {
    /// Unix ms before which this kind is logged at `debug`.
    next_warn_ms: std::sync::atomic::AtomicI64,
    suppressed: std::sync::atomic::AtomicU64,
}

#[cfg(feature = "tracing")]
impl RefusalLimiter {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// `Some(suppressed since the last warn)` when this refusal may be a
    /// `warn` now; `None` (and counted) when it goes to `debug`.
    fn admit(&self, kind: usize, now_ms: i64) -> Option<u64> {
        use std::sync::atomic::Ordering::Relaxed;
        let slot = self.slots.get(kind)?;
        let next = slot.next_warn_ms.load(Relaxed);
        let every = i64::try_from(REFUSAL_WARN_EVERY.as_millis()).unwrap_or(i64::MAX);
        // A clock stepped back would otherwise silence warns until it caught up.
        let due = now_ms >= next || next.saturating_sub(now_ms) > every;
        if due
            && slot
                .next_warn_ms
                .compare_exchange(next, now_ms.saturating_add(every), Relaxed, Relaxed)
                .is_ok()
        {
            Some(slot.suppressed.swap(0, Relaxed))
        } else {
            slot.suppressed.fetch_add(1, Relaxed);
            None
        }
    }
}

/// Without the `tracing` feature: nothing to limit.
#[cfg(not(feature = "tracing"))]
pub(crate) struct RefusalLimiter;

#[cfg(not(feature = "tracing"))]
impl RefusalLimiter {
    pub(crate) fn new() -> Self {
        Self
    }
}

/// Reports one delivery's outcome; `clock` places refusals in their
/// `REFUSAL_WARN_EVERY` windows.
#[cfg(feature = "tracing")]
pub(crate) fn ingested(
    source: &str,
    limiter: &RefusalLimiter,
    clock: &dyn Clock,
    outcome: &Result<Ingested, IngestError>,
    took: Duration,
) {
    let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
    match outcome {
        Ok(Ingested::Accepted { id, seq }) => {
            tracing::debug!(target: "webhook_inbox::ingest", source, id = id.as_str(), seq, micros, "accepted");
        }
        Ok(Ingested::Duplicate { id }) => {
            tracing::debug!(target: "webhook_inbox::ingest", source, id = id.as_str(), micros, "duplicate");
        }
        Err(e @ IngestError::Storage(_)) => {
            tracing::error!(target: "webhook_inbox::ingest", source, status = e.status(), error = %e, "store failed");
        }
        Err(e) => {
            let kind = kind_of(e).unwrap_or(0);
            let kind_name = KINDS.get(kind).copied().unwrap_or("refused");
            let now_ms = crate::clock::unix_millis(clock.now());
            match limiter.admit(kind, now_ms) {
                Some(suppressed) => {
                    tracing::warn!(target: "webhook_inbox::ingest", source, status = e.status(), kind = kind_name, suppressed, reason = %e, "refused");
                }
                None => {
                    tracing::debug!(target: "webhook_inbox::ingest", source, status = e.status(), kind = kind_name, reason = %e, "refused");
                }
            }
        }
    }
}

#[cfg(not(feature = "tracing"))]
#[inline(always)]
pub(crate) fn ingested(
    _: &str,
    _: &RefusalLimiter,
    _: &dyn Clock,
    _: &Result<Ingested, IngestError>,
    _: Duration,
) {
}
