//! sled's trees: what they hold, how log records are applied to them
//! (idempotently, so the log can be replayed), how an event is read back
//! through the location sled keeps for it, and the counts kept of them.

use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::compact::{self, KIND_CARRY, KIND_MARKER};
use super::wal::{self, Location};
use super::{Shared, store_error};
use crate::store::record::{self, Progress};
use crate::store::{Standing, StoreCounts, StoreError};
use crate::sync::lock;

/// An open sled database and its trees.
pub(super) struct Index {
    pub(super) db: sled::Db,
    pub(super) trees: Trees,
}

pub(super) struct Trees {
    pub(super) dedup: sled::Tree,
    pub(super) events: sled::Tree,
    pub(super) expiry: sled::Tree,
    pub(super) meta: sled::Tree,
    pub(super) progress: sled::Tree,
    pub(super) due: sled::Tree,
    pub(super) dead: sled::Tree,
}

/// One log record on its way from the log to sled.
pub(super) struct Applied {
    pub(super) lsn: u64,
    /// The dedup key of an accepted event; empty for other kinds.
    pub(super) key: Vec<u8>,
    pub(super) received_ms: i64,
    /// The log payload: a kind byte, then what it carries.
    pub(super) payload: Vec<u8>,
    /// Where its frame is in the log, once written.
    pub(super) at: Option<Location>,
}

impl Applied {
    /// What sled keeps for an event: where its frame is (the body is
    /// written once, to the log).
    fn location_value(&self) -> Option<[u8; LOCATION_VALUE]> {
        self.at.map(location_value)
    }

    pub(super) fn is_accept(&self) -> bool {
        self.payload.first() == Some(&record::KIND_ACCEPT)
    }

    /// A record read back from the log, checked to be one this version knows.
    pub(super) fn recovered(lsn: u64, payload: Vec<u8>, at: Location) -> Result<Self, String> {
        let mut applied = Self::read(lsn, payload)?;
        applied.at = Some(at);
        Ok(applied)
    }

    fn read(lsn: u64, payload: Vec<u8>) -> Result<Self, String> {
        match payload.split_first() {
            Some((&record::KIND_ACCEPT, value)) => {
                let event = record::decode_event(value)?;
                Ok(Self {
                    lsn,
                    key: record::dedup_key(&event.source, &event.id),
                    received_ms: event.received_at_ms,
                    payload,
                    at: None,
                })
            }
            Some((&record::KIND_FORGET, rest)) => {
                record::split_seq(rest)?;
                Ok(Self::change(lsn, payload))
            }
            Some((&record::KIND_PROGRESS, rest)) => {
                record::decode_progress(record::split_seq(rest)?.1)?;
                Ok(Self::change(lsn, payload))
            }
            Some((&KIND_CARRY, rest)) => {
                compact::split_carry(rest)?;
                Ok(Self::change(lsn, payload))
            }
            Some((&KIND_MARKER, rest)) => {
                compact::split_marker(rest)?;
                Ok(Self::change(lsn, payload))
            }
            _ => Err(format!("log record {lsn} of unknown kind")),
        }
    }

    pub(super) fn change(lsn: u64, payload: Vec<u8>) -> Self {
        Self {
            lsn,
            key: Vec::new(),
            received_ms: 0,
            payload,
            at: None,
        }
    }
}

/// Format byte of an `events` value that is a location in the log.
const LOCATION_FORMAT: u8 = 2;
/// Bytes of such a value: format, segment, offset, frame length.
pub(super) const LOCATION_VALUE: usize = 1 + 8 + 8 + 4;

fn location_value(at: Location) -> [u8; LOCATION_VALUE] {
    let mut out = [0u8; LOCATION_VALUE];
    out[0] = LOCATION_FORMAT;
    out[1..9].copy_from_slice(&at.segment.to_be_bytes());
    out[9..17].copy_from_slice(&at.offset.to_be_bytes());
    out[17..21].copy_from_slice(&at.len.to_be_bytes());
    out
}

