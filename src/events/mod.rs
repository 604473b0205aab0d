//! Stored events as an operator sees them: list, show, replay dead letters, purge.

mod query;
mod stored;

use std::time::Duration;

use crate::clock::unix_millis;
use crate::inbox::Inbox;
use crate::store::backend::{DeadChange, DeadSelection, Filter};
use crate::store::{Standing, StoreError};

pub use query::{Bulk, EventQuery, Page, Replay};
pub use stored::{AttemptError, EventState, StoredEvent};

/// Why an operator call ([`Inbox::events`], [`Inbox::event`],
/// [`Inbox::replay`], [`Inbox::purge_dead`] and their kin) failed.
///
/// ```
/// use webhook_inbox::{Inbox, OperatorError};
///
/// let inbox = Inbox::memory();
/// inbox.clone().close()?;
/// assert!(matches!(inbox.event("evt_1"), Err(OperatorError::Closed)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OperatorError {
    /// The inbox has been closed.
    #[error("the inbox is closed")]
    Closed,
    /// The store could not be read or written (for example, the disk is
    /// full); nothing past the last completed page was changed, and calling
    /// again finishes the job.
    #[error("the store failed: {0}")]
    Store(StoreError),
}

impl From<StoreError> for OperatorError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Closed => Self::Closed,
            other => Self::Store(other),
        }
    }
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
    pub fn events(&self, query: &EventQuery) -> Result<Page, OperatorError> {
        let listing = self
            .inner()
            .store
            .list(&query.filter(), query.after, query.limit)?;
        Ok(Page {
            events: listing.events.into_iter().map(StoredEvent::from).collect(),
            next: listing.next,
        })
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
    pub fn event(&self, id: &str) -> Result<Option<StoredEvent>, OperatorError> {
        Ok(self.inner().store.event(None, id)?.map(StoredEvent::from))
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
    pub fn replay(&self, which: &Replay) -> Result<usize, OperatorError> {
        let change = DeadChange::Replay {
            now_ms: self.now_ms(),
        };
        self.change_dead(which, change)
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
    pub fn purge_dead(&self, older_than: Option<Duration>) -> Result<usize, OperatorError> {
        let change = self.purge(older_than);
        self.change_dead(&Replay::AllDead, change)
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
    pub fn replay_matching(&self, query: &EventQuery) -> Result<Bulk, OperatorError> {
        let change = DeadChange::Replay {
            now_ms: self.now_ms(),
        };
        self.change_dead_matching(query, change)
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
    ) -> Result<Bulk, OperatorError> {
        let change = self.purge(older_than);
        self.change_dead_matching(query, change)
    }

    /// The stored event with id `id` from `source` (the ingestor's source
    /// name); `None` when it was never accepted there, or is handled.
    ///
    /// ```
    /// use webhook_inbox::Inbox;
    ///
    /// let inbox = Inbox::memory();
    /// assert!(inbox.event_from("bluum", "evt_missing")?.is_none());
    /// # Ok::<(), webhook_inbox::OperatorError>(())
    /// ```
    pub fn event_from(&self, source: &str, id: &str) -> Result<Option<StoredEvent>, OperatorError> {
        Ok(self
            .inner()
            .store
            .event(Some(source), id)?
            .map(StoredEvent::from))
    }

    fn now_ms(&self) -> i64 {
        unix_millis(self.inner().clock.now())
    }

    /// Purging what has been dead longer than `older_than` (all: `None`).
    fn purge(&self, older_than: Option<Duration>) -> DeadChange {
        let dead_before_ms = older_than.map_or(i64::MAX, |d| {
            self.now_ms()
                .saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        });
        DeadChange::Purge { dead_before_ms }
    }

    /// Applies `change` to the dead letters `which` selects, all of them.
    fn change_dead(&self, which: &Replay, change: DeadChange) -> Result<usize, OperatorError> {
        let store = &self.inner().store;
        let selection = match which {
            Replay::Id(id) => DeadSelection::Id { source: None, id },
            Replay::Type(_) | Replay::AllDead => {
                let filter = Filter {
                    standing: Some(Standing::Dead),
                    event_type: match which {
                        Replay::Type(pattern) => Some(pattern.clone()),
                        _ => None,
                    },
                    ..Filter::default()
                };
                return Ok(store
                    .change_dead(
                        &DeadSelection::Matching {
                            filter: &filter,
                            after: 0,
                            limit: usize::MAX,
                        },
                        change,
                    )?
                    .done);
            }
        };
        Ok(store.change_dead(&selection, change)?.done)
    }

    /// Applies `change` to the dead letters `query` selects, up to its limit.
    fn change_dead_matching(
        &self,
        query: &EventQuery,
        change: DeadChange,
    ) -> Result<Bulk, OperatorError> {
        let filter = query.clone().state(EventState::Dead).filter();
        let changed = self.inner().store.change_dead(
            &DeadSelection::Matching {
                filter: &filter,
                after: query.after,
                limit: query.limit,
            },
            change,
        )?;
        Ok(Bulk {
            done: changed.done,
            more: changed.more,
        })
    }
}
