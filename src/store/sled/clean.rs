//! What a clean close leaves: sled synced whole, then the `clean` file with
//! the counts, which the next open trusts instead of rebuilding sled.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::wal;
use crate::store::StoreCounts;

/// The file a clean close leaves: sled is complete and synced up to its LSN.
pub(super) const CLEAN_FILE: &str = "clean";
/// The first bytes of [`CLEAN_FILE`].
const CLEAN_MAGIC: &[u8; 8] = b"WIclean1";

/// The store's counts as of log position `lsn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SavedCounts {
    pub(super) lsn: u64,
    pub(super) counts: StoreCounts,
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

impl SavedCounts {
    /// The clean file's bytes: magic, the counts, a CRC-32 of both.
    pub(super) fn to_file(self) -> Vec<u8> {
        let mut out = CLEAN_MAGIC.to_vec();
        out.extend_from_slice(&self.encode());
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    pub(super) fn from_file(bytes: &[u8]) -> Option<Self> {
        let (body, crc) = bytes.split_last_chunk::<4>()?;
        let counts = body.strip_prefix(CLEAN_MAGIC.as_slice())?;
        (crc32fast::hash(body) == u32::from_le_bytes(*crc))
            .then(|| Self::decode(counts))
            .flatten()
    }
}

/// Reads and removes the clean file, durably: from here on sled will be
/// written, so a crash must find no clean file.
pub(super) fn take_clean(dir: &Path) -> std::io::Result<Option<SavedCounts>> {
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
pub(super) fn write_clean(dir: &Path, saved: SavedCounts) -> std::io::Result<()> {
    write_durably(dir, CLEAN_FILE, &saved.to_file())
}

/// Writes `name` in `dir` whole or not at all: a temporary file, `fsync`,
/// rename, `fsync` of the directory.
pub(super) fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
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

/// `fsync`s every file and directory under `dir` (sled's own `flush` uses
/// `sync_file_range`, and it never syncs its `conf` or directories), then
/// `dir`, and makes its files private.
pub(super) fn sync_tree(dir: &Path) -> std::io::Result<()> {
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