/// The location an `events` value holds; `None` for a full record (stores
/// migrated from the earlier layout keep those until compaction moves them).
fn location_of(value: &[u8]) -> Option<Location> {
    let (&LOCATION_FORMAT, rest) = value.split_first()? else {
        return None;
    };
    Some(Location {
        segment: u64::from_be_bytes(rest.get(0..8)?.try_into().ok()?),
        offset: u64::from_be_bytes(rest.get(8..16)?.try_into().ok()?),
        len: u32::from_be_bytes(rest.get(16..20)?.try_into().ok()?),
    })
}

/// The LSN sled says it has applied.
pub(super) fn stored_applied(trees: &Trees) -> sled::Result<u64> {
    Ok(trees
        .meta
        .get(b"applied_lsn")?
        .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
        .map_or(0, u64::from_be_bytes))
}

/// Counts the trees (walks every key: seconds with a million events).
pub(super) fn count_trees(trees: &Trees) -> StoreCounts {
    let dead = trees.dead.len() as u64;
    StoreCounts {
        pending: (trees.events.len() as u64).saturating_sub(dead),
        retrying: (trees.progress.len() as u64).saturating_sub(dead),
        dead,
        markers: trees.dedup.len() as u64,
    }
}

/// Writes a batch of log records into sled: accepted events (skipping any
/// whose dedup marker exists, so replaying the log is idempotent) with one
/// retention entry for the batch, forgotten events, progress changes (both
/// idempotent too). Records carried forward by compaction are applied only
/// when `replay`ing the log into a rebuilt sled: at run time sled has them.
/// Returns how many dedup markers were new.
pub(super) fn apply_batch(trees: &Trees, batch: &[Applied], replay: bool) -> sled::Result<u64> {
    let unsupported = sled::Error::Unsupported;
    let mut fresh: Vec<std::borrow::Cow<'_, [u8]>> = Vec::with_capacity(batch.len());
    // The retention entry is dated by the batch's latest event, so no marker
    // in it is collected before its own retention has passed.
    let mut dated: Option<(i64, u64)> = None;
    let mut date = |ms: i64, seq: u64| {
        let (at, first) = dated.get_or_insert((ms, seq));
        *at = (*at).max(ms);
        *first = (*first).min(seq);
    };
    for a in batch {
        match a.payload.split_first() {
            Some((&record::KIND_ACCEPT, _)) => {
                if trees.dedup.contains_key(&a.key)? {
                    continue;
                }
                let Some(location) = a.location_value() else {
                    return Err(unsupported(format!("log record {} has no location", a.lsn)));
                };
                trees.events.insert(a.lsn.to_be_bytes(), &location)?;
                // The marker goes after the event: it is what says "this event is applied".
                trees
                    .dedup
                    .insert(a.key.as_slice(), &record::dedup_value(a.lsn, a.received_ms))?;
                date(a.received_ms, a.lsn);
                fresh.push(a.key.as_slice().into());
            }
            Some((&record::KIND_FORGET, rest)) => {
                let (seq, _) = record::split_seq(rest).map_err(unsupported)?;
                let key = seq.to_be_bytes();
                if let Some(old) = trees.progress.get(key)? {
                    unindex(trees, seq, &old)?;
                    trees.progress.remove(key)?;
                }
                trees.events.remove(key)?;
            }
            Some((&record::KIND_PROGRESS, rest)) => {
                let (seq, value) = record::split_seq(rest).map_err(unsupported)?;
                let progress = record::decode_progress(value).map_err(unsupported)?;
                set_progress(trees, seq, value, &progress)?;
            }
            Some((&KIND_CARRY, rest)) if replay => {
                let carry = compact::split_carry(rest).map_err(unsupported)?;
                let event = record::decode_event(carry.event_value).map_err(unsupported)?;
                let key = record::dedup_key(&event.source, &event.id);
                let marker = trees.dedup.get(&key)?;
                if marker
                    .as_ref()
                    .is_some_and(|m| record::dedup_seq(m) != Some(carry.seq))
                {
                    continue;
                }
                let seq_key = carry.seq.to_be_bytes();
                let Some(location) = a.location_value() else {
                    return Err(unsupported(format!("log record {} has no location", a.lsn)));
                };
                trees.events.insert(seq_key, &location)?;
                match carry.progress_value {
                    Some(value) => {
                        let progress = record::decode_progress(value).map_err(unsupported)?;
                        set_progress(trees, carry.seq, value, &progress)?;
                    }
                    None => {
                        if let Some(old) = trees.progress.get(seq_key)? {
                            unindex(trees, carry.seq, &old)?;
                            trees.progress.remove(seq_key)?;
                        }
                    }
                }
                if marker.is_none() {
                    trees.dedup.insert(
                        key.as_slice(),
                        &record::dedup_value(carry.seq, event.received_at_ms),
                    )?;
                    date(event.received_at_ms, carry.seq);
                    fresh.push(key.into());
                }
            }
            Some((&KIND_MARKER, rest)) if replay => {
                let (seq, accepted_ms, key) = compact::split_marker(rest).map_err(unsupported)?;
                if !trees.dedup.contains_key(key)? {
                    trees
                        .dedup
                        .insert(key, &record::dedup_value(seq, accepted_ms))?;
                    date(accepted_ms, seq);
                    fresh.push(key.into());
                }
            }
            Some((&KIND_CARRY, rest)) => {
                // At run time sled has the event; it only moved in the log.
                let (seq, _) = record::split_seq(rest).map_err(unsupported)?;
                if let Some(location) = a.location_value()
                    && trees.events.contains_key(seq.to_be_bytes())?
                {
                    trees.events.insert(seq.to_be_bytes(), &location)?;
                }
            }
            Some((&KIND_MARKER, _)) => {}
            _ => {
                return Err(sled::Error::Unsupported(format!(
                    "log record {} of unknown kind",
                    a.lsn
                )));
            }
        }
    }
    if let Some((at, first)) = dated {
        let keys: Vec<&[u8]> = fresh.iter().map(AsRef::as_ref).collect();
        trees
            .expiry
            .insert(record::expiry_key(at, first), record::encode_keys(&keys))?;
    }
    if let Some(last) = batch.last() {
        trees.meta.insert(b"applied_lsn", &last.lsn.to_be_bytes())?;
    }
    Ok(fresh.len() as u64)
}

