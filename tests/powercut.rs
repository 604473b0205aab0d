//! Power cuts, not just `kill -9`: does an acknowledged event survive losing
//! everything that was not synced?
//!
//! The store runs on `powercut` (tests/support/powercut), an in-memory FUSE
//! file system that makes a write durable only when it is `fsync`ed or
//! `fdatasync`ed, and a directory entry only when its directory is `fsync`ed
//! (POSIX) or when anything at all is synced (ext4-like); a cut keeps only
//! the durable image, optionally with each unsynced write surviving with
//! probability 0.5. Four models: `posix`, `posix-p0.5`, `ext4`, `ext4-p0.5`.
//!
//! The loop, per model: a child process (this test binary, the ignored test
//! `powercut_child`, using the public API only) opens the store on the mount,
//! checks what the earlier rounds were told, then ingests signed deliveries
//! from several threads and runs a worker. The parent cuts the power at a
//! random moment or at a random sync request, SIGKILLs and reaps the child,
//! unmounts, and mounts the durable image for the next round. Failures:
//! the store fails to open (error or panic), an acknowledged id is no longer
//! a duplicate or vanished without its handler ever running, a success
//! recorded before a cut is pending again or runs again. A last child only
//! checks, every id acknowledged (earlier rounds check the latest rounds' ids
//! and a sample of the older ones).
//!
//! `POWERCUT_ROUNDS` (default 30 per model), `POWERCUT_SEED` (replays the
//! cut choices and the surviving writes of a run; thread timing still
//! varies). Needs root and `/dev/fuse`; elsewhere it prints why it skips,
//! except under `CI=true`, where that fails.
//!
//! Also here: tests of the file system itself.

mod common;

use std::collections::{BTreeSet, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{SECRET, TempDir, bluum_body, bluum_headers};
use powercut::{Image, Model, PowerCut};
use webhook_inbox::{
    Backoff, Event, HandlerError, Inbox, Ingested, Report, Router, Scheme, Verifier, Worker,
    WorkerConfig,
};

/// Readies this test's thread for mounting, or says why it cannot (and
/// fails under `CI=true`, where the machine is meant to allow it).
fn fuse_ready(test: &str) -> bool {
    match powercut::prepare() {
        Ok(()) => true,
        Err(why) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{test}: power-cut tests cannot run under CI: {why}"
            );
            println!("{test}: skipped: {why} (needs root and /dev/fuse)");
            false
        }
    }
}

/// A mount point (an empty directory) and a scratch directory beside it.
struct Place {
    dir: TempDir,
}

impl Place {
    fn new(name: &str) -> Self {
        let dir = TempDir::new(name);
        fs::create_dir_all(dir.path().join("mnt")).unwrap();
        Self { dir }
    }

    fn mnt(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }

