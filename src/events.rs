//! Stored events as an operator sees them: list, show, replay dead letters, purge.

use std::time::{Duration, SystemTime};

use crate::clock::{from_unix_millis, unix_millis};
use crate::inbox::Inbox;
use crate::store::{Change, Progress, Standing, StoreError, Stored};
use crate::sync::lock;

/// Events read from the store per step of a listing or a replay.
const STEP: usize = 512;

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

/// Which stored events to list; see [`Inbox::events`].
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use webhook_inbox::{EventQuery, EventState};
///
/// let yesterday = SystemTime::now() - Duration::from_secs(86_400);
/// let query = EventQuery::dead()
///     .event_type("transfer.*")
///     .received_since(yesterday)
///     .limit(20);
/// # let _ = query;
/// let everything = EventQuery::all().state(EventState::Retrying);
/// # let _ = everything;
/// ```
#[must_use]
#[derive(Debug, Clone)]
pub struct EventQuery {
    state: Option<EventState>,
    source: Option<String>,
    event_type: Option<String>,
    since: Option<SystemTime>,
    until: Option<SystemTime>,
    after: u64,
    limit: usize,
}

impl EventQuery {
    /// Every stored event (pending, retrying, dead), 100 per page.
    ///
    /// ```
    /// # use webhook_inbox::EventQuery;
    /// let q = EventQuery::all();
    /// # let _ = q;
    /// ```
    pub fn all() -> Self {
        Self {
            state: None,
            source: None,
            event_type: None,
            since: None,
            until: None,
            after: 0,
            limit: 100,
        }
    }

    /// The dead letters, 100 per page.
    ///
    /// ```
    /// # use webhook_inbox::EventQuery;
    /// let q = EventQuery::dead();
    /// # let _ = q;
    /// ```
    pub fn dead() -> Self {
        Self::all().state(EventState::Dead)
    }

    /// Only events in `state`.
    ///
    /// ```
    /// # use webhook_inbox::{EventQuery, EventState};
    /// let q = EventQuery::all().state(EventState::Pending);
    /// # let _ = q;
    /// ```
    pub fn state(mut self, state: EventState) -> Self {
        self.state = Some(state);
        self
    }

    /// Only events accepted by the ingestor named `source` (exactly).
    ///
    /// ```
    /// # use webhook_inbox::EventQuery;
    /// let q = EventQuery::dead().source("bluum");
    /// # let _ = q;
    /// ```
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Only events whose type `pattern` matches: exact, `domain.*` or `*`.
    ///
    /// ```
    /// # use webhook_inbox::EventQuery;
    /// let q = EventQuery::dead().event_type("order.*");
    /// # let _ = q;
    /// ```
    pub fn event_type(mut self, pattern: impl Into<String>) -> Self {
        self.event_type = Some(pattern.into());
        self
    }

    /// Only events received at or after `t`.
    ///
    /// ```
    /// # use webhook_inbox::EventQuery;
    /// let q = EventQuery::all().received_since(std::time::UNIX_EPOCH);
    /// # let _ = q;
    /// ```
    pub fn received_since(mut self, t: SystemTime) -> Self {
        self.since = Some(t);
        self
    }

    /// Only events received before `t`.
    ///
    /// ```
    /// # use webhook_inbox::EventQuery;
    /// let q = EventQuery::all().received_before(std::time::SystemTime::now());
    /// # let _ = q;
    /// ```
    pub fn received_before(mut self, t: SystemTime) -> Self {
        self.until = Some(t);
        self
    }

    /// Starts after sequence number `seq`: pass [`Page::next`] here for the next page.
    ///
    /// ```
    /// # use webhook_inbox::EventQuery;
    /// let q = EventQuery::all().after(1_000);
    /// # let _ = q;
    /// ```
    pub fn after(mut self, seq: u64) -> Self {
        self.after = seq;
        self
    }

