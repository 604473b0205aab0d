//! Opening a store: the directory check, the store's lock, trusting sled
//! after a clean close or rebuilding it from the log, and rebuilding it in
//! place while open.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::clean::{take_clean, write_durably};
use super::commit::Core;
use super::migrate::migrate;
use super::trees::{Applied, Index, Trees, apply_batch, count_trees, stored_applied};
use super::wal;
use super::{Settings, Shared, SledStore};
use crate::store::StoreCounts;
use crate::store::latency::Latencies;
use crate::sync::lock;

/// The store's lock file (hidden, so it never makes a directory look foreign).
const LOCK_FILE: &str = ".lock";
/// Says the store keeps its record in the log (layout 2). A store without it
/// was written by an earlier version, whose record was sled.
pub(super) const FORMAT_FILE: &str = "format";
pub(super) const FORMAT_TEXT: &[u8] =
    b"webhook-inbox store layout 2: the log is the record, sled an index\n";

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
            sled::Error::Io(io) => Self::Io(io),
            other => Self::Corrupt(other.to_string()),
        }
    }
}

/// Whether sled refused to open because the `flock` it takes on its own
/// database file is held. sled 0.34 says so only in its error's text.
///
/// Our own lock (`.lock`, [`lock_store`]) is taken first, so no other open
/// store holds sled's; but sled's file can outlive the store that held it
/// for a moment: a closing store gives up `.lock` before its sled (the field
/// order of `Shared`), and sled's I/O thread pool keeps the file open until
/// its queued writes return, after the `Db` is dropped. An open in that
/// moment (in this process, or in another one that got `.lock`) finds sled's
/// lock busy: [`open_sled`] waits that out.
pub(super) fn sled_lock_busy(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.to_string().contains("could not acquire lock"))
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

/// Opens sled in `path`. A panic inside sled (0.34 panics on some damaged
/// files) is caught and reported as corruption.
pub(super) fn open_sled(
    path: &Path,
    settings: &Settings,
) -> Result<(sled::Db, Trees), OpenFailure> {
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
    // The store that held sled's lock last may keep it for a moment after it
    // closed (see `sled_lock_busy`): give it that moment before calling the
    // directory in use.
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    loop {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(open)) {
            Ok(Ok(opened)) => return Ok(opened),
            Ok(Err(e)) if sled_lock_busy(&e) => {
                if std::time::Instant::now() >= deadline {
                    return Err(OpenFailure::InUse);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => return Err(OpenFailure::Corrupt("sled panicked while opening".into())),
        }
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

impl Shared {
    /// Deletes sled and builds it again from the log, in place, while the
    /// store is open: sled 0.34 keeps failing every write once one failed (a
    /// full disk), so healing means a new sled. Everything durable in the log
    /// is replayed; the log is not written meanwhile. Readers get an error
    /// until it is done.
    pub(super) fn reindex(&self) -> Result<(), OpenFailure> {
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
}