    fn scratch(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn mount(&self, image: &Image, model: Model, seed: u64) -> PowerCut {
        PowerCut::mount(&self.mnt(), image, model, seed).expect("mount the power-cut file system")
    }
}

// ---------------------------------------------------------------------------
// The file system itself.

#[test]
fn fs_a_write_not_synced_is_gone_after_a_cut() {
    if !fuse_ready("fs_a_write_not_synced_is_gone_after_a_cut") {
        return;
    }
    for model in [Model::posix(), Model::ext4_like()] {
        let place = Place::new("pc-unsynced");
        let fs = place.mount(&Image::empty(), model, 1);
        let mnt = place.mnt();
        // A file whose entry and first bytes are durable...
        let mut f = File::create(mnt.join("log")).unwrap();
        f.write_all(b"synced;").unwrap();
        f.sync_all().unwrap();
        File::open(&mnt).unwrap().sync_all().unwrap();
        // ...then more bytes, closed, and syncfs: nothing of it durable.
        f.write_all(b"not synced").unwrap();
        rustix::fs::syncfs(&f).unwrap();
        drop(f);
        assert_eq!(fs::read(mnt.join("log")).unwrap(), b"synced;not synced");
        let image = fs.cut();
        fs.unmount().unwrap();
        assert_eq!(image.file("log"), Some(&b"synced;"[..]), "{}", model.name());

        // Mounted again: the same durable content is what a process reads.
        let fs = place.mount(&image, model, 1);
        assert_eq!(fs::read(mnt.join("log")).unwrap(), b"synced;");
        fs.unmount().unwrap();
    }
}

#[test]
fn fs_a_synced_file_whose_entry_was_not_synced_is_gone_in_posix_kept_in_ext4() {
    if !fuse_ready("fs_a_synced_file_whose_entry_was_not_synced_is_gone_in_posix_kept_in_ext4") {
        return;
    }
    for (model, kept) in [(Model::posix(), false), (Model::ext4_like(), true)] {
        let place = Place::new("pc-entry");
        let fs = place.mount(&Image::empty(), model, 1);
        let mnt = place.mnt();
        fs::create_dir(mnt.join("d")).unwrap();
        File::open(&mnt).unwrap().sync_all().unwrap(); // `d` is durable
        let mut f = File::create(mnt.join("d/f")).unwrap();
        f.write_all(b"data").unwrap();
        f.sync_data().unwrap(); // the data, not `d`'s entry for it
        let image = fs.cut();
        drop(f);
        fs.unmount().unwrap();
        assert!(image.is_dir("d"), "{}: {:?}", model.name(), image.paths());
        if kept {
            assert_eq!(image.file("d/f"), Some(&b"data"[..]), "{}", model.name());
        } else {
            assert_eq!(image.file("d/f"), None, "{}", model.name());
        }

        // With the directory synced too, both keep it.
        let fs = place.mount(&Image::empty(), model, 1);
        fs::create_dir(mnt.join("d")).unwrap();
        File::open(&mnt).unwrap().sync_all().unwrap();
        let mut f = File::create(mnt.join("d/f")).unwrap();
        f.write_all(b"data").unwrap();
        f.sync_data().unwrap();
        File::open(mnt.join("d")).unwrap().sync_all().unwrap();
        let image = fs.cut();
        drop(f);
        fs.unmount().unwrap();
        assert_eq!(image.file("d/f"), Some(&b"data"[..]), "{}", model.name());
    }
}

#[test]
fn fs_a_mkdir_not_synced_loses_the_whole_subtree_in_posix() {
    if !fuse_ready("fs_a_mkdir_not_synced_loses_the_whole_subtree_in_posix") {
        return;
    }
    let place = Place::new("pc-mkdir");
    let fs = place.mount(&Image::empty(), Model::posix(), 1);
    let mnt = place.mnt();
    fs::create_dir(mnt.join("store")).unwrap();
    let mut f = File::create(mnt.join("store/log")).unwrap();
    f.write_all(b"event").unwrap();
    f.sync_all().unwrap();
    File::open(mnt.join("store")).unwrap().sync_all().unwrap();
    // Everything under `store` is synced, but not the root's entry for it.
    let image = fs.cut();
    drop(f);
    fs.unmount().unwrap();
    assert!(image.paths().is_empty(), "{:?}", image.paths());
}

#[test]
fn fs_rename_is_durable_only_once_its_directory_is_synced() {
    if !fuse_ready("fs_rename_is_durable_only_once_its_directory_is_synced") {
        return;
    }
    for model in [Model::posix(), Model::ext4_like()] {
        let name = model.name();
        let place = Place::new("pc-rename");
        let mnt = place.mnt();
        // The durable start: `conf` holds "old".
        let fs = place.mount(&Image::empty(), model, 1);
        fs::write(mnt.join("conf"), b"old").unwrap();
        File::open(mnt.join("conf")).unwrap().sync_all().unwrap();
        File::open(&mnt).unwrap().sync_all().unwrap();
        let start = fs.cut();
        fs.unmount().unwrap();
        assert_eq!(start.file("conf"), Some(&b"old"[..]));

        // Write-to-temporary, sync it, rename over: without the directory's
        // sync the rename is not durable (POSIX), with any later sync it is
        // (ext4-like); with it, it is in both.
        let replace = |sync_dir: bool, later_sync: bool| {
            let fs = place.mount(&start, model, 1);
            let mut tmp = File::create(mnt.join("conf.tmp")).unwrap();
            tmp.write_all(b"new").unwrap();
            tmp.sync_all().unwrap();
            drop(tmp);
            fs::rename(mnt.join("conf.tmp"), mnt.join("conf")).unwrap();
            if sync_dir {
                File::open(&mnt).unwrap().sync_all().unwrap();
            }
            if later_sync {
                let mut other = File::create(mnt.join("other")).unwrap();
                other.write_all(b"x").unwrap();
                other.sync_data().unwrap();
            }
            let image = fs.cut();
            fs.unmount().unwrap();
            image
        };
        let image = replace(true, false);
        assert_eq!(image.file("conf"), Some(&b"new"[..]), "{name}");
        assert_eq!(image.file("conf.tmp"), None, "{name}");

        // No sync after the rename: the old file stays. ext4-like, the
        // temporary's own fsync committed its creation, so it is left over.
        let image = replace(false, false);
        assert_eq!(image.file("conf"), Some(&b"old"[..]), "{name}");
        let leftover = (model.dirs == powercut::DirSync::Ext4Like).then_some(&b"new"[..]);
        assert_eq!(
            image.file("conf.tmp"),
            leftover,
            "{name}: {:?}",
            image.paths()
        );

        let image = replace(false, true);
        match model.dirs {
            powercut::DirSync::Posix => {
                assert_eq!(image.file("conf"), Some(&b"old"[..]), "{name}")
            }
            powercut::DirSync::Ext4Like => {
                assert_eq!(image.file("conf"), Some(&b"new"[..]), "{name}")
            }
        }
        assert_eq!(image.file("conf.tmp"), None, "{name}");
    }
}

#[test]
fn fs_unlink_is_durable_only_once_its_directory_is_synced() {
    if !fuse_ready("fs_unlink_is_durable_only_once_its_directory_is_synced") {
        return;
    }
    let place = Place::new("pc-unlink");
    let mnt = place.mnt();
    let fs = place.mount(&Image::empty(), Model::posix(), 1);
    fs::write(mnt.join("segment"), b"records").unwrap();
    File::open(mnt.join("segment")).unwrap().sync_all().unwrap();
    File::open(&mnt).unwrap().sync_all().unwrap();
    let start = fs.cut();
    fs.unmount().unwrap();

    let fs = place.mount(&start, Model::posix(), 1);
    fs::remove_file(mnt.join("segment")).unwrap();
    let image = fs.cut();
    fs.unmount().unwrap();
    // Deleted, not synced: it is back, with its content.
    assert_eq!(image.file("segment"), Some(&b"records"[..]));

    let fs = place.mount(&start, Model::posix(), 1);
    fs::remove_file(mnt.join("segment")).unwrap();
    File::open(&mnt).unwrap().sync_all().unwrap();
    let image = fs.cut();
    fs.unmount().unwrap();
    assert_eq!(image.file("segment"), None);
}

#[test]
fn fs_every_call_fails_with_eio_after_a_cut() {
    if !fuse_ready("fs_every_call_fails_with_eio_after_a_cut") {
        return;
    }
    let place = Place::new("pc-eio");
    let mnt = place.mnt();
    let fs = place.mount(&Image::empty(), Model::posix(), 1);
    let mut f = File::create(mnt.join("f")).unwrap();
    f.write_all(b"abc").unwrap();
    let _ = fs.cut();
    let eio = |r: std::io::Error| assert_eq!(r.raw_os_error(), Some(5), "{r}");
    eio(f.write_all(b"more").unwrap_err());
    eio(f.sync_all().unwrap_err());
    eio(f.sync_data().unwrap_err());
    eio(File::create(mnt.join("g")).unwrap_err());
    eio(OpenOptions::new()
        .read(true)
        .open(mnt.join("f"))
        .unwrap_err());
    eio(fs::create_dir(mnt.join("d")).unwrap_err());
    eio(fs::read_dir(&mnt).unwrap_err());
    eio(File::open(&mnt).unwrap_err());
    drop(f);
    fs.unmount().unwrap();
}

#[test]
fn fs_cut_at_the_nth_sync_refuses_that_sync() {
    if !fuse_ready("fs_cut_at_the_nth_sync_refuses_that_sync") {
        return;
    }
    let place = Place::new("pc-nth");
    let mnt = place.mnt();
    let fs = place.mount(&Image::empty(), Model::ext4_like(), 1);
    fs.cut_at_sync(3);
    let mut f = File::create(mnt.join("log")).unwrap();
    for (i, part) in [&b"one;"[..], b"two;", b"three;"].iter().enumerate() {
        f.write_all(part).unwrap();
        let synced = f.sync_data();
        assert_eq!(synced.is_ok(), i < 2, "sync {}: {synced:?}", i + 1);
    }
    let image = fs
        .wait_cut(Duration::from_secs(1))
        .expect("cut at the third sync");
    assert_eq!(fs.stats().fdatasyncs, 3);
    drop(f);
    fs.unmount().unwrap();
    assert_eq!(image.file("log"), Some(&b"one;two;"[..]));
}

#[test]
fn fs_o_dsync_writes_are_durable_without_fsync() {
    if !fuse_ready("fs_o_dsync_writes_are_durable_without_fsync") {
        return;
    }
    let place = Place::new("pc-dsync");
    let mnt = place.mnt();
    let fs = place.mount(&Image::empty(), Model::posix(), 1);
    File::create(mnt.join("plain")).unwrap();
    File::create(mnt.join("dsync")).unwrap();
    File::open(&mnt).unwrap().sync_all().unwrap();
    let mut plain = OpenOptions::new()
        .write(true)
        .open(mnt.join("plain"))
        .unwrap();
    let mut dsync = OpenOptions::new()
        .write(true)
        .custom_flags(rustix::fs::OFlags::DSYNC.bits() as i32)
        .open(mnt.join("dsync"))
        .unwrap();
    plain.write_all(b"plain").unwrap();
    dsync.write_all(b"dsync").unwrap();
    let image = fs.cut();
    drop((plain, dsync));
    fs.unmount().unwrap();
    assert_eq!(image.file("plain"), Some(&b""[..]));
    assert_eq!(image.file("dsync"), Some(&b"dsync"[..]));
}

#[test]
fn fs_fallocate_reserves_zeros_and_locks_work() {
    if !fuse_ready("fs_fallocate_reserves_zeros_and_locks_work") {
        return;
    }
    let place = Place::new("pc-falloc");
    let mnt = place.mnt();
    let fs = place.mount(&Image::empty(), Model::posix(), 1);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(mnt.join("segment"))
        .unwrap();
    rustix::fs::fallocate(&f, rustix::fs::FallocateFlags::empty(), 0, 1 << 20).unwrap();
    assert_eq!(f.metadata().unwrap().len(), 1 << 20);
    f.write_all_at(b"frame", 0).unwrap();
    // sled's lock: the kernel handles flock for a FUSE file system that does not.
    rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();
    let other = File::open(mnt.join("segment")).unwrap();
    assert!(
        rustix::fs::flock(&other, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err()
    );
    f.sync_data().unwrap();
    File::open(&mnt).unwrap().sync_all().unwrap();
    let image = fs.cut();
    drop((f, other));
    fs.unmount().unwrap();
    let data = image.file("segment").unwrap();
    assert_eq!(data.len(), 1 << 20);
    assert_eq!(&data[..5], b"frame");
    assert!(data[5..].iter().all(|&b| b == 0));
}

#[test]
fn fs_unsynced_writes_survive_with_the_given_probability_replayably() {
    if !fuse_ready("fs_unsynced_writes_survive_with_the_given_probability_replayably") {
        return;
    }
    let run = |seed: u64| {
        let place = Place::new("pc-p");
        let mnt = place.mnt();
        let fs = place.mount(&Image::empty(), Model::posix().surviving(0.5), seed);
        let f = File::create(mnt.join("f")).unwrap();
        f.set_len(200).unwrap();
        f.sync_all().unwrap();
        File::open(&mnt).unwrap().sync_all().unwrap();
        for i in 0..200u64 {
            f.write_all_at(&[1], i).unwrap();
        }
        let image = fs.cut();
        drop(f);
        fs.unmount().unwrap();
        image.file("f").unwrap().to_vec()
    };
    let a = run(7);
    let kept = a.iter().filter(|&&b| b == 1).count();
    assert!(
        (60..140).contains(&kept),
        "{kept} of 200 writes kept at p = 0.5"
    );
    assert_eq!(run(7), a, "the same seed keeps the same writes");
    assert_ne!(run(8), a, "another seed keeps others");
}

// ---------------------------------------------------------------------------
// The loop.

const CHILD_ENV: &str = "WEBHOOK_INBOX_POWERCUT_CHILD";
const INGEST_THREADS: usize = 3;
const PER_THREAD: usize = 150;
/// Every id acknowledged in this many latest rounds is checked each round;
/// of the older ones, a sample (so a 1000-round run stays linear).
const RECENT_ROUNDS: usize = 5;
const OLDER_SAMPLE: usize = 500;

type Out = Arc<Mutex<std::io::Stdout>>;

/// One protocol line: `@@ <tag> <id>`, flushed at once (a SIGKILL loses no
/// line already written to the pipe). The marker finds the line even where
/// the test harness printed `test powercut_child ... ` before it.
fn say(out: &Out, tag: &str, id: &str) {
    let mut out = out
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let _ = writeln!(out, "@@ {tag} {id}");
    let _ = out.flush();
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned())
}

/// A Bluum envelope of about 200 KiB: past sled's inline limit (128 KiB),
/// so sled keeps it in a blob file of its own.
fn big_body(n: u64) -> Vec<u8> {
    let pad = "y".repeat(200 * 1024);
    format!(
        r#"{{"event":"order.filled","timestamp":"2026-11-28T14:00:00Z","data":{{"id":"ord_{n}","note":"{pad}"}}}}"#
    )
    .into_bytes()
}

/// The child: open the store, check the ids in the ledger file, then ingest
/// and work until killed (every 40th delivery is a large one). `WEBHOOK_INBOX_POWERCUT_CHILD` is
/// `<store dir>|<ledger file: ids, one a line>|<round>`; this round's ids
/// are `r<round>-t<thread>-<n>`.
///
/// Protocol (stdout, one `@@ ` line each):
/// - `open-failed <error>` / `open-panicked <message>`: the store did not open; the child stops.
/// - `ready`: the store is open.
/// - `check <id> <pending|gone> <dup|accepted|error>` for each ledger id:
///   whether the event is still stored, then what re-ingesting the same
///   delivery answered (asked in that order, so `accepted` does not hide
///   `gone`).
/// - `checked`: all checks done. (In a third of the rounds the parent has
///   armed a cut at one of the first sync requests, so it may come sooner.)
/// - `ack <id>`: `ingest` returned Accepted (printed only then).
/// - `run <id>`: a handler run starts.
/// - `handled-recorded <id>`: the worker's observer was told the success is
///   recorded (after the store's fdatasync).
/// - `ingested`: every ingest thread is done.
#[test]
#[ignore = "run by the powercut_* loop tests as a child process"]
fn powercut_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.split('|');
    let (Some(store), Some(ledger), Some(round)) = (parts.next(), parts.next(), parts.next())
    else {
        panic!("bad {CHILD_ENV}: {spec}");
    };
    let round: usize = round.parse().expect("round");
    let out: Out = Arc::new(Mutex::new(std::io::stdout()));