/// Sets an event's progress and its index entry (`due` or `dead`). The old
/// index entry goes first and the new one last, so a crash anywhere in
/// between leaves nothing a replay of the same record does not mend. An event
/// no longer stored (handled or purged later in the log) is left alone.
fn set_progress(trees: &Trees, seq: u64, value: &[u8], progress: &Progress) -> sled::Result<()> {
    let key = seq.to_be_bytes();
    if !trees.events.contains_key(key)? {
        return Ok(());
    }
    if let Some(old) = trees.progress.get(key)? {
        unindex(trees, seq, &old)?;
    }
    trees.progress.insert(key, value)?;
    if progress.dead_at_ms.is_some() {
        trees.dead.insert(key, &[])?;
    } else {
        trees
            .due
            .insert(record::due_key(progress.next_at_ms, seq), &[])?;
    }
    Ok(())
}

/// Removes the index entry of an event's old progress.
fn unindex(trees: &Trees, seq: u64, old: &[u8]) -> sled::Result<()> {
    let old = record::decode_progress(old).map_err(sled::Error::Unsupported)?;
    if old.dead_at_ms.is_some() {
        trees.dead.remove(seq.to_be_bytes())?;
    } else {
        trees.due.remove(record::due_key(old.next_at_ms, seq))?;
    }
    Ok(())
}

/// Adds `delta` (which may be negative) to a counter, saturating at 0.
pub(super) fn add(counter: &AtomicU64, delta: i64) {
    let _ = counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
        Some(v.saturating_add_signed(delta))
    });
}

/// The seq a big-endian key holds.
pub(super) fn seq_of(key: &[u8]) -> Result<u64, StoreError> {
    <[u8; 8]>::try_from(key)
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::Corrupt("a sequence key is not 8 bytes".to_owned()))
}

