//! On-disk records and keys, versioned by a leading format byte.
//!
//! | tree | key | value |
//! |---|---|---|
//! | `dedup` | source, `0x00`, event id | seq (u64 BE), accepted at (ms, i64 BE) |
//! | `events` | seq (u64 BE) | format byte + bincode [`EventRecord`] |
//! | `expiry` | accepted at (ms, sign-flipped BE) + first seq of the batch | format byte + bincode list of dedup keys |
//! | `meta` | name | value |
//! | `progress` | seq (u64 BE) | format byte + bincode [`Progress`] |
//! | `due` | next attempt (ms, sign-flipped BE) + seq | empty |
//! | `dead` | seq (u64 BE) | empty |
//!
//! `events` holds the events not yet handled (or dead), in acceptance order
//! (seq order); completing an event deletes it there (its dedup marker stays).
//! An event has a `progress` entry once an attempt failed; `due` indexes the
//! retrying ones by next attempt time and `dead` the dead letters.
//! `expiry` has one entry per applied batch, not per event, so the retention
//! index costs a fraction of an insert per event. Big-endian, sign-flipped
//! integers make sled's byte order the numeric order, so range scans walk by time.

use bincode::{Decode, Encode};

/// The current record format. Readers refuse formats they do not know rather
/// than misread them.
pub(crate) const FORMAT: u8 = 1;

/// WAL payload kind: an accepted event.
pub(crate) const KIND_ACCEPT: u8 = 1;
/// WAL payload kind: an event is done with (handled, or a dead letter purged):
/// its body and progress go, its dedup marker stays.
pub(crate) const KIND_FORGET: u8 = 2;
/// WAL payload kind: an event's new [`Progress`] (a failed attempt, a dead
/// letter, a replay). Replaying one sets, never adds, so replay is idempotent.
pub(crate) const KIND_PROGRESS: u8 = 3;

/// How many failed attempts an event's history keeps (the latest).
pub(crate) const MAX_HISTORY: usize = 16;
/// How many bytes of one error message the history keeps.
pub(crate) const MAX_ERROR_LEN: usize = 1024;

/// Where an event that failed at least once stands.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub(crate) struct Progress {
    /// Attempts made (since the last replay).
    pub(crate) attempts: u32,
    /// When the next attempt is due (ms since the epoch); meaningless when dead.
    pub(crate) next_at_ms: i64,
    /// When it became a dead letter, if it is one.
    pub(crate) dead_at_ms: Option<i64>,
    /// The latest failures, oldest first (at most [`MAX_HISTORY`]).
    pub(crate) errors: Vec<Failure>,
}

/// One failed attempt.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub(crate) struct Failure {
    pub(crate) attempt: u32,
    pub(crate) at_ms: i64,
    pub(crate) error: String,
}

impl Progress {
    /// No attempt made yet, due at `now_ms`.
    pub(crate) fn new(now_ms: i64) -> Self {
        Self {
            attempts: 0,
            next_at_ms: now_ms,
            dead_at_ms: None,
            errors: Vec::new(),
        }
    }

    /// Appends a failure, keeping the history and each message bounded.
    pub(crate) fn push_failure(&mut self, attempt: u32, at_ms: i64, error: &str) {
        let mut end = error.len().min(MAX_ERROR_LEN);
        while !error.is_char_boundary(end) {
            end -= 1;
        }
        if self.errors.len() >= MAX_HISTORY {
            self.errors.remove(0);
        }
        self.errors.push(Failure {
            attempt,
            at_ms,
            error: error[..end].to_owned(),
        });
    }
}

/// The WAL payload that forgets event `seq`.
pub(crate) fn forget_payload(seq: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(9);
    out.push(KIND_FORGET);
    out.extend_from_slice(&seq.to_be_bytes());
    out
}

/// The WAL payload that sets event `seq`'s progress.
pub(crate) fn progress_payload(seq: u64, progress: &Progress) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(KIND_PROGRESS);
    out.extend_from_slice(&seq.to_be_bytes());
    encode_progress_into(progress, &mut out);
    out
}

/// A `progress` value (format byte + bincode), as [`decode_progress`] reads it.
#[cfg(feature = "postgres")]
pub(crate) fn encode_progress(progress: &Progress) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    encode_progress_into(progress, &mut out);
    out
}

fn encode_progress_into(progress: &Progress, out: &mut Vec<u8>) {
    out.push(FORMAT);
    let _ = bincode::encode_into_std_write(progress, out, config());
}

/// The seq of a forget or progress payload (after its kind byte), and the rest.
pub(crate) fn split_seq(rest: &[u8]) -> Result<(u64, &[u8]), String> {
    let (seq, rest) = rest
        .split_first_chunk::<8>()
        .ok_or_else(|| "log record too short for a sequence number".to_owned())?;
    Ok((u64::from_be_bytes(*seq), rest))
}

