//! The embedded store: a group-committed write-ahead log in front of sled.
//!
//! # Commit protocol
//!
//! 1. `insert`: look the dedup key up in sled (outside the lock: sled holds
//!    only durable events), then under one mutex among the records not yet
//!    applied to sled (the in-flight map), looking in sled again if something
//!    was applied in between; if absent, assign the next LSN, append the
//!    record's frame to the log buffer and note the key in flight. This is the
//!    atomic insert-if-absent.
//! 2. The caller waits for its LSN to be durable. The first waiter finding no
//!    flush under way becomes the leader: it takes the whole buffer, writes it
//!    with one `write` and one `fdatasync`, marks everything up to the buffer's
//!    last LSN durable and wakes every waiter (group commit: no sleeps, no
//!    polling). Those that arrived during the flush form the next batch.
//! 3. Only then is the batch handed to the applier thread, which writes each
//!    event to sled (the event, then its dedup marker), one retention entry per
//!    batch, and removes the batch's keys from the in-flight map.
//!
//! So sled never holds anything that is not durable in the log, and after a
//! crash replaying the log (skipping records whose dedup marker exists) rebuilds
//! exactly what was acknowledged. A background thread checkpoints: it flushes
//! sled, `fsync`s sled's files (sled's own flush uses `sync_file_range`, which
//! does not flush the device cache), and then deletes the log segments sled now
//! covers. It also collects expired dedup markers, a few at a time.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use crossbeam_channel::{Receiver, Sender};

use super::latency::{Latencies, LatencySummary};
use super::record::{self, EventRecordRef, Progress};
use super::wal::{self, WalWriter};
use super::{
    Change, Durability, Insert, NewEvent, Standing, Store, StoreCounts, StoreError, Stored,
};
use crate::clock::{Clock, unix_millis};

/// How often the background thread wakes (checkpoints, collection, buffered syncs).
const TICK: Duration = Duration::from_millis(100);
/// The longest the log grows between checkpoints when nothing forces one sooner.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(30);
/// Retention entries (one per applied batch) handled per collection step, so
/// collection never holds up ingest for long.
const GC_STEP: usize = 64;

/// What a checkpoint does besides flushing sled and syncing its files.
#[derive(Clone, Copy)]
enum Checkpoint {
    /// Drop the sealed segments sled now covers.
    Drop,
    /// Seal the active segment first, so no log record outlives a couple of
    /// periodic checkpoints (a record replayed after its dedup marker expired
    /// would come back).
    SealAndDrop,
    /// Open and clean shutdown, when everything logged has been applied: the
    /// log starts afresh.
    All,
}

/// Settings of a sled store.
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) durability: Durability,
    pub(crate) retention: Duration,
    pub(crate) cache_bytes: u64,
    pub(crate) max_pending: u64,
    pub(crate) clock: Arc<dyn Clock>,
}

/// The embedded store. Dropping it shuts it down cleanly.
pub(crate) struct SledStore {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

struct Trees {
    dedup: sled::Tree,
    events: sled::Tree,
    expiry: sled::Tree,
    meta: sled::Tree,
    progress: sled::Tree,
    due: sled::Tree,
    dead: sled::Tree,
}

/// One log record on its way from the log to sled.
struct Applied {
    lsn: u64,
    /// The dedup key of an accepted event; empty for other kinds.
    key: Vec<u8>,
    received_ms: i64,
    /// The log payload: a kind byte, then what it carries (for an accepted
    /// event, the value sled stores).
    payload: Vec<u8>,
}

impl Applied {
    fn value(&self) -> &[u8] {
        self.payload.get(1..).unwrap_or_default()
    }

    fn is_accept(&self) -> bool {
        self.payload.first() == Some(&record::KIND_ACCEPT)
    }

    /// A record read back from the log, checked to be one this version knows.
    fn recovered(lsn: u64, payload: Vec<u8>) -> Result<Self, String> {
        match payload.split_first() {
            Some((&record::KIND_ACCEPT, value)) => {
                let event = record::decode_event(value)?;
                Ok(Self {
                    lsn,
                    key: record::dedup_key(&event.source, &event.id),
                    received_ms: event.received_at_ms,
                    payload,
                })
            }
            Some((&record::KIND_FORGET, rest)) => {
                record::split_seq(rest)?;
                Ok(Self::change(lsn, payload))
            }
            Some((&record::KIND_PROGRESS, rest)) => {
                record::decode_progress(record::split_seq(rest)?.1)?;
                Ok(Self::change(lsn, payload))
            }
            _ => Err(format!("log record {lsn} of unknown kind")),
        }
    }

