//! The log: the store's record. Every accepted event and every outcome is a
//! frame here, made durable (`fdatasync`, with its directory entry fsynced)
//! before anything is acknowledged; sled is only an index rebuilt from it.
//!
//! Records are appended in log-sequence-number (LSN) order to segment files
//! named after their first LSN (`wal/00000000000000000001.wal`). Each frame is
//!
//! ```text
//! [len: u32 LE, top bit = first frame of a batch][crc32 of lsn+payload: u32 LE][lsn: u64 LE][payload: len bytes]
//! ```
//!
//! A batch of frames is written with one `pwrite` and made durable with one
//! `fdatasync` (group commit). Segments are reserved whole when created
//! (`fallocate`), so a batch overwrites blocks the file already owns: the
//! `fdatasync` then has no file size or block map to journal.
//!
//! Reading stops at the first frame that is short, fails its checksum or does
//! not carry a higher LSN — the reserved zeros after the last batch, or a torn
//! tail from a crash mid-write. Only one batch can be unsynced at a crash (the
//! next is written only after the previous one's sync returned), so an intact
//! frame that *starts a later batch* behind a bad one means the bad one was
//! damaged after it was durable: that is corruption, reported with the segment
//! and offset, never silently cut off. A segment other than the last must end
//! cleanly for the same reason.
//!
//! Segments are never deleted because sled has synced (sled 0.34 can lose what
//! it had synced): the compactor first copies what an old segment still holds
//! into the active one, syncs it, and only then removes the old file.

mod files;
mod frame;
mod recover;
mod writer;

pub(crate) use files::{
    DIR_MODE, FILE_MODE, create_dir_durable, first_lsn_of, segment_file, sync_dir,
};
pub(crate) use frame::{Location, encode_frame, mark_batch_start, payload_crc, read_frame};
pub(crate) use recover::{Recovered, read_sealed, replay};
pub(crate) use writer::{WalWriter, open};

/// What the log's unit tests share: scratch directories and batches of frames.
#[cfg(test)]
mod test_support {
    use std::fs;
    use std::io;
    use std::path::PathBuf;

    use super::{encode_frame, mark_batch_start, payload_crc, replay};

    pub(super) fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("wal-test-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn frame(lsn: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(&mut out, lsn, payload, &payload_crc(payload));
        out
    }

    pub(super) fn batch(frames: &[(u64, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (lsn, payload) in frames {
            out.extend(frame(*lsn, payload));
        }
        mark_batch_start(&mut out, true);
        out
    }

    pub(super) fn all(segments: &[PathBuf]) -> io::Result<Vec<(u64, Vec<u8>)>> {
        let mut got = Vec::new();
        replay(segments, &mut |r| {
            got.push((r.lsn, r.payload));
            Ok(())
        })?;
        Ok(got)
    }
}
