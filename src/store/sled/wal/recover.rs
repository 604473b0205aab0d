//! Reading the log back: replay at open, sealed segments for the compactor,
//! where a torn tail is cut, and damage reported with its segment and offset.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use super::files::{SEGMENT_BYTES, first_lsn_of};
use super::frame::{HEADER, Location, MAX_FRAME, frame_crc, parse_header, payload_crc};

/// A record read back from the log.
pub(crate) struct Recovered {
    pub(crate) lsn: u64,
    pub(crate) payload: Vec<u8>,
    /// Where its frame is.
    pub(crate) at: Location,
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

/// Where reading a segment stopped.
pub(super) struct SegmentEnd {
    /// Bytes taken by the intact frames.
    pub(super) len: u64,
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

/// Reads the intact frames of one segment, streaming, handing each to `each`.
/// Where the intact frames end: in the `last` segment, a torn batch is cut
/// there unless an intact later batch follows (corruption); in any other
/// segment anything but the reserved zeros or the file's end is corruption.
pub(super) fn read_segment(
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

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::store::sled::wal::open;
    use crate::store::sled::wal::test_support::{all, batch, temp_dir};

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
            w.active_path().to_owned()
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
    fn damage_inside_a_sealed_segment_is_an_error_not_a_silent_cut() {
        let dir = temp_dir("damaged");
        let first = {
            let (mut w, _) = open(&dir).unwrap();
            w.append(&batch(&[(1, b"one"), (2, b"two")]), 2).unwrap();
            w.sync(0).unwrap();
            let first = w.active_path().to_owned();
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
}