    fn change(lsn: u64, payload: Vec<u8>) -> Self {
        Self {
            lsn,
            key: Vec::new(),
            received_ms: 0,
            payload,
        }
    }
}

#[derive(Default)]
struct Core {
    next_lsn: u64,
    buffer: Vec<u8>,
    spare: Vec<u8>,
    batch: Vec<Applied>,
    in_flight: HashMap<Vec<u8>, u64>,
    flushing: bool,
    /// Flushes started so far; the one under way when `flushing`.
    flush_no: u64,
    /// The last LSN of the batch being written.
    flushing_last: u64,
    durable_lsn: u64,
    failed: Vec<(u64, u64)>,
    poisoned: Option<String>,
    /// A buffered batch whose write failed, kept for the background thread to retry.
    retrying: Option<String>,
    closed: bool,
}

impl Core {
    /// Drops a batch's keys from the in-flight map (unless a later event took
    /// the key over): they are in sled now, or were never stored.
    fn forget_in_flight(&mut self, batch: &[Applied]) {
        for a in batch {
            if self.in_flight.get(&a.key) == Some(&a.lsn) {
                self.in_flight.remove(&a.key);
            }
        }
    }
}

struct Shared {
    path: PathBuf,
    db: sled::Db,
    trees: Trees,
    core: Mutex<Core>,
    /// Waiters by the parity of the flush that makes them durable.
    durable: [Condvar; 2],
    wal: Mutex<WalWriter>,
    settings: Settings,
    pending: AtomicU64,
    retrying: AtomicU64,
    dead: AtomicU64,
    markers: AtomicU64,
    fsync: Latencies,
    applied_lsn: AtomicU64,
    to_applier: Sender<Option<Vec<Applied>>>,
    /// Told after each applied batch (the worker's wake-up).
    subscriber: Mutex<Option<Sender<()>>>,
    worker: AtomicBool,
    stop: AtomicBool,
    /// Test seam: the applier treats the next batch as refused by sled.
    #[cfg(test)]
    fail_next_apply: AtomicBool,
    /// Test seam: the next log write fails as if the disk were full.
    #[cfg(test)]
    fail_next_write: AtomicBool,
}

/// Why a store could not be opened.
pub(crate) enum OpenFailure {
    InUse,
    /// The directory does not exist (or holds no store) and creating was not allowed.
    NotFound,
    /// The directory holds files, none of them a store's.
    NotAStore,
    Io(std::io::Error),
    Corrupt(String),
}

impl From<std::io::Error> for OpenFailure {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

impl From<sled::Error> for OpenFailure {
    fn from(e: sled::Error) -> Self {
        match e {
            sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => Self::InUse,
            sled::Error::Io(io) => Self::Io(io),
            other => Self::Corrupt(other.to_string()),
        }
    }
}

impl Shared {
    /// `fdatasync`s the log, timing it for [`Stats::fsync`](crate::Stats::fsync).
    fn timed_sync(&self, writer: &mut WalWriter) -> std::io::Result<()> {
        let started = std::time::Instant::now();
        let synced = writer.sync();
        self.fsync.record(started.elapsed());
        synced
    }
}

/// The `meta` key of the counts a clean close leaves for the next open.
const CLEAN_COUNTS: &[u8] = b"clean_counts";

/// The store's counts as of log position `lsn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SavedCounts {
    lsn: u64,
    counts: StoreCounts,
}

impl SavedCounts {
    fn encode(&self) -> [u8; 40] {
        let mut out = [0; 40];
        let c = &self.counts;
        let fields = [self.lsn, c.pending, c.retrying, c.dead, c.markers];
        for (chunk, v) in out.chunks_exact_mut(8).zip(fields) {
            chunk.copy_from_slice(&v.to_be_bytes());
        }
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let mut fields = bytes
            .chunks_exact(8)
            .map(|c| <[u8; 8]>::try_from(c).ok().map(u64::from_be_bytes));
        let saved = Self {
            lsn: fields.next()??,
            counts: StoreCounts {
                pending: fields.next()??,
                retrying: fields.next()??,
                dead: fields.next()??,
                markers: fields.next()??,
            },
        };
        (bytes.len() == 40).then_some(saved)
    }
}

/// What a directory holds, as far as opening a store there is concerned.
enum DirState {
    Missing,
    Empty,
    /// It has the store's `sled` or `wal` directory.
    Store,
    /// It has other files only: never turn someone's directory into a store.
    Foreign,
}

fn dir_state(dir: &Path) -> std::io::Result<DirState> {
    let mut entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(DirState::Missing),
        Err(e) => return Err(e),
    };
    if dir.join("sled").is_dir() || dir.join("wal").is_dir() {
        return Ok(DirState::Store);
    }
    // A fresh volume's `lost+found` and hidden files (`.gitkeep`, `.DS_Store`)
    // do not make a directory someone else's.
    let foreign = entries.any(|entry| {
        entry.is_ok_and(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            !(name.starts_with('.') || name == "lost+found")
        })
    });
    Ok(if foreign {
        DirState::Foreign
    } else {
        DirState::Empty
    })
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks leaves consistent data (every critical
    // section is a handful of field updates), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl SledStore {
    /// Opens or creates the store in `dir` and replays its log.
    pub(crate) fn open(dir: &Path, settings: Settings, create: bool) -> Result<Self, OpenFailure> {
        match dir_state(dir)? {
            DirState::Store => {}
            DirState::Foreign => return Err(OpenFailure::NotAStore),
            DirState::Missing | DirState::Empty if !create => return Err(OpenFailure::NotFound),
            DirState::Missing | DirState::Empty => std::fs::create_dir_all(dir)?,
        }
        let config = sled::Config::new()
            .path(dir.join("sled"))
            .cache_capacity(settings.cache_bytes)
            .flush_every_ms(None);
        // sled's I/O threads may hold the database file (and its lock) for a
        // moment after a store in this same process was closed: give them
        // that moment before calling the directory in use.
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        let db = loop {
            match config.open().map_err(OpenFailure::from) {
                Err(OpenFailure::InUse) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                other => break other?,
            }
        };
        let trees = Trees {
            dedup: db.open_tree("dedup")?,
            events: db.open_tree("events")?,
            expiry: db.open_tree("expiry")?,
            meta: db.open_tree("meta")?,
            progress: db.open_tree("progress")?,
            due: db.open_tree("due")?,
            dead: db.open_tree("dead")?,
        };
        let (writer, recovered) = wal::open(&dir.join("wal")).map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => OpenFailure::Corrupt(e.to_string()),
            _ => OpenFailure::Io(e),
        })?;
        let mut replayed_last = 0;
        let mut chunk = Vec::new();
        for r in recovered {
            chunk.push(Applied::recovered(r.lsn, r.payload).map_err(OpenFailure::Corrupt)?);
            replayed_last = r.lsn;
            if chunk.len() == 1024 {
                apply_batch(&trees, &std::mem::take(&mut chunk))?;
            }
        }
        apply_batch(&trees, &chunk)?;
        let stored_last = trees
            .meta
            .get(b"applied_lsn")?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map_or(0, u64::from_be_bytes);
        let last = writer.last_lsn().max(replayed_last).max(stored_last);
        trees.meta.insert(b"applied_lsn", &last.to_be_bytes())?;

        // Counting the trees walks every key (seconds with a million events);
        // a clean close leaves the counts behind, valid only if nothing was
        // logged after them. They are removed now, so a crash from here on
        // means counting again at the next open.
        let saved = trees
            .meta
            .remove(CLEAN_COUNTS)?
            .and_then(|v| SavedCounts::decode(&v))
            .filter(|c| c.lsn == stored_last && c.lsn == last);
        db.flush()?;
        let StoreCounts {
            pending,
            retrying,
            dead,
            markers,
        } = match saved {
            Some(saved) => saved.counts,
            None => {
                let dead = trees.dead.len() as u64;
                StoreCounts {
                    pending: (trees.events.len() as u64).saturating_sub(dead),
                    retrying: (trees.progress.len() as u64).saturating_sub(dead),
                    dead,
                    markers: trees.dedup.len() as u64,
                }
            }
        };
        let (to_applier, from_log) = crossbeam_channel::unbounded();
        let shared = Arc::new(Shared {
            path: dir.to_owned(),
            db,
            trees,
            core: Mutex::new(Core {
                next_lsn: last + 1,
                durable_lsn: last,
                ..Core::default()
            }),
            durable: [Condvar::new(), Condvar::new()],
            wal: Mutex::new(writer),
            settings,
            pending: AtomicU64::new(pending),
            retrying: AtomicU64::new(retrying),
            dead: AtomicU64::new(dead),
            markers: AtomicU64::new(markers),
            fsync: Latencies::default(),
            applied_lsn: AtomicU64::new(last),
            to_applier,
            subscriber: Mutex::new(None),
            worker: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            #[cfg(test)]
            fail_next_apply: AtomicBool::new(false),
            #[cfg(test)]
            fail_next_write: AtomicBool::new(false),
        });
        // Make the replay durable in sled and start from an empty log.
        shared
            .checkpoint(Checkpoint::All)
            .map_err(OpenFailure::Io)?;

        let applier = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("webhook-inbox-apply".into())
                .spawn(move || shared.apply_loop(&from_log))?
        };
        let background = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("webhook-inbox-background".into())
                .spawn(move || shared.background_loop())?
        };
        Ok(Self {
            shared,
            threads: Mutex::new(vec![applier, background]),
        })
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

