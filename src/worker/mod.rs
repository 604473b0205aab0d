//! The worker: hands due events to a [`Router`] on a pool of threads and
//! records each outcome (handled, retry at a time, dead letter) in the store.
//!
//! One scheduler thread claims due events from the store (fresh ones in
//! acceptance order, retries by due time), each leased to this worker, sends
//! them to N handler threads over a crossbeam channel, keeps the leases of
//! running handlers alive, and records their outcomes in batches: one write
//! (one `fdatasync`) for every outcome that arrived meanwhile. The store
//! wakes the scheduler when new events arrive; a timer wakes it for retries.

mod config;
mod decide;
mod handlers;
mod scheduler;
#[cfg(test)]
mod tests;
pub(crate) mod trace;

pub use config::WorkerConfig;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use crossbeam_channel::Sender;

use crate::error::ConfigError;
use crate::inbox::Inbox;
use crate::router::{Event, Router};
use crate::store::StoreError;

type Observer = Arc<dyn Fn(&Event, &Report) + Send + Sync>;

/// The inbox's metrics hooks, as the handler threads hold them.
type Instruments = std::sync::OnceLock<Arc<dyn crate::inbox::Instruments>>;

/// Tells the metrics hooks how a handler run went, labelled by the router's
/// pattern (bounded), never by the raw type.
fn instrument(
    hooks: &dyn crate::inbox::Instruments,
    router: &Router,
    event: &Event,
    result: &crate::router::Dispatch,
    took: Duration,
) {
    use crate::inbox::HandlerOutcome;
    use crate::router::Dispatch;
    let outcome = match result {
        Dispatch::Ran(Ok(())) => HandlerOutcome::Ok,
        Dispatch::Ran(Err(_)) => HandlerOutcome::Error,
        Dispatch::Panicked(_) => HandlerOutcome::Panicked,
        Dispatch::Unknown(_) => HandlerOutcome::Unmatched,
    };
    let pattern = router.pattern_of(event.event_type());
    hooks.handler_finished(pattern.as_deref(), outcome, took);
}

/// What became of an attempt, as passed to [`WorkerConfig::observe`] once it
/// is recorded.
///
/// ```
/// use webhook_inbox::Report;
///
/// let r = Report::Handled;
/// assert!(matches!(r, Report::Handled));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Report {
    /// The handler succeeded; the event will not run again.
    Handled,
    /// No handler matched, and the router's policy completed it.
    Skipped,
    /// No handler matched, and the router's policy keeps it pending: this
    /// worker holds it (other workers leave it alone) until it stops; then
    /// the next worker to claim it — another one, or the next started — runs it.
    Kept,
    /// The attempt failed; the next one is scheduled.
    Retrying {
        /// The attempt that failed, from 1.
        attempt: u32,
        /// When the next attempt is due.
        next_attempt: SystemTime,
        /// Why it failed.
        error: String,
    },
    /// The attempt failed for good (a permanent error, or no attempt left):
    /// the event is a dead letter, to be replayed or purged.
    DeadLettered {
        /// The attempt that failed, from 1.
        attempt: u32,
        /// Why it failed.
        error: String,
    },
    /// The handler has been running for longer than
    /// [`WorkerConfig::slow_after`] (reported once per attempt).
    Slow {
        /// How long so far.
        running_for: Duration,
    },
    /// The attempt's outcome was refused, nothing was recorded: the event's
    /// lease had run out (see [`WorkerConfig::lease`]) and another worker
    /// claimed it, whose attempt counts instead.
    LeaseLost {
        /// The attempt whose outcome was refused, from 1.
        attempt: u32,
    },
}

/// Counts since the worker started; see [`Worker::stats`].
///
/// ```
/// use webhook_inbox::WorkerStats;
///
/// let s = WorkerStats::default();
/// assert_eq!(s.handled + s.retried + s.dead_lettered, 0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerStats {
    /// Attempts that succeeded.
    pub handled: u64,
    /// Events no handler matched that the router's policy completed or kept
    /// (those it dead-letters count in `dead_lettered`).
    pub unknown: u64,
    /// Attempts that failed and were scheduled again.
    pub retried: u64,
    /// Events that became dead letters.
    pub dead_lettered: u64,
    /// Handler panics (each also counted as a retry or dead letter).
    pub panics: u64,
    /// Attempts that ran past [`WorkerConfig::slow_after`].
    pub slow: u64,
    /// Events handed to handler threads and not yet finished.
    pub in_flight: u64,
    /// Store failures the worker waited out (a full disk, an unreadable
    /// record); each is also said on standard error when it first occurs.
    pub store_errors: u64,
    /// Outcomes refused because the event's lease had run out and another
    /// worker had claimed it ([`Report::LeaseLost`]).
    pub leases_lost: u64,
}

#[derive(Default)]
struct Counters {
    handled: AtomicU64,
    unknown: AtomicU64,
    retried: AtomicU64,
    dead_lettered: AtomicU64,
    panics: AtomicU64,
    slow: AtomicU64,
    in_flight: AtomicU64,
    store_errors: AtomicU64,
    leases_lost: AtomicU64,
}

/// Why a worker could not start or stop cleanly.
///
/// ```
/// use webhook_inbox::WorkerError;
///
/// let e = WorkerError::ShutdownTimedOut { still_running: 2 };
/// assert!(e.to_string().contains("2 handlers"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store failed; the worker stopped. What it had not recorded runs
    /// again after a restart.
    #[error("the worker stopped: {0}")]
    Store(StoreError),
    /// A thread could not be started.
    #[error("could not start a worker thread: {0}")]
    Spawn(std::io::Error),
    /// The scheduler thread panicked (a bug): the outcomes it had not recorded
    /// run again after a restart.
    #[error("the worker's scheduler thread panicked")]
    SchedulerPanicked,
    /// Handlers were still running when the shutdown timeout passed. Their
    /// outcomes are not recorded: those events run again after a restart.
    #[error("{still_running} handlers were still running at the shutdown timeout")]
    ShutdownTimedOut {
        /// Handlers still running.
        still_running: usize,
    },
}

