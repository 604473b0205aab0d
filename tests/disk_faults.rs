//! Disk faults on real filesystems: a store on a small filesystem that fills
//! up (ingest answers 503, nothing acknowledged is lost, and ingest works again
//! within seconds once space is freed, without a reopen), and a store on a
//! read-only filesystem (a clear error on open).
//!
//! They mount tmpfs file systems, so they run as root; otherwise each says why
//! it is skipped and passes.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{TempDir, bluum_body, bluum_headers};
use webhook_inbox::{Inbox, IngestError, Ingested, Ingestor, OpenError, Scheme, Verifier};

/// A tmpfs of `size` mounted at `at`, unmounted on drop.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(at: &Path, size: &str) -> Result<Self, String> {
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        mount(&["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"], at)?;
        Ok(Self(at.to_owned()))
    }

    /// A tmpfs under `dir`, or `None` after saying why `testing` is skipped.
    fn tmpfs_or_skip(dir: &Path, size: &str, testing: &str) -> Option<Self> {
        Self::tmpfs(&dir.join("fs"), size)
            .map_err(|why| {
                eprintln!("skipped: cannot mount a tmpfs ({why}); run as root to test {testing}");
            })
            .ok()
    }

    fn read_only(&self) -> Result<(), String> {
        mount(&["-o", "remount,ro"], &self.0)
    }
}

fn mount(args: &[&str], at: &Path) -> Result<(), String> {
    let out = Command::new("mount")
        .args(args)
        .arg(at)
        .output()
        .map_err(|e| format!("cannot run mount: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn bluum(inbox: &Inbox) -> Ingestor {
    inbox
        .ingestor(Verifier::new(Scheme::bluum(), [common::SECRET]).unwrap())
        .build()
        .unwrap()
}

/// Fills the filesystem with `path`, then gives back `leave` bytes.
fn fill(path: &Path, leave: u64) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![1u8; 1 << 20];
    let mut written = 0u64;
    while f.write_all(&chunk).is_ok() {
        written += chunk.len() as u64;
    }
    let _ = f.flush();
    f.set_len(written.saturating_sub(leave)).unwrap();
}

#[test]
fn a_full_disk_refuses_with_503_keeps_what_was_acknowledged_and_recovers() {
    let dir = TempDir::new("disk-full");
    let Some(mount) = Mount::tmpfs_or_skip(dir.path(), "48m", "a full disk") else {
        return;
    };
    let store = mount.0.join("store");
    let inbox = Inbox::open(&store).unwrap();
    let ingestor = bluum(&inbox);
    fill(&mount.0.join("filler"), 2 << 20);

    let mut acked = HashSet::new();
    let mut refused = None;
    for n in 0..50_000u64 {
        let id = format!("evt_{n}");
        let body = bluum_body("order.filled", n);
        match ingestor.ingest(&bluum_headers(&id, &body), &body) {
            Ok(Ingested::Accepted { .. }) => {
                acked.insert(id);
            }
            Ok(other) => panic!("{other:?}"),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let refused = refused.expect("the disk never filled");
    assert!(matches!(refused, IngestError::Storage(_)), "{refused:?}");
    assert_eq!(refused.status(), 503, "{refused}");
    assert!(refused.retry_after().is_some());
    eprintln!(
        "{} acknowledged before the disk was full: {refused}",
        acked.len()
    );

    // Space comes back: the store heals by itself, without a reopen — a
    // refused log write leaves nothing behind, a failed sync is zeroed and
    // synced before the next batch, and a batch sled refused is applied again.
    std::fs::remove_file(mount.0.join("filler")).unwrap();
    let body = bluum_body("order.filled", 1_000_000);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match ingestor.ingest(&bluum_headers("evt_after", &body), &body) {
            Ok(Ingested::Accepted { .. }) => break,
            Err(e @ IngestError::Storage(_)) if std::time::Instant::now() < deadline => {
                assert_eq!(e.status(), 503);
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => panic!("not healed without a reopen: {other:?}"),
        }
    }
    acked.insert("evt_after".to_owned());
    for id in &acked {
        let n = match id.as_str() {
            "evt_after" => 1_000_000,
            other => other.trim_start_matches("evt_").parse().unwrap(),
        };
        let body = bluum_body("order.filled", n);
        assert_eq!(
            ingestor.ingest(&bluum_headers(id, &body), &body).unwrap(),
            Ingested::Duplicate { id: id.clone() },
            "acknowledged {id} was lost before any reopen"
        );
    }
    drop(ingestor);
    inbox.close().unwrap();

    // Nothing acknowledged is lost, and the store takes new deliveries.
    let inbox = Inbox::open(&store).unwrap();
    let ingestor = bluum(&inbox);
    for id in &acked {
        let n = match id.as_str() {
            "evt_after" => 1_000_000,
            other => other.trim_start_matches("evt_").parse().unwrap(),
        };
        let body = bluum_body("order.filled", n);
        assert_eq!(
            ingestor.ingest(&bluum_headers(id, &body), &body).unwrap(),
            Ingested::Duplicate { id: id.clone() },
            "acknowledged {id} was lost"
        );
    }
    let body = bluum_body("order.filled", 2_000_000);
    assert!(matches!(
        ingestor.ingest(&bluum_headers("evt_new", &body), &body),
        Ok(Ingested::Accepted { .. })
    ));
    drop(ingestor);
    inbox.close().unwrap();
}

#[test]
fn a_store_on_a_read_only_filesystem_is_refused_with_a_clear_error() {
    let dir = TempDir::new("read-only");
    let Some(mount) = Mount::tmpfs_or_skip(dir.path(), "32m", "a read-only store") else {
        return;
    };
    let store = mount.0.join("store");
    Inbox::open(&store).unwrap().close().unwrap();
    if let Err(why) = mount.read_only() {
        eprintln!("skipped: cannot remount read-only ({why})");
        return;
    }
    for path in [store.clone(), mount.0.join("new-store")] {
        let err = Inbox::open(&path).unwrap_err();
        assert!(matches!(err, OpenError::Io { .. }), "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains(&path.display().to_string())
                && message.contains("Read-only file system"),
            "{message}"
        );
    }
}
