//! The log's files on disk: segment names and listing, new segments
//! reserved whole, private modes and directories made durable.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Segments are reserved at this size; past it, a new one is started at the next batch.
pub(crate) const SEGMENT_BYTES: u64 = 16 * 1024 * 1024;
/// Mode of every file the store creates: bodies and signature headers are private.
pub(crate) const FILE_MODE: u32 = 0o600;
/// Mode of every directory the store creates.
pub(crate) const DIR_MODE: u32 = 0o700;

/// The path of the segment whose first LSN is `first_lsn`.
pub(crate) fn segment_file(dir: &Path, first_lsn: u64) -> PathBuf {
    segment_path(dir, first_lsn)
}

pub(super) fn segment_path(dir: &Path, first_lsn: u64) -> PathBuf {
    dir.join(format!("{first_lsn:020}.wal"))
}

pub(crate) fn first_lsn_of(path: &Path) -> Option<u64> {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".wal"))
        .and_then(|n| n.parse::<u64>().ok())
}

/// `fsync`s a directory, making the entries created or removed in it durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dir` (mode 0700) and every missing parent, each made durable by an
/// `fsync` of its parent before it is relied on; an existing `dir` gets mode
/// 0700. Returns whether anything was created.
pub(crate) fn create_dir_durable(dir: &Path) -> io::Result<bool> {
    if dir.is_dir() {
        fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))?;
        return Ok(false);
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_durable_parent(parent)?;
    }
    match fs::DirBuilder::new().mode(DIR_MODE).create(dir) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        other => other?,
    }
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    sync_dir(parent)?;
    Ok(true)
}

/// Like [`create_dir_durable`] for a parent: created if missing (0700), left
/// alone (its mode too) if it exists.
fn create_dir_durable_parent(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    create_dir_durable(dir).map(|_| ())
}

/// The log's segments in `dir`, oldest first.
pub(super) fn list_segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if let Some(first) = first_lsn_of(&path) {
            segments.push((first, path));
        }
    }
    segments.sort();
    Ok(segments)
}

/// Reserves [`SEGMENT_BYTES`] for `file`. Best effort: where the filesystem
/// cannot (or the disk is full), writes simply extend the file.
pub(super) fn reserve(file: &File) {
    let _ = rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, SEGMENT_BYTES);
}

/// Creates a new, reserved segment, durable with its directory entry.
pub(super) fn create_segment(dir: &Path, first_lsn: u64) -> io::Result<(File, PathBuf)> {
    let path = segment_path(dir, first_lsn);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(&path)?;
    reserve(&file);
    file.sync_all()?;
    sync_dir(dir)?;
    Ok((file, path))
}
