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

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Segments are reserved at this size; past it, a new one is started at the next batch.
pub(crate) const SEGMENT_BYTES: u64 = 16 * 1024 * 1024;
const HEADER: usize = 4 + 4 + 8;
/// The top bit of a frame's length word: the frame starts a batch.
const BATCH_START: u32 = 1 << 31;
/// No single record may exceed this: the largest body an ingestor takes plus
/// room for the record's other fields. A damaged length past it is not even
/// allocated for.
const MAX_FRAME: usize = crate::limits::MAX_BODY_LIMIT + 1024 * 1024;
/// Mode of every file the store creates: bodies and signature headers are private.
pub(crate) const FILE_MODE: u32 = 0o600;
/// Mode of every directory the store creates.
pub(crate) const DIR_MODE: u32 = 0o700;

/// The checksum state of a payload, computed before its LSN is known (outside
/// the ingest lock) and combined with the LSN in [`encode_frame`].
pub(crate) fn payload_crc(payload: &[u8]) -> crc32fast::Hasher {
    let mut crc = crc32fast::Hasher::new();
    crc.update(payload);
    crc
}

/// The checksum a frame carries: CRC-32 of the LSN's bytes, then the payload's.
fn frame_crc(lsn: u64, payload_crc: &crc32fast::Hasher) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&lsn.to_le_bytes());
    crc.combine(payload_crc);
    crc.finalize()
}

/// Appends one frame to `out`; `payload_crc` is [`payload_crc`] of `payload`.
pub(crate) fn encode_frame(
    out: &mut Vec<u8>,
    lsn: u64,
    payload: &[u8],
    payload_crc: &crc32fast::Hasher,
) {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX) & !BATCH_START;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&frame_crc(lsn, payload_crc).to_le_bytes());
    out.extend_from_slice(&lsn.to_le_bytes());
    out.extend_from_slice(payload);
}

/// Marks (or unmarks) the first frame of `frames` as the start of a batch.
pub(crate) fn mark_batch_start(frames: &mut [u8], start: bool) {
    if let Some(word) = frames.first_chunk_mut::<4>() {
        let len = u32::from_le_bytes(*word);
        let len = if start {
            len | BATCH_START
        } else {
            len & !BATCH_START
        };
        *word = len.to_le_bytes();
    }
}

/// A record read back from the log.
pub(crate) struct Recovered {
    pub(crate) lsn: u64,
    pub(crate) payload: Vec<u8>,
    /// Where its frame is.
    pub(crate) at: Location,
}

/// Where a frame lies in the log: its segment (by first LSN), byte offset
/// and length (header included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Location {
    pub(crate) segment: u64,
    pub(crate) offset: u64,
    pub(crate) len: u32,
}

impl Location {
    /// The locations of frames with payloads of `payload_lens` bytes,
    /// written one after the other from `offset` in `segment`.
    pub(crate) fn of_frames(
        segment: u64,
        offset: u64,
        payload_lens: impl Iterator<Item = usize>,
    ) -> impl Iterator<Item = Self> {
        let mut at = offset;
        payload_lens.map(move |len| {
            let frame = HEADER + len;
            let here = Self {
                segment,
                offset: at,
                len: u32::try_from(frame).unwrap_or(u32::MAX),
            };
            at += frame as u64;
            here
        })
    }
}

/// Reads the payload of the frame at `at` from `file` (its segment), checking
/// the frame's header and checksum.
pub(crate) fn read_frame(file: &File, at: Location) -> io::Result<(u64, Vec<u8>)> {
    let mut frame = vec![0u8; at.len as usize];
    file.read_exact_at(&mut frame, at.offset)?;
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the log frame at byte {} of segment {} does not match its index entry",
                at.offset, at.segment
            ),
        )
    };
    let header: &[u8; HEADER] = frame.first_chunk().ok_or_else(bad)?;
    let h = parse_header(header);
    let payload = frame.get(HEADER..).ok_or_else(bad)?;
    if h.len != payload.len() || frame_crc(h.lsn, &payload_crc(payload)) != h.crc {
        return Err(bad());
    }
    Ok((h.lsn, payload.to_vec()))
}

/// The path of the segment whose first LSN is `first_lsn`.
pub(crate) fn segment_file(dir: &Path, first_lsn: u64) -> PathBuf {
    segment_path(dir, first_lsn)
}

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