    /// At most `n` events per page (at least 1).
    ///
    /// ```
    /// # use webhook_inbox::EventQuery;
    /// let q = EventQuery::all().limit(10);
    /// # let _ = q;
    /// ```
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = n.max(1);
        self
    }

    fn matches(&self, e: &Stored) -> bool {
        let received = from_unix_millis(e.event.received_at_ms);
        self.state
            .is_none_or(|s| s == EventState::from(e.standing()))
            && self.source.as_deref().is_none_or(|s| s == e.event.source)
            && self
                .event_type
                .as_deref()
                .is_none_or(|p| crate::pattern::matches(p, &e.event.event_type))
            && self.since.is_none_or(|t| received >= t)
            && self.until.is_none_or(|t| received < t)
    }
}

/// One page of a listing.
///
/// ```
/// use webhook_inbox::{EventQuery, Inbox};
///
/// let dir = std::env::temp_dir().join(format!("page-doc-{}", std::process::id()));
/// let inbox = Inbox::open(&dir)?;
/// let mut query = EventQuery::dead().limit(50);
/// loop {
///     let page = inbox.events(&query)?;
///     for e in &page.events {
///         println!("{} {} {}", e.seq, e.id, e.event_type);
///     }
///     match page.next {
///         Some(next) => query = query.after(next),
///         None => break,
///     }
/// }
/// # inbox.close()?; std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Page {
    /// The events, in acceptance order.
    pub events: Vec<StoredEvent>,
    /// Where the next page starts ([`EventQuery::after`]), if there may be one.
    pub next: Option<u64>,
}

/// What a bounded bulk action did; see [`Inbox::replay_matching`].
///
/// ```
/// use webhook_inbox::Bulk;
///
/// fn say(b: &Bulk) -> String {
///     format!("{} touched{}", b.done, if b.more { ", more may match" } else { "" })
/// }
/// # let _ = say;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Bulk {
    /// How many events it changed.
    pub done: usize,
    /// It stopped at the query's limit: more may match (call again).
    pub more: bool,
}

/// Which dead letters to replay; see [`Inbox::replay`].
///
/// ```
/// use webhook_inbox::Replay;
///
/// let one = Replay::Id("evt_1".into());
/// let deposits = Replay::Type("transfer.deposit.*".into());
/// # let _ = (one, deposits, Replay::AllDead);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Replay {
    /// The dead letter with this event id (from any source).
    Id(String),
    /// Every dead letter whose type this pattern matches (exact, `domain.*`).
    Type(String),
    /// Every dead letter.
    AllDead,
}

