//! Values keyed by event-type pattern: an exact name, a `domain.*` wildcard,
//! or `*`. The most specific match wins. The router keys handlers this way,
//! the worker its per-type backoff.

use std::collections::HashMap;

use crate::error::ConfigError;

/// A map from type patterns to values.
#[derive(Clone)]
pub(crate) struct Patterns<T> {
    exact: HashMap<String, T>,
    /// `(prefix including the dot, value)`, longest prefix first.
    wildcards: Vec<(String, T)>,
    fallback: Option<T>,
}

impl<T> Default for Patterns<T> {
    fn default() -> Self {
        Self {
            exact: HashMap::new(),
            wildcards: Vec::new(),
            fallback: None,
        }
    }
}

impl<T> Patterns<T> {
    /// Adds `value` under `pattern`; refuses an invalid pattern or one already there.
    pub(crate) fn insert(&mut self, pattern: String, value: T) -> Result<(), ConfigError> {
        let taken = if pattern == "*" {
            self.fallback.replace(value).is_some()
        } else if let Some(domain) = pattern.strip_suffix(".*") {
            if !valid_name(domain) {
                return Err(ConfigError::InvalidPattern(pattern));
            }
            let prefix = format!("{domain}.");
            let taken = self.wildcards.iter().any(|(p, _)| *p == prefix);
            self.wildcards.push((prefix, value));
            self.wildcards
                .sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
            taken
        } else {
            if !valid_name(&pattern) {
                return Err(ConfigError::InvalidPattern(pattern));
            }
            self.exact.insert(pattern.clone(), value).is_some()
        };
        if taken {
            return Err(ConfigError::DuplicatePattern(pattern));
        }
        Ok(())
    }

    /// The value of the most specific pattern matching `event_type`.
    pub(crate) fn get(&self, event_type: &str) -> Option<&T> {
        self.exact
            .get(event_type)
            .or_else(|| {
                self.wildcards
                    .iter()
                    .find(|(prefix, _)| event_type.starts_with(prefix.as_str()))
                    .map(|(_, value)| value)
            })
            .or(self.fallback.as_ref())
    }

    /// The most specific pattern matching `event_type`, as it was registered
    /// (`order.filled`, `order.*`, `*`): a bounded label for metrics.
    #[cfg_attr(not(feature = "admin"), allow(dead_code))]
    pub(crate) fn pattern_of(&self, event_type: &str) -> Option<String> {
        if self.exact.contains_key(event_type) {
            return Some(event_type.to_owned());
        }
        if let Some((prefix, _)) = self
            .wildcards
            .iter()
            .find(|(prefix, _)| event_type.starts_with(prefix.as_str()))
        {
            return Some(format!("{prefix}*"));
        }
        self.fallback.as_ref().map(|_| "*".to_owned())
    }

    /// The patterns, sorted (for `Debug`).
    pub(crate) fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.exact.keys().cloned().collect();
        names.extend(self.wildcards.iter().map(|(p, _)| format!("{p}*")));
        names.extend(self.fallback.as_ref().map(|_| "*".to_owned()));
        names.sort_unstable();
        names
    }
}

/// Whether one `pattern` matches `event_type` by the same rule: `*` every
/// type, `domain.*` the types under `domain.`, anything else only itself.
pub(crate) fn matches(pattern: &str, event_type: &str) -> bool {
    match pattern.strip_suffix(".*") {
        _ if pattern == "*" => true,
        Some(domain) => event_type
            .strip_prefix(domain)
            .is_some_and(|rest| rest.starts_with('.')),
        None => pattern == event_type,
    }
}

/// An event type name: not empty, no `*`, no spaces or control characters.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.contains('*')
        && !name.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pattern_matches_like_the_map() {
        let mut map = Patterns::default();
        for p in ["order.filled", "transfer.*", "*"] {
            let mut one = Patterns::default();
            one.insert(p.to_owned(), ()).unwrap();
            for t in [
                "order.filled",
                "order.filledx",
                "transfer.deposit.failed",
                "transferx.a",
                "kyc",
            ] {
                assert_eq!(matches(p, t), one.get(t).is_some(), "{p} vs {t}");
            }
            map.insert(p.to_owned(), p).unwrap();
        }
        assert_eq!(map.get("transfer.x"), Some(&"transfer.*"));
        assert_eq!(map.get("order.filled"), Some(&"order.filled"));
        assert_eq!(map.get("order.canceled"), Some(&"*"));
        assert!(!matches("order*", "orders.x"));
    }
}
