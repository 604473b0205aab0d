//! Waking workers, and the upkeep one replica at a time does.
//!
//! A replica wakes its own workers in-process for what it inserted or
//! finished, and tells the others with `NOTIFY` after the commit, at most
//! once per [`DEBOUNCE`] (a `NOTIFY` takes a database-wide lock at commit).
//! A thread `LISTEN`s and wakes this replica's workers. Workers poll behind
//! it every second, or four times a second without `LISTEN` (PgBouncer in
//! transaction pooling mode).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use postgres::Config;
use postgres::fallible_iterator::FallibleIterator;

use super::Shared;
use super::pool::{Conn, failed};
use super::schema::lock_key;
use crate::clock::unix_millis;
use crate::store::StoreError;
use crate::sync::lock;

/// At most one `NOTIFY` per this long, per replica.
const DEBOUNCE: Duration = Duration::from_millis(100);
/// How often workers poll with `LISTEN` behind them.
const POLL_LISTENING: Duration = Duration::from_secs(1);
/// How often workers poll without `LISTEN`.
const POLL_ONLY: Duration = Duration::from_millis(250);
/// How often one replica removes expired dedup markers.
const COLLECT_EVERY: Duration = Duration::from_secs(60);
/// Markers removed per transaction.
const COLLECT_BATCH: i32 = 1_000;

type Subscribers = Arc<Mutex<Vec<Sender<()>>>>;

/// Wake-ups, in this process and across replicas.
pub(super) struct Wake {
    subscribers: Subscribers,
    /// To the thread that sends `NOTIFY` (none: poll only).
    notifier: Mutex<Option<Sender<()>>>,
    stop: Arc<AtomicBool>,
    listen: bool,
}

impl Wake {
    /// Starts the `LISTEN` and `NOTIFY` threads (if `listen`), each with a
    /// connection of its own.
    pub(super) fn new(config: &Config, schema: &str, listen: bool) -> Result<Self, StoreError> {
        let subscribers: Subscribers = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let mut notifier = None;
        if listen {
            // Channel names are identifiers of at most 63 bytes: a hash of the schema's.
            let channel = format!(
                "webhook_inbox_{:016x}",
                lock_key(schema, "wake").cast_unsigned()
            );
            let (tx, rx) = crossbeam_channel::bounded(1);
            notifier = Some(tx);
            let (config2, channel2, stop2) = (config.clone(), channel.clone(), Arc::clone(&stop));
            std::thread::Builder::new()
                .name("webhook-inbox-pg-notify".into())
                .spawn(move || send_notifies(&config2, &channel2, &rx, &stop2))
                .map_err(StoreError::Io)?;
            let (config3, subs, stop3) =
                (config.clone(), Arc::clone(&subscribers), Arc::clone(&stop));
            std::thread::Builder::new()
                .name("webhook-inbox-pg-listen".into())
                .spawn(move || listen_loop(&config3, &channel, &subs, &stop3))
                .map_err(StoreError::Io)?;
        }
        Ok(Self {
            subscribers,
            notifier: Mutex::new(notifier),
            stop,
            listen,
        })
    }

    /// A channel that gets a message when something may be claimable.
    pub(super) fn subscribe(&self) -> Receiver<()> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        lock(&self.subscribers).push(tx);
        rx
    }

    /// How often a worker polls when nothing wakes it.
    pub(super) fn poll_interval(&self) -> Duration {
        if self.listen {
            POLL_LISTENING
        } else {
            POLL_ONLY
        }
    }

    /// This replica committed new events, or a change that may make events
    /// claimable.
    pub(super) fn changed(&self) {
        notify(&self.subscribers);
        if let Some(tx) = lock(&self.notifier).as_ref() {
            let _ = tx.try_send(());
        }
    }

    /// Stops the threads (within a second).
    pub(super) fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        lock(&self.notifier).take();
        lock(&self.subscribers).clear();
    }
}

fn notify(subscribers: &Mutex<Vec<Sender<()>>>) {
    lock(subscribers).retain(|w| !matches!(w.try_send(()), Err(TrySendError::Disconnected(()))));
}

/// Sends a `NOTIFY` per message, at most one per [`DEBOUNCE`].
fn send_notifies(config: &Config, channel: &str, rx: &Receiver<()>, stop: &AtomicBool) {
    let mut conn: Option<Conn> = None;
    while rx.recv().is_ok() && !stop.load(Ordering::SeqCst) {
        if conn.as_ref().is_none_or(|c| c.client.is_closed()) {
            conn = Conn::connect(config).ok();
        }
        if let Some(c) = conn.as_mut()
            && c.client
                .execute("SELECT pg_notify($1, '')", &[&channel])
                .is_err()
        {
            conn = None;
        }
        std::thread::sleep(DEBOUNCE);
    }
}

/// `LISTEN`s and wakes this replica's workers; reconnects after a failure.
fn listen_loop(config: &Config, channel: &str, subscribers: &Subscribers, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        let Ok(mut conn) = Conn::connect(config) else {
            std::thread::sleep(Duration::from_secs(1));
            continue;
        };
        if conn
            .client
            .batch_execute(&format!("LISTEN {channel}"))
            .is_err()
        {
            std::thread::sleep(Duration::from_secs(1));
            continue;
        }
        // Something may have been missed while not listening.
        notify(subscribers);
        while !stop.load(Ordering::SeqCst) {
            let next = conn
                .client
                .notifications()
                .timeout_iter(Duration::from_secs(1))
                .next();
            match next {
                Ok(Some(_)) => notify(subscribers),
                Ok(None) => {}
                Err(_) => break,
            }
            if conn.client.is_closed() {
                break;
            }
        }
    }
}

/// Removes dedup markers accepted before `now - retention` whose event is
/// gone, a batch per transaction, unless another replica is doing it.
pub(super) fn collect(shared: &Shared, now: SystemTime) -> Result<usize, StoreError> {
    shared.check_open()?;
    let retention = i64::try_from(shared.retention.as_millis()).unwrap_or(i64::MAX);
    let cutoff = unix_millis(now).saturating_sub(retention);
    let lock_key = shared.collect_lock;
    let mut removed = 0;
    loop {
        let n = shared.run(move |conn, sql| {
            let st = conn.statement("collect", &sql.collect)?;
            let row = conn
                .client
                .query_one(&st, &[&cutoff, &lock_key, &COLLECT_BATCH])
                .map_err(failed)?;
            row.try_get::<_, i64>(0).map_err(failed)
        })?;
        removed += usize::try_from(n).unwrap_or(0);
        if n < i64::from(COLLECT_BATCH) {
            return Ok(removed);
        }
    }
}

/// Starts the thread that collects expired markers every [`COLLECT_EVERY`].
pub(super) fn start_upkeep(shared: &Arc<Shared>) -> Result<(), StoreError> {
    let weak: Weak<Shared> = Arc::downgrade(shared);
    std::thread::Builder::new()
        .name("webhook-inbox-pg-upkeep".into())
        .spawn(move || {
            let mut last = Instant::now();
            loop {
                std::thread::sleep(Duration::from_secs(1));
                let Some(shared) = weak.upgrade() else { return };
                if shared.closed.load(Ordering::SeqCst) {
                    return;
                }
                if last.elapsed() >= COLLECT_EVERY {
                    last = Instant::now();
                    let _ = collect(&shared, shared.clock.now());
                }
            }
        })
        .map_err(StoreError::Io)?;
    Ok(())
}
