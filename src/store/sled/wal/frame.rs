//! A frame's bytes: its header, its checksum, encoding frames into a batch
//! and reading one back from where the index says it lies.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Bytes in a frame's header: length word, checksum, LSN.
pub(super) const HEADER: usize = 4 + 4 + 8;
/// The top bit of a frame's length word: the frame starts a batch.
const BATCH_START: u32 = 1 << 31;
/// No single record may exceed this: the largest body an ingestor takes plus
/// room for the record's other fields. A damaged length past it is not even
/// allocated for.
pub(super) const MAX_FRAME: usize = crate::limits::MAX_BODY_LIMIT + 1024 * 1024;

/// The checksum state of a payload, computed before its LSN is known (outside
/// the ingest lock) and combined with the LSN in [`encode_frame`].
pub(crate) fn payload_crc(payload: &[u8]) -> crc32fast::Hasher {
    let mut crc = crc32fast::Hasher::new();
    crc.update(payload);
    crc
}

/// The checksum a frame carries: CRC-32 of the LSN's bytes, then the payload's.
pub(super) fn frame_crc(lsn: u64, payload_crc: &crc32fast::Hasher) -> u32 {
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

/// One frame's header.
pub(super) struct Header {
    pub(super) len: usize,
    pub(super) crc: u32,
    pub(super) lsn: u64,
    pub(super) batch_start: bool,
}

pub(super) fn parse_header(bytes: &[u8; HEADER]) -> Header {
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
