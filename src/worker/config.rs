//! How a worker runs: threads, retry schedules, ordering, leases, limits.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::{Observer, Report};
use crate::backoff::{Backoff, Jitter};
use crate::error::ConfigError;
use crate::pattern::Patterns;
use crate::router::Event;

/// How long a claim lasts without a heartbeat, by default.
const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// The shortest lease a worker may ask for.
const MIN_LEASE: Duration = Duration::from_secs(1);

/// How a [`Worker`](super::Worker) runs: threads, retry schedule, ordering, time limits.
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
    pub(super) threads: usize,
    pub(super) backoff: Backoff,
    pub(super) backoffs: Vec<(String, Backoff)>,
    pub(super) ordering_key: Option<String>,
    pub(super) slow_after: Duration,
    pub(super) shutdown_timeout: Duration,
    pub(super) jitter: Option<Jitter>,
    pub(super) observer: Option<Observer>,
    pub(super) durable_attempts: bool,
    pub(super) lease: Duration,
}

impl Default for WorkerConfig {
    /// Two threads; exponential backoff with full jitter from 1 s, capped at
    /// 1 h, 12 attempts in all; no ordering; a handler is reported slow after
    /// 30 s; shutdown waits up to 30 s; leases of 30 s.
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
            lease: DEFAULT_LEASE,
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
    /// `transfer.*`, `*`; the most specific wins, as in the [`Router`](crate::Router)).
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
    /// [`WorkerStats::slow`](super::WorkerStats::slow) and passed to the observer, or printed to
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

    /// How long [`Worker::shutdown`](super::Worker::shutdown) waits for running handlers
    /// (`Duration::MAX`: as long as they take). If they outlast it, their
    /// leases are still kept alive until they return (their outcomes are not
    /// recorded: those events run again afterwards), so no other worker runs
    /// them at the same time.
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

    /// How long a claim on an event lasts without news from its worker.
    /// While a handler runs, its worker extends the lease every third of it
    /// (a heartbeat), so a long handler keeps its event; if the worker dies
    /// or hangs, the lease runs out and the event is due again for any
    /// worker — in a shared store, on another replica. An outcome that
    /// arrives after its event was claimed again is refused
    /// ([`Report::LeaseLost`]). Defaults to 30 s; at least 1 s.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use webhook_inbox::WorkerConfig;
    /// let config = WorkerConfig::default().lease(Duration::from_secs(60));
    /// # let _ = config;
    /// ```
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
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

    pub(super) fn backoffs(&self) -> Result<Patterns<Backoff>, ConfigError> {
        let mut map = Patterns::default();
        for (pattern, backoff) in &self.backoffs {
            map.insert(pattern.clone(), backoff.clone())?;
        }
        Ok(map)
    }

    pub(super) fn check(&self) -> Result<(), ConfigError> {
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
        if self.lease < MIN_LEASE {
            return Err(invalid("lease", "at least one second"));
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
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}
