//! A power-cut file system for tests: an in-memory FUSE file system where
//! writes are kept in memory and become durable only when synced, and a
//! [`PowerCut::cut`] keeps only what was durable.
//!
//! - A file's writes (and size changes, `fallocate`) are durable after an
//!   `fsync` or `fdatasync` of that file, or at once on a file opened with
//!   `O_SYNC` / `O_DSYNC`. `sync_file_range`, `syncfs` and `close` make
//!   nothing durable (the first two reach no handler, `close` only `flush`).
//! - Directory entries (create, unlink, rename, mkdir, rmdir, link) are
//!   durable after an `fsync` of their directory ([`DirSync::Posix`]), or
//!   after any sync anywhere ([`DirSync::Ext4Like`], as ext4's journal
//!   commits every pending metadata change with any `fsync`).
//! - A cut freezes the file system (every later call fails with `EIO`) and
//!   keeps the durable image; with [`Model::survival`] above zero, each
//!   unsynced write survives the cut with that probability (seeded).
//! - Permissions, owners and times are not modelled: they are kept as set.
//!
//! Mounting needs root and `/dev/fuse` (no libfuse, no `fusermount`): the
//! mount is made with mount(2) in a private mount namespace of the calling
//! thread ([`prepare`]), so a test that dies leaves no mount behind.
//!
//! ```no_run
//! use powercut::{Image, Model, PowerCut};
//!
//! powercut::prepare().expect("root and /dev/fuse");
//! let dir = std::env::temp_dir().join("powercut-doc");
//! std::fs::create_dir_all(&dir).unwrap();
//! let fs = PowerCut::mount(&dir, &Image::empty(), Model::posix(), 1).unwrap();
//! std::fs::write(dir.join("a"), b"lost").unwrap();
//! let image = fs.cut();
//! fs.unmount().unwrap();
//! assert!(image.file("a").is_none());
//! ```

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

mod fuse;
mod model;

use model::State;

/// When directory entries become durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirSync {
    /// Only by an `fsync` of the directory holding them (what POSIX promises).
    Posix,
    /// By any `fsync`, `fdatasync` or `fsyncdir` anywhere (ext4's journal).
    Ext4Like,
}

/// What survives a cut.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Model {
    /// When directory entries become durable.
    pub dirs: DirSync,
    /// The probability that each unsynced write survives the cut (0 = none).
    pub survival: f64,
}

impl Model {
    /// POSIX directories, every unsynced write lost.
    pub fn posix() -> Self {
        Self {
            dirs: DirSync::Posix,
            survival: 0.0,
        }
    }

    /// ext4-like directories, every unsynced write lost.
    pub fn ext4_like() -> Self {
        Self {
            dirs: DirSync::Ext4Like,
            survival: 0.0,
        }
    }

    /// The same, with each unsynced write surviving with probability `p`.
    pub fn surviving(self, p: f64) -> Self {
        Self {
            survival: p,
            ..self
        }
    }

    /// A short name: `posix`, `posix-p0.5`, `ext4`, `ext4-p0.5`.
    pub fn name(&self) -> String {
        let dirs = match self.dirs {
            DirSync::Posix => "posix",
            DirSync::Ext4Like => "ext4",
        };
        if self.survival > 0.0 {
            format!("{dirs}-p{}", self.survival)
        } else {
            dirs.to_owned()
        }
    }
}

/// Counts of what the file system was asked to do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// `fsync` calls on files.
    pub fsyncs: u64,
    /// `fdatasync` calls on files.
    pub fdatasyncs: u64,
    /// `fsync` calls on directories.
    pub fsyncdirs: u64,
    /// Write requests.
    pub writes: u64,
    /// `fallocate` requests.
    pub fallocates: u64,
    /// Unsynced changes kept by the cut (see [`Model::survival`]).
    pub survived: u64,
    /// Unsynced changes lost by the cut.
    pub dropped: u64,
}

impl SyncStats {
    /// Every sync request: `fsync`, `fdatasync` and directory `fsync`.
    pub fn syncs(&self) -> u64 {
        self.fsyncs + self.fdatasyncs + self.fsyncdirs
    }
}

/// A durable image: what a disk holds after a cut, to be mounted again.
#[derive(Debug, Clone)]
pub struct Image {
    pub(crate) nodes: BTreeMap<u64, ImageNode>,
}

#[derive(Debug, Clone)]
pub(crate) struct ImageNode {
    pub(crate) kind: ImageKind,
    pub(crate) perm: u16,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) mtime: SystemTime,
}

#[derive(Debug, Clone)]
pub(crate) enum ImageKind {
    File(Vec<u8>),
    Dir(BTreeMap<OsString, u64>),
}

impl Default for Image {
    fn default() -> Self {
        Self::empty()
    }
}

impl Image {
    /// An empty file system (its root directory only).
    pub fn empty() -> Self {
        let root = ImageNode {
            kind: ImageKind::Dir(BTreeMap::new()),
            perm: 0o755,
            uid: 0,
            gid: 0,
            mtime: SystemTime::now(),
        };
        Self {
            nodes: BTreeMap::from([(model::ROOT, root)]),
        }
    }