impl From<StoreError> for WorkerError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// Runs a [`Router`] over an [`Inbox`]'s events until shut down. Dropping it
/// shuts it down too.
///
/// ```
/// use webhook_inbox::{Event, Inbox, Router, Worker, WorkerConfig};
///
/// let dir = std::env::temp_dir().join(format!("worker-doc-{}", std::process::id()));
/// let inbox = Inbox::open(&dir)?;
/// let router = Router::builder()
///     .on("order.filled", |e: &Event| { println!("filled: {}", e.id()); Ok(()) })
///     .build()?;
/// let worker = Worker::start(&inbox, router, WorkerConfig::default())?;
/// // ... ingest deliveries; the worker handles them as they are accepted ...
/// worker.shutdown()?;
/// # inbox.close()?; std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "dropping the Worker stops it: keep it for as long as events should be handled"]
pub struct Worker {
    stop: Arc<AtomicBool>,
    poke: Sender<()>,
    scheduler: Option<JoinHandle<Result<(), WorkerError>>>,
    counters: Arc<Counters>,
}

impl Worker {
    /// Starts the scheduler and the handler threads. Events accepted before
    /// (including those in flight when a previous process died) are handled
    /// first, in acceptance order; retries when due.
    ///
    /// Several workers may run on one inbox (to run different routers, or
    /// more threads): each event is claimed by one of them at a time, with a
    /// lease ([`WorkerConfig::lease`]), and per-key ordering holds across them.
    ///
    /// ```
    /// use webhook_inbox::{Inbox, Router, Worker, WorkerConfig};
    ///
    /// let inbox = Inbox::memory();
    /// let first = Worker::start(&inbox, Router::builder().build()?, WorkerConfig::default())?;
    /// let second = Worker::start(&inbox, Router::builder().build()?, WorkerConfig::default())?;
    /// first.shutdown()?;
    /// second.shutdown()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start(inbox: &Inbox, router: Router, config: WorkerConfig) -> Result<Self, WorkerError> {
        config.check()?;
        let backoffs = config.backoffs()?;
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let (poke, poked) = crossbeam_channel::bounded(1);
        let scheduler = scheduler::Scheduler::new(
            inbox.clone(),
            Arc::new(router),
            config,
            backoffs,
            Arc::clone(&stop),
            Arc::clone(&counters),
            poked,
        );
        let handle = std::thread::Builder::new()
            .name("webhook-inbox-scheduler".into())
            .spawn(move || scheduler.run());
        match handle {
            Ok(handle) => Ok(Self {
                stop,
                poke,
                scheduler: Some(handle),
                counters,
            }),
            Err(e) => Err(WorkerError::Spawn(e)),
        }
    }

    /// Counts since the worker started.
    ///
    /// ```
    /// use webhook_inbox::{Inbox, Router, Worker, WorkerConfig};
    ///
    /// let dir = std::env::temp_dir().join(format!("worker-stats-{}", std::process::id()));
    /// let inbox = Inbox::open(&dir)?;
    /// let worker = Worker::start(&inbox, Router::builder().build()?, WorkerConfig::default())?;
    /// assert_eq!(worker.stats().handled, 0);
    /// # drop(worker); inbox.close()?; std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stats(&self) -> WorkerStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        WorkerStats {
            handled: get(&c.handled),
            unknown: get(&c.unknown),
            retried: get(&c.retried),
            dead_lettered: get(&c.dead_lettered),
            panics: get(&c.panics),
            slow: get(&c.slow),
            in_flight: get(&c.in_flight),
            store_errors: get(&c.store_errors),
            leases_lost: get(&c.leases_lost),
        }
    }

    /// Whether the worker still runs. It stops by itself only when its store
    /// is closed, or a thread could not start; [`Worker::shutdown`]
    /// then says why.
    ///
    /// ```
    /// use webhook_inbox::{Inbox, Router, Worker, WorkerConfig};
    ///
    /// let dir = std::env::temp_dir().join(format!("worker-running-{}", std::process::id()));
    /// let inbox = Inbox::open(&dir)?;
    /// let worker = Worker::start(&inbox, Router::builder().build()?, WorkerConfig::default())?;
    /// assert!(worker.is_running());
    /// # drop(worker); inbox.close()?; std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_running(&self) -> bool {
        self.scheduler.as_ref().is_some_and(|h| !h.is_finished())
    }

    /// Stops taking work, lets running handlers finish and records their
    /// outcomes (waiting up to [`WorkerConfig::shutdown_timeout`]), and joins
    /// the threads. Events not started stay pending for the next worker.
    ///
    /// ```
    /// use webhook_inbox::{Inbox, Router, Worker, WorkerConfig};
    ///
    /// let dir = std::env::temp_dir().join(format!("worker-stop-{}", std::process::id()));
    /// let inbox = Inbox::open(&dir)?;
    /// Worker::start(&inbox, Router::builder().build()?, WorkerConfig::default())?.shutdown()?;
    /// // Its unfinished events are free for another worker.
    /// Worker::start(&inbox, Router::builder().build()?, WorkerConfig::default())?.shutdown()?;
    /// # inbox.close()?; std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shutdown(mut self) -> Result<(), WorkerError> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> Result<(), WorkerError> {
        let Some(handle) = self.scheduler.take() else {
            return Ok(());
        };
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.poke.try_send(());
        handle.join().unwrap_or(Err(WorkerError::SchedulerPanicked))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}