fn segment_path(dir: &Path, first_lsn: u64) -> PathBuf {
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
fn list_segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
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

/// Opens (creating, durably) the log in `dir`. Reads only the active (last)
/// segment, to find where writing continues; returns the writer and the
/// paths of every segment, oldest first, for [`replay`].
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

/// Streams every intact record of `segments` (oldest first) to `each`, in LSN
/// order. Only the last segment may end in a torn batch; damage anywhere else
/// is [`io::ErrorKind::InvalidData`].
pub(crate) fn replay(
    segments: &[PathBuf],
    each: &mut dyn FnMut(Recovered) -> io::Result<()>,
) -> io::Result<u64> {
    let mut last_lsn = 0;
    for (i, path) in segments.iter().enumerate() {
        if let Some(first) = first_lsn_of(path) {
            last_lsn = last_lsn.max(first.saturating_sub(1));
        }
        read_segment(path, i + 1 == segments.len(), &mut last_lsn, each)?;
    }
    Ok(last_lsn)
}

/// Every record of a sealed segment; damage is [`io::ErrorKind::InvalidData`].
pub(crate) fn read_sealed(path: &Path) -> io::Result<Vec<Recovered>> {
    let mut last_lsn = first_lsn_of(path).unwrap_or(1).saturating_sub(1);
    let mut records = Vec::new();
    read_segment(path, false, &mut last_lsn, &mut |r| {
        records.push(r);
        Ok(())
    })?;
    Ok(records)
}

/// Reserves [`SEGMENT_BYTES`] for `file`. Best effort: where the filesystem
/// cannot (or the disk is full), writes simply extend the file.
fn reserve(file: &File) {
    let _ = rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, SEGMENT_BYTES);
}

/// Creates a new, reserved segment, durable with its directory entry.
fn create_segment(dir: &Path, first_lsn: u64) -> io::Result<(File, PathBuf)> {
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

/// Where reading a segment stopped.
struct SegmentEnd {
    /// Bytes taken by the intact frames.
    len: u64,
}

fn damaged(path: &Path, at: u64, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "log segment {} is damaged at byte {at}: {what}",
            path.display()
        ),
    )
}

/// One frame's header.
struct Header {
    len: usize,
    crc: u32,
    lsn: u64,
    batch_start: bool,
}

fn parse_header(bytes: &[u8; HEADER]) -> Header {
    let word = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let mut lsn = [0u8; 8];
    lsn.copy_from_slice(&bytes[8..16]);
    Header {
        len: (word(0) & !BATCH_START) as usize,
        crc: word(4),
        lsn: u64::from_le_bytes(lsn),
        batch_start: word(0) & BATCH_START != 0,
    }
}

/// Reads the intact frames of one segment, streaming, handing each to `each`.
/// Where the intact frames end: in the `last` segment, a torn batch is cut
/// there unless an intact later batch follows (corruption); in any other
/// segment anything but the reserved zeros or the file's end is corruption.
fn read_segment(
    path: &Path,
    last: bool,
    last_lsn: &mut u64,
    each: &mut dyn FnMut(Recovered) -> io::Result<()>,
) -> io::Result<SegmentEnd> {
    let mut reader = BufReader::with_capacity(1 << 20, File::open(path)?);
    let segment = first_lsn_of(path).unwrap_or(0);
    let mut at = 0u64;
    loop {
        let mut header = [0u8; HEADER];
        let got = read_full(&mut reader, &mut header)?;
        if got == 0 || (got == HEADER && header.iter().all(|&b| b == 0)) {
            if last {
                probe_after_tear(path, at, *last_lsn)?;
            }
            return Ok(SegmentEnd { len: at });
        }
        let bad = |what: &str| -> io::Result<SegmentEnd> {
            if last {
                probe_after_tear(path, at, *last_lsn)?;
                Ok(SegmentEnd { len: at })
            } else {
                Err(damaged(path, at, what))
            }
        };
        if got < HEADER {
            return bad("a frame header is cut short");
        }
        let h = parse_header(&header);
        if h.len > MAX_FRAME || h.lsn <= *last_lsn {
            return bad("a frame header is invalid");
        }
        let mut payload = vec![0u8; h.len];
        if read_full(&mut reader, &mut payload)? < h.len {
            return bad("a frame is cut short");
        }
        if frame_crc(h.lsn, &payload_crc(&payload)) != h.crc {
            return bad("a frame fails its checksum");
        }
        *last_lsn = h.lsn;
        let location = Location {
            segment,
            offset: at,
            len: u32::try_from(HEADER + h.len).unwrap_or(u32::MAX),
        };
        at += (HEADER + h.len) as u64;
        each(Recovered {
            lsn: h.lsn,
            payload,
            at: location,
        })?;
    }
}

/// After the intact frames of the active segment end at `from`: an intact
/// frame that starts a later batch anywhere behind that point means durable
/// data was damaged, not a batch torn by a crash.
fn probe_after_tear(path: &Path, from: u64, last_lsn: u64) -> io::Result<()> {
    // Only what follows the intact frames is looked at (at most a segment).
    let mut file = File::open(path)?;
    io::Seek::seek(&mut file, io::SeekFrom::Start(from))?;
    let mut rest = Vec::new();
    file.take(SEGMENT_BYTES + MAX_FRAME as u64)
        .read_to_end(&mut rest)?;
    let rest = rest.as_slice();
    // The batch torn at `from` (if any) started at or before it; its frames
    // carry no start mark, so skip the first position. The reserved zeros
    // are skipped a word at a time.
    let mut offset = 1;
    while offset + HEADER <= rest.len() {
        let Some(head) = rest.get(offset..offset + HEADER) else {
            break;
        };
        if head[3..11] == [0u8; 8] {
            offset += 8;
            continue;
        }
        offset += 1;
        let offset = offset - 1;
        // Cheap filters first: the start mark, a plausible length and LSN.
        if head[3] & 0x80 == 0 {
            continue;
        }
        let mut arr = [0u8; HEADER];
        arr.copy_from_slice(head);
        let h = parse_header(&arr);
        if !h.batch_start || h.len > MAX_FRAME || h.lsn <= last_lsn || h.lsn > last_lsn + (1 << 32)
        {
            continue;
        }
        let Some(payload) = rest.get(offset + HEADER..offset + HEADER + h.len) else {
            continue;
        };
        if frame_crc(h.lsn, &payload_crc(payload)) == h.crc {
            return Err(damaged(
                path,
                from,
                &format!(
                    "a bad frame is followed by an intact later batch (LSN {} at byte {})",
                    h.lsn,
                    from + offset as u64
                ),
            ));
        }
    }
    Ok(())
}