    let opened = std::panic::catch_unwind(|| Inbox::open(store));
    let inbox = match opened {
        Ok(Ok(inbox)) => inbox,
        Ok(Err(e)) => {
            say(&out, "open-failed", &e.to_string().replace('\n', " "));
            return;
        }
        Err(p) => {
            say(&out, "open-panicked", &panic_text(&*p).replace('\n', " "));
            return;
        }
    };
    say(&out, "ready", "");
    let ingestor = inbox
        .ingestor(Verifier::new(Scheme::bluum(), [SECRET]).expect("secret"))
        .build()
        .expect("ingestor");

    let ledger = fs::read_to_string(ledger).expect("ledger");
    for id in ledger.lines().filter(|l| !l.is_empty()) {
        let stored = match inbox.event(id) {
            Ok(Some(_)) => "pending",
            Ok(None) => "gone",
            Err(_) => "error",
        };
        let body = bluum_body("order.filled", 0);
        let again = match ingestor.ingest(&bluum_headers(id, &body), &body) {
            Ok(Ingested::Duplicate { .. }) => "dup",
            Ok(Ingested::Accepted { .. }) => "accepted",
            Err(_) => "error",
        };
        say(&out, "check", &format!("{id} {stored} {again}"));
    }
    say(&out, "checked", "");

