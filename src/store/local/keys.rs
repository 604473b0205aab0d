//! Per-key ordering for the in-process claims: which unfinished events each
//! ordering key has, so only the earliest of a key is claimable.

use std::collections::{BTreeSet, HashMap};

/// The unfinished events (by seq) the claims know of, per ordering key, and
/// the events passed over because an earlier one of their key is unfinished.
#[derive(Debug, Default)]
pub(super) struct Keys {
    /// The JSON pointer the keys were read at.
    pointer: String,
    by_key: HashMap<String, BTreeSet<u64>>,
    key_of: HashMap<u64, String>,
    /// Events waiting for an earlier one of their key.
    waiting: BTreeSet<u64>,
    /// Whether the retrying events already stored have been registered.
    pub(super) primed: bool,
}

impl Keys {
    /// Keys read at `pointer`.
    pub(super) fn new(pointer: &str) -> Self {
        Self {
            pointer: pointer.to_owned(),
            ..Self::default()
        }
    }

    pub(super) fn pointer(&self) -> &str {
        &self.pointer
    }

    /// Registers event `seq` (unfinished) under its key, read from `body`;
    /// answers whether it may run now: it has no key, or no earlier
    /// unfinished event of its key is known. If not, it waits.
    pub(super) fn admit(&mut self, seq: u64, body: &[u8]) -> bool {
        let key = match self.key_of.get(&seq) {
            Some(key) => key.clone(),
            None => match key_at(&self.pointer, body) {
                Some(key) => {
                    self.key_of.insert(seq, key.clone());
                    key
                }
                None => return true,
            },
        };
        self.hold(seq, key)
    }

    /// Registers event `seq` under `key`; answers whether it is first of it.
    fn hold(&mut self, seq: u64, key: String) -> bool {
        let seqs = self.by_key.entry(key).or_default();
        seqs.insert(seq);
        let first = seqs.first().copied() == Some(seq);
        if first {
            self.waiting.remove(&seq);
        } else {
            self.waiting.insert(seq);
        }
        first
    }

    /// Event `seq` is left alone by its claim ([`Outcome::Keep`](crate::store::backend::Outcome::Keep)):
    /// it no longer holds back its key, which is remembered for [`Keys::restore`].
    pub(super) fn set_aside(&mut self, seq: u64) {
        self.waiting.remove(&seq);
        let Some(key) = self.key_of.get(&seq) else {
            return;
        };
        if let Some(seqs) = self.by_key.get_mut(key) {
            seqs.remove(&seq);
            if seqs.is_empty() {
                self.by_key.remove(key);
            }
        }
    }

    /// The claim that set event `seq` aside ended and the event is still
    /// unfinished: it holds its key again (waiting, if an earlier event of
    /// its key is unfinished).
    pub(super) fn restore(&mut self, seq: u64) {
        if let Some(key) = self.key_of.get(&seq).cloned() {
            self.hold(seq, key);
        }
    }

    /// Event `seq` no longer holds back its key (done, dead or kept).
    pub(super) fn finished(&mut self, seq: u64) {
        self.waiting.remove(&seq);
        let Some(key) = self.key_of.remove(&seq) else {
            return;
        };
        if let Some(seqs) = self.by_key.get_mut(&key) {
            seqs.remove(&seq);
            if seqs.is_empty() {
                self.by_key.remove(&key);
            }
        }
    }

    /// Whether event `seq` waits for an earlier event of its key.
    pub(super) fn is_waiting(&self, seq: u64) -> bool {
        self.waiting.contains(&seq)
    }

    /// How many events wait.
    pub(super) fn waiting_count(&self) -> usize {
        self.waiting.len()
    }

    /// The waiting events that are now first of their key.
    pub(super) fn ready(&self) -> Vec<u64> {
        self.waiting
            .iter()
            .copied()
            .filter(|seq| {
                self.key_of
                    .get(seq)
                    .and_then(|key| self.by_key.get(key))
                    .and_then(BTreeSet::first)
                    == Some(seq)
            })
            .collect()
    }
}

/// The ordering key at JSON pointer `pointer` in `body`: a string as is,
/// another value as its JSON text; none when absent, null, or not JSON.
pub(crate) fn key_at(pointer: &str, body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    match value.pointer(pointer)? {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(key: &str) -> Vec<u8> {
        format!(r#"{{"data":{{"account":"{key}"}}}}"#).into_bytes()
    }

    #[test]
    fn only_the_earliest_unfinished_event_of_a_key_runs() {
        let mut keys = Keys::new("/data/account");
        assert!(keys.admit(1, &body("a")));
        assert!(keys.admit(2, &body("b")));
        assert!(!keys.admit(3, &body("a")));
        assert!(!keys.admit(4, &body("a")));
        assert!(keys.admit(5, b"{}"), "no key: runs at once");
        assert_eq!(keys.waiting_count(), 2);
        assert!(keys.admit(1, &body("a")), "the first, retrying, runs again");
        assert!(keys.ready().is_empty());
        keys.finished(1);
        assert_eq!(keys.ready(), [3]);
        assert!(keys.admit(3, &body("a")));
        keys.finished(3);
        assert_eq!(keys.ready(), [4]);
        keys.finished(4);
        assert_eq!(keys.waiting_count(), 0);
        assert!(keys.admit(6, &body("a")));
    }

    #[test]
    fn keys_come_from_a_json_pointer() {
        let body = br#"{"data":{"id":"ord_1","n":7,"none":null}}"#;
        assert_eq!(key_at("/data/id", body).as_deref(), Some("ord_1"));
        assert_eq!(key_at("/data/n", body).as_deref(), Some("7"));
        assert_eq!(key_at("/data/none", body), None);
        assert_eq!(key_at("/data/missing", body), None);
        assert_eq!(key_at("/data/id", b"\xff not json"), None);
    }
}
