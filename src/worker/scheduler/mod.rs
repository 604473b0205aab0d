//! The scheduler thread: claims due events, feeds the handler threads, keeps
//! the claims of running handlers alive, records outcomes in batches,
//! watches for slow handlers, drains on shutdown.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

mod drain;

use super::decide::{PANICKED, Policy};
use super::handlers::{Done, Handlers, Job};
use super::{Counters, Report, WorkerConfig, WorkerError};
use crate::backoff::{Backoff, Jitter};
use crate::clock::{from_unix_millis, unix_millis};
use crate::inbox::Inbox;
use crate::pattern::Patterns;
use crate::router::{Event, HandlerError, Router};
use crate::store::StoreError;
use crate::store::backend::{Backend, ClaimRequest, Claimed, Finish, Outcome, Token};

/// The longest the scheduler sleeps: a bound on how late a retry due by an
/// injected clock, or a slow handler, is noticed. New events wake it at once.
const MAX_NAP: Duration = Duration::from_millis(100);
/// Events claimed but unfinished, per handler thread.
const QUEUE_PER_THREAD: usize = 64;
/// Outcomes recorded with one write, at most.
const MAX_BATCH: usize = 4096;

pub(super) struct Scheduler {
    inbox: Inbox,
    config: WorkerConfig,
    policy: Policy,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    poked: Receiver<()>,
    handlers: Handlers,
    /// Every claim this worker holds: queued, running, kept, or waiting for
    /// its attempt to be recorded.
    held: HashMap<u64, Token>,
    /// Claims held on events left alone ([`Outcome::Keep`]).
    kept: HashSet<u64>,
    /// Jobs with a handler thread (queued or running).
    in_flight: usize,
    /// Jobs whose attempt is to be recorded before they run
    /// ([`WorkerConfig::durable_attempts`]).
    outbox: Vec<Job>,
    /// When the held claims were last extended (wall time, inbox clock).
    last_beat: (Instant, i64),
    last_store_error: Option<String>,
}

impl Scheduler {
    pub(super) fn new(
        inbox: Inbox,
        router: Arc<Router>,
        mut config: WorkerConfig,
        backoffs: Patterns<Backoff>,
        stop: Arc<AtomicBool>,
        counters: Arc<Counters>,
        poked: Receiver<()>,
    ) -> Self {
        let jitter = config.jitter.take().unwrap_or_else(Jitter::from_entropy);
        let policy = Policy {
            backoff: config.backoff.clone(),
            backoffs,
            jitter,
        };
        let instruments = Arc::clone(&inbox.inner().instruments);
        let handlers = Handlers::new(router, Arc::clone(&stop), instruments);
        let now_ms = unix_millis(inbox.inner().clock.now());
        Self {
            inbox,
            config,
            policy,
            stop,
            counters,
            poked,
            handlers,
            held: HashMap::new(),
            kept: HashSet::new(),
            in_flight: 0,
            outbox: Vec::new(),
            last_beat: (Instant::now(), now_ms),
            last_store_error: None,
        }
    }

    fn store(&self) -> &dyn Backend {
        self.inbox.inner().store.as_ref()
    }

    fn now_ms(&self) -> i64 {
        unix_millis(self.inbox.inner().clock.now())
    }

    fn lease_ms(&self) -> i64 {
        i64::try_from(self.config.lease.as_millis()).unwrap_or(i64::MAX)
    }

    pub(super) fn run(mut self) -> Result<(), WorkerError> {
        let wake = self.store().subscribe();
        let mut result = (0..self.config.threads)
            .try_for_each(|_| self.handlers.spawn())
            .map_err(WorkerError::Spawn);
        if result.is_ok() {
            result = self.serve(&wake);
        }
        result.and(self.drain())
    }

    fn serve(&mut self, wake: &Receiver<()>) -> Result<(), WorkerError> {
        while !self.stop.load(Ordering::SeqCst) {
            match self.fill().and_then(|()| self.flush_outbox()) {
                Ok(()) => {}
                Err(e @ StoreError::Closed) => return Err(e.into()),
                // A passing failure (a full disk): try again shortly.
                Err(e) => self.store_failed(&e),
            }
            let nap = self.nap();
            crossbeam_channel::select! {
                recv(self.handlers.done) -> done => {
                    if let Ok(done) = done {
                        self.finish(done)?;
                    }
                }
                recv(wake) -> _ => {}
                recv(self.poked) -> _ => {}
                default(nap) => {}
            }
            self.watch_slow();
        }
        Ok(())
    }

    fn room(&self) -> usize {
        (self.config.threads * QUEUE_PER_THREAD).saturating_sub(self.in_flight + self.outbox.len())
    }

