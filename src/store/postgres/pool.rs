//! Connections, each owned by a thread of the backend: a job is sent to a
//! free connection's thread and its answer sent back. No query ever runs on
//! the caller's thread, so a caller on a tokio worker thread cannot trip the
//! `postgres` crate's nested-runtime panic (rust-postgres#639).
//!
//! A connection that failed is dropped and made again for the next job, so
//! the pool recovers by itself when the database comes back.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use postgres::{Client, Config, NoTls, Statement};

use super::describe;
use crate::store::StoreError;

/// How long connecting may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one statement may run before the server cancels it: well under
/// a sender's 30 s budget, so a slow database gives a 503, not a timeout.
pub(crate) const STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a caller waits for a job's answer. The server's statement
/// timeout cannot help when the server stops answering altogether (a hung
/// host, a network path that drops everything, a connection that never
/// gets past its startup): past this the caller gets a database error (503
/// at ingest) and the stuck connection's thread is left to TCP's timeouts.
pub(crate) const JOB_DEADLINE: Duration = Duration::from_secs(15);

/// One connection and the statements prepared on it.
pub(crate) struct Conn {
    pub(crate) client: Client,
    prepared: HashMap<&'static str, Statement>,
}

impl Conn {
    /// Connects with the pool's timeouts.
    pub(crate) fn connect(config: &Config) -> Result<Self, StoreError> {
        let client = config
            .connect(NoTls)
            .map_err(|e| StoreError::Database(describe(&e)))?;
        Ok(Self {
            client,
            prepared: HashMap::new(),
        })
    }

    /// The statement named `name` (its text `sql`), prepared once per connection.
    pub(crate) fn statement(
        &mut self,
        name: &'static str,
        sql: &str,
    ) -> Result<Statement, StoreError> {
        if let Some(statement) = self.prepared.get(name) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql).map_err(failed)?;
        self.prepared.insert(name, statement.clone());
        Ok(statement)
    }
}

/// The error of a job the database did not answer in time.
pub(crate) fn no_answer() -> StoreError {
    StoreError::Database(format!(
        "the database did not answer within {} s",
        JOB_DEADLINE.as_secs()
    ))
}

/// A database error as a store error.
pub(crate) fn failed(e: postgres::Error) -> StoreError {
    StoreError::Database(describe(&e))
}

/// The connection settings every connection of one backend uses.
pub(crate) fn config(url: &str) -> Result<Config, String> {
    let mut config: Config = url
        .parse()
        .map_err(|e: postgres::Error| format!("invalid PostgreSQL URL: {e}"))?;
    if config.get_ssl_mode() == postgres::config::SslMode::Require {
        return Err("sslmode=require: this build cannot connect with TLS yet; \
                    use a private network (sslmode=disable) or a local TLS proxy"
            .to_owned());
    }
    let timeout_ms = STATEMENT_TIMEOUT.as_millis();
    config
        .connect_timeout(CONNECT_TIMEOUT)
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(30))
        .keepalives_interval(Duration::from_secs(10))
        .keepalives_retries(3)
        // Unacknowledged data past this breaks the connection (a dead peer).
        .tcp_user_timeout(Duration::from_secs(30))
        .application_name("webhook-inbox")
        .options(&format!("-c statement_timeout={timeout_ms}"));
    Ok(config)
}

/// A job: answers whether it failed (so its connection is checked).
type Job = Box<dyn FnOnce(Result<&mut Conn, StoreError>) -> bool + Send>;

/// Threads, each with a connection made when first needed.
pub(crate) struct Pool {
    jobs: Sender<Job>,
}

impl Pool {
    /// `size` threads connecting with `config`.
    pub(crate) fn new(config: &Config, size: usize, name: &str) -> Result<Self, StoreError> {
        let (jobs, queue) = crossbeam_channel::unbounded::<Job>();
        for i in 0..size.max(1) {
            let queue = queue.clone();
            let config = config.clone();
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || serve(&config, &queue))
                .map_err(StoreError::Io)?;
        }
        Ok(Self { jobs })
    }

    /// Runs `job` on a connection and answers what it answers, or a
    /// database error after [`JOB_DEADLINE`] (a job not started by then is
    /// dropped unrun).
    pub(crate) fn run<R: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Conn) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let abandoned = Arc::new(AtomicBool::new(false));
        let given_up = Arc::clone(&abandoned);
        let job: Job = Box::new(move |conn| {
            if given_up.load(Ordering::SeqCst) {
                return false;
            }
            let answer = conn.and_then(job);
            let failed = answer.is_err();
            let _ = tx.send(answer);
            failed
        });
        self.jobs.send(job).map_err(|_| StoreError::Closed)?;
        match rx.recv_timeout(JOB_DEADLINE) {
            Ok(answer) => answer,
            Err(RecvTimeoutError::Timeout) => {
                abandoned.store(true, Ordering::SeqCst);
                Err(no_answer())
            }
            Err(RecvTimeoutError::Disconnected) => Err(StoreError::Closed),
        }
    }
}

/// A pool thread: runs jobs until the pool is dropped.
fn serve(config: &Config, queue: &Receiver<Job>) {
    // Connected at once, so the first claims (timed against their lease)
    // do not wait for a login.
    let mut conn: Option<Conn> = Conn::connect(config).ok();
    while let Ok(job) = queue.recv() {
        if conn.as_ref().is_none_or(|c| c.client.is_closed()) {
            conn = None;
            match Conn::connect(config) {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    let _ = job(Err(e));
                    continue;
                }
            }
        }
        if let Some(c) = conn.as_mut() {
            // After a failure, a connection that is broken is not reused.
            if job(Ok(c))
                && (c.client.is_closed() || c.client.is_valid(Duration::from_secs(1)).is_err())
            {
                conn = None;
            }
        }
    }
}
