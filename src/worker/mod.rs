//! The worker: hands due events to a [`Router`] on a pool of threads and
//! records each outcome (handled, retry at a time, dead letter) in the store.
//!
//! One scheduler thread reads due events from the store (fresh ones in
//! acceptance order, retries by due time), sends them to N handler threads
//! over a crossbeam channel, and records their outcomes in batches: one log
//! write and one `fdatasync` for every outcome that arrived meanwhile. The
//! store wakes the scheduler as soon as a new event is applied; a timer wakes
//! it for retries.

mod ordering;
mod scheduler;
pub(crate) mod trace;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use crossbeam_channel::Sender;

use crate::backoff::{Backoff, Jitter};
use crate::error::ConfigError;
use crate::inbox::Inbox;
use crate::pattern::Patterns;
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

/// How a [`Worker`] runs: threads, retry schedule, ordering, time limits.
///
/// ```
/// use std::time::Duration;
/// use webhook_inbox::{Backoff, WorkerConfig};
///
/// let config = WorkerConfig::default()
///     .threads(4)
///     .backoff(Backoff::exponential(Duration::from_secs(1), Duration::from_secs(600), 8))
///     .backoff_for("transfer.*", Backoff::bluum())
///     .ordering_key("/data/id")
///     .slow_after(Duration::from_secs(20));
/// # let _ = config;
/// ```
#[must_use]
#[derive(Clone)]
pub struct WorkerConfig {
    threads: usize,
    backoff: Backoff,
    backoffs: Vec<(String, Backoff)>,
    ordering_key: Option<String>,
    slow_after: Duration,
    shutdown_timeout: Duration,
    jitter: Option<Jitter>,
    observer: Option<Observer>,
    durable_attempts: bool,
}

impl Default for WorkerConfig {
    /// Two threads; exponential backoff with full jitter from 1 s, capped at
    /// 1 h, 12 attempts in all; no ordering; a handler is reported slow after
    /// 30 s; shutdown waits up to 30 s.
    ///
    /// ```
    /// use webhook_inbox::WorkerConfig;
    ///
    /// let config = WorkerConfig::default();
    /// # let _ = config;
    /// ```
    fn default() -> Self {
        Self {
            threads: 2,
            backoff: Backoff::exponential(Duration::from_secs(1), Duration::from_secs(3600), 12),
            backoffs: Vec::new(),
            ordering_key: None,
            slow_after: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(30),
            jitter: None,
            observer: None,
            durable_attempts: false,
        }
    }
}

impl WorkerConfig {
    /// Handler threads (at least 1).
    ///
    /// ```
    /// # use webhook_inbox::WorkerConfig;
    /// let config = WorkerConfig::default().threads(8);
    /// # let _ = config;
    /// ```
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    /// The retry schedule for every type without its own.
    ///
    /// ```
    /// # use webhook_inbox::{Backoff, WorkerConfig};
    /// let config = WorkerConfig::default().backoff(Backoff::bluum());
    /// # let _ = config;
    /// ```
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The retry schedule for the types `pattern` matches (`order.filled`,
    /// `transfer.*`, `*`; the most specific wins, as in the [`Router`]).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use webhook_inbox::{Backoff, WorkerConfig};
    /// let config = WorkerConfig::default()
    ///     .backoff_for("kyc.*", Backoff::ladder([Duration::from_secs(10); 3]));
    /// # let _ = config;
    /// ```
    pub fn backoff_for(mut self, pattern: impl Into<String>, backoff: Backoff) -> Self {
        self.backoffs.push((pattern.into(), backoff));
        self
    }

    /// Runs events with the same value at JSON pointer `pointer` (RFC 6901,
    /// such as `/data/id` or `/data/investor_id`) one at a time, in acceptance
    /// order, while others run in parallel. A failing event holds back only
    /// its own key, until it succeeds or becomes a dead letter. Events without
    /// a value there are not ordered.
    ///
    /// The order is acceptance order while the process runs. A replayed dead
    /// letter runs after the newer events of its key; after a crash, an event
    /// that was running runs again, possibly after a newer one that had
    /// already failed. At most 100,000 events wait behind keys at a time.
    ///
    /// ```
    /// # use webhook_inbox::WorkerConfig;
    /// let config = WorkerConfig::default().ordering_key("/data/investor_id");
    /// # let _ = config;
    /// ```
    pub fn ordering_key(mut self, pointer: impl Into<String>) -> Self {
        self.ordering_key = Some(pointer.into());
        self
    }

    /// How long a handler may run before it is reported slow (counted in
    /// [`WorkerStats::slow`] and passed to the observer, or printed to
    /// standard error when there is none). A slow handler's thread is
    /// replaced, up to twice [`WorkerConfig::threads`] threads in all, so it
    /// does not hold up the others (past that, further hung handlers do hold
    /// their threads).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use webhook_inbox::WorkerConfig;
    /// let config = WorkerConfig::default().slow_after(Duration::from_secs(5));
    /// # let _ = config;
    /// ```
    pub fn slow_after(mut self, limit: Duration) -> Self {
        self.slow_after = limit;
        self
    }

    /// How long [`Worker::shutdown`] waits for running handlers
    /// (`Duration::MAX`: as long as they take). If they outlast it, the
    /// inbox's worker slot stays taken until they return, so no new worker
    /// runs their events at the same time.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use webhook_inbox::WorkerConfig;
    /// let config = WorkerConfig::default().shutdown_timeout(Duration::from_secs(5));
    /// # let _ = config;
    /// ```
    pub fn shutdown_timeout(mut self, limit: Duration) -> Self {
        self.shutdown_timeout = limit;
        self
    }

    /// Records each attempt on disk *before* its handler runs, as a failure
    /// ("the attempt did not finish"), which the handler's real outcome then
    /// replaces. For handlers that can take the process down (an abort, the
    /// OOM killer, a crash in foreign code): without it such an event runs
    /// again after every restart with the same attempt number, forever; with
    /// it, each crash uses up one attempt, and the event becomes a dead letter
    /// after the backoff's last one. Off by default: it costs one more
    /// group-committed log write per batch of events handed out (see the
    /// drain benchmark in the README), and while an event on its last attempt
    /// runs it already reads as a dead letter.
    ///
    /// ```
    /// # use webhook_inbox::WorkerConfig;
    /// let config = WorkerConfig::default().durable_attempts(true);
    /// # let _ = config;
    /// ```
    pub fn durable_attempts(mut self, on: bool) -> Self {
        self.durable_attempts = on;
        self
    }

    /// The jitter source of the backoff; seed it for reproducible schedules.
    ///
    /// ```
    /// # use webhook_inbox::{Jitter, WorkerConfig};
    /// let config = WorkerConfig::default().jitter(Jitter::seeded(42));
    /// # let _ = config;
    /// ```
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = Some(jitter);
        self
    }