    let run_out = Arc::clone(&out);
    let router = Router::builder()
        .on("*", move |e: &Event| {
            say(&run_out, "run", e.id());
            // Some fail their first attempt, so retry state is on disk too.
            if e.id().ends_with('7') && e.attempt() == 1 {
                return Err(HandlerError::retry_after(
                    Duration::from_millis(20),
                    "try again",
                ));
            }
            Ok(())
        })
        .build()
        .expect("router");
    let observer_out = Arc::clone(&out);
    let config = WorkerConfig::default()
        .threads(2)
        .backoff(Backoff::ladder([Duration::from_millis(20); 4]))
        .observe(move |e: &Event, r: &Report| {
            if let Report::Handled = r {
                say(&observer_out, "handled-recorded", e.id());
            }
        });
    let _worker = Worker::start(&inbox, router, config).expect("worker");
    std::thread::scope(|s| {
        for t in 0..INGEST_THREADS {
            let (ingestor, out) = (&ingestor, &out);
            s.spawn(move || {
                for n in 0..PER_THREAD {
                    let id = format!("r{round}-t{t}-{n}");
                    let body = if n % 40 == 39 {
                        big_body(n as u64)
                    } else {
                        bluum_body("order.filled", n as u64)
                    };
                    match ingestor.ingest(&bluum_headers(&id, &body), &body) {
                        Ok(Ingested::Accepted { .. }) => say(out, "ack", &id),
                        Ok(Ingested::Duplicate { .. }) => say(out, "dup", &id),
                        // After the cut every write fails: stop.
                        Err(_) => return,
                    }
                }
            });
        }
    });
    say(&out, "ingested", "");
    std::thread::sleep(Duration::from_secs(60));
}