impl Store for SledStore {
    fn disk_bytes(&self) -> u64 {
        let sled_bytes = self.shared.db.size_on_disk().unwrap_or(0);
        sled_bytes + lock(&self.shared.wal).disk_bytes()
    }

    fn fsync_latency(&self) -> LatencySummary {
        self.shared.fsync.summary()
    }

    fn oldest_pending(&self) -> Result<Option<SystemTime>, StoreError> {
        self.shared.open()?;
        let trees = &self.shared.trees;
        // Events are kept in acceptance order; the first one that is not a
        // dead letter is the oldest pending. Both trees are keyed by seq, so
        // they are walked side by side (past the dead letters older than it:
        // purging them keeps `stats()` quick).
        let mut dead = trees.dead.iter().keys().peekable();
        for item in trees.events.iter() {
            let (key, value) = item?;
            let mut is_dead = false;
            while let Some(next) = dead.peek() {
                match next {
                    Ok(d) if d.as_ref() < key.as_ref() => {
                        dead.next();
                    }
                    Ok(d) => {
                        is_dead = d.as_ref() == key.as_ref();
                        break;
                    }
                    Err(_) => {
                        if let Some(Err(e)) = dead.next() {
                            return Err(e.into());
                        }
                    }
                }
            }
            if is_dead {
                continue;
            }
            let event = record::decode_event(&value).map_err(StoreError::Corrupt)?;
            return Ok(Some(crate::clock::from_unix_millis(event.received_at_ms)));
        }
        Ok(None)
    }

    fn close(&self) -> Result<(), StoreError> {
        let shared = &self.shared;
        if shared.stop.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        // Flush whatever a buffered store still holds, then refuse new work.
        let last = {
            let mut core = lock(&shared.core);
            core.closed = true;
            core.next_lsn - 1
        };
        let flushed = shared.wait_durable(last);
        let _ = shared.to_applier.send(None);
        for handle in lock(&self.threads).drain(..) {
            let _ = handle.join();
        }
        flushed?;
        if let Some(reason) = lock(&shared.core).poisoned.clone() {
            // Leave sled alone: the log holds everything, and a reopen replays it.
            return Err(StoreError::Poisoned(reason));
        }
        shared.checkpoint(Checkpoint::All)?;
        // Everything is applied and nothing more will be: leave the counts
        // for the next open (best effort; without them it counts the trees).
        let saved = SavedCounts {
            lsn: shared.applied_lsn.load(Ordering::SeqCst),
            counts: self.counts(),
        };
        if shared
            .trees
            .meta
            .insert(CLEAN_COUNTS, saved.encode().to_vec())
            .is_ok()
        {
            let _ = shared.db.flush();
        }
        Ok(())
    }