    /// Claims due events up to the queue's room and hands them out.
    fn fill(&mut self) -> Result<(), StoreError> {
        self.beat(false)?;
        let limit = self.room();
        if limit == 0 {
            return Ok(());
        }
        let now_ms = self.now_ms();
        let request = ClaimRequest {
            limit,
            now_ms,
            lease_until_ms: now_ms.saturating_add(self.lease_ms()),
            ordering: self.config.ordering_key.as_deref(),
        };
        let claimed = self.store().claim(&request)?;
        for claim in claimed {
            let job = job(claim);
            self.held.insert(job.seq, job.token);
            if self.config.durable_attempts {
                self.outbox.push(job);
            } else {
                self.dispatch(job);
            }
        }
        Ok(())
    }

    /// Extends every held claim, when a third of the lease has passed (by
    /// the wall or by the inbox's clock) or when `now` says so.
    fn beat(&mut self, now: bool) -> Result<(), StoreError> {
        let third = self.config.lease / 3;
        let now_ms = self.now_ms();
        let due = now
            || self.last_beat.0.elapsed() >= third
            || now_ms.saturating_sub(self.last_beat.1) >= self.lease_ms() / 3;
        if !due {
            return Ok(());
        }
        let held: Vec<(u64, Token)> = self.held.iter().map(|(&s, &t)| (s, t)).collect();
        if !held.is_empty() {
            let until = now_ms.saturating_add(self.lease_ms());
            let alive = self.store().heartbeat(&held, until)?;
            for ((seq, token), alive) in held.into_iter().zip(alive) {
                // A lost claim that is running is refused when it finishes,
                // one still queued is not run, and a lost kept one is
                // simply no longer ours.
                if alive {
                    continue;
                }
                if self.kept.remove(&seq) {
                    self.held.remove(&seq);
                } else {
                    self.handlers.revoke(seq, token);
                }
            }
        }
        self.last_beat = (Instant::now(), now_ms);
        Ok(())
    }

    fn publish_in_flight(&self) {
        self.counters
            .in_flight
            .store(self.in_flight as u64, Ordering::Relaxed);
    }

    fn dispatch(&mut self, job: Job) {
        if self.handlers.send(job) {
            self.in_flight += 1;
            self.publish_in_flight();
        }
    }

    /// Records the attempt of every job waiting in the outbox as a failure
    /// that did not finish (one write), then hands them out. The job keeps
    /// the progress it had, so its real outcome replaces the placeholder. On
    /// a store error they stay in the outbox, claimed, for the next round.
    fn flush_outbox(&mut self) -> Result<(), StoreError> {
        if self.outbox.is_empty() {
            return Ok(());
        }
        let now_ms = self.now_ms();
        let unfinished = HandlerError::retry(
            "the attempt did not finish: the process stopped while the handler ran",
        );
        let jobs = std::mem::take(&mut self.outbox);
        let mut finishes = Vec::with_capacity(jobs.len());
        for job in &jobs {
            let (progress, _) = self.policy.failed(job, &unfinished, now_ms);
            finishes.push(Finish {
                seq: job.seq,
                token: job.token,
                outcome: Outcome::Attempt(progress),
            });
        }
        let recorded = match self.store().finish(&finishes) {
            Ok(recorded) => recorded,
            Err(e) => {
                self.outbox = jobs;
                return Err(e);
            }
        };
        for (job, recorded) in jobs.into_iter().zip(recorded) {
            if !recorded {
                self.held.remove(&job.seq);
                continue;
            }
            self.dispatch(job);
        }
        Ok(())
    }

    /// How long to sleep when nothing arrives: until the next retry is due,
    /// at most [`MAX_NAP`] while handlers are busy, else at most the
    /// store's idle poll — and, while claims are held, never past their
    /// next heartbeat (a store's idle poll, 1 s for PostgreSQL, may be
    /// longer than a third of the lease).
    fn nap(&self) -> Duration {
        if self.room() == 0 {
            return MAX_NAP;
        }
        let mut poll = self.store().idle_poll();
        if !self.held.is_empty() {
            let beat = (self.config.lease / 3).saturating_sub(self.last_beat.0.elapsed());
            poll = poll.min(beat.max(Duration::from_millis(2)));
        }
        match self.store().next_due() {
            Ok(Some(at)) => {
                let wait = u64::try_from(at.saturating_sub(self.now_ms())).unwrap_or(0);
                Duration::from_millis(wait).clamp(Duration::from_millis(2), poll)
            }
            _ => poll,
        }
    }

    /// Records the outcomes of `first` and of every other finished job, with
    /// one write.
    fn finish(&mut self, first: Done) -> Result<(), WorkerError> {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match self.handlers.done.try_recv() {
                Ok(done) => batch.push(done),
                Err(_) => break,
            }
        }
        self.in_flight -= batch.len();
        self.publish_in_flight();

