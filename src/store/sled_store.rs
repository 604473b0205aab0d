//! The embedded store: our log is the record, sled an index rebuilt from it.
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
//! sled 0.34 is not trusted with anything after a crash: measured with a
//! power-cut file system it loses what it had synced and can fail to open. So
//! the log keeps every live event and outcome for good (old segments are
//! compacted, see [`super::compact`], never dropped because sled synced), and
//! sled is trusted on open only after a clean close (the `clean` file, written
//! last, durably, and removed durably before sled is written again).
//! Otherwise — a crash, a power cut, or sled failing or panicking on open —
//! sled is deleted and rebuilt from the log.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use crossbeam_channel::{Receiver, Sender};

use super::backend::BackendStats;
use super::compact::{self, Holds, KIND_CARRY, KIND_MARKER};
use super::latency::Latencies;
use super::local::Tables;
use super::record::{self, EventRecordRef, Progress};
use super::wal::{self, Location, WalWriter};
use super::{Change, Durability, Insert, NewEvent, Standing, StoreCounts, StoreError, Stored};
use crate::clock::{Clock, unix_millis};
use crate::sync::lock;

/// How often the background thread wakes (compaction, collection, buffered syncs).
const TICK: Duration = Duration::from_millis(100);
/// How often sled is asked to write out its own state. Not for durability
/// (the log is the record), only so sled's own log stays short.
const SLED_FLUSH_EVERY: Duration = Duration::from_secs(30);
/// How often the oldest sealed segment is looked at again when nothing new
/// was sealed.
const COMPACT_EVERY: Duration = Duration::from_secs(30);
/// Retention entries (one per applied batch) handled per collection step, so
/// collection never holds up ingest for long.
const GC_STEP: usize = 64;
/// How long the applier waits before trying a batch sled refused again.
const APPLY_RETRY: Duration = Duration::from_millis(100);
/// After this many refusals in a row sled is rebuilt from the log.
const REINDEX_AFTER: u32 = 5;

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

/// An open sled database and its trees.
struct Index {
    db: sled::Db,
    trees: Trees,
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
    /// The log payload: a kind byte, then what it carries.
    payload: Vec<u8>,
    /// Where its frame is in the log, once written.
    at: Option<Location>,
}

impl Applied {
    /// What sled keeps for an event: where its frame is (the body is
    /// written once, to the log).
    fn location_value(&self) -> Option<[u8; LOCATION_VALUE]> {
        self.at.map(location_value)
    }

    fn is_accept(&self) -> bool {
        self.payload.first() == Some(&record::KIND_ACCEPT)
    }

    /// A record read back from the log, checked to be one this version knows.
    fn recovered(lsn: u64, payload: Vec<u8>, at: Location) -> Result<Self, String> {
        let mut applied = Self::read(lsn, payload)?;
        applied.at = Some(at);
        Ok(applied)
    }