    fn insert(&self, event: NewEvent<'_>) -> Result<Insert, StoreError> {
        let shared = &self.shared;
        let received_ms = unix_millis(event.received_at);
        let key = record::dedup_key(event.source, event.id);

        // The sled lookup happens outside the lock (sled holds only durable
        // events). An event applied between this lookup and the in-flight check
        // below moves `applied_lsn`, which triggers a second lookup under the lock.
        let applied_before = shared.applied_lsn.load(Ordering::SeqCst);
        if let Some(seq) = shared.stored_seq(&key)? {
            return Ok(Insert::Duplicate { seq });
        }
        // Encoded only now: a duplicate already in sled costs no encoding.
        let payload = record::accept_payload(&EventRecordRef {
            source: event.source,
            id: event.id,
            event_type: event.event_type,
            received_at_ms: received_ms,
            headers: &event.headers,
            body: event.body,
        });
        let crc = wal::payload_crc(&payload);
        let mut core = lock(&shared.core);
        if core.closed {
            return Err(StoreError::Closed);
        }
        if let Some(reason) = &core.poisoned {
            return Err(StoreError::Poisoned(reason.clone()));
        }
        if let Some(&seq) = core.in_flight.get(&key) {
            drop(core);
            // Acknowledge a duplicate only once the original is durable.
            shared.wait_durable(seq)?;
            return Ok(Insert::Duplicate { seq });
        }
        if shared.applied_lsn.load(Ordering::SeqCst) != applied_before
            && let Some(seq) = shared.stored_seq(&key)?
        {
            return Ok(Insert::Duplicate { seq });
        }
        let pending = shared.pending.load(Ordering::SeqCst);
        if pending >= shared.settings.max_pending {
            return Ok(Insert::Overloaded {
                pending,
                limit: shared.settings.max_pending,
            });
        }
        let lsn = core.next_lsn;
        core.next_lsn += 1;
        wal::encode_frame(&mut core.buffer, lsn, &payload, &crc);
        core.in_flight.insert(key.clone(), lsn);
        core.batch.push(Applied {
            lsn,
            key,
            received_ms,
            payload,
        });
        shared.pending.fetch_add(1, Ordering::SeqCst);
        drop(core);

        if shared.settings.durability == Durability::Fsync {
            shared.wait_durable(lsn)?;
        }
        Ok(Insert::Accepted { seq: lsn })
    }

    fn counts(&self) -> StoreCounts {
        let get = |a: &AtomicU64| a.load(Ordering::SeqCst);
        StoreCounts {
            pending: get(&self.shared.pending),
            retrying: get(&self.shared.retrying),
            dead: get(&self.shared.dead),
            markers: get(&self.shared.markers),
        }
    }

    fn collect_expired(&self, now: SystemTime) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            let (batches, removed) = self.shared.collect_step(now)?;
            total += removed;
            if batches < GC_STEP {
                return Ok(total);
            }
        }
    }

    fn record(&self, changes: &[Change]) -> Result<u64, StoreError> {
        let shared = &self.shared;
        if changes.is_empty() {
            return Ok(0);
        }
        let payloads: Vec<(Vec<u8>, crc32fast::Hasher)> = changes
            .iter()
            .map(|change| {
                let payload = match change {
                    Change::Forget { seq, .. } => record::forget_payload(*seq),
                    Change::Progress { seq, progress, .. } => {
                        record::progress_payload(*seq, progress)
                    }
                };
                let crc = wal::payload_crc(&payload);
                (payload, crc)
            })
            .collect();
        let mut core = lock(&shared.core);
        if core.closed {
            return Err(StoreError::Closed);
        }
        if let Some(reason) = &core.poisoned {
            return Err(StoreError::Poisoned(reason.clone()));
        }
        let mut last = core.next_lsn - 1;
        for (payload, crc) in payloads {
            last = core.next_lsn;
            core.next_lsn += 1;
            wal::encode_frame(&mut core.buffer, last, &payload, &crc);
            core.batch.push(Applied::change(last, payload));
        }
        drop(core);
        if shared.settings.durability == Durability::Fsync {
            shared.wait_durable(last)?;
        }
        for change in changes {
            let (was, now) = match change {
                Change::Forget { was, .. } => (*was, None),
                Change::Progress { was, progress, .. } => {
                    (*was, Some(Standing::of(Some(progress))))
                }
            };
            shared.count(was, -1);
            if let Some(now) = now {
                shared.count(now, 1);
            }
        }
        Ok(last)
    }

    fn applied_lsn(&self) -> u64 {
        self.shared.applied_lsn.load(Ordering::SeqCst)
    }

    fn sync_applied(&self) -> Result<(), StoreError> {
        let shared = &self.shared;
        let target = {
            let core = lock(&shared.core);
            // Records whose write failed are not stored: nothing to wait for.
            let mut target = core.next_lsn - 1;
            for &(from, to) in core.failed.iter().rev() {
                if (from..=to).contains(&target) {
                    target = from - 1;
                }
            }
            target
        };
        shared.wait_durable(target)?;
        while shared.applied_lsn.load(Ordering::SeqCst) < target {
            if let Some(reason) = &lock(&shared.core).poisoned {
                return Err(StoreError::Poisoned(reason.clone()));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        Ok(())
    }

    fn subscribe(&self) -> Receiver<()> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        *lock(&self.shared.subscriber) = Some(tx);
        rx
    }

    fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Stored>, StoreError> {
        self.shared.open()?;
        let trees = &self.shared.trees;
        let mut out = Vec::new();
        let Some(from) = after.checked_add(1) else {
            return Ok(out);
        };
        for item in trees.events.range(from.to_be_bytes()..).take(limit) {
            let (key, value) = item?;
            let seq = seq_of(&key)?;
            out.push(Stored {
                seq,
                event: record::decode_event(&value).map_err(StoreError::Corrupt)?,
                progress: self.shared.progress_of(seq)?,
            });
        }
        Ok(out)
    }

    fn due(
        &self,
        until_ms: i64,
        limit: usize,
        skip: &dyn Fn(u64) -> bool,
    ) -> Result<Vec<Stored>, StoreError> {
        let mut out = Vec::new();
        for item in self
            .shared
            .trees
            .due
            .range(..=record::due_key(until_ms, u64::MAX))
        {
            if out.len() >= limit {
                break;
            }
            let (key, _) = item?;
            let (Some(seq), Some(at)) = (record::due_seq(&key), record::due_at(&key)) else {
                continue;
            };
            if skip(seq) {
                continue;
            }
            // The applier may be moving this event's entry right now: take it
            // only when the progress agrees with the index.
            if let Some(stored) = self.get(seq)?
                && stored
                    .progress
                    .as_ref()
                    .is_some_and(|p| p.dead_at_ms.is_none() && p.next_at_ms == at)
            {
                out.push(stored);
            }
        }
        Ok(out)
    }

    fn next_due(&self, skip: &dyn Fn(u64) -> bool) -> Result<Option<i64>, StoreError> {
        for item in self.shared.trees.due.iter() {
            let (key, _) = item?;
            if let (Some(seq), Some(at)) = (record::due_seq(&key), record::due_at(&key))
                && !skip(seq)
            {
                return Ok(Some(at));
            }
        }
        Ok(None)
    }

    fn dead_after(&self, after: u64, limit: usize) -> Result<Vec<Stored>, StoreError> {
        let mut out = Vec::new();
        let Some(from) = after.checked_add(1) else {
            return Ok(out);
        };
        for item in self.shared.trees.dead.range(from.to_be_bytes()..) {
            if out.len() >= limit {
                break;
            }
            let (key, _) = item?;
            if let Some(stored) = self.get(seq_of(&key)?)?
                && stored.standing() == Standing::Dead
            {
                out.push(stored);
            }
        }
        Ok(out)
    }

    fn get(&self, seq: u64) -> Result<Option<Stored>, StoreError> {
        let Some(value) = self.shared.trees.events.get(seq.to_be_bytes())? else {
            return Ok(None);
        };
        Ok(Some(Stored {
            seq,
            event: record::decode_event(&value).map_err(StoreError::Corrupt)?,
            progress: self.shared.progress_of(seq)?,
        }))
    }

    fn find(&self, id: &str) -> Result<Vec<u64>, StoreError> {
        // Dedup keys are `source NUL id`: visit each source once, jumping
        // past it, and look the id up under it.
        let dedup = &self.shared.trees.dedup;
        let mut seqs = Vec::new();
        let mut from: Vec<u8> = Vec::new();
        while let Some(item) = dedup.range(from.as_slice()..).next() {
            let (key, _) = item?;
            let source = key.split(|&b| b == 0).next().unwrap_or_default();
            let mut wanted = source.to_vec();
            wanted.push(0);
            wanted.extend_from_slice(id.as_bytes());
            if let Some(value) = dedup.get(&wanted)? {
                seqs.extend(record::dedup_seq(&value));
            }
            from = source.to_vec();
            from.push(1);
        }
        Ok(seqs)
    }

    fn claim_worker(&self) -> bool {
        !self.shared.worker.swap(true, Ordering::SeqCst)
    }

    fn release_worker(&self) {
        self.shared.worker.store(false, Ordering::SeqCst);
    }
}