/// Decodes a `progress` value (format byte + bincode).
pub(crate) fn decode_progress(bytes: &[u8]) -> Result<Progress, String> {
    match bytes.split_first() {
        Some((&FORMAT, rest)) => {
            decode_bounded(rest).map_err(|e| format!("undecodable progress record: {e}"))
        }
        Some((other, _)) => Err(format!("progress record in unknown format {other}")),
        None => Err("empty progress record".to_owned()),
    }
}

/// `due` key: next attempt time, then seq.
pub(crate) fn due_key(next_at_ms: i64, seq: u64) -> [u8; 16] {
    expiry_key(next_at_ms, seq)
}

/// The seq in a `due` key.
pub(crate) fn due_seq(key: &[u8]) -> Option<u64> {
    key.get(8..16)?.try_into().ok().map(u64::from_be_bytes)
}

/// The time in a `due` key.
pub(crate) fn due_at(key: &[u8]) -> Option<i64> {
    Some(from_ordered_i64(key.get(..8)?.try_into().ok()?))
}

/// Everything the store keeps about one accepted event.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub(crate) struct EventRecord {
    pub(crate) source: String,
    pub(crate) id: String,
    pub(crate) event_type: String,
    pub(crate) received_at_ms: i64,
    /// The scheme's headers as received (id, timestamp, type, signatures).
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

/// The same record, borrowed: what ingest encodes, without copying the body
/// or the strings first. Its encoding is exactly [`EventRecord`]'s.
#[derive(Encode)]
pub(crate) struct EventRecordRef<'a> {
    pub(crate) source: &'a str,
    pub(crate) id: &'a str,
    pub(crate) event_type: &'a str,
    pub(crate) received_at_ms: i64,
    pub(crate) headers: &'a [(&'a str, std::borrow::Cow<'a, str>)],
    pub(crate) body: &'a [u8],
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Decodes one bincode value from `bytes` with an allocation limit that
/// follows the input's own length, so a corrupt length prefix (a frame whose
/// checksum matches but whose content declares a terabyte) is an error, never
/// an allocation that aborts the process.
///
/// bincode counts what it is about to allocate against the limit: each
/// integer its in-memory size (8 bytes for a 1-byte varint), each collection
/// its in-memory size before reading it (a `Vec<u8>` its length, a list of
/// string pairs 48 bytes per element, each at least 2 encoded bytes). So a
/// valid record never claims more than 32 times its encoded length, and the
/// records ingest writes past 1 MiB are a body plus a few headers. bincode's
/// limit is a constant, hence the size classes:
///
/// | input | limit |
/// |---|---|
/// | ≤ 4 KiB | 256 KiB |
/// | ≤ 64 KiB | 4 MiB |
/// | ≤ 1 MiB | 32 MiB |
/// | larger (a frame holds at most 65 MiB) | 256 MiB |
fn decode_bounded<T: Decode<()>>(bytes: &[u8]) -> Result<T, bincode::error::DecodeError> {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * KIB;
    let decoded = if bytes.len() <= 4 * KIB {
        bincode::decode_from_slice(bytes, config().with_limit::<{ 256 * KIB }>())
    } else if bytes.len() <= 64 * KIB {
        bincode::decode_from_slice(bytes, config().with_limit::<{ 4 * MIB }>())
    } else if bytes.len() <= MIB {
        bincode::decode_from_slice(bytes, config().with_limit::<{ 32 * MIB }>())
    } else {
        bincode::decode_from_slice(bytes, config().with_limit::<{ 256 * MIB }>())
    };
    decoded.map(|(value, _)| value)
}

/// `FORMAT` followed by the record.
#[cfg(test)]
pub(crate) fn encode_event(record: &EventRecord) -> Vec<u8> {
    let headers: Vec<(&str, std::borrow::Cow<'_, str>)> = record
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str().into()))
        .collect();
    let mut out = accept_payload(&EventRecordRef {
        source: &record.source,
        id: &record.id,
        event_type: &record.event_type,
        received_at_ms: record.received_at_ms,
        headers: &headers,
        body: &record.body,
    });
    out.remove(0);
    out
}

/// Decodes a value written by [`encode_event`].
pub(crate) fn decode_event(bytes: &[u8]) -> Result<EventRecord, String> {
    match bytes.split_first() {
        Some((&FORMAT, rest)) => {
            decode_bounded(rest).map_err(|e| format!("undecodable event record: {e}"))
        }
        Some((other, _)) => Err(format!("event record in unknown format {other}")),
        None => Err("empty event record".to_owned()),
    }
}

/// The WAL payload of an accepted event: its kind, then the sled value
/// (`FORMAT` and the bincode record), so `payload[1..]` goes to sled as is.
pub(crate) fn accept_payload(record: &EventRecordRef<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(record.body.len() + 128);
    out.push(KIND_ACCEPT);
    out.push(FORMAT);
    // Encoding into a Vec cannot fail for these plain types.
    let _ = bincode::encode_into_std_write(record, &mut out, config());
    out
}