impl Shared {
    /// The bytes of an event (format byte + bincode record) that an `events`
    /// entry points to in the log (or holds, for migrated stores).
    pub(super) fn event_value(&self, value: &[u8]) -> Result<Vec<u8>, StoreError> {
        let Some(at) = location_of(value) else {
            return Ok(value.to_vec());
        };
        let file = self.segment_file(at.segment)?;
        let (_, payload) = wal::read_frame(&file, at).map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof => {
                StoreError::Corrupt(e.to_string())
            }
            _ => StoreError::Io(e),
        })?;
        match payload.split_first() {
            Some((&record::KIND_ACCEPT, event)) => Ok(event.to_vec()),
            Some((&KIND_CARRY, rest)) => Ok(compact::split_carry(rest)
                .map_err(StoreError::Corrupt)?
                .event_value
                .to_vec()),
            _ => Err(StoreError::Corrupt(format!(
                "the index points at byte {} of log segment {}, which holds no event",
                at.offset, at.segment
            ))),
        }
    }

    /// A read handle on the segment whose first LSN is `segment`.
    fn segment_file(&self, segment: u64) -> Result<Arc<File>, StoreError> {
        let mut files = lock(&self.files);
        if let Some(file) = files.get(&segment) {
            return Ok(Arc::clone(file));
        }
        let file = Arc::new(File::open(wal::segment_file(
            &self.path.join("wal"),
            segment,
        ))?);
        files.insert(segment, Arc::clone(&file));
        Ok(file)
    }

    /// The event stored under `seq` whose `events` entry is `value`. If its
    /// segment was compacted away meanwhile, the entry is read again (it
    /// points at the newer copy now); `None` if the event is gone.
    pub(super) fn load_event(
        &self,
        trees: &Trees,
        seq: u64,
        value: &[u8],
    ) -> Result<Option<record::EventRecord>, StoreError> {
        let bytes = match self.event_value(value) {
            Err(StoreError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                match trees.events.get(seq.to_be_bytes()).map_err(store_error)? {
                    Some(again) => self.event_value(&again)?,
                    None => return Ok(None),
                }
            }
            other => other?,
        };
        record::decode_event(&bytes)
            .map(Some)
            .map_err(StoreError::Corrupt)
    }

    /// The current index, or an error while it is being rebuilt.
    pub(super) fn index(&self) -> Result<Arc<Index>, StoreError> {
        self.index
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .ok_or_else(|| {
                StoreError::Io(std::io::Error::other(
                    "the store's index is being rebuilt from its log",
                ))
            })
    }

    pub(super) fn progress_of(&self, seq: u64) -> Result<Option<Progress>, StoreError> {
        self.index()?
            .trees
            .progress
            .get(seq.to_be_bytes())
            .map_err(store_error)?
            .map(|v| record::decode_progress(&v))
            .transpose()
            .map_err(StoreError::Corrupt)
    }

    /// The seq under which `key` is stored in sled, if it is.
    pub(super) fn stored_seq(&self, key: &[u8]) -> Result<Option<u64>, StoreError> {
        Ok(self
            .index()?
            .trees
            .dedup
            .get(key)
            .map_err(store_error)?
            .map(|v| record::dedup_seq(&v).unwrap_or(0)))
    }

    /// `Closed` once the store is shut down: readers stop there too.
    pub(super) fn open(&self) -> Result<(), StoreError> {
        if self.stop.load(Ordering::SeqCst) {
            return Err(StoreError::Closed);
        }
        Ok(())
    }

    /// Counts an event into (`delta` 1) or out of (-1) a standing.
    pub(super) fn count(&self, standing: Standing, delta: i64) {
        match standing {
            Standing::Fresh => add(&self.pending, delta),
            Standing::Retrying => {
                add(&self.pending, delta);
                add(&self.retrying, delta);
            }
            Standing::Dead => add(&self.dead, delta),
        }
    }
}