/// Writes a batch of log records into sled: accepted events (skipping any
/// whose dedup marker exists, so replaying the log is idempotent) with one
/// retention entry for the batch, forgotten events, progress changes (both
/// idempotent too). Returns how many events were new.
fn apply_batch(trees: &Trees, batch: &[Applied]) -> sled::Result<u64> {
    let mut fresh: Vec<&[u8]> = Vec::with_capacity(batch.len());
    let mut first_fresh = None;
    for a in batch {
        match a.payload.split_first() {
            Some((&record::KIND_ACCEPT, _)) => {
                if trees.dedup.contains_key(&a.key)? {
                    continue;
                }
                trees.events.insert(a.lsn.to_be_bytes(), a.value())?;
                // The marker goes after the event: it is what says "this event is applied".
                trees
                    .dedup
                    .insert(a.key.as_slice(), &record::dedup_value(a.lsn, a.received_ms))?;
                first_fresh.get_or_insert(a);
                fresh.push(&a.key);
            }
            Some((&record::KIND_FORGET, rest)) => {
                let (seq, _) = record::split_seq(rest).map_err(sled::Error::Unsupported)?;
                let key = seq.to_be_bytes();
                if let Some(old) = trees.progress.get(key)? {
                    unindex(trees, seq, &old)?;
                    trees.progress.remove(key)?;
                }
                trees.events.remove(key)?;
            }
            Some((&record::KIND_PROGRESS, rest)) => {
                let (seq, value) = record::split_seq(rest).map_err(sled::Error::Unsupported)?;
                let progress = record::decode_progress(value).map_err(sled::Error::Unsupported)?;
                set_progress(trees, seq, value, &progress)?;
            }
            _ => {
                return Err(sled::Error::Unsupported(format!(
                    "log record {} of unknown kind",
                    a.lsn
                )));
            }
        }
    }
    if let Some(first) = first_fresh {
        trees.expiry.insert(
            record::expiry_key(first.received_ms, first.lsn),
            record::encode_keys(&fresh),
        )?;
    }
    if let Some(last) = batch.last() {
        trees.meta.insert(b"applied_lsn", &last.lsn.to_be_bytes())?;
    }
    Ok(fresh.len() as u64)
}

/// Sets an event's progress and its index entry (`due` or `dead`). The old
/// index entry goes first and the new one last, so a crash anywhere in
/// between leaves nothing a replay of the same record does not mend. An event
/// no longer stored (handled or purged later in the log) is left alone.
fn set_progress(trees: &Trees, seq: u64, value: &[u8], progress: &Progress) -> sled::Result<()> {
    let key = seq.to_be_bytes();
    if !trees.events.contains_key(key)? {
        return Ok(());
    }
    if let Some(old) = trees.progress.get(key)? {
        unindex(trees, seq, &old)?;
    }
    trees.progress.insert(key, value)?;
    if progress.dead_at_ms.is_some() {
        trees.dead.insert(key, &[])?;
    } else {
        trees
            .due
            .insert(record::due_key(progress.next_at_ms, seq), &[])?;
    }
    Ok(())
}

/// Removes the index entry of an event's old progress.
fn unindex(trees: &Trees, seq: u64, old: &[u8]) -> sled::Result<()> {
    let old = record::decode_progress(old).map_err(sled::Error::Unsupported)?;
    if old.dead_at_ms.is_some() {
        trees.dead.remove(seq.to_be_bytes())?;
    } else {
        trees.due.remove(record::due_key(old.next_at_ms, seq))?;
    }
    Ok(())
}

