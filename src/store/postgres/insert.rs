//! Ingest with group commit: concurrent inserts wait in a queue while one
//! batch commits; the next batch is everything that queued meanwhile, sent
//! as one call of the schema's `ingest` function (arrays per column, one
//! statement, one transaction). Each caller is answered after the commit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use postgres::Config;

use super::pool::{Conn, JOB_DEADLINE, failed, no_answer};
use super::{Shared, big};
use crate::clock::unix_millis;
use crate::store::{Insert, NewEvent, StoreError};
use crate::sync::lock;

/// Events per batch, at most.
const MAX_BATCH: usize = 512;
/// Body bytes per batch, at most (a batch goes over it by one event).
const MAX_BATCH_BYTES: usize = 8 << 20;
/// How long a batch smaller than the last one waits for more: the callers
/// answered by the last commit are sending their next deliveries (a lone
/// caller never waits: its batches are all of one).
const LINGER: Duration = Duration::from_micros(200);
/// Events waiting for the inserting thread, at most: past it (the database
/// is not keeping up, or not answering) `ingest` answers 503 at once.
const MAX_QUEUED: usize = 16_384;

/// One event waiting to be inserted, and where its answer goes.
struct Request {
    source: String,
    id: String,
    event_type: String,
    received_ms: i64,
    headers: String,
    body: Vec<u8>,
    /// When its caller stops waiting (it is then not inserted, if not begun).
    deadline: Instant,
    reply: Sender<Result<Insert, StoreError>>,
}

/// The queue to the inserting thread.
pub(super) struct Inserter {
    queue: Mutex<Option<Sender<Request>>>,
}

impl Inserter {
    /// Starts the inserting thread, with a connection of its own.
    pub(super) fn start(config: &Config, shared: &Arc<Shared>) -> Result<Self, StoreError> {
        let (queue, requests) = crossbeam_channel::bounded(MAX_QUEUED);
        let config = config.clone();
        let sql = shared.sql.ingest.clone();
        let (max_pending, lock_key) = (big(shared.max_pending), shared.insert_lock);
        std::thread::Builder::new()
            .name("webhook-inbox-pg-ingest".into())
            .spawn(move || run(&config, &sql, max_pending, lock_key, &requests))
            .map_err(StoreError::Io)?;
        Ok(Self {
            queue: Mutex::new(Some(queue)),
        })
    }

    /// Inserts `event` unless its (source, id) is stored; returns after the commit.
    pub(super) fn insert(&self, event: &NewEvent<'_>) -> Result<Insert, StoreError> {
        let headers: Vec<(&str, &str)> = event
            .headers
            .iter()
            .map(|(name, value)| (*name, value.as_ref()))
            .collect();
        let headers = serde_json::to_string(&headers)
            .map_err(|e| StoreError::Corrupt(format!("headers: {e}")))?;
        let (reply, answer) = crossbeam_channel::bounded(1);
        let request = Request {
            source: event.source.to_owned(),
            id: event.id.to_owned(),
            event_type: event.event_type.to_owned(),
            received_ms: unix_millis(event.received_at),
            headers,
            body: event.body.to_vec(),
            deadline: Instant::now() + JOB_DEADLINE,
            reply,
        };
        let queue = lock(&self.queue).clone().ok_or(StoreError::Closed)?;
        queue.try_send(request).map_err(|e| match e {
            TrySendError::Full(_) => {
                StoreError::Database("too many deliveries waiting for the database".to_owned())
            }
            TrySendError::Disconnected(_) => StoreError::Closed,
        })?;
        match answer.recv_timeout(JOB_DEADLINE) {
            Ok(answer) => answer,
            // It may still commit (its retry is then a duplicate).
            Err(RecvTimeoutError::Timeout) => Err(no_answer()),
            Err(RecvTimeoutError::Disconnected) => Err(StoreError::Closed),
        }
    }

    /// Lets the thread finish the batch at hand and end.
    pub(super) fn stop(&self) {
        lock(&self.queue).take();
    }
}

