//! The scheduler thread: picks due events, feeds the handler threads,
//! records outcomes, watches for slow handlers, drains on shutdown.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::ordering::{Keys, key_at};
use super::{Counters, Report, WorkerConfig, WorkerError};
use crate::backoff::{Backoff, Jitter};
use crate::clock::{from_unix_millis, unix_millis};
use crate::inbox::Inbox;
use crate::pattern::Patterns;
use crate::router::{Dispatch, Event, HandlerError, Router, UnknownTypes};
use crate::store::{Change, Progress, Standing, Store, StoreError, Stored};
use crate::sync::lock;

/// The longest the scheduler sleeps: a bound on how late a retry due by an
/// injected clock, or a slow handler, is noticed. New events wake it at once.
const MAX_NAP: Duration = Duration::from_millis(100);
/// Events handed out but unfinished, per handler thread.
const QUEUE_PER_THREAD: usize = 64;
/// Outcomes recorded with one log write, at most.
const MAX_BATCH: usize = 4096;
/// Events waiting behind their ordering key, at most: past it the scan for
/// fresh events pauses until keys are released (memory stays bounded when a
/// key is stuck behind a long retry).
const MAX_WAITING: usize = 100_000;

/// How a caught panic's error message starts.
const PANICKED: &str = "the handler panicked: ";

/// One event on its way to a handler.
struct Job {
    seq: u64,
    event: Arc<Event>,
    was: Standing,
    progress: Option<Progress>,
    key: Option<String>,
}

/// A job back from a handler thread; `None` when it was not run (shutdown).
struct Done {
    job: Job,
    result: Option<Dispatch>,
}

/// What a handler thread is running, for the slow-handler watch.
#[derive(Default)]
struct Slot {
    running: Mutex<Option<(Instant, Arc<Event>)>>,
    reported: AtomicBool,
    replaced: AtomicBool,
}

/// Releases the inbox's worker slot when dropped.
struct SlotGuard(Inbox);

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.0.inner().store.release_worker();
    }
}

struct HandlerThread {
    slot: Arc<Slot>,
    handle: JoinHandle<()>,
}

