//! Shutting down: running handlers finish (up to the timeout) and their
//! outcomes are recorded, every other claim is given back; handlers that
//! outlive the timeout keep their claims alive until they return.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::Scheduler;
use crate::clock::unix_millis;
use crate::store::backend::{Finish, Outcome, Token};
use crate::worker::WorkerError;

impl Scheduler {
    /// Stops handing out work, waits for running handlers (up to the
    /// shutdown timeout), records their outcomes and gives back every other
    /// claim.
    pub(super) fn drain(&mut self) -> Result<(), WorkerError> {
        self.stop.store(true, Ordering::SeqCst);
        self.handlers.close();
        let deadline = Instant::now().checked_add(self.config.shutdown_timeout);
        let mut failed = None;
        while self.in_flight > 0 {
            let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if remaining == Some(Duration::ZERO) {
                break;
            }
            // Keep the running handlers' claims alive meanwhile.
            let _ = self.beat(false);
            let wait = remaining
                .unwrap_or(Duration::MAX)
                .min(self.config.lease / 3);
            match self.handlers.done.recv_timeout(wait) {
                Ok(done) => {
                    if let Err(e) = self.finish(done) {
                        failed.get_or_insert(e);
                        // The store is gone: nothing more can be recorded.
                        break;
                    }
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            }
        }
        let idle: Vec<(u64, Token)> = self
            .outbox
            .drain(..)
            .map(|job| (job.seq, job.token))
            .chain(
                self.kept
                    .iter()
                    .map(|seq| (*seq, self.held.get(seq).copied().unwrap_or(0))),
            )
            .collect();
        self.release(idle.into_iter());
        if let Some(e) = failed {
            return Err(e);
        }
        if self.in_flight > 0 {
            self.keep_alive_until_done();
            return Err(WorkerError::ShutdownTimedOut {
                still_running: self.in_flight,
            });
        }
        for handle in self.handlers.take_threads() {
            let _ = handle.join();
        }
        Ok(())
    }

    /// Handlers outlived the shutdown timeout: a thread keeps their claims
    /// alive until they return (so no other worker runs those events at the
    /// same time), then gives them back — their outcomes are not recorded.
    fn keep_alive_until_done(&mut self) {
        let threads = self.handlers.take_threads();
        let held: Vec<(u64, Token)> = self.held.drain().collect();
        let inbox = self.inbox.clone();
        let lease = self.config.lease;
        let _ = std::thread::Builder::new()
            .name("webhook-inbox-reaper".into())
            .spawn(move || {
                let store = inbox.inner().store.as_ref();
                let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
                while threads.iter().any(|t| !t.is_finished()) {
                    let now_ms = unix_millis(inbox.inner().clock.now());
                    if store
                        .heartbeat(&held, now_ms.saturating_add(lease_ms))
                        .is_err()
                    {
                        return;
                    }
                    std::thread::sleep((lease / 3).min(Duration::from_secs(1)));
                }
                let released: Vec<Finish> = held
                    .into_iter()
                    .map(|(seq, token)| Finish {
                        seq,
                        token,
                        outcome: Outcome::Release,
                    })
                    .collect();
                let _ = store.finish(&released);
            });
    }
}