/// The child process, its protocol lines collected as they arrive.
struct Child {
    process: std::process::Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Child {
    fn spawn(spec: String, stderr: &Path) -> Self {
        let mut process = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "powercut_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, spec)
            .stdout(std::process::Stdio::piped())
            .stderr(File::create(stderr).unwrap())
            .spawn()
            .unwrap();
        let stdout = process.stdout.take().unwrap();
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = Arc::clone(&lines);
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(at) = line.find("@@ ") {
                    sink.lock().unwrap().push(line[at + 3..].to_owned());
                }
            }
        });
        Self {
            process,
            lines,
            reader: Some(reader),
        }
    }

    fn has(&self, tag: &str) -> bool {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.split(' ').next() == Some(tag))
    }

    fn exited(&mut self) -> bool {
        self.process.try_wait().ok().flatten().is_some()
    }

    /// SIGKILLs it, reaps it, and returns every protocol line it printed.
    fn kill(mut self) -> Vec<String> {
        let _ = self.process.kill();
        let _ = self.process.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        std::mem::take(&mut *self.lines.lock().unwrap())
    }
}

/// splitmix64, for the parent's choices (seeded, so a run replays).
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The child opened the store and finished its checks.
    Checked,
    /// The power was cut while the child was opening or checking.
    CutEarly,
    /// The store failed to open (error or panic), or the child died on its
    /// own before finishing the checks, with the power still on.
    Failed,
}