pub(super) struct Scheduler {
    inbox: Inbox,
    router: Arc<Router>,
    config: WorkerConfig,
    backoffs: Patterns<Backoff>,
    jitter: Jitter,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    poked: Receiver<()>,
    jobs: Option<Sender<Job>>,
    job_queue: Receiver<Job>,
    done_tx: Sender<Done>,
    done_rx: Receiver<Done>,
    threads: Vec<HandlerThread>,
    /// The last seq read by the fresh-event scan.
    cursor: u64,
    /// Seqs not to hand out: running, waiting behind their key, kept, or
    /// with a recorded change not yet visible to the store's readers.
    claimed: HashSet<u64>,
    /// (LSN, seqs): claims to drop once the store has applied that LSN.
    settling: VecDeque<(u64, Vec<u64>)>,
    keys: Keys,
    in_flight: usize,
    last_store_error: Option<String>,
    /// Jobs whose attempt is to be recorded before they run
    /// ([`WorkerConfig::durable_attempts`]).
    outbox: Vec<Job>,
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
        let (jobs, job_queue) = crossbeam_channel::unbounded();
        let (done_tx, done_rx) = crossbeam_channel::unbounded();
        let jitter = config.jitter.take().unwrap_or_else(Jitter::from_entropy);
        Self {
            inbox,
            router,
            config,
            backoffs,
            jitter,
            stop,
            counters,
            poked,
            jobs: Some(jobs),
            job_queue,
            done_tx,
            done_rx,
            threads: Vec::new(),
            cursor: 0,
            claimed: HashSet::new(),
            settling: VecDeque::new(),
            keys: Keys::default(),
            in_flight: 0,
            last_store_error: None,
            outbox: Vec::new(),
        }
    }

    fn store(&self) -> &dyn Store {
        self.inbox.inner().store.as_ref()
    }

    pub(super) fn run(mut self) -> Result<(), WorkerError> {
        // Frees the inbox's worker slot however this thread ends (a panic
        // included) — but only once no handler thread can still be running.
        let slot = SlotGuard(self.inbox.clone());
        let wake = self.store().subscribe();
        let mut result = (0..self.config.threads)
            .try_for_each(|_| self.spawn_handler())
            .map_err(WorkerError::Spawn)
            .and_then(|()| self.hold_retrying_keys().map_err(WorkerError::Store));
        if result.is_ok() {
            result = self.serve(&wake);
        }
        let drained = self.drain();
        if matches!(drained, Err(WorkerError::ShutdownTimedOut { .. })) {
            // Handlers still run events whose outcome will not be recorded: a
            // new worker must not start them again meanwhile. The slot is
            // freed when the last of them returns.
            let threads: Vec<_> = self.threads.drain(..).map(|t| t.handle).collect();
            let _ = std::thread::Builder::new()
                .name("webhook-inbox-reaper".into())
                .spawn(move || {
                    for handle in threads {
                        let _ = handle.join();
                    }
                    drop(slot);
                });
        }
        result.and(drained)
    }

    fn serve(&mut self, wake: &Receiver<()>) -> Result<(), WorkerError> {
        while !self.stop.load(Ordering::SeqCst) {
            self.settle();
            match self.fill().and_then(|()| self.flush_outbox()) {
                Ok(()) => {}
                Err(e @ StoreError::Closed) => return Err(e.into()),
                // A passing failure (a full disk): try again shortly.
                Err(e) => self.store_failed(&e),
            }
            let nap = self.nap();
            crossbeam_channel::select! {
                recv(self.done_rx) -> done => {
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

    /// Drops the claims whose recorded changes the store's readers now see.
    fn settle(&mut self) {
        let applied = self.store().applied_lsn();
        while let Some((lsn, _)) = self.settling.front() {
            if *lsn > applied {
                break;
            }
            if let Some((_, seqs)) = self.settling.pop_front() {
                for seq in seqs {
                    self.claimed.remove(&seq);
                }
            }
        }
    }

    fn room(&self) -> usize {
        (self.config.threads * QUEUE_PER_THREAD).saturating_sub(self.in_flight)
    }

    /// Hands out due retries, then fresh events in acceptance order, up to
    /// the queue's room.
    fn fill(&mut self) -> Result<(), StoreError> {
        if self.room() == 0 {
            return Ok(());
        }
        let now = unix_millis(self.inbox.inner().clock.now());
        let due = {
            let claimed = &self.claimed;
            self.store()
                .due(now, self.room(), &|seq| claimed.contains(&seq))?
        };
        for stored in due {
            self.offer(stored);
        }
        while self.room() > 0 && self.keys.waiting() < MAX_WAITING {
            let batch = self.store().events_after(self.cursor, self.room())?;
            if batch.is_empty() {
                break;
            }
            for stored in batch {
                if self.room() == 0 || self.keys.waiting() >= MAX_WAITING {
                    break;
                }
                self.cursor = stored.seq;
                if stored.standing() == Standing::Fresh && !self.claimed.contains(&stored.seq) {
                    self.offer(stored);
                }
            }
        }
        Ok(())
    }

    fn job(&self, stored: Stored) -> Job {
        let attempt = stored
            .progress
            .as_ref()
            .map_or(0, |p| p.attempts)
            .saturating_add(1);
        let key = self
            .config
            .ordering_key
            .as_deref()
            .and_then(|pointer| key_at(pointer, &stored.event.body));
        Job {
            seq: stored.seq,
            was: stored.standing(),
            event: Arc::new(Event::stored(stored.seq, stored.event, attempt)),
            progress: stored.progress,
            key,
        }
    }

    /// Claims an event and runs it now, or queues it behind its key.
    fn offer(&mut self, stored: Stored) {
        let job = self.job(stored);
        self.claimed.insert(job.seq);
        if self.keys.admit(job.key.as_deref(), job.seq) {
            self.send(job);
        }
    }

    fn publish_in_flight(&self) {
        self.counters
            .in_flight
            .store(self.in_flight as u64, Ordering::Relaxed);
    }

    /// Hands a job to the handler threads — after recording its attempt, when
    /// attempts are durable (see [`Self::flush_outbox`]).
    fn send(&mut self, job: Job) {
        if self.config.durable_attempts {
            self.outbox.push(job);
        } else {
            self.dispatch(job);
        }
    }

    /// Records the attempt of every job waiting in the outbox as a failure
    /// that did not finish (one log write), then hands them out. The job keeps
    /// the progress it had, so its real outcome replaces the placeholder. On
    /// a store error they stay in the outbox, claimed, for the next round.
    fn flush_outbox(&mut self) -> Result<(), StoreError> {
        if self.outbox.is_empty() {
            return Ok(());
        }
        let now_ms = unix_millis(self.inbox.inner().clock.now());
        let unfinished = HandlerError::retry(
            "the attempt did not finish: the process stopped while the handler ran",
        );
        let jobs = std::mem::take(&mut self.outbox);
        let mut changes = Vec::with_capacity(jobs.len());
        let mut standings = Vec::with_capacity(jobs.len());
        for job in &jobs {
            let (progress, _) = self.failed(job, &unfinished, now_ms);
            standings.push(Standing::of(Some(&progress)));
            changes.push(Change::Progress {
                seq: job.seq,
                was: job.was,
                progress,
            });
        }
        if let Err(e) = self.store().record(&changes) {
            self.outbox = jobs;
            return Err(e);
        }
        for (mut job, standing) in jobs.into_iter().zip(standings) {
            job.was = standing;
            self.dispatch(job);
        }
        Ok(())
    }

    fn dispatch(&mut self, job: Job) {
        if let Some(jobs) = &self.jobs
            && jobs.send(job).is_ok()
        {
            self.in_flight += 1;
            self.publish_in_flight();
        }
    }

    /// After a restart, the keys of retrying events are held again, so a
    /// newer event of the same key waits for them.
    fn hold_retrying_keys(&mut self) -> Result<(), StoreError> {
        if self.config.ordering_key.is_none() {
            return Ok(());
        }
        let pointer = self.config.ordering_key.clone().unwrap_or_default();
        let mut retrying = Vec::new();
        let mut after = 0;
        loop {
            // Only seqs and keys are kept, a page of events at a time.
            let page = self.store().events_after(after, 1024)?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            retrying.extend(
                page.into_iter()
                    .filter(|s| s.standing() == Standing::Retrying)
                    .map(|s| (s.seq, key_at(&pointer, &s.event.body))),
            );
        }
        for (seq, key) in retrying {
            if !self.keys.admit(key.as_deref(), seq) {
                // Waits behind an older retrying event of its key.
                self.claimed.insert(seq);
            }
        }
        Ok(())
    }

    /// How long to sleep when nothing arrives: until the next retry is due,
    /// at most [`MAX_NAP`].
    fn nap(&self) -> Duration {
        if self.room() == 0 {
            return MAX_NAP;
        }
        let claimed = &self.claimed;
        let next = self.store().next_due(&|seq| claimed.contains(&seq));
        let now = unix_millis(self.inbox.inner().clock.now());
        match next {
            Ok(Some(at)) => {
                let wait = u64::try_from(at.saturating_sub(now)).unwrap_or(0);
                Duration::from_millis(wait).clamp(Duration::from_millis(2), MAX_NAP)
            }
            _ => MAX_NAP,
        }
    }

    /// Records the outcomes of `first` and of every other finished job, with
    /// one log write.
    fn finish(&mut self, first: Done) -> Result<(), WorkerError> {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match self.done_rx.try_recv() {
                Ok(done) => batch.push(done),
                Err(_) => break,
            }
        }
        self.in_flight -= batch.len();
        self.publish_in_flight();

        let now = self.inbox.inner().clock.now();
        let now_ms = unix_millis(now);
        let mut changes = Vec::with_capacity(batch.len());
        let mut settled = Vec::with_capacity(batch.len());
        let mut reports = Vec::with_capacity(batch.len());
        for Done { job, result } in batch {
            let Some(result) = result else {
                // Not run (shutting down): it stays as it was in the store.
                self.claimed.remove(&job.seq);
                continue;
            };
            let (change, report) = self.decide(&job, result, now_ms);
            if let Some(change) = change {
                changes.push(change);
                settled.push(job.seq);
            }
            reports.push((job, report));
        }

        match self.store().record(&changes) {
            Ok(lsn) => self.settling.push_back((lsn, settled)),
            Err(e) => {
                // Nothing was recorded: the events are as they were. Hand
                // them out again (fresh ones from the scan, the rest when due).
                for (job, _) in &reports {
                    self.claimed.remove(&job.seq);
                    if job.was == Standing::Fresh {
                        self.cursor = self.cursor.min(job.seq.saturating_sub(1));
                    }
                }
                return match e {
                    StoreError::Closed => Err(e.into()),
                    _ => {
                        self.store_failed(&e);
                        Ok(())
                    }
                };
            }
        }

        for (job, report) in reports {
            self.count(&report);
            if let Report::Retrying { error, .. } | Report::DeadLettered { error, .. } = &report
                && error.starts_with(PANICKED)
            {
                self.counters.panics.fetch_add(1, Ordering::Relaxed);
            }
            let releases = matches!(
                report,
                Report::Handled | Report::Skipped | Report::Kept | Report::DeadLettered { .. }
            );
            self.tell(&job.event, &report);
            if releases && let Some(key) = &job.key {
                self.release(key, job.seq, now_ms);
            }
        }
        Ok(())
    }

    /// Lets the next event waiting on `key` run (or wait for its due time).
    fn release(&mut self, key: &str, seq: u64, now_ms: i64) {
        let mut done = seq;
        while let Some(next) = self.keys.release(key, done) {
            match self.store().get(next) {
                Ok(Some(stored)) => {
                    let job = self.job(stored);
                    match &job.progress {
                        Some(p) if p.next_at_ms > now_ms || p.dead_at_ms.is_some() => {
                            // It holds the key now; the due scan runs it when
                            // due (or a replay does, if it is dead).
                            self.claimed.remove(&next);
                        }
                        _ => self.send(job),
                    }
                    return;
                }
                // Gone (purged, or the read failed: it will be found again
                // after a restart); the key passes on.
                Ok(None) | Err(_) => {
                    self.claimed.remove(&next);
                    done = next;
                }
            }
        }
    }

    /// The change to record for a job's result, and the report.
    fn decide(&mut self, job: &Job, result: Dispatch, now_ms: i64) -> (Option<Change>, Report) {
        let forget = Change::Forget {
            seq: job.seq,
            was: job.was,
        };
        let error = match result {
            Dispatch::Ran(Ok(())) => return (Some(forget), Report::Handled),
            Dispatch::Unknown(UnknownTypes::Keep) => return (None, Report::Kept),
            Dispatch::Unknown(UnknownTypes::DeadLetter) => HandlerError::permanent(format!(
                "no handler for event type `{}`",
                job.event.event_type()
            )),
            Dispatch::Unknown(UnknownTypes::Complete) => return (Some(forget), Report::Skipped),
            Dispatch::Ran(Err(e)) => e,
            Dispatch::Panicked(what) => HandlerError::retry(format!("{PANICKED}{what}")),
        };
        let (progress, report) = self.failed(job, &error, now_ms);
        let change = Change::Progress {
            seq: job.seq,
            was: job.was,
            progress,
        };
        (Some(change), report)
    }

    /// The progress and report of a job whose attempt failed with `error`:
    /// the next attempt by the backoff, or a dead letter.
    fn failed(&mut self, job: &Job, error: &HandlerError, now_ms: i64) -> (Progress, Report) {
        let attempt = job.event.attempt();
        let backoff = self
            .backoffs
            .get(job.event.event_type())
            .unwrap_or(&self.config.backoff);
        let delay = if error.is_permanent() {
            None
        } else {
            backoff
                .delay_after(attempt, &mut self.jitter)
                .map(|d| error.requested_wait().unwrap_or(d))
        };
        let mut progress = job.progress.clone().unwrap_or(Progress::new(now_ms));
        progress.attempts = attempt;
        let message = match delay {
            None if !error.is_permanent() => {
                format!(
                    "{error} (attempt {attempt} of {}: no attempt left)",
                    backoff.max_attempts()
                )
            }
            _ => error.to_string(),
        };
        progress.push_failure(attempt, now_ms, &message);
        let report = match delay {
            Some(delay) => {
                let wait = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
                progress.next_at_ms = now_ms.saturating_add(wait);
                progress.dead_at_ms = None;
                Report::Retrying {
                    attempt,
                    next_attempt: from_unix_millis(progress.next_at_ms),
                    error: message,
                }
            }
            None => {
                progress.dead_at_ms = Some(now_ms);
                Report::DeadLettered {
                    attempt,
                    error: message,
                }
            }
        };
        (progress, report)
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
        crate::trace::reported(event, report);
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
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    fn spawn_handler(&mut self) -> std::io::Result<()> {
        let slot = Arc::new(Slot::default());
        let (jobs, done, router, stop) = (
            self.job_queue.clone(),
            self.done_tx.clone(),
            Arc::clone(&self.router),
            Arc::clone(&self.stop),
        );
        let instruments = Arc::clone(&self.inbox.inner().instruments);
        let mine = Arc::clone(&slot);
        let handle = std::thread::Builder::new()
            .name("webhook-inbox-handler".into())
            .spawn(move || handler_loop(&jobs, &done, &router, &stop, &mine, &instruments))?;
        self.threads.push(HandlerThread { slot, handle });
        Ok(())
    }

    /// Reports handlers running past the limit, once per attempt, and gives
    /// each a replacement thread (up to twice the configured count).
    fn watch_slow(&mut self) {
        self.threads.retain(|t| !t.handle.is_finished());
        let limit = self.config.slow_after;
        let mut slow = Vec::new();
        for t in &self.threads {
            if let Some((since, event)) = lock(&t.slot.running).as_ref()
                && since.elapsed() >= limit
                && !t.slot.reported.swap(true, Ordering::SeqCst)
            {
                slow.push((Arc::clone(&t.slot), since.elapsed(), Arc::clone(event)));
            }
        }
        for (slot, running_for, event) in slow {
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
            if self.threads.len() < 2 * self.config.threads {
                slot.replaced.store(true, Ordering::SeqCst);
                let _ = self.spawn_handler();
            }
        }
    }

    /// Stops handing out work, waits for running handlers (up to the
    /// shutdown timeout) and records their outcomes.
    fn drain(&mut self) -> Result<(), WorkerError> {
        self.stop.store(true, Ordering::SeqCst);
        self.jobs = None;
        let deadline = Instant::now().checked_add(self.config.shutdown_timeout);
        let mut failed = None;
        while self.in_flight > 0 {
            let received = match deadline {
                Some(deadline) => self
                    .done_rx
                    .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                    .ok(),
                None => self.done_rx.recv().ok(),
            };
            match received {
                Some(done) => {
                    if let Err(e) = self.finish(done) {
                        failed.get_or_insert(e);
                        // The store is gone: nothing more can be recorded.
                        break;
                    }
                }
                None => break,
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        if self.in_flight > 0 {
            return Err(WorkerError::ShutdownTimedOut {
                still_running: self.in_flight,
            });
        }
        for t in self.threads.drain(..) {
            let _ = t.handle.join();
        }
        Ok(())
    }
}

/// A warning on standard error (never panics, even on a closed stderr).
fn warn(message: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "webhook-inbox: warning: {message}");
}

fn handler_loop(
    jobs: &Receiver<Job>,
    done: &Sender<Done>,
    router: &Router,
    stop: &AtomicBool,
    slot: &Slot,
    instruments: &super::Instruments,
) {
    while let Ok(job) = jobs.recv() {
        if stop.load(Ordering::SeqCst) {
            let _ = done.send(Done { job, result: None });
            continue;
        }
        slot.reported.store(false, Ordering::SeqCst);
        *lock(&slot.running) = Some((Instant::now(), Arc::clone(&job.event)));
        let hooks = instruments.get();
        let started = hooks.map(|h| {
            h.handler_started();
            Instant::now()
        });
        let result = crate::trace::handling(&job.event, || router.dispatch(&job.event));
        if let (Some(h), Some(started)) = (hooks, started) {
            super::instrument(h.as_ref(), router, &job.event, &result, started.elapsed());
        }
        *lock(&slot.running) = None;
        if done
            .send(Done {
                job,
                result: Some(result),
            })
            .is_err()
            || slot.replaced.load(Ordering::SeqCst)
        {
            return;
        }
    }
}
