//! Migration of a store of the earlier layout (layout 1: sled was the record).

use std::path::{Path, PathBuf};

use super::Settings;
use super::clean::write_durably;
use super::compact;
use super::open::{FORMAT_FILE, FORMAT_TEXT, OpenFailure, open_sled};
use super::trees::{Applied, Trees, apply_batch, stored_applied};
use super::wal::{self, WalWriter};
use crate::store::record;

/// Brings a store written by an earlier version (whose record was sled, its
/// log only what sled had not flushed yet) to layout 2: sled is opened as it
/// is, the log's tail applied to it, then every stored event (with its
/// progress) and every dedup marker is written into the log and synced, and
/// only then is the store marked as layout 2. Interrupted, it starts over
/// at the next open (applying and carrying are idempotent).
pub(super) fn migrate(
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
