//! Compaction: how an old log segment is retired without losing what it holds.
//!
//! The log is the record, so a segment may be deleted only once everything in
//! it that is still needed lives in a newer, synced segment. The compactor
//! takes the oldest sealed segment (only the oldest: a change record may be
//! dropped only when the event it changes has no older record left) and,
//! for every event it holds, writes the event's *current* state forward:
//!
//! - still stored (pending, retrying, dead) → a `carry` record: the event and
//!   its progress, under its original seq;
//! - handled or purged, with its dedup marker still inside the retention →
//!   a `marker` record (source + id, seq, accepted at);
//! - otherwise nothing; `forget` and `progress` records are dropped, since
//!   the carried state already includes them.
//!
//! The state is read while no outcome can be logged (the store's change lock)
//! and after everything logged is applied, so a carried state is never older
//! than a change logged before it. Replaying a `carry` sets the event's state,
//! replaying a `marker` inserts the marker if absent: both idempotent, so a
//! crash between writing them and deleting the old segment is harmless.

use super::wal::Recovered;
use crate::store::record::{self, KIND_ACCEPT};

/// WAL payload kind: an event carried forward by compaction, with its state.
pub(crate) const KIND_CARRY: u8 = 4;
/// WAL payload kind: the dedup marker of a handled event, carried forward.
pub(crate) const KIND_MARKER: u8 = 5;

/// A `carry` payload: `[kind][seq BE][event value len u32 LE][event value][progress value, or nothing]`.
pub(crate) fn carry_payload(
    seq: u64,
    event_value: &[u8],
    progress_value: Option<&[u8]>,
) -> Vec<u8> {
    let progress = progress_value.unwrap_or_default();
    let mut out = Vec::with_capacity(1 + 8 + 4 + event_value.len() + progress.len());
    out.push(KIND_CARRY);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(
        &u32::try_from(event_value.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    out.extend_from_slice(event_value);
    out.extend_from_slice(progress);
    out
}

/// A decoded `carry` payload (after its kind byte).
pub(crate) struct Carry<'a> {
    pub(crate) seq: u64,
    pub(crate) event_value: &'a [u8],
    pub(crate) progress_value: Option<&'a [u8]>,
}

/// Splits a `carry` payload (after its kind byte), checking both values decode.
pub(crate) fn split_carry(rest: &[u8]) -> Result<Carry<'_>, String> {
    let (seq, rest) = record::split_seq(rest)?;
    let (len, rest) = rest
        .split_first_chunk::<4>()
        .ok_or_else(|| "carry record too short".to_owned())?;
    let len = u32::from_le_bytes(*len) as usize;
    if rest.len() < len {
        return Err("carry record shorter than its event".to_owned());
    }
    let (event_value, progress) = rest.split_at(len);
    record::decode_event(event_value)?;
    let progress_value = if progress.is_empty() {
        None
    } else {
        record::decode_progress(progress)?;
        Some(progress)
    };
    Ok(Carry {
        seq,
        event_value,
        progress_value,
    })
}

/// A `marker` payload: `[kind][seq BE][accepted at ms i64 BE][dedup key]`.
pub(crate) fn marker_payload(seq: u64, accepted_ms: i64, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + 16 + key.len());
    out.push(KIND_MARKER);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&accepted_ms.to_be_bytes());
    out.extend_from_slice(key);
    out
}

/// A decoded `marker` payload (after its kind byte): seq, accepted at, key.
pub(crate) fn split_marker(rest: &[u8]) -> Result<(u64, i64, &[u8]), String> {
    let (seq, rest) = record::split_seq(rest)?;
    let (ms, key) = rest
        .split_first_chunk::<8>()
        .ok_or_else(|| "marker record too short".to_owned())?;
    if key.is_empty() {
        return Err("marker record without a key".to_owned());
    }
    Ok((seq, i64::from_be_bytes(*ms), key))
}

/// What a segment's record says about which event it concerns, for the
/// compactor: the seq of an event it holds (accepted or carried) or a
/// marker; `None` for change records, which compaction drops.
pub(crate) enum Holds<'a> {
    Event { seq: u64, key: Vec<u8> },
    Marker { seq: u64, key: &'a [u8] },
    Change,
}

/// Reads what `r` holds; an undecodable record is corruption.
pub(crate) fn holds(r: &Recovered) -> Result<Holds<'_>, String> {
    match r.payload.split_first() {
        Some((&KIND_ACCEPT, value)) => {
            let event = record::decode_event(value)?;
            Ok(Holds::Event {
                seq: r.lsn,
                key: record::dedup_key(&event.source, &event.id),
            })
        }
        Some((&KIND_CARRY, rest)) => {
            let carry = split_carry(rest)?;
            let event = record::decode_event(carry.event_value)?;
            Ok(Holds::Event {
                seq: carry.seq,
                key: record::dedup_key(&event.source, &event.id),
            })
        }
        Some((&KIND_MARKER, rest)) => {
            let (seq, _, key) = split_marker(rest)?;
            Ok(Holds::Marker { seq, key })
        }
        Some((&record::KIND_FORGET | &record::KIND_PROGRESS, _)) => Ok(Holds::Change),
        _ => Err(format!("log record {} of unknown kind", r.lsn)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carry_and_marker_payloads_round_trip_and_short_ones_are_refused() {
        let event = record::encode_event(&record::EventRecord {
            source: "s".into(),
            id: "evt_1".into(),
            event_type: "t".into(),
            received_at_ms: 7,
            headers: vec![],
            body: b"{}".to_vec(),
        });
        let mut progress = record::progress_payload(3, &record::Progress::new(9));
        let progress = progress.split_off(9);
        let payload = carry_payload(3, &event, Some(&progress));
        let c = split_carry(&payload[1..]).unwrap();
        assert_eq!(
            (c.seq, c.event_value, c.progress_value),
            (3, &event[..], Some(&progress[..]))
        );
        let none = carry_payload(4, &event, None);
        assert!(split_carry(&none[1..]).unwrap().progress_value.is_none());
        assert!(split_carry(&payload[1..payload.len() - progress.len() - 3]).is_err());

        let m = marker_payload(5, -3, b"s\0evt_1");
        assert_eq!(split_marker(&m[1..]).unwrap(), (5, -3, &b"s\0evt_1"[..]));
        assert!(split_marker(&m[1..17]).is_err());
    }
}
