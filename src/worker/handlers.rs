//! The handler threads: each takes jobs off one channel, runs the router on
//! the event, and sends the result back; slow ones are noticed and replaced.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::Instruments;
use crate::router::{Dispatch, Event, Router};
use crate::store::Progress;
use crate::store::backend::Token;
use crate::sync::lock;

/// One claimed event on its way to a handler.
pub(super) struct Job {
    pub(super) seq: u64,
    pub(super) token: Token,
    pub(super) event: Arc<Event>,
    /// Its progress when claimed (its real outcome builds on this, even when
    /// the attempt was recorded first).
    pub(super) progress: Option<Progress>,
}

/// A job back from a handler thread; `None` when it was not run (shutdown,
/// or its claim was lost before it started).
pub(super) struct Done {
    pub(super) job: Job,
    pub(super) result: Option<Dispatch>,
}

/// What a handler thread is running, for the slow-handler watch.
#[derive(Default)]
struct Slot {
    running: std::sync::Mutex<Option<(Instant, Arc<Event>)>>,
    reported: AtomicBool,
    replaced: AtomicBool,
}

struct Thread {
    slot: Arc<Slot>,
    handle: JoinHandle<()>,
}

/// The pool of handler threads and the channels to and from it.
pub(super) struct Handlers {
    router: Arc<Router>,
    stop: Arc<AtomicBool>,
    instruments: Arc<Instruments>,
    jobs: Option<Sender<Job>>,
    job_queue: Receiver<Job>,
    done_tx: Sender<Done>,
    pub(super) done: Receiver<Done>,
    threads: Vec<Thread>,
    /// Claims found lost (seq, token): a job of one still queued is not run.
    revoked: Arc<Revoked>,
}

/// Claims found lost whose jobs may still be queued.
type Revoked = std::sync::Mutex<HashSet<(u64, Token)>>;

impl Handlers {
    pub(super) fn new(
        router: Arc<Router>,
        stop: Arc<AtomicBool>,
        instruments: Arc<Instruments>,
    ) -> Self {
        let (jobs, job_queue) = crossbeam_channel::unbounded();
        let (done_tx, done) = crossbeam_channel::unbounded();
        Self {
            router,
            stop,
            instruments,
            jobs: Some(jobs),
            job_queue,
            done_tx,
            done,
            threads: Vec::new(),
            revoked: Arc::default(),
        }
    }

    /// The claim of `seq` under `token` was lost: if its job has not
    /// started, it is not run (its holder would only have its outcome refused).
    pub(super) fn revoke(&self, seq: u64, token: Token) {
        lock(&self.revoked).insert((seq, token));
    }

    /// The job of `seq` under `token` is back: nothing to revoke any more.
    pub(super) fn returned(&self, seq: u64, token: Token) {
        let mut revoked = lock(&self.revoked);
        if !revoked.is_empty() {
            revoked.remove(&(seq, token));
        }
    }

    /// Starts one more handler thread.
    pub(super) fn spawn(&mut self) -> std::io::Result<()> {
        let slot = Arc::new(Slot::default());
        let (jobs, done, router, stop) = (
            self.job_queue.clone(),
            self.done_tx.clone(),
            Arc::clone(&self.router),
            Arc::clone(&self.stop),
        );
        let (instruments, revoked) = (Arc::clone(&self.instruments), Arc::clone(&self.revoked));
        let mine = Arc::clone(&slot);
        let handle = std::thread::Builder::new()
            .name("webhook-inbox-handler".into())
            .spawn(move || {
                handler_loop(&jobs, &done, &router, &stop, &mine, &instruments, &revoked);
            })?;
        self.threads.push(Thread { slot, handle });
        Ok(())
    }

    /// Hands `job` to the threads; false when they take no more (shutdown).
    pub(super) fn send(&self, job: Job) -> bool {
        self.jobs
            .as_ref()
            .is_some_and(|jobs| jobs.send(job).is_ok())
    }

    /// Takes no more jobs: the threads end once the queue is empty.
    pub(super) fn close(&mut self) {
        self.jobs = None;
    }

    /// The handlers running past `limit`, each reported once per attempt
    /// (how long so far, and the event). Each gets a replacement thread, up
    /// to `max_threads` in all.
    pub(super) fn slow(
        &mut self,
        limit: Duration,
        max_threads: usize,
    ) -> Vec<(Duration, Arc<Event>)> {
        self.threads.retain(|t| !t.handle.is_finished());
        let mut slow = Vec::new();
        for t in &self.threads {
            if let Some((since, event)) = lock(&t.slot.running).as_ref()
                && since.elapsed() >= limit
                && !t.slot.reported.swap(true, Ordering::SeqCst)
            {
                slow.push((Arc::clone(&t.slot), since.elapsed(), Arc::clone(event)));
            }
        }
        slow.into_iter()
            .map(|(slot, running_for, event)| {
                if self.threads.len() < max_threads {
                    slot.replaced.store(true, Ordering::SeqCst);
                    let _ = self.spawn();
                }
                (running_for, event)
            })
            .collect()
    }

    /// The threads, to join.
    pub(super) fn take_threads(&mut self) -> Vec<JoinHandle<()>> {
        self.threads.drain(..).map(|t| t.handle).collect()
    }
}

fn handler_loop(
    jobs: &Receiver<Job>,
    done: &Sender<Done>,
    router: &Router,
    stop: &AtomicBool,
    slot: &Slot,
    instruments: &Instruments,
    revoked: &Revoked,
) {
    while let Ok(job) = jobs.recv() {
        let lost = {
            let revoked = lock(revoked);
            !revoked.is_empty() && revoked.contains(&(job.seq, job.token))
        };
        if lost || stop.load(Ordering::SeqCst) {
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
        let result = super::trace::handling(&job.event, || router.dispatch(&job.event));
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