/// What the earlier rounds (since the last fresh start) were told.
#[derive(Default)]
struct Ledger {
    /// Acknowledged ids, with the round that acknowledged each.
    acked: Vec<(String, usize)>,
    acked_set: HashSet<String>,
    /// Ids whose handler ran (started) at least once.
    ran: HashSet<String>,
    /// Ids whose success the observer reported recorded.
    handled: HashSet<String>,
}

impl Ledger {
    /// The ids to check this round: every one from the latest rounds, and a
    /// sample of the older.
    fn to_check(&self, round: usize, rng: &mut u64) -> Vec<&str> {
        let (recent, older): (Vec<_>, Vec<_>) = self
            .acked
            .iter()
            .partition(|(_, r)| round.saturating_sub(*r) <= RECENT_ROUNDS);
        let mut ids: Vec<&str> = recent.iter().map(|(id, _)| id.as_str()).collect();
        let mut older: Vec<&str> = older.iter().map(|(id, _)| id.as_str()).collect();
        // A sample without repeats (a repeat would see the first check's re-ingest).
        let take = older.len().min(OLDER_SAMPLE);
        for i in 0..take {
            *rng = mix(*rng);
            let j = i + (*rng % (older.len() - i) as u64) as usize;
            older.swap(i, j);
        }
        ids.extend(&older[..take]);
        ids
    }
}

#[derive(Default)]
struct Tally {
    rounds: usize,
    acknowledged: usize,
    checked: usize,
    lost: BTreeSet<String>,
    failed_opens: Vec<String>,
    cut_while_opening: usize,
    undone_successes: BTreeSet<String>,
    run_again: BTreeSet<String>,
    cut_mid_ingest: usize,
    problems: Vec<String>,
}

fn rounds() -> usize {
    std::env::var("POWERCUT_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(30)
}

/// `POWERCUT_SEED` as given, or one from the clock (different per model).
fn model_seed(name: &str) -> u64 {
    std::env::var("POWERCUT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let clock = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64);
            name.bytes().fold(clock, |h, b| mix(h ^ u64::from(b)))
        })
}

/// The last lines of a child's stderr, for a report.
fn tail(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_string(&mut text);
    }
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(6)..].join(" | ")
}

