use std::path::{Path, PathBuf};

use super::clean::CLEAN_FILE;
use super::commit::REINDEX_AFTER;
use super::open::FORMAT_FILE;
use super::trees::{LOCATION_VALUE, add};
use super::*;
use crate::clock::SystemClock;
use crate::store::Progress;

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
    let dir = std::env::temp_dir().join(format!("sled-store-write-fail-{}", std::process::id()));
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

/// The one place sled's error text is matched: sled's own lock, held by a
/// database still open, is recognised as such (a sled upgrade that words it
/// differently fails here, not as a spurious "in use" race at run time).
#[test]
fn sled_s_own_lock_is_recognised_by_its_error() {
    let dir = temp("sled-lock");
    let config = sled::Config::new().path(&dir).flush_every_ms(None);
    let first = config.open().unwrap();
    let Err(e) = sled::Config::new().path(&dir).open() else {
        panic!("a second open of a held sled succeeded");
    };
    assert!(super::open::sled_lock_busy(&e), "{e}");
    assert!(!super::open::sled_lock_busy(&sled::Error::Io(
        std::io::Error::other("disk full")
    )));
    drop(first);
    let _ = std::fs::remove_dir_all(&dir);
}
