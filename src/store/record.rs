//! On-disk records and keys, versioned by a leading format byte.
//!
//! | tree | key | value |
//! |---|---|---|
//! | `dedup` | source, `0x00`, event id | seq (u64 BE), accepted at (ms, i64 BE) |
//! | `events` | seq (u64 BE) | format byte + bincode [`EventRecord`] |
//! | `expiry` | accepted at (ms, sign-flipped BE) + first seq of the batch | format byte + bincode list of dedup keys |
//! | `meta` | name | value |
//!
//! `events` holds the events not yet handled, in acceptance order (seq order).
//! `expiry` has one entry per applied batch, not per event, so the retention
//! index costs a fraction of an insert per event. Big-endian, sign-flipped
//! integers make sled's byte order the numeric order, so range scans walk by time.

use bincode::{Decode, Encode};

/// The current record format. Readers refuse formats they do not know rather
/// than misread them.
pub(crate) const FORMAT: u8 = 1;

/// WAL payload kinds.
pub(crate) const KIND_ACCEPT: u8 = 1;

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
        Some((&FORMAT, rest)) => bincode::decode_from_slice(rest, config())
            .map(|(record, _)| record)
            .map_err(|e| format!("undecodable event record: {e}")),
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
#[cfg(test)]
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
        Some((&FORMAT, rest)) => bincode::decode_from_slice(rest, config())
            .map(|(keys, _)| keys)
            .map_err(|e| format!("undecodable expiry entry: {e}")),
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
    fn expiry_keys_round_trip() {
        let keys: [&[u8]; 2] = [b"bluum\0evt_1", b"bluum\0evt_2"];
        assert_eq!(
            decode_keys(&encode_keys(&keys)).unwrap(),
            keys.map(<[u8]>::to_vec)
        );
        assert!(decode_keys(b"").is_err());
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