fn run_model(test: &str, model: Model) {
    if !fuse_ready(test) {
        return;
    }
    let name = model.name();
    let rounds = rounds();
    let seed = model_seed(&name);
    println!(
        "{test}: model {name}, {rounds} rounds, seed {seed} (replay: POWERCUT_SEED={seed} cargo test --all-features --test powercut {test})"
    );
    let place = Place::new(&format!("powercut-{name}"));
    let store = place.mnt().join("store");
    let mut image = Image::empty();
    let mut ledger = Ledger::default();
    let mut tally = Tally::default();
    let started = Instant::now();
    // How many sync requests the last opening and checking took: early
    // cuts land among them.
    let mut open_syncs: u64 = 10;

    // The last pass only checks (every id, no sampling): the last round's
    // acknowledgements are checked too.
    for round in 0..=rounds {
        let last = round == rounds;
        let round_seed = mix(seed ^ mix(round as u64));
        let mut rng = round_seed;
        let mut next = || {
            rng = mix(rng);
            rng
        };
        let fs = place.mount(&image, model, round_seed);
        let ledger_path = place.scratch("ledger");
        let mut pick = next();
        let check: Vec<&str> = if last {
            ledger.acked.iter().map(|(id, _)| id.as_str()).collect()
        } else {
            ledger.to_check(round, &mut pick)
        };
        fs::write(&ledger_path, check.join("\n")).unwrap();
        let stderr = place.scratch("child-stderr");

        // Where to cut (seeded), one of three kinds: at one of the first
        // sync requests from the mount on (as many as the last opening took,
        // so while the store opens, replays and checkpoints: where sled
        // rewrites its files), at a random moment
        // after the checks, or at a random sync request after them.
        let kind = next() % 3;
        let early = (kind == 0 && !last).then(|| 1 + next() % (open_syncs + 2));
        if let Some(n) = early {
            fs.cut_at_sync(n);
        }
        let spawned = Instant::now();
        let mut child = Child::spawn(
            format!("{}|{}|{round}", store.display(), ledger_path.display()),
            &stderr,
        );

        // Wait for the checks, the early cut, or the failure to open.
        let deadline = Instant::now() + Duration::from_secs(120);
        let phase = loop {
            if child.has("checked") {
                break Phase::Checked;
            }
            if fs.is_cut() {
                // Cut while opening or checking; a failure to open after
                // that is the cut's doing, not the store's.
                break Phase::CutEarly;
            }
            if child.has("open-failed") || child.has("open-panicked") || child.exited() {
                break if fs.is_cut() {
                    Phase::CutEarly
                } else {
                    Phase::Failed
                };
            }
            if Instant::now() > deadline {
                let lines = child.kill();
                panic!(
                    "{test} round {round} (seed {round_seed}): the child never finished opening and checking ({} lines; stderr: {})",
                    lines.len(),
                    tail(&stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        let syncs_at_checked = fs.stats().syncs();
        if phase == Phase::Checked {
            open_syncs = syncs_at_checked;
        }
        let checked_after = spawned.elapsed();
        let how = match (phase, early) {
            (Phase::Checked, _) if last => {
                let _ = fs.cut();
                "after the final checks".to_owned()
            }
            (Phase::Checked, Some(n)) => {
                if fs.wait_cut(Duration::from_secs(3)).is_none() {
                    let _ = fs.cut();
                }
                format!("at sync {n} from the mount, after the checks")
            }
            (Phase::Checked, None) if kind == 1 => {
                let after = Duration::from_micros(next() % 250_000);
                std::thread::sleep(after);
                let _ = fs.cut();
                format!("{} ms after the checks", after.as_millis())
            }
            (Phase::Checked, None) => {
                let n = 1 + next() % 300;
                fs.cut_at_sync(n);
                if fs.wait_cut(Duration::from_secs(3)).is_none() {
                    let _ = fs.cut();
                    format!("at sync {n} after the checks (not reached in 3 s: cut then)")
                } else {
                    format!("at sync {n} after the checks")
                }
            }
            (Phase::CutEarly, n) => {
                tally.cut_while_opening += 1;
                format!(
                    "at sync {} from the mount, while opening or checking",
                    n.unwrap_or(0)
                )
            }
            (Phase::Failed, _) => {
                let _ = fs.cut();
                "after the failed open".to_owned()
            }
        };
        let lines = child.kill();
        let stats = fs.stats();
        let next_image = fs.cut();
        if let Err(e) = fs.unmount() {
            panic!("{test} round {round}: unmount failed: {e}");
        }

        // What the round showed.
        tally.rounds += usize::from(!last);
        let mut checks = 0;
        if phase == Phase::Failed {
            let failed = lines.iter().find_map(|l| {
                l.strip_prefix("open-failed ")
                    .or_else(|| l.strip_prefix("open-panicked "))
                    .map(|s| format!("{s} (stderr: {})", tail(&stderr)))
            });
            let why = failed.unwrap_or_else(|| {
                let after = if lines.iter().any(|l| l == "ready") {
                    "opened, then died during the checks"
                } else {
                    "died while opening"
                };
                format!("{after}: {}", tail(&stderr))
            });
            tally
                .failed_opens
                .push(format!("round {round} (seed {round_seed}): {why}"));
            // The store is unusable: start over from an empty disk.
            image = Image::empty();
            ledger = Ledger::default();
            continue;
        }
        let mut round_handled: HashSet<String> = HashSet::new();
        for line in &lines {
            let mut words = line.split(' ');
            let (tag, id) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
            match tag {
                "check" => {
                    checks += 1;
                    let stored = words.next().unwrap_or("");
                    let again = words.next().unwrap_or("");
                    if again != "dup" {
                        tally.lost.insert(id.to_owned());
                        tally
                            .problems
                            .push(format!("round {round}: {id} re-ingested: {again}"));
                    } else if stored == "gone" && !ledger.ran.contains(id) {
                        tally.lost.insert(id.to_owned());
                        tally.problems.push(format!(
                            "round {round}: {id} is gone but its handler never ran"
                        ));
                    }
                    if stored == "pending" && ledger.handled.contains(id) {
                        tally.undone_successes.insert(id.to_owned());
                        tally.problems.push(format!(
                            "round {round}: {id}'s recorded success is undone (pending again)"
                        ));
                    }
                    if stored == "error" {
                        tally
                            .problems
                            .push(format!("round {round}: reading {id} failed"));
                    }
                }
                // The check-only child's acknowledgements are never checked.
                "ack" if !last && ledger.acked_set.insert(id.to_owned()) => {
                    ledger.acked.push((id.to_owned(), round));
                    tally.acknowledged += 1;
                }
                "run" => {
                    if ledger.handled.contains(id) || round_handled.contains(id) {
                        tally.run_again.insert(id.to_owned());
                        tally.problems.push(format!(
                            "round {round}: {id} ran again after its success was recorded"
                        ));
                    }
                    ledger.ran.insert(id.to_owned());
                }
                "handled-recorded" => {
                    round_handled.insert(id.to_owned());
                }
                _ => {}
            }
        }
        ledger.handled.extend(round_handled);
        tally.checked += checks;
        if phase == Phase::Checked && !last && !lines.iter().any(|l| l == "ingested") {
            tally.cut_mid_ingest += 1;
        }
        if std::env::var_os("POWERCUT_VERBOSE").is_some() {
            println!(
                "{test} round {round}: cut {how}; {} lines, checked after {} ms, round {} ms, {syncs_at_checked} syncs when checked, {} in all, {} image bytes in {} files, {} lost so far",
                lines.len(),
                checked_after.as_millis(),
                spawned.elapsed().as_millis(),
                stats.syncs(),
                next_image.bytes(),
                next_image.paths().len(),
                tally.lost.len()
            );
        }
        image = next_image;
    }

    println!(
        "{test}: | {name} | {} rounds | {} acknowledged | {} lost | {} failed opens | {} successes undone | {} run again | {} checks, {} cuts while opening, {} mid-ingest, {:.1} s | seed {seed}",
        tally.rounds,
        tally.acknowledged,
        tally.lost.len(),
        tally.failed_opens.len(),
        tally.undone_successes.len(),
        tally.run_again.len(),
        tally.checked,
        tally.cut_while_opening,
        tally.cut_mid_ingest,
        started.elapsed().as_secs_f64()
    );
    for f in tally.failed_opens.iter().take(5) {
        println!("{test}: failed open: {f}");
    }
    for p in tally.problems.iter().take(10) {
        println!("{test}: {p}");
    }
    assert!(
        tally.acknowledged > 0 && tally.cut_mid_ingest > 0,
        "{test}: nothing was acknowledged or no cut landed mid-ingest: the loop proved nothing"
    );
    assert!(
        tally.lost.is_empty()
            && tally.failed_opens.is_empty()
            && tally.undone_successes.is_empty()
            && tally.run_again.is_empty(),
        "{test}: model {name}, seed {seed}: {} acknowledged events lost, {} failed opens, {} recorded successes undone, {} run again (first: {:?})",
        tally.lost.len(),
        tally.failed_opens.len(),
        tally.undone_successes.len(),
        tally.run_again.len(),
        tally.failed_opens.first().or(tally.problems.first())
    );
}

#[test]
fn powercut_posix() {
    run_model("powercut_posix", Model::posix());
}

#[test]
fn powercut_posix_p50() {
    run_model("powercut_posix_p50", Model::posix().surviving(0.5));
}

#[test]
fn powercut_ext4() {
    run_model("powercut_ext4", Model::ext4_like());
}

#[test]
fn powercut_ext4_p50() {
    run_model("powercut_ext4_p50", Model::ext4_like().surviving(0.5));
}