/// Reads until `buf` is full or the file ends; returns how much was read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("wal-test-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn frame(lsn: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(&mut out, lsn, payload, &payload_crc(payload));
        out
    }

    fn batch(frames: &[(u64, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (lsn, payload) in frames {
            out.extend(frame(*lsn, payload));
        }
        mark_batch_start(&mut out, true);
        out
    }

    fn all(segments: &[PathBuf]) -> io::Result<Vec<(u64, Vec<u8>)>> {
        let mut got = Vec::new();
        replay(segments, &mut |r| {
            got.push((r.lsn, r.payload));
            Ok(())
        })?;
        Ok(got)
    }

    #[test]
    fn appended_records_come_back_and_a_torn_tail_is_cut() {
        let dir = temp_dir("torn");
        {
            let (mut w, segments) = open(&dir).unwrap();
            assert!(all(&segments).unwrap().is_empty());
            w.append(&batch(&[(1, b"one"), (2, b"two")]), 2).unwrap();
            w.sync(0).unwrap();
            // A crash halfway through the next batch.
            let torn = batch(&[(3, b"three")]);
            w.append(&torn[..torn.len() - 2], 3).unwrap();
            w.sync(0).unwrap();
        }
        let (mut w, segments) = open(&dir).unwrap();
        assert_eq!(
            all(&segments).unwrap(),
            [(1, b"one".to_vec()), (2, b"two".to_vec())]
        );
        assert_eq!(w.last_lsn(), 2);
        w.append(&batch(&[(3, b"again")]), 3).unwrap();
        w.sync(0).unwrap();
        drop(w);
        let (_, segments) = open(&dir).unwrap();
        let got = all(&segments).unwrap();
        assert_eq!(got.last().map(|r| r.1.clone()), Some(b"again".to_vec()));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_flipped_bit_in_the_last_batch_ends_the_log_there() {
        let dir = temp_dir("crc");
        {
            let (mut w, _) = open(&dir).unwrap();
            let mut frames = batch(&[(1, b"one"), (2, b"two")]);
            let last = frames.len() - 1;
            frames[last] ^= 1;
            w.append(&frames, 2).unwrap();
            w.sync(0).unwrap();
        }
        let (_, segments) = open(&dir).unwrap();
        assert_eq!(all(&segments).unwrap().len(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A damaged frame with an intact later batch behind it was durable when
    /// it was damaged: reported with its place, never cut off silently.
    #[test]
    fn a_bad_frame_followed_by_a_later_batch_is_corruption() {
        let dir = temp_dir("midlog");
        let path = {
            let (mut w, _) = open(&dir).unwrap();
            w.append(&batch(&[(1, b"one"), (2, b"two")]), 2).unwrap();
            w.sync(0).unwrap();
            w.append(&batch(&[(3, b"three")]), 3).unwrap();
            w.sync(0).unwrap();
            w.path.clone()
        };
        let mut bytes = fs::read(&path).unwrap();
        bytes[HEADER + 3 + HEADER + 1] ^= 0xff; // inside frame 2's payload
        fs::write(&path, &bytes).unwrap();
        let err = open(&dir).err().expect("must not open");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let text = err.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains(&format!("byte {}", HEADER + 3)), "{text}");
        fs::remove_dir_all(&dir).unwrap();
    }

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
    fn damage_inside_a_sealed_segment_is_an_error_not_a_silent_cut() {
        let dir = temp_dir("damaged");
        let first = {
            let (mut w, _) = open(&dir).unwrap();
            w.append(&batch(&[(1, b"one"), (2, b"two")]), 2).unwrap();
            w.sync(0).unwrap();
            let first = w.path.clone();
            w.seal_active().unwrap();
            w.append(&batch(&[(3, b"three")]), 3).unwrap();
            w.sync(0).unwrap();
            first
        };
        let mut bytes = fs::read(&first).unwrap();
        bytes[HEADER + 3 + HEADER + 1] ^= 0xff;
        fs::write(&first, &bytes).unwrap();
        let (_, segments) = open(&dir).unwrap();
        let err = all(&segments).expect_err("a damaged sealed segment must not replay");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(
            read_sealed(&first).err().map(|e| e.kind()),
            Some(io::ErrorKind::InvalidData)
        );
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