/// The inserting thread: a batch at a time until the queue closes.
fn run(config: &Config, sql: &str, max_pending: i64, lock_key: i64, requests: &Receiver<Request>) {
    let mut conn: Option<Conn> = Conn::connect(config).ok();
    // How many the last batch carried: their callers come back together.
    let mut last_len = 1;
    while let Ok(first) = requests.recv() {
        let linger_until = Instant::now() + LINGER;
        let mut batch = Vec::with_capacity(last_len);
        let mut bytes = 0;
        let mut next = Some(first);
        while let Some(request) = next.take() {
            // Whoever waited for it has been answered already.
            if request.deadline > Instant::now() {
                bytes += request.body.len();
                batch.push(request);
            }
            if batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
                next = requests.try_recv().ok();
                if next.is_none() && batch.len() < last_len {
                    next = requests.recv_deadline(linger_until).ok();
                }
            }
        }
        if batch.is_empty() {
            continue;
        }
        last_len = batch.len();
        if conn.as_ref().is_none_or(|c| c.client.is_closed()) {
            conn = Conn::connect(config).ok();
        }
        let answers = match conn.as_mut() {
            Some(c) => commit(c, sql, max_pending, lock_key, &batch),
            None => Err(StoreError::Database(
                "cannot connect to the database".to_owned(),
            )),
        };
        if answers.is_err() {
            conn = None;
        }
        match answers {
            Ok(answers) => {
                for (request, answer) in batch.into_iter().zip(answers) {
                    let _ = request.reply.send(Ok(answer));
                }
            }
            Err(e) => {
                let text = e.to_string();
                for request in batch {
                    let _ = request.reply.send(Err(StoreError::Database(text.clone())));
                }
            }
        }
    }
}

/// Inserts `batch` in one statement; answers per request, in order.
fn commit(
    conn: &mut Conn,
    sql: &str,
    max_pending: i64,
    lock_key: i64,
    batch: &[Request],
) -> Result<Vec<Insert>, StoreError> {
    // A copy of an event earlier in the batch is answered as its duplicate.
    let mut first_of: HashMap<(&str, &str), usize> = HashMap::new();
    let mut sent: Vec<usize> = Vec::with_capacity(batch.len());
    let mut copy_of: Vec<Option<usize>> = Vec::with_capacity(batch.len());
    for (i, r) in batch.iter().enumerate() {
        match first_of.get(&(r.source.as_str(), r.id.as_str())) {
            Some(&j) => copy_of.push(Some(j)),
            None => {
                first_of.insert((&r.source, &r.id), sent.len());
                copy_of.push(None);
                sent.push(i);
            }
        }
    }
    let col =
        |f: fn(&Request) -> &str| -> Vec<&str> { sent.iter().map(|&i| f(&batch[i])).collect() };
    let sources = col(|r| &r.source);
    let ids = col(|r| &r.id);
    let types = col(|r| &r.event_type);
    let headers = col(|r| &r.headers);
    let received: Vec<i64> = sent.iter().map(|&i| batch[i].received_ms).collect();
    let bodies: Vec<&[u8]> = sent.iter().map(|&i| batch[i].body.as_slice()).collect();
    let st = conn.statement("ingest", sql)?;
    let rows = conn
        .client
        .query(
            &st,
            &[
                &sources,
                &ids,
                &types,
                &received,
                &headers,
                &bodies,
                &max_pending,
                &lock_key,
            ],
        )
        .map_err(failed)?;
    let mut by_ord = vec![None; sent.len()];
    for row in &rows {
        let ord: i64 = row.try_get(0).map_err(failed)?;
        let seq: Option<i64> = row.try_get(1).map_err(failed)?;
        let new: Option<bool> = row.try_get(2).map_err(failed)?;
        let pending: i64 = row.try_get(3).map_err(failed)?;
        let answer = match (seq.and_then(|s| u64::try_from(s).ok()), new) {
            (Some(seq), Some(true)) => Insert::Accepted { seq },
            (Some(seq), _) => Insert::Duplicate { seq },
            (None, _) => Insert::Overloaded {
                pending: u64::try_from(pending).unwrap_or(0),
                limit: u64::try_from(max_pending).unwrap_or(0),
            },
        };
        if let Some(slot) = usize::try_from(ord - 1)
            .ok()
            .and_then(|i| by_ord.get_mut(i))
        {
            *slot = Some(answer);
        }
    }
    // Map each request to its answer: sent ones by position, copies by their first.
    let mut out = Vec::with_capacity(batch.len());
    let mut next_sent = 0;
    for copy in copy_of {
        let answer = match copy {
            None => {
                let a = by_ord.get(next_sent).copied().flatten();
                next_sent += 1;
                a
            }
            Some(j) => by_ord.get(j).copied().flatten().map(|a| match a {
                Insert::Accepted { seq } => Insert::Duplicate { seq },
                other => other,
            }),
        };
        out.push(answer.ok_or_else(|| {
            StoreError::Database("the ingest function answered too few rows".to_owned())
        })?);
    }
    Ok(out)
}