impl Inbox {
    /// A page of stored events, in acceptance order. Sees everything recorded
    /// before the call, including what a running worker just did.
    ///
    /// ```
    /// use webhook_inbox::{EventQuery, Inbox};
    ///
    /// let dir = std::env::temp_dir().join(format!("events-doc-{}", std::process::id()));
    /// let inbox = Inbox::open(&dir)?;
    /// let page = inbox.events(&EventQuery::all())?;
    /// assert!(page.events.is_empty() && page.next.is_none());
    /// # inbox.close()?; std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn events(&self, query: &EventQuery) -> Result<Page, StoreError> {
        let store = self.inner().store.as_ref();
        store.sync_applied()?;
        let dead_only = query.state == Some(EventState::Dead);
        let mut cursor = query.after;
        let mut events = Vec::new();
        loop {
            let batch = if dead_only {
                store.dead_after(cursor, STEP)?
            } else {
                store.events_after(cursor, STEP)?
            };
            let exhausted = batch.len() < STEP;
            for stored in batch {
                cursor = stored.seq;
                if query.matches(&stored) {
                    events.push(StoredEvent::from(stored));
                    if events.len() == query.limit {
                        return Ok(Page {
                            events,
                            next: Some(cursor),
                        });
                    }
                }
            }
            if exhausted {
                return Ok(Page { events, next: None });
            }
        }
    }

    /// The stored event with id `id` (the latest, if several sources used
    /// it); `None` when it was never accepted, or is handled (no longer stored).
    ///
    /// ```
    /// use webhook_inbox::Inbox;
    ///
    /// let dir = std::env::temp_dir().join(format!("event-doc-{}", std::process::id()));
    /// let inbox = Inbox::open(&dir)?;
    /// assert!(inbox.event("evt_missing")?.is_none());
    /// # inbox.close()?; std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn event(&self, id: &str) -> Result<Option<StoredEvent>, StoreError> {
        let store = self.inner().store.as_ref();
        store.sync_applied()?;
        let mut found = None;
        for seq in store.find(id)? {
            if let Some(stored) = store.get(seq)?
                && found.as_ref().is_none_or(|f: &Stored| f.seq < seq)
            {
                found = Some(stored);
            }
        }
        Ok(found.map(StoredEvent::from))
    }

    /// Puts dead letters back to work: due now, attempts counted afresh,
    /// error history kept. A running worker picks them up at once. Returns
    /// how many were replayed (events that are not dead letters are left
    /// alone, so after an error part-way, calling again finishes the job).
    ///
    /// ```
    /// use webhook_inbox::{Inbox, Replay};
    ///
    /// let dir = std::env::temp_dir().join(format!("replay-doc-{}", std::process::id()));
    /// let inbox = Inbox::open(&dir)?;
    /// assert_eq!(inbox.replay(&Replay::AllDead)?, 0);
    /// # inbox.close()?; std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn replay(&self, which: &Replay) -> Result<usize, StoreError> {
        let now = unix_millis(self.inner().clock.now());
        self.change_dead(which, |stored| {
            let mut progress = stored.progress.unwrap_or(Progress::new(now));
            progress.attempts = 0;
            progress.next_at_ms = now;
            progress.dead_at_ms = None;
            Some(Change::Progress {
                seq: stored.seq,
                was: Standing::Dead,
                progress,
            })
        })
    }

    /// Deletes dead letters for good (their dedup markers stay until the
    /// retention passes): all, or those dead for longer than `older_than`.
    /// Returns how many were deleted.
    ///
    /// ```
    /// use std::time::Duration;
    /// use webhook_inbox::Inbox;
    ///
    /// let dir = std::env::temp_dir().join(format!("purge-doc-{}", std::process::id()));
    /// let inbox = Inbox::open(&dir)?;
    /// assert_eq!(inbox.purge_dead(Some(Duration::from_secs(30 * 86_400)))?, 0);
    /// # inbox.close()?; std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn purge_dead(&self, older_than: Option<Duration>) -> Result<usize, StoreError> {
        self.purge_dead_matching(&Replay::AllDead, older_than)
    }

    /// Deletes dead letters for good, all or those dead longer than `older_than`.
    fn purge_dead_matching(
        &self,
        which: &Replay,
        older_than: Option<Duration>,
    ) -> Result<usize, StoreError> {
        let now = unix_millis(self.inner().clock.now());
        let cutoff = older_than.map_or(i64::MAX, |d| {
            now.saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        });
        self.change_dead(which, |stored| {
            let dead_at = stored.progress.as_ref()?.dead_at_ms?;
            (older_than.is_none() || dead_at <= cutoff).then_some(Change::Forget {
                seq: stored.seq,
                was: Standing::Dead,
            })
        })
    }

    /// Replays the dead letters `query` selects (its state is ignored: only
    /// dead letters are replayed), at most `query`'s limit of them per call,
    /// written 512 to a transaction. [`Bulk::more`] says whether to call again.
    ///
    /// ```
    /// use webhook_inbox::{EventQuery, Inbox};
    ///
    /// let dir = std::env::temp_dir().join(format!("replay-match-doc-{}", std::process::id()));
    /// let inbox = Inbox::open(&dir)?;
    /// let bulk = inbox.replay_matching(&EventQuery::dead().source("bluum").limit(1_000))?;
    /// assert_eq!((bulk.done, bulk.more), (0, false));
    /// # inbox.close()?; std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn replay_matching(&self, query: &EventQuery) -> Result<Bulk, StoreError> {
        let now = unix_millis(self.inner().clock.now());
        self.change_dead_where(query, |stored| {
            let mut progress = stored.progress.unwrap_or(Progress::new(now));
            progress.attempts = 0;
            progress.next_at_ms = now;
            progress.dead_at_ms = None;
            Some(Change::Progress {
                seq: stored.seq,
                was: Standing::Dead,
                progress,
            })
        })
    }

    /// Deletes the dead letters `query` selects (its state is ignored), and
    /// of those only the ones dead for longer than `older_than` when given;
    /// at most `query`'s limit per call, 512 to a transaction.
    ///
    /// ```
    /// use webhook_inbox::{EventQuery, Inbox};
    ///
    /// let dir = std::env::temp_dir().join(format!("purge-match-doc-{}", std::process::id()));
    /// let inbox = Inbox::open(&dir)?;
    /// let bulk = inbox.purge_matching(&EventQuery::dead().event_type("order.*"), None)?;
    /// assert_eq!(bulk.done, 0);
    /// # inbox.close()?; std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn purge_matching(
        &self,
        query: &EventQuery,
        older_than: Option<Duration>,
    ) -> Result<Bulk, StoreError> {
        let now = unix_millis(self.inner().clock.now());
        let cutoff = older_than.map_or(i64::MAX, |d| {
            now.saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        });
        self.change_dead_where(query, |stored| {
            let dead_at = stored.progress.as_ref()?.dead_at_ms?;
            (older_than.is_none() || dead_at <= cutoff).then_some(Change::Forget {
                seq: stored.seq,
                was: Standing::Dead,
            })
        })
    }

    fn change_dead_where(
        &self,
        query: &EventQuery,
        change: impl Fn(Stored) -> Option<Change>,
    ) -> Result<Bulk, StoreError> {
        let inner = self.inner();
        let _one_at_a_time = lock(&inner.operator);
        let store = inner.store.as_ref();
        store.sync_applied()?;
        let query = query.clone().state(EventState::Dead);
        let mut cursor = query.after;
        let mut done = 0;
        loop {
            let batch = store.dead_after(cursor, STEP)?;
            let exhausted = batch.len() < STEP;
            let mut changes = Vec::new();
            let mut full = false;
            for stored in batch {
                if done + changes.len() >= query.limit {
                    full = true;
                    break;
                }
                cursor = stored.seq;
                if query.matches(&stored) {
                    changes.extend(change(stored));
                }
            }
            store.record(&changes)?;
            done += changes.len();
            if full || exhausted {
                store.sync_applied()?;
                return Ok(Bulk { done, more: full });
            }
        }
    }

    /// Records `change` for each dead letter `which` selects, a page at a
    /// time (one operator change at a time, so none counts an event twice).
    /// Idempotent: after a failure part-way, calling again finishes the job.
    fn change_dead(
        &self,
        which: &Replay,
        change: impl Fn(Stored) -> Option<Change>,
    ) -> Result<usize, StoreError> {
        let inner = self.inner();
        let _one_at_a_time = lock(&inner.operator);
        let store = inner.store.as_ref();
        store.sync_applied()?;
        let mut done = 0;
        if let Replay::Id(id) = which {
            let mut changes = Vec::new();
            for seq in store.find(id)? {
                if let Some(stored) = store.get(seq)?
                    && stored.standing() == Standing::Dead
                {
                    changes.extend(change(stored));
                }
            }
            store.record(&changes)?;
            done = changes.len();
        } else {
            let mut cursor = 0;
            loop {
                let batch = store.dead_after(cursor, STEP)?;
                let exhausted = batch.len() < STEP;
                let mut changes = Vec::new();
                for stored in batch {
                    cursor = stored.seq;
                    let wanted = match which {
                        Replay::Type(pattern) => {
                            crate::pattern::matches(pattern, &stored.event.event_type)
                        }
                        _ => true,
                    };
                    if wanted {
                        changes.extend(change(stored));
                    }
                }
                store.record(&changes)?;
                done += changes.len();
                if exhausted {
                    break;
                }
            }
        }
        store.sync_applied()?;
        Ok(done)
    }
}