    /// Called on the scheduler thread after each outcome is recorded (and for
    /// slow handlers): for metrics and logs. Keep it quick; a panic in it is
    /// caught. With [`Durability::Fsync`](crate::Durability::Fsync) "recorded"
    /// means on disk; with `Buffered` it means in memory, and a crash within
    /// the interval runs the event again.
    ///
    /// ```
    /// use webhook_inbox::{Event, Report, WorkerConfig};
    ///
    /// let config = WorkerConfig::default().observe(|event: &Event, report: &Report| {
    ///     if let Report::DeadLettered { error, .. } = report {
    ///         eprintln!("{} ({}) is a dead letter: {error}", event.id(), event.event_type());
    ///     }
    /// });
    /// # let _ = config;
    /// ```
    pub fn observe<F>(mut self, observer: F) -> Self
    where
        F: Fn(&Event, &Report) + Send + Sync + 'static,
    {
        self.observer = Some(Arc::new(observer));
        self
    }

    fn backoffs(&self) -> Result<Patterns<Backoff>, ConfigError> {
        let mut map = Patterns::default();
        for (pattern, backoff) in &self.backoffs {
            map.insert(pattern.clone(), backoff.clone())?;
        }
        Ok(map)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let invalid = |setting, reason: &str| ConfigError::InvalidWorkerSetting {
            setting,
            reason: reason.to_owned(),
        };
        if self.threads == 0 || self.threads > 1024 {
            return Err(invalid("threads", "between 1 and 1024"));
        }
        if let Some(pointer) = &self.ordering_key
            && !pointer.starts_with('/')
        {
            return Err(invalid(
                "ordering_key",
                "a JSON pointer starts with `/`, such as `/data/id`",
            ));
        }
        if self.slow_after.is_zero() {
            return Err(invalid("slow_after", "must be more than zero"));
        }
        Ok(())
    }
}

impl fmt::Debug for WorkerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerConfig")
            .field("threads", &self.threads)
            .field("backoff", &self.backoff)
            .field("backoffs", &self.backoffs)
            .field("ordering_key", &self.ordering_key)
            .field("slow_after", &self.slow_after)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .finish_non_exhaustive()
    }
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
    /// No handler matched, and the router's policy keeps it pending (it runs
    /// again when a worker with a matching handler starts).
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
    /// Another worker runs on this inbox: two would run events twice.
    #[error("a worker is already running on this inbox")]
    AlreadyRunning,
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store failed; the worker stopped. What it had not recorded runs
    /// again after a restart.
    #[error("the worker stopped: {0}")]
    Store(#[from] StoreError),
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
    /// ```
    /// use webhook_inbox::{Inbox, Router, Worker, WorkerConfig, WorkerError};
    ///
    /// let dir = std::env::temp_dir().join(format!("worker-start-{}", std::process::id()));
    /// let inbox = Inbox::open(&dir)?;
    /// let first = Worker::start(&inbox, Router::builder().build()?, WorkerConfig::default())?;
    /// let second = Worker::start(&inbox, Router::builder().build()?, WorkerConfig::default());
    /// assert!(matches!(second, Err(WorkerError::AlreadyRunning)));
    /// # drop(first); inbox.close()?; std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start(inbox: &Inbox, router: Router, config: WorkerConfig) -> Result<Self, WorkerError> {
        config.check()?;
        let backoffs = config.backoffs()?;
        if !inbox.inner().store.claim_worker() {
            return Err(WorkerError::AlreadyRunning);
        }
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
            Err(e) => {
                inbox.inner().store.release_worker();
                Err(WorkerError::Spawn(e))
            }
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
    /// // The inbox is free for another worker.
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