    fn read(lsn: u64, payload: Vec<u8>) -> Result<Self, String> {
        match payload.split_first() {
            Some((&record::KIND_ACCEPT, value)) => {
                let event = record::decode_event(value)?;
                Ok(Self {
                    lsn,
                    key: record::dedup_key(&event.source, &event.id),
                    received_ms: event.received_at_ms,
                    payload,
                    at: None,
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
            Some((&KIND_CARRY, rest)) => {
                compact::split_carry(rest)?;
                Ok(Self::change(lsn, payload))
            }
            Some((&KIND_MARKER, rest)) => {
                compact::split_marker(rest)?;
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
            at: None,
        }
    }
}

/// Format byte of an `events` value that is a location in the log.
const LOCATION_FORMAT: u8 = 2;
/// Bytes of such a value: format, segment, offset, frame length.
const LOCATION_VALUE: usize = 1 + 8 + 8 + 4;

fn location_value(at: Location) -> [u8; LOCATION_VALUE] {
    let mut out = [0u8; LOCATION_VALUE];
    out[0] = LOCATION_FORMAT;
    out[1..9].copy_from_slice(&at.segment.to_be_bytes());
    out[9..17].copy_from_slice(&at.offset.to_be_bytes());
    out[17..21].copy_from_slice(&at.len.to_be_bytes());
    out
}

/// The location an `events` value holds; `None` for a full record (stores
/// migrated from the earlier layout keep those until compaction moves them).
fn location_of(value: &[u8]) -> Option<Location> {
    let (&LOCATION_FORMAT, rest) = value.split_first()? else {
        return None;
    };
    Some(Location {
        segment: u64::from_be_bytes(rest.get(0..8)?.try_into().ok()?),
        offset: u64::from_be_bytes(rest.get(8..16)?.try_into().ok()?),
        len: u32::from_be_bytes(rest.get(16..20)?.try_into().ok()?),
    })
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
    /// A buffered batch whose write failed, kept for the background thread to retry.
    retrying: Option<String>,
    /// sled refused the applier's last batch; it is retried until sled takes
    /// it, and new events are refused (503) meanwhile.
    degraded: Option<String>,
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
    /// Holds the store's lock (`flock` on `.lock`) for as long as it is open.
    _lock: File,
    /// Taken while an outcome is given its LSN, and by the compactor while it
    /// reads the state it carries forward: no carried state is older than a
    /// change logged before it.
    changes: Mutex<()>,
    /// Read handles on log segments, by first LSN, for reading events.
    files: Mutex<HashMap<u64, Arc<File>>>,
    /// sled and its trees; swapped for a rebuilt one when sled fails for
    /// good (`None` while that happens).
    index: std::sync::RwLock<Option<Arc<Index>>>,
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
    stop: AtomicBool,
    /// Test seam: the applier treats the next batch as refused by sled.
    #[cfg(test)]
    fail_next_apply: std::sync::atomic::AtomicU32,
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
    fn timed_sync(&self, writer: &mut WalWriter, batch_bytes: u64) -> std::io::Result<()> {
        let started = std::time::Instant::now();
        let synced = writer.sync(batch_bytes);
        self.fsync.record(started.elapsed());
        synced
    }
}

/// The file a clean close leaves: sled is complete and synced up to its LSN.
const CLEAN_FILE: &str = "clean";
/// The first bytes of [`CLEAN_FILE`].
const CLEAN_MAGIC: &[u8; 8] = b"WIclean1";
/// The store's lock file (hidden, so it never makes a directory look foreign).
const LOCK_FILE: &str = ".lock";
/// Says the store keeps its record in the log (layout 2). A store without it
/// was written by an earlier version, whose record was sled.
const FORMAT_FILE: &str = "format";
const FORMAT_TEXT: &[u8] = b"webhook-inbox store layout 2: the log is the record, sled an index\n";

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
    if dir.join("sled").is_dir() || dir.join("wal").is_dir() || dir.join(FORMAT_FILE).is_file() {
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

impl SavedCounts {
    /// The clean file's bytes: magic, the counts, a CRC-32 of both.
    fn to_file(self) -> Vec<u8> {
        let mut out = CLEAN_MAGIC.to_vec();
        out.extend_from_slice(&self.encode());
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    fn from_file(bytes: &[u8]) -> Option<Self> {
        let (body, crc) = bytes.split_last_chunk::<4>()?;
        let counts = body.strip_prefix(CLEAN_MAGIC.as_slice())?;
        (crc32fast::hash(body) == u32::from_le_bytes(*crc))
            .then(|| Self::decode(counts))
            .flatten()
    }
}

/// Takes the store's lock: one process per store.
fn lock_store(dir: &Path) -> Result<File, OpenFailure> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(wal::FILE_MODE)
        .open(dir.join(LOCK_FILE))?;
    // A process forked by this one (a test harness, a CLI spawning a child)
    // shares the lock until it execs; a store closed a moment ago in this
    // process may still be held that way. Give that moment before calling
    // the directory in use.
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    loop {
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(file),
            Err(rustix::io::Errno::WOULDBLOCK) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(rustix::io::Errno::WOULDBLOCK) => return Err(OpenFailure::InUse),
            Err(e) => return Err(OpenFailure::Io(e.into())),
        }
    }
}

/// Reads and removes the clean file, durably: from here on sled will be
/// written, so a crash must find no clean file.
fn take_clean(dir: &Path) -> std::io::Result<Option<SavedCounts>> {
    let path = dir.join(CLEAN_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    std::fs::remove_file(&path)?;
    wal::sync_dir(dir)?;
    Ok(SavedCounts::from_file(&bytes))
}

/// Writes the clean file.
fn write_clean(dir: &Path, saved: SavedCounts) -> std::io::Result<()> {
    write_durably(dir, CLEAN_FILE, &saved.to_file())
}

/// Writes `name` in `dir` whole or not at all: a temporary file, `fsync`,
/// rename, `fsync` of the directory.
fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(wal::FILE_MODE)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))?;
    wal::sync_dir(dir)
}

/// Brings a store written by an earlier version (whose record was sled, its
/// log only what sled had not flushed yet) to layout 2: sled is opened as it
/// is, the log's tail applied to it, then every stored event (with its
/// progress) and every dedup marker is written into the log and synced, and
/// only then is the store marked as layout 2. Interrupted, it starts over
/// at the next open (applying and carrying are idempotent).
fn migrate(
    dir: &Path,
    settings: &Settings,
    writer: &mut WalWriter,
    segments: &[PathBuf],
) -> Result<(sled::Db, Trees), OpenFailure> {
    let corrupt = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::InvalidData => OpenFailure::Corrupt(e.to_string()),
        _ => OpenFailure::Io(e),
    };
    wal::create_dir_durable(&dir.join("sled"))?;
    let (db, trees) = open_sled(&dir.join("sled"), settings)?;
    let mut chunk = Vec::new();
    wal::replay(segments, &mut |r| {
        chunk.push(
            Applied::recovered(r.lsn, r.payload, r.at)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?,
        );
        Ok(())
    })
    .map_err(corrupt)?;
    apply_batch(&trees, &chunk, true)?;

    let mut lsn = writer.last_lsn().max(stored_applied(&trees)?);
    let mut frames = Vec::new();
    let mut write = |frames: &mut Vec<u8>, lsn: u64| -> std::io::Result<()> {
        if frames.is_empty() {
            return Ok(());
        }
        wal::mark_batch_start(frames, true);
        writer.append(frames, lsn)?;
        writer.sync(frames.len() as u64)?;
        writer.maybe_rotate()?;
        frames.clear();
        Ok(())
    };
    let mut push = |frames: &mut Vec<u8>, lsn: &mut u64, payload: Vec<u8>| -> std::io::Result<()> {
        *lsn += 1;
        wal::encode_frame(frames, *lsn, &payload, &wal::payload_crc(&payload));
        if frames.len() >= 4 << 20 {
            write(frames, *lsn)?;
        }
        Ok(())
    };
    for item in trees.events.iter() {
        let (key, value) = item?;
        let seq = <[u8; 8]>::try_from(key.as_ref())
            .map(u64::from_be_bytes)
            .map_err(|_| OpenFailure::Corrupt("a sequence key is not 8 bytes".into()))?;
        let progress = trees.progress.get(&key)?;
        push(
            &mut frames,
            &mut lsn,
            compact::carry_payload(seq, &value, progress.as_deref()),
        )?;
    }
    for item in trees.dedup.iter() {
        let (key, value) = item?;
        let Some(seq) = record::dedup_seq(&value) else {
            continue;
        };
        if trees.events.contains_key(seq.to_be_bytes())? {
            continue;
        }
        let accepted_ms = value
            .get(8..16)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map_or(0, record::from_ordered_i64);
        push(
            &mut frames,
            &mut lsn,
            compact::marker_payload(seq, accepted_ms, &key),
        )?;
    }
    write(&mut frames, lsn)?;
    trees.meta.insert(b"applied_lsn", &lsn.to_be_bytes())?;
    write_durably(dir, FORMAT_FILE, FORMAT_TEXT)?;
    Ok((db, trees))
}

/// `fsync`s every file and directory under `dir` (sled's own `flush` uses
/// `sync_file_range`, and it never syncs its `conf` or directories), then
/// `dir`, and makes its files private.
fn sync_tree(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir)?.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(wal::DIR_MODE))?;
                sync_tree(&path)?;
            }
            Ok(_) => match File::open(&path) {
                Ok(file) => {
                    file.set_permissions(std::fs::Permissions::from_mode(wal::FILE_MODE))?;
                    file.sync_all()?;
                }
                // sled removed it after the listing: nothing left to sync.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            },
            Err(_) => {}
        }
    }
    wal::sync_dir(dir)
}

/// Opens sled in `path`. A panic inside sled (0.34 panics on some damaged
/// files) is caught and reported as corruption.
fn open_sled(path: &Path, settings: &Settings) -> Result<(sled::Db, Trees), OpenFailure> {
    let config = sled::Config::new()
        .path(path)
        .cache_capacity(settings.cache_bytes)
        .flush_every_ms(None);
    let open = || -> sled::Result<(sled::Db, Trees)> {
        let db = config.open()?;
        let trees = Trees {
            dedup: db.open_tree("dedup")?,
            events: db.open_tree("events")?,
            expiry: db.open_tree("expiry")?,
            meta: db.open_tree("meta")?,
            progress: db.open_tree("progress")?,
            due: db.open_tree("due")?,
            dead: db.open_tree("dead")?,
        };
        Ok((db, trees))
    };
    // sled's I/O threads may hold the database file (and its lock) for a
    // moment after a store in this same process was closed: give them
    // that moment before calling the directory in use.
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    loop {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(open)) {
            Ok(Ok(opened)) => return Ok(opened),
            Ok(Err(e)) => match OpenFailure::from(e) {
                OpenFailure::InUse if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                other => return Err(other),
            },
            Err(_) => return Err(OpenFailure::Corrupt("sled panicked while opening".into())),
        }
    }
}