/// The dedup key: source name, a NUL, the event id.
pub(crate) fn dedup_key(source: &str, id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(source.len() + 1 + id.len());
    key.extend_from_slice(source.as_bytes());
    key.push(0);
    key.extend_from_slice(id.as_bytes());
    key
}

/// An i64 as 8 bytes whose unsigned big-endian order is the numeric order.
pub(crate) fn ordered_i64(v: i64) -> [u8; 8] {
    ((v as u64) ^ (1 << 63)).to_be_bytes()
}

/// Inverse of [`ordered_i64`].
pub(crate) fn from_ordered_i64(bytes: [u8; 8]) -> i64 {
    (u64::from_be_bytes(bytes) ^ (1 << 63)) as i64
}

/// `expiry` key: acceptance time of the batch's first event, then its seq.
pub(crate) fn expiry_key(accepted_ms: i64, first_seq: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&ordered_i64(accepted_ms));
    key[8..].copy_from_slice(&first_seq.to_be_bytes());
    key
}

/// `expiry` value: the dedup keys of a batch.
pub(crate) fn encode_keys(keys: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![FORMAT];
    let _ = bincode::encode_into_std_write(keys, &mut out, config());
    out
}

/// Decodes an `expiry` value written by [`encode_keys`].
pub(crate) fn decode_keys(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    match bytes.split_first() {
        Some((&FORMAT, rest)) => {
            decode_bounded(rest).map_err(|e| format!("undecodable expiry entry: {e}"))
        }
        _ => Err("expiry entry in an unknown format".to_owned()),
    }
}

/// `dedup` value: seq and acceptance time.
pub(crate) fn dedup_value(seq: u64, accepted_ms: i64) -> [u8; 16] {
    let mut value = [0u8; 16];
    value[..8].copy_from_slice(&seq.to_be_bytes());
    value[8..].copy_from_slice(&ordered_i64(accepted_ms));
    value
}