/// Adds `delta` (which may be negative) to a counter, saturating at 0.
fn add(counter: &AtomicU64, delta: i64) {
    let _ = counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
        Some(v.saturating_add_signed(delta))
    });
}

/// The seq a big-endian key holds.
fn seq_of(key: &[u8]) -> Result<u64, StoreError> {
    <[u8; 8]>::try_from(key)
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::Corrupt("a sequence key is not 8 bytes".to_owned()))
}

impl Shared {
    /// `Closed` once the store is shut down: readers stop there too.
    fn open(&self) -> Result<(), StoreError> {
        if self.stop.load(Ordering::SeqCst) {
            return Err(StoreError::Closed);
        }
        Ok(())
    }

    fn progress_of(&self, seq: u64) -> Result<Option<Progress>, StoreError> {
        self.trees
            .progress
            .get(seq.to_be_bytes())?
            .map(|v| record::decode_progress(&v))
            .transpose()
            .map_err(StoreError::Corrupt)
    }

    /// Counts an event into (`delta` 1) or out of (-1) a standing.
    fn count(&self, standing: Standing, delta: i64) {
        match standing {
            Standing::Fresh => add(&self.pending, delta),
            Standing::Retrying => {
                add(&self.pending, delta);
                add(&self.retrying, delta);
            }
            Standing::Dead => add(&self.dead, delta),
        }
    }

    /// The seq under which `key` is stored in sled, if it is.
    fn stored_seq(&self, key: &[u8]) -> Result<Option<u64>, StoreError> {
        Ok(self
            .trees
            .dedup
            .get(key)?
            .map(|v| record::dedup_seq(&v).unwrap_or(0)))
    }

    /// Waits until `lsn` is durable, leading a group commit when no flush is under way.
    fn wait_durable(&self, lsn: u64) -> Result<(), StoreError> {
        let mut core = lock(&self.core);
        loop {
            if core
                .failed
                .iter()
                .any(|&(from, to)| (from..=to).contains(&lsn))
            {
                return Err(StoreError::Io(std::io::Error::other(
                    "writing the event to the log failed; it was not stored",
                )));
            }
            if core.durable_lsn >= lsn {
                return Ok(());
            }
            if let Some(reason) = &core.poisoned {
                return Err(StoreError::Poisoned(reason.clone()));
            }
            if let (Some(reason), false) = (&core.retrying, core.flushing) {
                // A buffered write failed and the background thread retries it;
                // do not spin on it here.
                return Err(StoreError::Io(std::io::Error::other(reason.clone())));
            }
            if core.flushing {
                // Wait with the batch the event is in: the one being written, or
                // the next. A finished flush wakes its own batch, and just one
                // waiter of the next to lead it, instead of every thread.
                let in_next = lsn > core.flushing_last;
                let cv = &self.durable[usize::from((core.flush_no + u64::from(in_next)) % 2 == 1)];
                core = cv
                    .wait(core)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            } else {
                core = self.lead_flush(core);
            }
        }
    }

    /// Writes and syncs everything buffered, as the group-commit leader.
    fn lead_flush<'a>(&'a self, mut core: MutexGuard<'a, Core>) -> MutexGuard<'a, Core> {
        if core.buffer.is_empty() {
            return core;
        }
        core.flushing = true;
        core.flush_no += 1;
        core.flushing_last = core.next_lsn - 1;
        // Swap in the spare buffer so appends during the write reuse its capacity.
        let spare = std::mem::take(&mut core.spare);
        let mut frames = std::mem::replace(&mut core.buffer, spare);
        let batch = std::mem::take(&mut core.batch);
        let first = batch.first().map_or(0, |a| a.lsn);
        let last = batch.last().map_or(0, |a| a.lsn);
        drop(core);

        let outcome = {
            let mut writer = lock(&self.wal);
            #[cfg(test)]
            let written = if self.fail_next_write.swap(false, Ordering::SeqCst) {
                Err(std::io::Error::other("injected: no space left on device"))
            } else {
                writer.append(&frames, last)
            };
            #[cfg(not(test))]
            let written = writer.append(&frames, last);
            match written {
                Err(e) => Err((false, e)),
                Ok(()) => match self.timed_sync(&mut writer) {
                    Err(e) => Err((true, e)),
                    Ok(()) => {
                        // The batch is durable whatever happens next; a segment
                        // that cannot be started now is retried at the next batch.
                        let _ = writer.maybe_rotate();
                        Ok(())
                    }
                },
            }
        };

        let mut core = lock(&self.core);
        core.flushing = false;
        let failed = outcome.is_err();
        match outcome {
            Ok(()) => {
                core.durable_lsn = last;
                core.retrying = None;
                frames.clear();
                core.spare = frames;
                // In LSN order, under the lock: the applier sees batches in order.
                let _ = self.to_applier.send(Some(batch));
            }
            Err((false, e)) if matches!(self.settings.durability, Durability::Buffered(_)) => {
                core.retrying = Some(format!("writing the log failed, retrying: {e}"));
                // Buffered events were acknowledged already: keep them, in LSN
                // order before anything appended since, and retry at the next flush.
                frames.extend_from_slice(&core.buffer);
                core.buffer = frames;
                let later = std::mem::replace(&mut core.batch, batch);
                core.batch.extend(later);
            }
            Err((synced_failed, e)) => {
                core.forget_in_flight(&batch);
                let accepts = batch.iter().filter(|a| a.is_accept()).count();
                self.pending.fetch_sub(accepts as u64, Ordering::SeqCst);
                // Failed ranges are kept for good (waiters may still look), merged
                // when contiguous: one entry per episode of failures, not per batch.
                match core.failed.last_mut() {
                    Some(range) if range.1 + 1 == first => range.1 = last,
                    _ => core.failed.push((first, last)),
                }
                if synced_failed {
                    // After a failed fsync the kernel may have dropped the dirty
                    // pages: nothing written since the last good sync can be trusted.
                    core.poisoned = Some(e.to_string());
                }
            }
        }
        let this = usize::from(core.flush_no % 2 == 1);
        if failed {
            self.durable.iter().for_each(Condvar::notify_all);
        } else {
            self.durable[this].notify_all();
            self.durable[1 - this].notify_one();
        }
        core
    }

