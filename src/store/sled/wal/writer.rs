//! The appending end of the log: opening it where writing continues, batches
//! written and synced, segments sealed, rotated and removed.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::files::{
    FILE_MODE, SEGMENT_BYTES, create_dir_durable, create_segment, first_lsn_of, list_segments,
    reserve, segment_path, sync_dir,
};
use super::recover::{SegmentEnd, read_segment};

/// The appending end of the log. Only the group-commit leader touches it.
pub(crate) struct WalWriter {
    dir: PathBuf,
    file: File,
    path: PathBuf,
    len: u64,
    last_lsn: u64,
    /// Segments behind the active one, oldest first.
    sealed: Vec<PathBuf>,
    /// Bytes after a failed sync whose fate is unknown: zeroed and synced
    /// again before the next batch is written there.
    suspect_from: Option<u64>,
}

/// Opens (creating, durably) the log in `dir`. Reads only the active (last)
/// segment, to find where writing continues; returns the writer and the
/// paths of every segment, oldest first, for [`replay`](super::replay).
pub(crate) fn open(dir: &Path) -> io::Result<(WalWriter, Vec<PathBuf>)> {
    create_dir_durable(dir)?;
    let segments = list_segments(dir)?;
    let (first, path) = segments
        .last()
        .cloned()
        .unwrap_or_else(|| (1, segment_path(dir, 1)));
    let floor = first.saturating_sub(1);
    let mut last_lsn = floor;
    let end = if path.exists() {
        read_segment(&path, true, &mut last_lsn, &mut |_| Ok(()))?
    } else {
        SegmentEnd { len: 0 }
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(&path)?;
    fs::set_permissions(&path, fs::Permissions::from_mode(FILE_MODE))?;
    // Cut whatever follows the last intact frame (a torn batch), then reserve
    // the segment again: the space after `len` reads as zeros.
    file.set_len(end.len)?;
    reserve(&file);
    file.sync_all()?;
    sync_dir(dir)?;
    let paths: Vec<PathBuf> = segments.into_iter().map(|(_, p)| p).collect();
    let sealed = paths
        .iter()
        .filter(|p| **p != path)
        .cloned()
        .collect::<Vec<_>>();
    let writer = WalWriter {
        dir: dir.to_owned(),
        file,
        path,
        len: end.len,
        last_lsn,
        sealed,
        suspect_from: None,
    };
    let all = writer.segments();
    Ok((writer, all))
}

impl WalWriter {
    /// The LSN of the last record known to be in the log.
    pub(crate) fn last_lsn(&self) -> u64 {
        self.last_lsn
    }

    /// Writes a batch of frames (made durable by [`sync`](Self::sync)).
    ///
    /// On a write error (a full disk) whatever part of the batch reached the
    /// file is cut off again, so no half-written frame lies behind later batches.
    /// After a failed sync, the bytes whose fate is unknown are first zeroed
    /// and synced: a batch lost in the page cache cannot reappear later, and
    /// the next batch is written only once the disk answers again.
    pub(crate) fn append(&mut self, frames: &[u8], last_lsn: u64) -> io::Result<(u64, u64)> {
        if let Some(from) = self.suspect_from {
            let zeros = vec![0u8; usize::try_from(self.len.saturating_sub(from)).unwrap_or(0)];
            self.file.write_all_at(&zeros, from)?;
            self.file.sync_data()?;
            self.len = from;
            self.suspect_from = None;
        }
        if let Err(e) = self.file.write_all_at(frames, self.len) {
            let _ = self.file.set_len(self.len);
            reserve(&self.file);
            return Err(e);
        }
        let at = self.len;
        self.len += frames.len() as u64;
        self.last_lsn = last_lsn;
        Ok((self.segment(), at))
    }

    /// The active segment (by its first LSN).
    pub(crate) fn segment(&self) -> u64 {
        first_lsn_of(&self.path).unwrap_or(0)
    }

    /// Makes everything appended so far durable. On failure the last batch's
    /// bytes are suspect (see [`append`](Self::append)).
    pub(crate) fn sync(&mut self, batch_bytes: u64) -> io::Result<()> {
        let synced = self.file.sync_data();
        if synced.is_err() {
            self.suspect_from = Some(self.len.saturating_sub(batch_bytes));
        }
        synced
    }

    /// Seals the active segment (if it holds anything) and starts a new one.
    /// Call only between batches, after a sync.
    pub(crate) fn seal_active(&mut self) -> io::Result<()> {
        if self.len > 0 && self.suspect_from.is_none() {
            let (file, path) = create_segment(&self.dir, self.last_lsn + 1)?;
            self.file = file;
            self.len = 0;
            let old = std::mem::replace(&mut self.path, path);
            self.sealed.push(old);
        }
        Ok(())
    }

    /// Seals the active segment if it has grown past [`SEGMENT_BYTES`].
    pub(crate) fn maybe_rotate(&mut self) -> io::Result<()> {
        if self.len < SEGMENT_BYTES {
            return Ok(());
        }
        self.seal_active()
    }

    /// The oldest sealed segment, the compactor's next candidate.
    pub(crate) fn oldest_sealed(&self) -> Option<PathBuf> {
        self.sealed.first().cloned()
    }

    /// Every segment, oldest first (the active one last).
    pub(crate) fn segments(&self) -> Vec<PathBuf> {
        let mut all = self.sealed.clone();
        all.push(self.path.clone());
        all
    }

    /// How many segments are sealed.
    pub(crate) fn sealed_count(&self) -> usize {
        self.sealed.len()
    }

    /// Removes the oldest sealed segment — call only once what it still held
    /// is durable in a newer one — and makes the removal durable.
    pub(crate) fn remove_oldest(&mut self, path: &Path) -> io::Result<()> {
        if self.sealed.first().map(PathBuf::as_path) != Some(path) {
            return Ok(());
        }
        match fs::remove_file(path) {
            // Already gone is what this wanted.
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        self.sealed.remove(0);
        sync_dir(&self.dir)
    }

    /// Bytes in the log on disk.
    pub(crate) fn disk_bytes(&self) -> u64 {
        let sealed: u64 = self
            .sealed
            .iter()
            .filter_map(|s| fs::metadata(s).ok())
            .map(|m| m.len())
            .sum();
        sealed + self.len
    }

    /// The active segment's file, for tests that damage it.
    #[cfg(test)]
    pub(super) fn active_path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sled::wal::test_support::{all, batch, temp_dir};

    #[test]
    fn sealed_segments_stay_until_removed_oldest_first() {
        let dir = temp_dir("seal");
        {
            let (mut w, _) = open(&dir).unwrap();
            w.append(&batch(&[(1, b"one")]), 1).unwrap();
            w.sync(0).unwrap();
            w.seal_active().unwrap();
            w.append(&batch(&[(2, b"two")]), 2).unwrap();
            w.sync(0).unwrap();
            w.seal_active().unwrap();
            assert_eq!(w.sealed_count(), 2);
            let second = w.sealed[1].clone();
            w.remove_oldest(&second).unwrap();
            assert_eq!(w.sealed_count(), 2, "only the oldest may go");
            let oldest = w.oldest_sealed().unwrap();
            w.remove_oldest(&oldest).unwrap();
            assert_eq!(w.sealed_count(), 1);
        }
        let (w, segments) = open(&dir).unwrap();
        let lsns: Vec<u64> = all(&segments).unwrap().iter().map(|r| r.0).collect();
        assert_eq!(lsns, [2]);
        // An empty active segment still says where the LSNs continue.
        assert_eq!(w.last_lsn(), 2);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn files_are_private_and_directories_0700() {
        let dir = temp_dir("modes");
        let (w, _) = open(&dir.join("wal")).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("wal")), 0o700);
        assert_eq!(mode(&w.path), 0o600);
        fs::remove_dir_all(&dir).unwrap();
    }
}