/// The seq in a `dedup` value.
pub(crate) fn dedup_seq(value: &[u8]) -> Option<u64> {
    value.get(..8)?.try_into().ok().map(u64::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_unknown_formats_are_refused() {
        let record = EventRecord {
            source: "bluum".into(),
            id: "evt_1".into(),
            event_type: "order.filled".into(),
            received_at_ms: 1_764_331_200_000,
            headers: vec![("webhook-id".into(), "evt_1".into())],
            body: b"\xff{}".to_vec(),
        };
        let bytes = encode_event(&record);
        assert_eq!(decode_event(&bytes), Ok(record));
        let mut future = bytes.clone();
        future[0] = 2;
        assert!(
            decode_event(&future)
                .unwrap_err()
                .contains("unknown format 2")
        );
        assert!(decode_event(&[]).is_err());
        assert!(decode_event(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn progress_round_trips_and_history_is_bounded() {
        let mut p = Progress {
            attempts: 3,
            next_at_ms: -5,
            dead_at_ms: None,
            errors: Vec::new(),
        };
        for n in 0..40 {
            p.push_failure(n, i64::from(n), &"é".repeat(2000));
        }
        assert_eq!(p.errors.len(), MAX_HISTORY);
        assert_eq!(p.errors[0].attempt, 40 - MAX_HISTORY as u32);
        assert!(p.errors[0].error.len() <= MAX_ERROR_LEN);
        let payload = progress_payload(77, &p);
        assert_eq!(payload[0], KIND_PROGRESS);
        let (seq, rest) = split_seq(&payload[1..]).unwrap();
        assert_eq!((seq, decode_progress(rest).unwrap()), (77, p));
        assert!(split_seq(&[1, 2]).is_err());
        assert_eq!(due_seq(&due_key(-3, 9)), Some(9));
        assert_eq!(due_at(&due_key(-3, 9)), Some(-3));
    }

    #[test]
    fn expiry_keys_round_trip() {
        let keys: [&[u8]; 2] = [b"bluum\0evt_1", b"bluum\0evt_2"];
        assert_eq!(
            decode_keys(&encode_keys(&keys)).unwrap(),
            keys.map(<[u8]>::to_vec)
        );
        assert!(decode_keys(b"").is_err());
    }

    fn sample_record() -> EventRecord {
        EventRecord {
            source: "github".into(),
            id: "sha256:00ff".into(),
            event_type: "push".into(),
            received_at_ms: 1_764_331_200_000,
            headers: vec![
                ("X-GitHub-Delivery".into(), "d-1".into()),
                ("X-GitHub-Event".into(), "push".into()),
            ],
            body: br#"{"ref":"refs/heads/main"}"#.to_vec(),
        }
    }

    /// bincode's standard varint: a `u64` marker byte, then 8 bytes LE.
    fn varint_u64(v: u64) -> Vec<u8> {
        let mut out = vec![253];
        out.extend_from_slice(&v.to_le_bytes());
        out
    }

    /// A record whose checksum would match but whose content declares a huge
    /// string, body, header list, history or key list: each is an error, not
    /// an allocation that aborts the process (as it did without a limit).
    #[test]
    fn huge_declared_lengths_are_errors_not_allocations() {
        for len in [1u64 << 40, 1 << 60, u64::MAX, 300 << 20] {
            let mut event = vec![FORMAT];
            event.extend(varint_u64(len));
            event.extend_from_slice(b"github");
            assert!(decode_event(&event).is_err(), "{len}");

            // A valid prefix up to the header list, which claims `len` pairs.
            let mut headers = encode_event(&EventRecord {
                headers: Vec::new(),
                body: Vec::new(),
                ..sample_record()
            });
            headers.truncate(headers.len() - 2); // the empty list and body
            headers.extend(varint_u64(len));
            assert!(decode_event(&headers).is_err(), "{len}");

            let mut progress = vec![FORMAT, 1, 2, 0];
            progress.extend(varint_u64(len));
            assert!(decode_progress(&progress).is_err(), "{len}");

            let mut keys = vec![FORMAT];
            keys.extend(varint_u64(len));
            assert!(decode_keys(&keys).is_err(), "{len}");
        }
    }

    /// The limit never refuses what ingest could write: many empty headers
    /// (the most the limit counts per encoded byte) in every size class, and
    /// a body of the largest size accepted.
    #[test]
    fn the_limit_refuses_no_valid_record() {
        for count in [1, 100, 2_000, 30_000, 400_000] {
            let record = EventRecord {
                headers: vec![(String::new(), String::new()); count],
                ..sample_record()
            };
            assert_eq!(decode_event(&encode_event(&record)), Ok(record), "{count}");
        }
        let big = EventRecord {
            body: vec![b'x'; crate::limits::MAX_BODY_LIMIT],
            ..sample_record()
        };
        assert_eq!(
            decode_event(&encode_event(&big)).map(|r| r.body.len()),
            Ok(big.body.len())
        );
        let keys: Vec<Vec<u8>> = (0..50_000u32).map(|n| n.to_be_bytes().to_vec()).collect();
        let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        assert_eq!(decode_keys(&encode_keys(&refs)), Ok(keys));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2_000))]

        /// Arbitrary bytes never panic or abort any decoder.
        #[test]
        fn arbitrary_bytes_decode_or_fail_cleanly(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256),
        ) {
            let mut with_format = vec![FORMAT];
            with_format.extend_from_slice(&bytes);
            for input in [&bytes[..], &with_format[..]] {
                let _ = decode_event(input);
                let _ = decode_progress(input);
                let _ = decode_keys(input);
                let _ = split_seq(input);
            }
        }

        /// Valid records with bytes changed, inserted or cut never panic or
        /// abort; what still decodes is a record, what does not is an error.
        #[test]
        fn mutated_records_decode_or_fail_cleanly(
            edits in proptest::collection::vec(
                (proptest::prelude::any::<proptest::sample::Index>(), proptest::prelude::any::<u8>(), 0u8..3),
                1..8,
            ),
            cut in proptest::prelude::any::<proptest::sample::Index>(),
        ) {
            let mut progress = Progress::new(5);
            progress.push_failure(1, 6, "ledger unavailable");
            let keys: [&[u8]; 2] = [b"github\0sha256:00", b"bluum\0evt_1"];
            let valid = [
                encode_event(&sample_record()),
                progress_payload(9, &progress)[9..].to_vec(),
                encode_keys(&keys),
            ];
            for original in valid {
                let mut bytes = original.clone();
                for (at, byte, how) in &edits {
                    let i = at.index(bytes.len() + 1);
                    match how {
                        0 if i < bytes.len() => bytes[i] = *byte,
                        1 => bytes.insert(i, *byte),
                        _ => bytes.splice(i..i, [253, 0, 0, 0, 0, 0, 0, 1, 0]).for_each(drop),
                    }
                }
                bytes.truncate(cut.index(bytes.len() + 1).max(1));
                let _ = decode_event(&bytes);
                let _ = decode_progress(&bytes);
                let _ = decode_keys(&bytes);
            }
        }
    }

    #[test]
    fn ordered_integers_sort_as_bytes() {
        let values = [i64::MIN, -1_000, -1, 0, 1, 1_764_331_200_000, i64::MAX];
        for pair in values.windows(2) {
            assert!(ordered_i64(pair[0]) < ordered_i64(pair[1]));
            assert_eq!(from_ordered_i64(ordered_i64(pair[0])), pair[0]);
        }
    }
}
