//! A stored event as an operator sees it, where it stands and its failed
//! attempts, converted from the store's own records.

use std::time::SystemTime;

use crate::clock::from_unix_millis;
use crate::store::{Progress, Standing, Stored};

/// Where a stored event stands.
///
/// ```
/// use webhook_inbox::EventState;
///
/// assert_eq!(EventState::Dead.to_string(), "dead");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventState {
    /// Not attempted yet (or attempted without a recorded outcome).
    Pending,
    /// Scheduled for another attempt: it failed at least once, or it is a
    /// replayed dead letter (attempts back to 0, history kept) waiting to run.
    Retrying,
    /// Failed for good; waiting for an operator to replay or purge it.
    Dead,
}

impl std::fmt::Display for EventState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Pending => "pending",
            Self::Retrying => "retrying",
            Self::Dead => "dead",
        })
    }
}

impl From<EventState> for Standing {
    fn from(state: EventState) -> Self {
        match state {
            EventState::Pending => Self::Fresh,
            EventState::Retrying => Self::Retrying,
            EventState::Dead => Self::Dead,
        }
    }
}

impl From<Standing> for EventState {
    fn from(standing: Standing) -> Self {
        match standing {
            Standing::Fresh => Self::Pending,
            Standing::Retrying => Self::Retrying,
            Standing::Dead => Self::Dead,
        }
    }
}

/// One failed attempt in an event's history.
///
/// ```
/// use webhook_inbox::AttemptError;
///
/// fn describe(a: &AttemptError) -> String {
///     format!("attempt {}: {}", a.attempt, a.error)
/// }
/// # let _ = describe;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AttemptError {
    /// The attempt's number, from 1 (numbering restarts after a replay).
    pub attempt: u32,
    /// When it failed.
    pub at: SystemTime,
    /// What the handler said (at most 1 KiB; the latest 16 attempts are kept).
    pub error: String,
}

/// A stored event: what was received, and where it stands. Handled events
/// are no longer stored (only their dedup marker is).
///
/// ```
/// use webhook_inbox::{EventState, StoredEvent};
///
/// fn line(e: &StoredEvent) -> String {
///     format!("{} {} {} after {} attempts", e.id, e.event_type, e.state, e.attempts)
/// }
/// # let _ = line;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoredEvent {
    /// The store's sequence number (acceptance order).
    pub seq: u64,
    /// The ingestor's source name.
    pub source: String,
    /// The event id.
    pub id: String,
    /// The event type.
    pub event_type: String,
    /// When it was accepted.
    pub received_at: SystemTime,
    /// Where it stands.
    pub state: EventState,
    /// Attempts that failed (since the last replay).
    pub attempts: u32,
    /// When the next attempt is due (retrying events).
    pub next_attempt: Option<SystemTime>,
    /// When it became a dead letter (dead events).
    pub dead_at: Option<SystemTime>,
    /// The latest failures, oldest first.
    pub errors: Vec<AttemptError>,
    /// The scheme's headers as received.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Vec<u8>,
}

impl From<Stored> for StoredEvent {
    fn from(stored: Stored) -> Self {
        let state = EventState::from(stored.standing());
        let p = stored.progress.unwrap_or(Progress::new(0));
        Self {
            seq: stored.seq,
            source: stored.event.source,
            id: stored.event.id,
            event_type: stored.event.event_type,
            received_at: from_unix_millis(stored.event.received_at_ms),
            state,
            attempts: p.attempts,
            next_attempt: (state == EventState::Retrying).then(|| from_unix_millis(p.next_at_ms)),
            dead_at: p.dead_at_ms.map(from_unix_millis),
            errors: p
                .errors
                .into_iter()
                .map(|f| AttemptError {
                    attempt: f.attempt,
                    at: from_unix_millis(f.at_ms),
                    error: f.error,
                })
                .collect(),
            headers: stored.event.headers,
            body: stored.event.body,
        }
    }
}