/// The LSN sled says it has applied.
fn stored_applied(trees: &Trees) -> sled::Result<u64> {
    Ok(trees
        .meta
        .get(b"applied_lsn")?
        .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
        .map_or(0, u64::from_be_bytes))
}

/// Counts the trees (walks every key: seconds with a million events).
fn count_trees(trees: &Trees) -> StoreCounts {
    let dead = trees.dead.len() as u64;
    StoreCounts {
        pending: (trees.events.len() as u64).saturating_sub(dead),
        retrying: (trees.progress.len() as u64).saturating_sub(dead),
        dead,
        markers: trees.dedup.len() as u64,
    }
}

/// Deletes sled's directory and builds it again from every log segment.
fn rebuild(
    dir: &Path,
    settings: &Settings,
    segments: &[PathBuf],
    last: u64,
    keep: &dyn Fn(u64) -> bool,
) -> Result<(sled::Db, Trees), OpenFailure> {
    let sled_dir = dir.join("sled");
    match std::fs::remove_dir_all(&sled_dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    wal::sync_dir(dir)?;
    wal::create_dir_durable(&sled_dir)?;
    let (db, trees) = open_sled(&sled_dir, settings)?;
    let mut chunk = Vec::with_capacity(1024);
    let replayed = wal::replay(segments, &mut |r| {
        if !keep(r.lsn) {
            return Ok(());
        }
        let applied = Applied::recovered(r.lsn, r.payload, r.at)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        chunk.push(applied);
        if chunk.len() == 1024 {
            apply_batch(&trees, &std::mem::take(&mut chunk), true)
                .map_err(std::io::Error::other)?;
        }
        Ok(())
    })
    .and_then(|_| apply_batch(&trees, &chunk, true).map_err(std::io::Error::other));
    match replayed {
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            return Err(OpenFailure::Corrupt(e.to_string()));
        }
        other => {
            other?;
        }
    }
    trees.meta.insert(b"applied_lsn", &last.to_be_bytes())?;
    Ok((db, trees))
}

impl SledStore {
    /// Opens or creates the store in `dir`: trusts sled only after a clean
    /// close, else rebuilds it from the log.
    pub(crate) fn open(dir: &Path, settings: Settings, create: bool) -> Result<Self, OpenFailure> {
        let fresh = match dir_state(dir)? {
            DirState::Store => false,
            DirState::Foreign => return Err(OpenFailure::NotAStore),
            DirState::Missing | DirState::Empty if !create => return Err(OpenFailure::NotFound),
            DirState::Missing | DirState::Empty => true,
        };
        // The store directory and its entries are durable before anything
        // in them is relied on; 0700 whatever the umask.
        wal::create_dir_durable(dir)?;
        let lock_file = lock_store(dir)?;
        if fresh {
            write_durably(dir, FORMAT_FILE, FORMAT_TEXT)?;
        }
        let legacy = !dir.join(FORMAT_FILE).is_file();
        let clean = take_clean(dir)?;
        let (mut writer, segments) = wal::open(&dir.join("wal")).map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => OpenFailure::Corrupt(e.to_string()),
            _ => OpenFailure::Io(e),
        })?;
        let migrated = if legacy {
            Some(migrate(dir, &settings, &mut writer, &segments)?)
        } else {
            None
        };
        let last = writer.last_lsn();
        let trusted = match clean.filter(|c| c.lsn == last && migrated.is_none()) {
            Some(saved) => match open_sled(&dir.join("sled"), &settings) {
                Ok((db, trees)) if stored_applied(&trees).ok() == Some(last) => {
                    Some((db, trees, saved.counts))
                }
                Err(OpenFailure::InUse) => return Err(OpenFailure::InUse),
                _ => None,
            },
            None => None,
        };
        let (db, trees, counts) = match (trusted, migrated) {
            (Some(opened), _) => opened,
            (None, Some((db, trees))) => {
                let counts = count_trees(&trees);
                (db, trees, counts)
            }
            (None, None) => {
                let (db, trees) = rebuild(dir, &settings, &segments, last, &|_| true)?;
                let counts = count_trees(&trees);
                (db, trees, counts)
            }
        };
        let StoreCounts {
            pending,
            retrying,
            dead,
            markers,
        } = counts;
        let (to_applier, from_log) = crossbeam_channel::unbounded();
        let shared = Arc::new(Shared {
            path: dir.to_owned(),
            _lock: lock_file,
            changes: Mutex::new(()),
            files: Mutex::new(HashMap::new()),
            index: std::sync::RwLock::new(Some(Arc::new(Index { db, trees }))),
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
            stop: AtomicBool::new(false),
            #[cfg(test)]
            fail_next_apply: std::sync::atomic::AtomicU32::new(0),
            #[cfg(test)]
            fail_next_write: AtomicBool::new(false),
        });

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

impl Tables for SledStore {
    fn stats(&self) -> BackendStats {
        let sled_bytes = self
            .shared
            .index()
            .map_or(0, |index| index.db.size_on_disk().unwrap_or(0));
        BackendStats {
            fsync: Some(self.shared.fsync.summary()),
            disk_bytes: Some(sled_bytes + lock(&self.shared.wal).disk_bytes()),
        }
    }

    fn oldest_pending(&self) -> Result<Option<SystemTime>, StoreError> {
        self.shared.open()?;
        let index = self.shared.index()?;
        let trees = &index.trees;
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
            let seq = seq_of(&key)?;
            if let Some(event) = self.shared.load_event(trees, seq, &value)? {
                return Ok(Some(crate::clock::from_unix_millis(event.received_at_ms)));
            }
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
        let core = lock(&shared.core);
        if let Some(reason) = core.degraded.clone() {
            // No clean file: the next open rebuilds sled from the log.
            return Err(StoreError::Io(std::io::Error::other(reason)));
        }
        drop(core);
        let applied = shared.applied_lsn.load(Ordering::SeqCst);
        if applied != lock(&shared.wal).last_lsn() {
            return Ok(());
        }
        // sled is complete up to the log's end: make every file of it durable,
        // then say so with the clean file, which the next open trusts.
        let index = shared.index()?;
        index
            .trees
            .meta
            .insert(b"applied_lsn", &applied.to_be_bytes())?;
        index.db.flush()?;
        sync_tree(&shared.path.join("sled"))?;
        write_clean(
            &shared.path,
            SavedCounts {
                lsn: applied,
                counts: self.counts(),
            },
        )?;
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
        if let Some(reason) = &core.degraded {
            return Err(StoreError::Io(std::io::Error::other(reason.clone())));
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
            at: None,
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
        let changing = lock(&shared.changes);
        let mut core = lock(&shared.core);
        if core.closed {
            return Err(StoreError::Closed);
        }
        let mut last = core.next_lsn - 1;
        for (payload, crc) in payloads {
            last = core.next_lsn;
            core.next_lsn += 1;
            wal::encode_frame(&mut core.buffer, last, &payload, &crc);
            core.batch.push(Applied::change(last, payload));
        }
        drop(core);
        drop(changing);
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
        self.shared.sync_applied()
    }

    fn subscribe(&self) -> Receiver<()> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        *lock(&self.shared.subscriber) = Some(tx);
        rx
    }

    fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Stored>, StoreError> {
        self.shared.open()?;
        let index = self.shared.index()?;
        let trees = &index.trees;
        let mut out = Vec::new();
        let Some(from) = after.checked_add(1) else {
            return Ok(out);
        };
        for item in trees.events.range(from.to_be_bytes()..).take(limit) {
            let (key, value) = item?;
            let seq = seq_of(&key)?;
            if let Some(event) = self.shared.load_event(trees, seq, &value)? {
                out.push(Stored {
                    seq,
                    event,
                    progress: self.shared.progress_of(seq)?,
                });
            }
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
            .index()?
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
        for item in self.shared.index()?.trees.due.iter() {
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
        for item in self.shared.index()?.trees.dead.range(from.to_be_bytes()..) {
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
        let index = self.shared.index()?;
        let Some(value) = index.trees.events.get(seq.to_be_bytes())? else {
            return Ok(None);
        };
        let Some(event) = self.shared.load_event(&index.trees, seq, &value)? else {
            return Ok(None);
        };
        Ok(Some(Stored {
            seq,
            event,
            progress: self.shared.progress_of(seq)?,
        }))
    }

    fn find(&self, id: &str) -> Result<Vec<u64>, StoreError> {
        // Dedup keys are `source NUL id`: visit each source once, jumping
        // past it, and look the id up under it.
        let dedup = &self.shared.index()?.trees.dedup;
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
}

/// Writes a batch of log records into sled: accepted events (skipping any
/// whose dedup marker exists, so replaying the log is idempotent) with one
/// retention entry for the batch, forgotten events, progress changes (both
/// idempotent too). Records carried forward by compaction are applied only
/// when `replay`ing the log into a rebuilt sled: at run time sled has them.
/// Returns how many dedup markers were new.
fn apply_batch(trees: &Trees, batch: &[Applied], replay: bool) -> sled::Result<u64> {
    let unsupported = sled::Error::Unsupported;
    let mut fresh: Vec<std::borrow::Cow<'_, [u8]>> = Vec::with_capacity(batch.len());
    // The retention entry is dated by the batch's latest event, so no marker
    // in it is collected before its own retention has passed.
    let mut dated: Option<(i64, u64)> = None;
    let mut date = |ms: i64, seq: u64| {
        let (at, first) = dated.get_or_insert((ms, seq));
        *at = (*at).max(ms);
        *first = (*first).min(seq);
    };
    for a in batch {
        match a.payload.split_first() {
            Some((&record::KIND_ACCEPT, _)) => {
                if trees.dedup.contains_key(&a.key)? {
                    continue;
                }
                let Some(location) = a.location_value() else {
                    return Err(unsupported(format!("log record {} has no location", a.lsn)));
                };
                trees.events.insert(a.lsn.to_be_bytes(), &location)?;
                // The marker goes after the event: it is what says "this event is applied".
                trees
                    .dedup
                    .insert(a.key.as_slice(), &record::dedup_value(a.lsn, a.received_ms))?;
                date(a.received_ms, a.lsn);
                fresh.push(a.key.as_slice().into());
            }
            Some((&record::KIND_FORGET, rest)) => {
                let (seq, _) = record::split_seq(rest).map_err(unsupported)?;
                let key = seq.to_be_bytes();
                if let Some(old) = trees.progress.get(key)? {
                    unindex(trees, seq, &old)?;
                    trees.progress.remove(key)?;
                }
                trees.events.remove(key)?;
            }
            Some((&record::KIND_PROGRESS, rest)) => {
                let (seq, value) = record::split_seq(rest).map_err(unsupported)?;
                let progress = record::decode_progress(value).map_err(unsupported)?;
                set_progress(trees, seq, value, &progress)?;
            }
            Some((&KIND_CARRY, rest)) if replay => {
                let carry = compact::split_carry(rest).map_err(unsupported)?;
                let event = record::decode_event(carry.event_value).map_err(unsupported)?;
                let key = record::dedup_key(&event.source, &event.id);
                let marker = trees.dedup.get(&key)?;
                if marker
                    .as_ref()
                    .is_some_and(|m| record::dedup_seq(m) != Some(carry.seq))
                {
                    continue;
                }
                let seq_key = carry.seq.to_be_bytes();
                let Some(location) = a.location_value() else {
                    return Err(unsupported(format!("log record {} has no location", a.lsn)));
                };
                trees.events.insert(seq_key, &location)?;
                match carry.progress_value {
                    Some(value) => {
                        let progress = record::decode_progress(value).map_err(unsupported)?;
                        set_progress(trees, carry.seq, value, &progress)?;
                    }
                    None => {
                        if let Some(old) = trees.progress.get(seq_key)? {
                            unindex(trees, carry.seq, &old)?;
                            trees.progress.remove(seq_key)?;
                        }
                    }
                }
                if marker.is_none() {
                    trees.dedup.insert(
                        key.as_slice(),
                        &record::dedup_value(carry.seq, event.received_at_ms),
                    )?;
                    date(event.received_at_ms, carry.seq);
                    fresh.push(key.into());
                }
            }
            Some((&KIND_MARKER, rest)) if replay => {
                let (seq, accepted_ms, key) = compact::split_marker(rest).map_err(unsupported)?;
                if !trees.dedup.contains_key(key)? {
                    trees
                        .dedup
                        .insert(key, &record::dedup_value(seq, accepted_ms))?;
                    date(accepted_ms, seq);
                    fresh.push(key.into());
                }
            }
            Some((&KIND_CARRY, rest)) => {
                // At run time sled has the event; it only moved in the log.
                let (seq, _) = record::split_seq(rest).map_err(unsupported)?;
                if let Some(location) = a.location_value()
                    && trees.events.contains_key(seq.to_be_bytes())?
                {
                    trees.events.insert(seq.to_be_bytes(), &location)?;
                }
            }
            Some((&KIND_MARKER, _)) => {}
            _ => {
                return Err(sled::Error::Unsupported(format!(
                    "log record {} of unknown kind",
                    a.lsn
                )));
            }
        }
    }
    if let Some((at, first)) = dated {
        let keys: Vec<&[u8]> = fresh.iter().map(AsRef::as_ref).collect();
        trees
            .expiry
            .insert(record::expiry_key(at, first), record::encode_keys(&keys))?;
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
    /// Waits until everything logged so far is applied to sled.
    fn sync_applied(&self) -> Result<(), StoreError> {
        let shared = self;
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
            let core = lock(&shared.core);
            if let Some(reason) = &core.degraded {
                return Err(StoreError::Io(std::io::Error::other(reason.clone())));
            }
            drop(core);
            std::thread::sleep(Duration::from_micros(200));
        }
        Ok(())
    }

    /// `Closed` once the store is shut down: readers stop there too.
    fn open(&self) -> Result<(), StoreError> {
        if self.stop.load(Ordering::SeqCst) {
            return Err(StoreError::Closed);
        }
        Ok(())
    }

    /// The bytes of an event (format byte + bincode record) that an `events`
    /// entry points to in the log (or holds, for migrated stores).
    fn event_value(&self, value: &[u8]) -> Result<Vec<u8>, StoreError> {
        let Some(at) = location_of(value) else {
            return Ok(value.to_vec());
        };
        let file = self.segment_file(at.segment)?;
        let (_, payload) = wal::read_frame(&file, at).map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof => {
                StoreError::Corrupt(e.to_string())
            }
            _ => StoreError::Io(e),
        })?;
        match payload.split_first() {
            Some((&record::KIND_ACCEPT, event)) => Ok(event.to_vec()),
            Some((&KIND_CARRY, rest)) => Ok(compact::split_carry(rest)
                .map_err(StoreError::Corrupt)?
                .event_value
                .to_vec()),
            _ => Err(StoreError::Corrupt(format!(
                "the index points at byte {} of log segment {}, which holds no event",
                at.offset, at.segment
            ))),
        }
    }

    /// A read handle on the segment whose first LSN is `segment`.
    fn segment_file(&self, segment: u64) -> Result<Arc<File>, StoreError> {
        let mut files = lock(&self.files);
        if let Some(file) = files.get(&segment) {
            return Ok(Arc::clone(file));
        }
        let file = Arc::new(File::open(wal::segment_file(
            &self.path.join("wal"),
            segment,
        ))?);
        files.insert(segment, Arc::clone(&file));
        Ok(file)
    }

    /// The event stored under `seq` whose `events` entry is `value`. If its
    /// segment was compacted away meanwhile, the entry is read again (it
    /// points at the newer copy now); `None` if the event is gone.
    fn load_event(
        &self,
        trees: &Trees,
        seq: u64,
        value: &[u8],
    ) -> Result<Option<record::EventRecord>, StoreError> {
        let bytes = match self.event_value(value) {
            Err(StoreError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                match trees.events.get(seq.to_be_bytes())? {
                    Some(again) => self.event_value(&again)?,
                    None => return Ok(None),
                }
            }
            other => other?,
        };
        record::decode_event(&bytes)
            .map(Some)
            .map_err(StoreError::Corrupt)
    }

    /// The current index, or an error while it is being rebuilt.
    fn index(&self) -> Result<Arc<Index>, StoreError> {
        self.index
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .ok_or_else(|| {
                StoreError::Io(std::io::Error::other(
                    "the store's index is being rebuilt from its log",
                ))
            })
    }

    /// Deletes sled and builds it again from the log, in place, while the
    /// store is open: sled 0.34 keeps failing every write once one failed (a
    /// full disk), so healing means a new sled. Everything durable in the log
    /// is replayed; the log is not written meanwhile. Readers get an error
    /// until it is done.
    fn reindex(&self) -> Result<(), OpenFailure> {
        let wal = lock(&self.wal);
        let (durable, failed) = {
            let core = lock(&self.core);
            (core.durable_lsn, core.failed.clone())
        };
        let old = self
            .index
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(old) = old {
            // Readers hold it for a moment at most; then sled's files close.
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while Arc::strong_count(&old) > 1 && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            drop(old);
        }
        let keep = |lsn: u64| lsn <= durable && !failed.iter().any(|r| (r.0..=r.1).contains(&lsn));
        let (db, trees) = rebuild(&self.path, &self.settings, &wal.segments(), durable, &keep)?;
        let counts = count_trees(&trees);
        self.pending.store(counts.pending, Ordering::SeqCst);
        self.retrying.store(counts.retrying, Ordering::SeqCst);
        self.dead.store(counts.dead, Ordering::SeqCst);
        self.markers.store(counts.markers, Ordering::SeqCst);
        *self
            .index
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(Arc::new(Index { db, trees }));
        Ok(())
    }

    fn progress_of(&self, seq: u64) -> Result<Option<Progress>, StoreError> {
        self.index()?
            .trees
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
            .index()?
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
        let mut batch = std::mem::take(&mut core.batch);
        let first = batch.first().map_or(0, |a| a.lsn);
        let last = batch.last().map_or(0, |a| a.lsn);
        drop(core);
        wal::mark_batch_start(&mut frames, true);

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
                Ok(at) => match self.timed_sync(&mut writer, frames.len() as u64) {
                    Err(e) => Err((true, e)),
                    Ok(()) => {
                        // The batch is durable whatever happens next; a segment
                        // that cannot be started now is retried at the next batch.
                        let _ = writer.maybe_rotate();
                        Ok(at)
                    }
                },
            }
        };

        let mut core = lock(&self.core);
        core.flushing = false;
        let failed = outcome.is_err();
        match outcome {
            Ok((segment, offset)) => {
                let lens: Vec<usize> = batch.iter().map(|a| a.payload.len()).collect();
                for (a, at) in
                    batch
                        .iter_mut()
                        .zip(Location::of_frames(segment, offset, lens.into_iter()))
                {
                    a.at = Some(at);
                }
                core.durable_lsn = last;
                core.retrying = None;
                frames.clear();
                core.spare = frames;
                // In LSN order, under the lock: the applier sees batches in order.
                let _ = self.to_applier.send(Some(batch));
            }
            Err((_, e)) if matches!(self.settings.durability, Durability::Buffered(_)) => {
                core.retrying = Some(format!("writing the log failed, retrying: {e}"));
                // Buffered events were acknowledged already: keep them, in LSN
                // order before anything appended since, and retry at the next flush
                // (after a failed sync the log first zeroes what it had written).
                wal::mark_batch_start(&mut frames, false);
                frames.extend_from_slice(&core.buffer);
                core.buffer = frames;
                let later = std::mem::replace(&mut core.batch, batch);
                core.batch.extend(later);
            }
            Err((_, _)) => {
                // Nothing of the batch is acknowledged; after a failed sync the
                // log zeroes and syncs those bytes again before the next batch
                // (see `WalWriter::append`), so the store heals as soon as the
                // disk answers again, without a reopen.
                core.forget_in_flight(&batch);
                let accepts = batch.iter().filter(|a| a.is_accept()).count();
                self.pending.fetch_sub(accepts as u64, Ordering::SeqCst);
                // Failed ranges are kept for good (waiters may still look), merged
                // when contiguous: one entry per episode of failures, not per batch.
                match core.failed.last_mut() {
                    Some(range) if range.1 + 1 == first => range.1 = last,
                    _ => core.failed.push((first, last)),
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
            let mut failures = 0u32;
            let applied = loop {
                let result = match self.index() {
                    Ok(index) => self.apply(&index.trees, &batch),
                    Err(e) => Err(sled::Error::Unsupported(e.to_string())),
                };
                match result {
                    Ok(n) => {
                        lock(&self.core).degraded = None;
                        break n;
                    }
                    Err(e) => {
                        // sled refused the write (a full disk, say). The batch is
                        // safe in the log; new events are refused (503) while
                        // the same batch is tried again (applying is idempotent).
                        // sled keeps refusing once it failed, so after a few
                        // tries it is rebuilt from the log, until that works.
                        lock(&self.core).degraded =
                            Some(format!("the store's index refused a write: {e}"));
                        if self.stop.load(Ordering::SeqCst) {
                            return;
                        }
                        std::thread::sleep(APPLY_RETRY);
                        failures += 1;
                        if failures.is_multiple_of(REINDEX_AFTER) {
                            let _ = self.reindex();
                        }
                    }
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

    /// Applies a batch at run time (a test may make sled refuse it once).
    fn apply(&self, trees: &Trees, batch: &[Applied]) -> sled::Result<u64> {
        #[cfg(test)]
        if self
            .fail_next_apply
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(sled::Error::Unsupported("injected failure".into()));
        }
        apply_batch(trees, batch, false)
    }

    fn background_loop(&self) {
        let mut since_flush = Duration::ZERO;
        let mut since_compact = Duration::ZERO;
        let mut sealed_seen = 0;
        let mut since_sync = Duration::ZERO;
        let tick = match self.settings.durability {
            Durability::Buffered(every) => TICK.min(every).max(Duration::from_millis(1)),
            Durability::Fsync => TICK,
        };
        while !self.stop.load(Ordering::SeqCst) {
            std::thread::sleep(tick);
            since_flush += tick;
            since_compact += tick;
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
            if since_flush >= SLED_FLUSH_EVERY {
                since_flush = Duration::ZERO;
                if let Ok(index) = self.index() {
                    let _ = index.db.flush();
                }
            }
            // Look at the oldest sealed segment when a segment was sealed since
            // the last look, and every so often (the backlog may have drained).
            let sealed = lock(&self.wal).sealed_count();
            if sealed > 0 && (sealed > sealed_seen || since_compact >= COMPACT_EVERY) {
                since_compact = Duration::ZERO;
                // Several in a row while they are mostly garbage.
                while !self.stop.load(Ordering::SeqCst) {
                    if !matches!(self.compact(false), Ok(true)) {
                        break;
                    }
                }
            }
            sealed_seen = lock(&self.wal).sealed_count();
            let _ = self.collect_step(self.settings.clock.now());
        }
    }

    /// Retires the oldest sealed log segment if at most half of it is still
    /// needed (or whatever it holds when `force`): writes the current state of
    /// every event it holds forward into the active segment (see
    /// [`super::compact`]), waits until that is durable, then deletes it.
    /// Returns whether a segment was removed.
    fn compact(&self, force: bool) -> Result<bool, StoreError> {
        let Some(path) = lock(&self.wal).oldest_sealed() else {
            return Ok(false);
        };
        let corrupt = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::InvalidData => StoreError::Corrupt(e.to_string()),
            _ => StoreError::Io(e),
        };
        let records = wal::read_sealed(&path).map_err(corrupt)?;
        let used: usize = records.iter().map(|r| r.payload.len() + 16).sum();
        let changing = lock(&self.changes);
        self.sync_applied()?;
        let index = self.index()?;
        let trees = &index.trees;
        let mut seen = HashSet::new();
        let mut carried: Vec<Vec<u8>> = Vec::new();
        for r in &records {
            let (seq, key, event) = match compact::holds(r).map_err(StoreError::Corrupt)? {
                Holds::Event { seq, key } => (seq, key, true),
                Holds::Marker { seq, key } => (seq, key.to_vec(), false),
                Holds::Change => continue,
            };
            if !seen.insert(seq) {
                continue;
            }
            let stored = if event {
                trees.events.get(seq.to_be_bytes())?
            } else {
                None
            };
            if let Some(value) = stored {
                let progress = trees.progress.get(seq.to_be_bytes())?;
                let event = self.event_value(&value)?;
                carried.push(compact::carry_payload(seq, &event, progress.as_deref()));
            } else if let Some(marker) = trees.dedup.get(&key)?
                && record::dedup_seq(&marker) == Some(seq)
            {
                let accepted_ms = marker
                    .get(8..16)
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map_or(0, record::from_ordered_i64);
                carried.push(compact::marker_payload(seq, accepted_ms, &key));
            }
        }
        let live: usize = carried.iter().map(|p| p.len() + 16).sum();
        if !force && live * 2 > used {
            return Ok(false);
        }
        let last = {
            let mut core = lock(&self.core);
            if core.closed {
                return Err(StoreError::Closed);
            }
            let mut last = core.next_lsn - 1;
            for payload in carried {
                last = core.next_lsn;
                core.next_lsn += 1;
                let crc = wal::payload_crc(&payload);
                wal::encode_frame(&mut core.buffer, last, &payload, &crc);
                core.batch.push(Applied::change(last, payload));
            }
            last
        };
        drop(changing);
        self.wait_durable(last)?;
        // Readers must find the events at their new places first.
        self.sync_applied()?;
        lock(&self.wal).remove_oldest(&path)?;
        if let Some(segment) = wal::first_lsn_of(&path) {
            lock(&self.files).remove(&segment);
        }
        Ok(true)
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
        let index = self.index()?;
        let trees = &index.trees;
        for item in trees.expiry.range(..upto).take(GC_STEP) {
            batches += 1;
            let (key, keys) = item?;
            let mut kept = Vec::new();
            for dedup_key in record::decode_keys(&keys).map_err(StoreError::Corrupt)? {
                let stored = match trees.dedup.get(&dedup_key)? {
                    Some(value) => record::dedup_seq(&value)
                        .map(|seq| trees.events.contains_key(seq.to_be_bytes()))
                        .transpose()?
                        .unwrap_or(false),
                    None => continue,
                };
                if stored {
                    kept.push(dedup_key);
                } else if trees.dedup.remove(dedup_key)?.is_some() {
                    self.markers.fetch_sub(1, Ordering::SeqCst);
                    removed += 1;
                }
            }
            if let Some(first) = kept.first() {
                // Written before the old entry goes: a crash in between leaves
                // a harmless second entry, never a marker no entry points to.
                let seq = trees.dedup.get(first)?.and_then(|v| record::dedup_seq(&v));
                let keys: Vec<&[u8]> = kept.iter().map(Vec::as_slice).collect();
                trees.expiry.insert(
                    record::expiry_key(now_ms, seq.unwrap_or(0)),
                    record::encode_keys(&keys),
                )?;
            }
            trees.expiry.remove(&key)?;
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

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sled-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn reopen(dir: &Path) -> SledStore {
        match SledStore::open(dir, settings(), true) {
            Ok(store) => store,
            Err(OpenFailure::Corrupt(e)) => panic!("corrupt: {e}"),
            Err(OpenFailure::Io(e)) => panic!("io: {e}"),
            Err(OpenFailure::InUse) => panic!("in use"),
            Err(_) => panic!("other"),
        }
    }

    fn wait_for(what: &str, done: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// sled refusing a write loses nothing, accepts nothing twice, and heals
    /// without a reopen once sled takes the batch.
    #[test]
    fn an_apply_failure_is_retried_and_the_store_heals() {
        let dir = temp("apply-fail");
        {
            let store = SledStore::open(&dir, settings(), true).ok().unwrap();
            store.shared.fail_next_apply.store(1, Ordering::SeqCst);
            assert_eq!(
                store.insert(event("evt_1")).unwrap(),
                Insert::Accepted { seq: 1 }
            );
            wait_for("applied after the retry", || {
                store.shared.applied_lsn.load(Ordering::SeqCst) == 1
            });
            assert!(lock(&store.shared.core).degraded.is_none());
            assert_eq!(
                store.insert(event("evt_1")).unwrap(),
                Insert::Duplicate { seq: 1 }
            );
            assert!(matches!(
                store.insert(event("evt_2")),
                Ok(Insert::Accepted { .. })
            ));
            store.close().unwrap();
        }
        let store = SledStore::open(&dir, settings(), true).ok().unwrap();
        assert_eq!(store.counts().pending, 2);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// sled refusing write after write is rebuilt from the log while the
    /// store stays open; nothing is lost and the store takes events again.
    #[test]
    fn a_sled_that_keeps_refusing_is_rebuilt_in_place() {
        let dir = temp("reindex");
        let store = SledStore::open(&dir, settings(), true).ok().unwrap();
        populate(&store);
        store
            .shared
            .fail_next_apply
            .store(REINDEX_AFTER + 2, Ordering::SeqCst);
        assert!(matches!(
            store.insert(event("during")),
            Ok(Insert::Accepted { .. })
        ));
        wait_for("the applier fails", || {
            lock(&store.shared.core).degraded.is_some()
        });
        assert!(
            matches!(store.insert(event("refused")), Err(StoreError::Io(_))),
            "degraded: new events get 503"
        );
        wait_for("healed", || {
            lock(&store.shared.core).degraded.is_none()
                && store.shared.fail_next_apply.load(Ordering::SeqCst) == 0
                && store.shared.index().is_ok()
        });
        store.sync_applied().unwrap();
        assert!(matches!(
            store.insert(event("during")),
            Ok(Insert::Duplicate { .. })
        ));
        let c = store.counts();
        assert_eq!((c.pending, c.retrying, c.dead, c.markers), (3, 1, 1, 5));
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Fills a store with every standing: fresh, retrying, dead, handled.
    fn populate(store: &SledStore) {
        for id in ["fresh", "retrying", "dead", "handled"] {
            store.insert(event(id)).unwrap();
        }
        let mut failed = Progress::new(5_000);
        failed.push_failure(1, 1_000, "boom");
        let mut dead = failed.clone();
        dead.dead_at_ms = Some(2_000);
        store
            .record(&[
                Change::Progress {
                    seq: 2,
                    was: Standing::Fresh,
                    progress: failed,
                },
                Change::Progress {
                    seq: 3,
                    was: Standing::Fresh,
                    progress: dead,
                },
                Change::Forget {
                    seq: 4,
                    was: Standing::Fresh,
                },
            ])
            .unwrap();
        store.sync_applied().unwrap();
    }

    /// What `populate` left, as the readers see it.
    fn check_populated(store: &SledStore) {
        let standings: Vec<(u64, Standing)> = store
            .events_after(0, 10)
            .unwrap()
            .iter()
            .map(|s| (s.seq, s.standing()))
            .collect();
        assert_eq!(
            standings,
            [
                (1, Standing::Fresh),
                (2, Standing::Retrying),
                (3, Standing::Dead)
            ]
        );
        assert_eq!(store.due(i64::MAX, 10, &|_| false).unwrap().len(), 1);
        assert_eq!(store.dead_after(0, 10).unwrap().len(), 1);
        for (id, seq) in [("fresh", 1), ("retrying", 2), ("dead", 3), ("handled", 4)] {
            assert_eq!(
                store.insert(event(id)).unwrap(),
                Insert::Duplicate { seq },
                "{id} is still deduplicated"
            );
        }
        let c = store.counts();
        assert_eq!((c.pending, c.retrying, c.dead, c.markers), (2, 1, 1, 4));
        assert!(matches!(
            store.insert(event("new")),
            Ok(Insert::Accepted { .. })
        ));
    }

    /// sled is an index: lost, damaged or untrusted (no clean close), it is
    /// rebuilt from the log with every standing, progress and dedup marker.
    #[test]
    fn sled_is_rebuilt_from_the_log_when_lost_damaged_or_untrusted() {
        type Harm<'a> = (&'a str, &'a dyn Fn(&Path));
        let damage: [Harm<'_>; 3] = [
            ("no clean close", &|dir: &Path| {
                std::fs::remove_file(dir.join(CLEAN_FILE)).unwrap();
            }),
            ("sled deleted", &|dir: &Path| {
                std::fs::remove_dir_all(dir.join("sled")).unwrap();
            }),
            ("sled's conf cut short", &|dir: &Path| {
                let conf = dir.join("sled").join("conf");
                let bytes = std::fs::read(&conf).unwrap();
                std::fs::write(&conf, &bytes[..bytes.len() / 2]).unwrap();
            }),
        ];
        for (name, harm) in damage {
            let dir = temp("rebuild");
            {
                let store = SledStore::open(&dir, settings(), true).ok().unwrap();
                populate(&store);
                store.close().unwrap();
            }
            harm(&dir);
            let store = SledStore::open(&dir, settings(), true)
                .ok()
                .unwrap_or_else(|| panic!("{name}: must open"));
            check_populated(&store);
            drop(store);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    /// A store an earlier version closed cleanly: its record was sled, its
    /// log an empty segment named after the next LSN, no `format` file. It
    /// opens with everything, which is then in the log too: a rebuild from
    /// the log alone gives the same state.
    #[test]
    fn a_store_of_the_earlier_layout_is_migrated_into_the_log() {
        let dir = temp("legacy");
        {
            let store = reopen(&dir);
            populate(&store);
            // The earlier layout kept whole records in sled.
            let index = store.shared.index().unwrap();
            for item in index.trees.events.iter() {
                let (key, value) = item.unwrap();
                let whole = store.shared.event_value(&value).unwrap();
                index.trees.events.insert(key, whole).unwrap();
            }
            drop(index);
            store.close().unwrap();
        }
        // Make it look like the earlier version's clean close.
        let next = {
            let (w, _) = wal::open(&dir.join("wal")).unwrap();
            w.last_lsn() + 1
        };
        std::fs::remove_dir_all(dir.join("wal")).unwrap();
        std::fs::create_dir(dir.join("wal")).unwrap();
        std::fs::write(dir.join("wal").join(format!("{next:020}.wal")), b"").unwrap();
        std::fs::remove_file(dir.join(CLEAN_FILE)).unwrap();
        std::fs::remove_file(dir.join(FORMAT_FILE)).unwrap();
        {
            let store = reopen(&dir);
            assert!(dir.join(FORMAT_FILE).is_file());
            check_populated(&store);
            drop(store);
        }
        // The log alone now holds it all.
        std::fs::remove_dir_all(dir.join("sled")).unwrap();
        let _ = std::fs::remove_file(dir.join(CLEAN_FILE));
        let store = reopen(&dir);
        assert_eq!(store.counts().pending, 3);
        assert_eq!(
            store.insert(event("handled")).unwrap(),
            Insert::Duplicate { seq: 4 }
        );
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Compaction copies what the oldest segment still holds forward and
    /// deletes it; a rebuild from the compacted log gives the same state.
    #[test]
    fn compaction_keeps_live_events_and_markers_and_drops_the_rest() {
        let dir = temp("compact");
        {
            let store = reopen(&dir);
            populate(&store);
            // sled holds where each event is, not the event: bodies are
            // written once, to the log.
            let index = store.shared.index().unwrap();
            for item in index.trees.events.iter() {
                assert_eq!(item.unwrap().1.len(), LOCATION_VALUE);
            }
            drop(index);
            // Garbage: handled events whose markers expired.
            for i in 0..50 {
                let id = format!("gone_{i}");
                let Insert::Accepted { seq } = store.insert(event(&id)).unwrap() else {
                    panic!("accepted");
                };
                store
                    .record(&[Change::Forget {
                        seq,
                        was: Standing::Fresh,
                    }])
                    .unwrap();
            }
            store.sync_applied().unwrap();
            for i in 0..50 {
                let key = record::dedup_key("test", &format!("gone_{i}"));
                store
                    .shared
                    .index()
                    .unwrap()
                    .trees
                    .dedup
                    .remove(key)
                    .unwrap();
                add(&store.shared.markers, -1);
            }
            lock(&store.shared.wal).seal_active().unwrap();
            let before = lock(&store.shared.wal).oldest_sealed().unwrap();
            assert!(
                store.shared.compact(false).unwrap(),
                "mostly garbage: compacted"
            );
            assert!(!before.exists(), "the old segment is gone");
            // Read from their new places in the log, in this same process.
            assert_eq!(store.events_after(0, 10).unwrap().len(), 3);
            assert_eq!(lock(&store.shared.wal).sealed_count(), 0);
            store.close().unwrap();
        }
        std::fs::remove_file(dir.join(CLEAN_FILE)).unwrap();
        let store = reopen(&dir);
        check_populated(&store);
        // A segment that is mostly live is left alone unless forced.
        lock(&store.shared.wal).seal_active().unwrap();
        assert!(!store.shared.compact(false).unwrap());
        assert!(store.shared.compact(true).unwrap());
        drop(store);
        std::fs::remove_file(dir.join(CLEAN_FILE)).unwrap();
        let store = reopen(&dir);
        assert_eq!(store.counts().pending, 3);
        assert_eq!(
            store.insert(event("handled")).unwrap(),
            Insert::Duplicate { seq: 4 }
        );
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Directories 0700, files 0600, whatever the umask; a second open of
    /// the same directory is refused while the first holds it.
    #[test]
    fn the_store_is_private_and_locked() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp("private");
        let store = SledStore::open(&dir.join("inbox"), settings(), true)
            .ok()
            .unwrap();
        assert!(matches!(
            SledStore::open(&dir.join("inbox"), settings(), true),
            Err(OpenFailure::InUse)
        ));
        store.insert(event("a")).unwrap();
        store.close().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let mut seen = 0;
        let mut stack = vec![dir.clone()];
        while let Some(d) = stack.pop() {
            assert_eq!(mode(&d), 0o700, "{}", d.display());
            for entry in std::fs::read_dir(&d).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    seen += 1;
                    assert_eq!(mode(&path), 0o600, "{}", path.display());
                }
            }
        }
        assert!(seen >= 4, "files checked: {seen}");
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

    /// The counts a clean close leaves are used by the next open only if
    /// they match the log's end, and are gone while the store is open.
    #[test]
    fn a_clean_close_leaves_counts_the_next_open_trusts_only_if_current() {
        let dir = temp("counts");
        let forge = |change: &dyn Fn(&mut SavedCounts)| {
            let path = dir.join(CLEAN_FILE);
            let mut saved = SavedCounts::from_file(&std::fs::read(&path).unwrap()).unwrap();
            change(&mut saved);
            std::fs::write(&path, saved.to_file()).unwrap();
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
            // Claims a position the log is not at: must be ignored.
            saved.lsn = 4;
            saved.counts.pending = 42;
        });
        {
            let store = SledStore::open(&dir, settings(), true).ok().unwrap();
            assert_eq!(store.counts().pending, 3, "counted, not trusted");
            assert!(!dir.join(CLEAN_FILE).exists());
            store.close().unwrap();
        }
        forge(&|saved| saved.counts.pending = 42);
        {
            let store = SledStore::open(&dir, settings(), true).ok().unwrap();
            assert_eq!(store.counts().pending, 42, "a current record is used as is");
            store.close().unwrap();
        }
        // A damaged clean file is no clean file.
        let path = dir.join(CLEAN_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[10] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let store = SledStore::open(&dir, settings(), true).ok().unwrap();
        assert_eq!(store.counts().pending, 3);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
