//! Asking for stored events and what comes back: the query, a page of a
//! listing, a bulk action's count, and which dead letters to replay.

use std::time::SystemTime;

use crate::clock::unix_millis;
use crate::store::Standing;
use crate::store::backend::Filter;

#[cfg(doc)]
use crate::inbox::Inbox;

use super::{EventState, StoredEvent};

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
    pub(super) after: u64,
    pub(super) limit: usize,
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

    /// The store's filter for this query.
    pub(super) fn filter(&self) -> Filter {
        let ms = |t: SystemTime| unix_millis(t);
        Filter {
            standing: self.state.map(Standing::from),
            source: self.source.clone(),
            event_type: self.event_type.clone(),
            since_ms: self.since.map(ms),
            until_ms: self.until.map(ms),
        }
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