    fn find(&self, path: &str) -> Option<&ImageNode> {
        let mut node = self.nodes.get(&model::ROOT)?;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            let ImageKind::Dir(entries) = &node.kind else {
                return None;
            };
            node = self
                .nodes
                .get(entries.get(OsString::from(part).as_os_str())?)?;
        }
        Some(node)
    }

    /// The content of the file at `path` (relative to the mount), if any.
    pub fn file(&self, path: &str) -> Option<&[u8]> {
        match &self.find(path)?.kind {
            ImageKind::File(data) => Some(data),
            ImageKind::Dir(_) => None,
        }
    }

    /// Whether `path` is a directory in the image.
    pub fn is_dir(&self, path: &str) -> bool {
        matches!(self.find(path).map(|n| &n.kind), Some(ImageKind::Dir(_)))
    }

    /// Every path in the image, directories ending in `/`, for messages.
    pub fn paths(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![(String::new(), model::ROOT)];
        while let Some((prefix, ino)) = stack.pop() {
            if let Some(ImageNode {
                kind: ImageKind::Dir(entries),
                ..
            }) = self.nodes.get(&ino)
            {
                for (name, &child) in entries {
                    let path = format!("{prefix}{}", name.to_string_lossy());
                    match self.nodes.get(&child).map(|n| &n.kind) {
                        Some(ImageKind::Dir(_)) => {
                            out.push(format!("{path}/"));
                            stack.push((format!("{path}/"), child));
                        }
                        _ => out.push(path),
                    }
                }
            }
        }
        out.sort();
        out
    }

    /// Bytes of file content held.
    pub fn bytes(&self) -> u64 {
        self.nodes
            .values()
            .map(|n| match &n.kind {
                ImageKind::File(d) => d.len() as u64,
                ImageKind::Dir(_) => 0,
            })
            .sum()
    }
}

pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    pub(crate) cut_happened: Condvar,
}

/// A mounted power-cut file system. Unmount it with [`PowerCut::unmount`]
/// (dropping it unmounts too) once nothing uses it any more: kill and wait
/// for the processes that had files open on it first.
pub struct PowerCut {
    shared: Arc<Shared>,
    session: Option<fuser::BackgroundSession>,
    mountpoint: PathBuf,
}

impl std::fmt::Debug for PowerCut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PowerCut")
            .field("mountpoint", &self.mountpoint)
            .finish_non_exhaustive()
    }
}

impl PowerCut {
    /// Mounts a file system holding `image` (all of it durable) at
    /// `mountpoint`, an existing directory. `seed` drives which unsynced
    /// writes survive the cut. Call [`prepare`] on this thread first.
    pub fn mount(mountpoint: &Path, image: &Image, model: Model, seed: u64) -> io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(image, model, seed)),
            cut_happened: Condvar::new(),
        });
        let mut config = fuser::Config::default();
        config.mount_options = vec![
            fuser::MountOption::FSName("powercut".to_owned()),
            fuser::MountOption::NoAtime,
        ];
        let fs = fuse::Fs {
            shared: Arc::clone(&shared),
        };
        let session = fuser::spawn_mount(fs, mountpoint, &config)?;
        Ok(Self {
            shared,
            session: Some(session),
            mountpoint: mountpoint.to_owned(),
        })
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Cuts the power now: every later call fails with `EIO`; returns the
    /// durable image (the same one if already cut). Atomic with respect to
    /// file system calls: each one happened wholly before it, or fails.
    pub fn cut(&self) -> Image {
        let image = self.state().cut_now();
        self.shared.cut_happened.notify_all();
        image
    }

    /// Arms a cut at the `n`-th sync request from now (1 = the next one):
    /// that request makes nothing durable and fails with `EIO`.
    pub fn cut_at_sync(&self, n: u64) {
        self.state().arm(n.max(1));
    }

    /// Waits up to `timeout` for the power to have been cut; the image if so.
    pub fn wait_cut(&self, timeout: Duration) -> Option<Image> {
        let deadline = Instant::now() + timeout;
        let mut state = self.state();
        loop {
            if let Some(image) = &state.cut {
                return Some(image.clone());
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            state = self
                .shared
                .cut_happened
                .wait_timeout(state, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    /// Whether the power has been cut.
    pub fn is_cut(&self) -> bool {
        self.state().cut.is_some()
    }

    /// What the file system was asked to do so far.
    pub fn stats(&self) -> SyncStats {
        self.state().stats
    }

    /// Unmounts it. Fails (and detaches it lazily) if something still uses it.
    pub fn unmount(mut self) -> io::Result<()> {
        self.unmount_inner()
    }

    fn unmount_inner(&mut self) -> io::Result<()> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        match session.umount_and_join() {
            Ok(()) => Ok(()),
            Err(e) => {
                // Still busy: detach it, so the directory is usable again;
                // the kernel ends the connection once the last user is gone.
                let _ = nix::mount::umount2(&self.mountpoint, nix::mount::MntFlags::MNT_DETACH);
                Err(e)
            }
        }
    }
}

impl Drop for PowerCut {
    fn drop(&mut self) {
        let _ = self.unmount_inner();
    }
}

/// Why power-cut tests cannot run here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable(pub String);

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unavailable {}

/// Readies the calling thread for [`PowerCut::mount`]: checks that
/// `/dev/fuse` can be opened, then moves this thread (and every process and
/// thread it starts from now on) into a private mount namespace, so its
/// mounts are seen by nothing else and vanish with it. Calling it again on
/// the same thread makes another namespace, harmlessly.
pub fn prepare() -> Result<(), Unavailable> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .map_err(|e| Unavailable(format!("cannot open /dev/fuse: {e}")))?;
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).map_err(|e| {
        Unavailable(format!(
            "cannot make a private mount namespace (unshare: {e}; needs root)"
        ))
    })?;
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| Unavailable(format!("cannot make mounts private: {e}")))?;
    Ok(())
}
