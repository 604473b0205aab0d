//! Per-key ordering: events with the same key run one at a time, in
//! acceptance order; a key whose event is retrying holds back only that key.

use std::collections::{HashMap, VecDeque};

/// Who holds each key, and what waits behind it.
pub(super) struct Keys<J> {
    holders: HashMap<String, u64>,
    waiting: HashMap<String, VecDeque<J>>,
}

impl<J> Default for Keys<J> {
    fn default() -> Self {
        Self {
            holders: HashMap::new(),
            waiting: HashMap::new(),
        }
    }
}

impl<J> Keys<J> {
    /// Lets `job` (event `seq` with `key`) run now — it holds the key, or has
    /// none — or queues it behind the key's holder.
    pub(super) fn admit(&mut self, key: Option<&str>, seq: u64, job: J) -> Option<J> {
        let Some(key) = key else {
            return Some(job);
        };
        match self.holders.get(key) {
            None => {
                self.holders.insert(key.to_owned(), seq);
                Some(job)
            }
            Some(&holder) if holder == seq => Some(job),
            Some(_) => {
                self.waiting
                    .entry(key.to_owned())
                    .or_default()
                    .push_back(job);
                None
            }
        }
    }

    /// Event `seq` is done with `key` (handled or dead): the next waiting
    /// event, if any, now holds it and is returned.
    pub(super) fn release(&mut self, key: &str, seq: u64, seq_of: impl Fn(&J) -> u64) -> Option<J> {
        if self.holders.get(key) != Some(&seq) {
            return None;
        }
        let next = self.waiting.get_mut(key).and_then(VecDeque::pop_front);
        match &next {
            Some(job) => {
                self.holders.insert(key.to_owned(), seq_of(job));
            }
            None => {
                self.holders.remove(key);
                self.waiting.remove(key);
            }
        }
        next
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
        assert_eq!(keys.admit(Some("a"), 1, 1), Some(1));
        assert_eq!(keys.admit(Some("b"), 2, 2), Some(2));
        assert_eq!(keys.admit(Some("a"), 3, 3), None);
        assert_eq!(keys.admit(Some("a"), 4, 4), None);
        assert_eq!(keys.admit(None, 5, 5), Some(5));
        // The holder retrying is admitted again.
        assert_eq!(keys.admit(Some("a"), 1, 1), Some(1));
        // Only the holder releases.
        assert_eq!(keys.release("a", 3, |j| *j), None);
        assert_eq!(keys.release("a", 1, |j| *j), Some(3));
        assert_eq!(keys.release("a", 3, |j| *j), Some(4));
        assert_eq!(keys.release("a", 4, |j| *j), None);
        assert_eq!(keys.admit(Some("a"), 6, 6), Some(6));
        assert_eq!(keys.release("b", 2, |j| *j), None);
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
