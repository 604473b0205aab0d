//! Per-key ordering: events with the same key run one at a time, in
//! acceptance order; a key whose event is retrying holds back only that key.

use std::collections::{HashMap, VecDeque};

/// Who holds each key, and which events (by seq) wait behind it. Only seqs
/// are kept: a waiting event is read again from the store when its turn comes.
#[derive(Default)]
pub(super) struct Keys {
    holders: HashMap<String, u64>,
    waiting: HashMap<String, VecDeque<u64>>,
    waiting_count: usize,
}

impl Keys {
    /// Whether event `seq` with `key` may run now (it holds the key, or has
    /// none); if not, it is queued behind the key's holder.
    pub(super) fn admit(&mut self, key: Option<&str>, seq: u64) -> bool {
        let Some(key) = key else {
            return true;
        };
        match self.holders.get(key) {
            None => {
                self.holders.insert(key.to_owned(), seq);
                true
            }
            Some(&holder) if holder == seq => true,
            Some(_) => {
                self.waiting
                    .entry(key.to_owned())
                    .or_default()
                    .push_back(seq);
                self.waiting_count += 1;
                false
            }
        }
    }

    /// Event `seq` is done with `key` (handled or dead): the next waiting
    /// event, if any, now holds it and is returned.
    pub(super) fn release(&mut self, key: &str, seq: u64) -> Option<u64> {
        if self.holders.get(key) != Some(&seq) {
            return None;
        }
        let next = self.waiting.get_mut(key).and_then(VecDeque::pop_front);
        match next {
            Some(next) => {
                self.waiting_count -= 1;
                self.holders.insert(key.to_owned(), next);
            }
            None => {
                self.holders.remove(key);
                self.waiting.remove(key);
            }
        }
        next
    }

    /// Events waiting behind a key.
    pub(super) fn waiting(&self) -> usize {
        self.waiting_count
    }
}

/// The ordering key at JSON pointer `pointer` in `body`: a string as is,
/// another value as its JSON text; none when absent, null, or not JSON.
pub(super) fn key_at(pointer: &str, body: &[u8]) -> Option<String> {
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

    #[test]
    fn a_key_runs_one_event_at_a_time_in_order() {
        let mut keys = Keys::default();
        assert!(keys.admit(Some("a"), 1));
        assert!(keys.admit(Some("b"), 2));
        assert!(!keys.admit(Some("a"), 3));
        assert!(!keys.admit(Some("a"), 4));
        assert!(keys.admit(None, 5));
        assert_eq!(keys.waiting(), 2);
        // The holder retrying is admitted again.
        assert!(keys.admit(Some("a"), 1));
        // Only the holder releases.
        assert_eq!(keys.release("a", 3), None);
        assert_eq!(keys.release("a", 1), Some(3));
        assert_eq!(keys.release("a", 3), Some(4));
        assert_eq!(keys.waiting(), 0);
        assert_eq!(keys.release("a", 4), None);
        assert!(keys.admit(Some("a"), 6));
        assert_eq!(keys.release("b", 2), None);
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