    fn apply_loop(&self, batches: &Receiver<Option<Vec<Applied>>>) {
        while let Ok(Some(batch)) = batches.recv() {
            #[cfg(test)]
            let result = if self.fail_next_apply.swap(false, Ordering::SeqCst) {
                Err(sled::Error::Unsupported("injected failure".into()))
            } else {
                apply_batch(&self.trees, &batch)
            };
            #[cfg(not(test))]
            let result = apply_batch(&self.trees, &batch);
            let applied = match result {
                Ok(n) => n,
                Err(e) => {
                    // sled refused the write (a full disk, say). The batch is safe
                    // in the log, which a reopen replays; until then the store takes
                    // no more events, and `applied_lsn` stays put so no checkpoint
                    // drops the log segments holding them.
                    lock(&self.core).poisoned = Some(format!("applying to sled failed: {e}"));
                    self.durable.iter().for_each(Condvar::notify_all);
                    return;
                }
            };
            self.markers.fetch_add(applied, Ordering::SeqCst);
            if let Some(last) = batch.last() {
                // Before the in-flight keys go: see `insert`.
                self.applied_lsn.store(last.lsn, Ordering::SeqCst);
            }
            lock(&self.core).forget_in_flight(&batch);
            if let Some(tx) = lock(&self.subscriber).as_ref() {
                let _ = tx.try_send(());
            }
        }
    }

    fn background_loop(&self) {
        let mut since_checkpoint = Duration::ZERO;
        let mut since_sync = Duration::ZERO;
        let tick = match self.settings.durability {
            Durability::Buffered(every) => TICK.min(every).max(Duration::from_millis(1)),
            Durability::Fsync => TICK,
        };
        while !self.stop.load(Ordering::SeqCst) {
            std::thread::sleep(tick);
            since_checkpoint += tick;
            since_sync += tick;
            if let Durability::Buffered(every) = self.settings.durability
                && since_sync >= every
            {
                since_sync = Duration::ZERO;
                let core = lock(&self.core);
                if !core.flushing {
                    drop(self.lead_flush(core));
                }
            }
            if since_checkpoint >= CHECKPOINT_EVERY {
                since_checkpoint = Duration::ZERO;
                let _ = self.checkpoint(Checkpoint::SealAndDrop);
            } else if lock(&self.wal).has_sealed() {
                // Sealed by size: drop it as soon as sled covers it, without
                // sealing the active segment again (that happens on the clock).
                let _ = self.checkpoint(Checkpoint::Drop);
            }
            let _ = self.collect_step(self.settings.clock.now());
        }
    }

    /// Flushes sled, fsyncs its files, and drops the log segments it now
    /// covers; see [`Checkpoint`] for what else each kind does.
    fn checkpoint(&self, kind: Checkpoint) -> std::io::Result<()> {
        if lock(&self.core).poisoned.is_some() {
            return Ok(());
        }
        let covered = self.applied_lsn.load(Ordering::SeqCst);
        self.db.flush().map_err(std::io::Error::other)?;
        self.sync_sled_files()?;
        let mut writer = lock(&self.wal);
        match kind {
            Checkpoint::All => writer.reset_after_checkpoint(covered),
            Checkpoint::SealAndDrop => {
                writer.seal_active()?;
                writer.drop_checkpointed(covered).map(|_| ())
            }
            Checkpoint::Drop => writer.drop_checkpointed(covered).map(|_| ()),
        }
    }