        let now_ms = self.now_ms();
        let mut finishes = Vec::with_capacity(batch.len());
        let mut reports = Vec::with_capacity(batch.len());
        for Done { job, result } in batch {
            self.handlers.returned(job.seq, job.token);
            // Not run (shutting down, or its claim lost): given back as it was.
            let (outcome, report) = match result {
                Some(result) => {
                    let (outcome, report) = self.policy.decide(&job, result, now_ms);
                    (outcome, Some(report))
                }
                None => (Outcome::Release, None),
            };
            finishes.push(Finish {
                seq: job.seq,
                token: job.token,
                outcome,
            });
            reports.push((job.event, report));
        }

        let recorded = match self.store().finish(&finishes) {
            Ok(recorded) => recorded,
            Err(e) => {
                // Nothing was recorded: the events are as they were. Give
                // them back, so they are claimed again (fresh ones at once,
                // the rest when due).
                self.release(finishes.iter().map(|f| (f.seq, f.token)));
                return match e {
                    StoreError::Closed => Err(e.into()),
                    _ => {
                        self.store_failed(&e);
                        Ok(())
                    }
                };
            }
        };

        for ((finish, (event, report)), recorded) in finishes.iter().zip(reports).zip(recorded) {
            let keep = matches!(finish.outcome, Outcome::Keep);
            if recorded && keep {
                self.kept.insert(finish.seq);
            } else {
                self.held.remove(&finish.seq);
            }
            let Some(report) = report else { continue };
            if !recorded {
                let lost = Report::LeaseLost {
                    attempt: event.attempt(),
                };
                self.count(&lost);
                self.tell(&event, &lost);
                continue;
            }
            self.count(&report);
            if let Report::Retrying { error, .. } | Report::DeadLettered { error, .. } = &report
                && error.starts_with(PANICKED)
            {
                self.counters.panics.fetch_add(1, Ordering::Relaxed);
            }
            self.tell(&event, &report);
        }
        Ok(())
    }

    /// Gives claims back unchanged (best effort: a claim not given back
    /// expires with its lease).
    fn release(&mut self, claims: impl Iterator<Item = (u64, Token)>) {
        let finishes: Vec<Finish> = claims
            .map(|(seq, token)| Finish {
                seq,
                token,
                outcome: Outcome::Release,
            })
            .collect();
        for f in &finishes {
            self.held.remove(&f.seq);
            self.kept.remove(&f.seq);
        }
        if !finishes.is_empty() {
            let _ = self.store().finish(&finishes);
        }
    }

    /// A store failure the worker outlives (a full disk, an unreadable
    /// record): counted, said once on standard error per distinct error, and
    /// retried after a pause.
    fn store_failed(&mut self, error: &StoreError) {
        self.counters.store_errors.fetch_add(1, Ordering::Relaxed);
        let text = error.to_string();
        if self.last_store_error.as_deref() != Some(text.as_str()) {
            warn(format_args!(
                "the worker cannot read or record events: {text}; retrying"
            ));
            self.last_store_error = Some(text);
        }
        std::thread::sleep(MAX_NAP);
    }

    /// Passes a report to the observer; a panic in it is caught (the
    /// scheduler must go on).
    fn tell(&self, event: &Event, report: &Report) {
        super::trace::reported(event, report);
        if let Some(observer) = &self.config.observer {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                observer(event, report);
            }));
        }
    }

    fn count(&self, report: &Report) {
        let c: &AtomicU64 = match report {
            Report::Handled => &self.counters.handled,
            Report::Skipped | Report::Kept => &self.counters.unknown,
            Report::Retrying { .. } => &self.counters.retried,
            Report::DeadLettered { .. } => &self.counters.dead_lettered,
            Report::Slow { .. } => &self.counters.slow,
            Report::LeaseLost { .. } => &self.counters.leases_lost,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Reports handlers running past the limit, once per attempt.
    fn watch_slow(&mut self) {
        let max_threads = 2 * self.config.threads;
        for (running_for, event) in self.handlers.slow(self.config.slow_after, max_threads) {
            let report = Report::Slow { running_for };
            self.count(&report);
            match &self.config.observer {
                Some(_) => self.tell(&event, &report),
                None => warn(format_args!(
                    "the handler for `{}` ({}, attempt {}) has run for {:.1?}",
                    event.event_type(),
                    event.id(),
                    event.attempt(),
                    running_for
                )),
            }
        }
    }
}

/// The job for a claimed event: its next attempt.
fn job(claim: Claimed) -> Job {
    let Claimed { stored, token } = claim;
    let attempt = stored
        .progress
        .as_ref()
        .map_or(0, |p| p.attempts)
        .saturating_add(1);
    Job {
        seq: stored.seq,
        token,
        event: Arc::new(Event {
            seq: stored.seq,
            id: stored.event.id,
            source: stored.event.source,
            event_type: stored.event.event_type,
            received_at: from_unix_millis(stored.event.received_at_ms),
            attempt,
            body: stored.event.body,
        }),
        progress: stored.progress,
    }
}

/// A warning on standard error (never panics, even on a closed stderr).
fn warn(message: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "webhook-inbox: warning: {message}");
}