    /// `fsync`s sled's database file, its blob files (sled writes values over
    /// ~128 KiB to files of their own and does not sync them) and directories.
    fn sync_sled_files(&self) -> std::io::Result<()> {
        let dir = self.path.join("sled");
        File::open(dir.join("db"))?.sync_all()?;
        let blobs = dir.join("blobs");
        if let Ok(entries) = std::fs::read_dir(&blobs) {
            for entry in entries.flatten() {
                match File::open(entry.path()) {
                    Ok(blob) => blob.sync_all()?,
                    // sled removed it after the listing: nothing left to sync.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            File::open(&blobs)?.sync_all()?;
        }
        File::open(&dir)?.sync_all()
    }

    /// Removes the dedup markers of up to [`GC_STEP`] batches accepted before
    /// the retention; returns how many markers went. The marker of an event
    /// still stored (pending, retrying, dead) stays, and is looked at again
    /// one retention later: while the event is there it is still deduplicated,
    /// and findable by id.
    fn collect_step(&self, now: SystemTime) -> Result<(usize, usize), StoreError> {
        let retention = i64::try_from(self.settings.retention.as_millis()).unwrap_or(i64::MAX);
        let now_ms = unix_millis(now);
        let cutoff = now_ms.saturating_sub(retention);
        let (mut batches, mut removed) = (0, 0);
        let upto = record::expiry_key(cutoff, 0);
        for item in self.trees.expiry.range(..upto).take(GC_STEP) {
            batches += 1;
            let (key, keys) = item?;
            let mut kept = Vec::new();
            for dedup_key in record::decode_keys(&keys).map_err(StoreError::Corrupt)? {
                let stored = match self.trees.dedup.get(&dedup_key)? {
                    Some(value) => record::dedup_seq(&value)
                        .map(|seq| self.trees.events.contains_key(seq.to_be_bytes()))
                        .transpose()?
                        .unwrap_or(false),
                    None => continue,
                };
                if stored {
                    kept.push(dedup_key);
                } else if self.trees.dedup.remove(dedup_key)?.is_some() {
                    self.markers.fetch_sub(1, Ordering::SeqCst);
                    removed += 1;
                }
            }
            if let Some(first) = kept.first() {
                // Written before the old entry goes: a crash in between leaves
                // a harmless second entry, never a marker no entry points to.
                let seq = self
                    .trees
                    .dedup
                    .get(first)?
                    .and_then(|v| record::dedup_seq(&v));
                let keys: Vec<&[u8]> = kept.iter().map(Vec::as_slice).collect();
                self.trees.expiry.insert(
                    record::expiry_key(now_ms, seq.unwrap_or(0)),
                    record::encode_keys(&keys),
                )?;
            }
            self.trees.expiry.remove(&key)?;
        }
        Ok((batches, removed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;

    fn settings() -> Settings {
        Settings {
            durability: Durability::Fsync,
            retention: Duration::from_secs(3600),
            cache_bytes: 8 << 20,
            max_pending: 1_000,
            clock: Arc::new(SystemClock),
        }
    }

    fn event(id: &str) -> NewEvent<'_> {
        NewEvent {
            source: "test",
            id,
            event_type: "order.filled",
            received_at: SystemTime::now(),
            headers: Vec::new(),
            body: b"{}",
        }
    }

    /// sled refusing a write must neither lose the event nor let it be accepted twice.
    #[test]
    fn an_apply_failure_poisons_the_store_and_the_log_keeps_the_event() {
        let dir =
            std::env::temp_dir().join(format!("sled-store-apply-fail-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let store = SledStore::open(&dir, settings(), true).ok().unwrap();
            store.shared.fail_next_apply.store(true, Ordering::SeqCst);
            assert_eq!(
                store.insert(event("evt_1")).unwrap(),
                Insert::Accepted { seq: 1 }
            );
            // Until the applier has given up, the retry is a duplicate of the
            // in-flight event; afterwards the store refuses everything.
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while lock(&store.shared.core).poisoned.is_none() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "applier never reported"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            assert!(matches!(
                store.insert(event("evt_1")),
                Err(StoreError::Poisoned(_))
            ));
            assert!(matches!(
                store.insert(event("evt_2")),
                Err(StoreError::Poisoned(_))
            ));
            assert!(matches!(store.close(), Err(StoreError::Poisoned(_))));
        }
        // Reopening replays the log: the event is there once.
        let store = SledStore::open(&dir, settings(), true).ok().unwrap();
        assert_eq!(store.counts().pending, 1);
        assert_eq!(
            store.insert(event("evt_1")).unwrap(),
            Insert::Duplicate { seq: 1 }
        );
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A failed log write in Buffered mode keeps the acknowledged events and
    /// retries; a failed write in Fsync mode fails the callers and stores nothing.
    #[test]
    fn failed_writes_are_retried_when_buffered_and_refused_when_fsync() {
        let dir =
            std::env::temp_dir().join(format!("sled-store-write-fail-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let buffered = Settings {
            durability: Durability::Buffered(Duration::from_millis(10)),
            ..settings()
        };
        {
            let store = SledStore::open(&dir, buffered, true).ok().unwrap();
            store.shared.fail_next_write.store(true, Ordering::SeqCst);
            assert_eq!(
                store.insert(event("evt_1")).unwrap(),
                Insert::Accepted { seq: 1 }
            );
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while lock(&store.shared.core).durable_lsn < 1 {
                assert!(std::time::Instant::now() < deadline, "never retried");
                std::thread::sleep(Duration::from_millis(5));
            }
            store.close().unwrap();
        }
        {
            let store = SledStore::open(&dir, settings(), true).ok().unwrap();
            assert_eq!(store.counts().pending, 1);
            store.shared.fail_next_write.store(true, Ordering::SeqCst);
            assert!(matches!(
                store.insert(event("evt_2")),
                Err(StoreError::Io(_))
            ));
            assert_eq!(store.counts().pending, 1);
            // Readers do not wait for what was never stored.
            store.sync_applied().unwrap();
            assert_eq!(store.record(&[]).unwrap(), 0);
            // The disk is back: the same event is new, not a duplicate.
            assert!(matches!(
                store.insert(event("evt_2")),
                Ok(Insert::Accepted { .. })
            ));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The counts a clean close leaves are used by the next open only if no
    /// log record came after them, and are gone while the store is open.
    #[test]
    fn a_clean_close_leaves_counts_the_next_open_trusts_only_if_current() {
        let dir = std::env::temp_dir().join(format!("sled-store-counts-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // Rewrites the saved counts with sled alone (the store is closed).
        let forge = |change: &dyn Fn(&mut SavedCounts)| {
            let deadline = std::time::Instant::now() + Duration::from_secs(2);
            let db = loop {
                match sled::open(dir.join("sled")) {
                    Ok(db) => break db,
                    Err(_) if std::time::Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(e) => panic!("{e}"),
                }
            };
            let meta = db.open_tree("meta").unwrap();
            let mut saved = SavedCounts::decode(&meta.get(CLEAN_COUNTS).unwrap().unwrap()).unwrap();
            change(&mut saved);
            meta.insert(CLEAN_COUNTS, saved.encode().to_vec()).unwrap();
            db.flush().unwrap();
        };
        {
            let store = SledStore::open(&dir, settings(), true).ok().unwrap();
            for id in ["a", "b", "c"] {
                store.insert(event(id)).unwrap();
            }
            store.close().unwrap();
        }
        forge(&|saved| {
            assert_eq!(
                (saved.lsn, saved.counts.pending, saved.counts.markers),
                (3, 3, 3)
            );
            // Claims a position the store is not at: must be ignored.
            saved.lsn = 4;
            saved.counts.pending = 42;
        });
        {
            let store = SledStore::open(&dir, settings(), true).ok().unwrap();
            assert_eq!(store.counts().pending, 3, "counted, not trusted");
            assert!(store.shared.trees.meta.get(CLEAN_COUNTS).unwrap().is_none());
            store.close().unwrap();
        }
        forge(&|saved| saved.counts.pending = 42);
        let store = SledStore::open(&dir, settings(), true).ok().unwrap();
        assert_eq!(store.counts().pending, 42, "a current record is used as is");
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
