//! Where request headers come from: any framework's header type, slices of pairs, maps.

use std::collections::HashMap;
use std::hash::BuildHasher;

/// A read-only view of a request's headers, looked up by name.
///
/// Names are compared ASCII case-insensitively, as HTTP requires. When a header
/// appears more than once, the first value is used. Values are raw bytes, so a
/// header that is not valid UTF-8 still reaches the verifier, which then reports
/// it as malformed instead of pretending it is missing.
///
/// Implemented for slices, arrays and `Vec`s of `(name, value)` pairs of any
/// string type, for `HashMap<String, String>`, and — with the default `http`
/// feature — for [`http::HeaderMap`](https://docs.rs/http/1/http/header/struct.HeaderMap.html),
/// the header type of axum, hyper, reqwest and tower.
///
/// ```
/// use webhook_inbox::HeaderSource;
///
/// let headers = [("Webhook-Id", "msg_1"), ("webhook-timestamp", "1700000000")];
/// assert_eq!(headers.header("webhook-id"), Some(&b"msg_1"[..]));
/// assert_eq!(headers.header("WEBHOOK-TIMESTAMP"), Some(&b"1700000000"[..]));
/// assert_eq!(headers.header("webhook-signature"), None);
/// ```
pub trait HeaderSource {
    /// The value of the first header called `name` (ASCII case-insensitive), if any.
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use webhook_inbox::HeaderSource;
    ///
    /// let mut map = HashMap::new();
    /// map.insert("Stripe-Signature".to_string(), "t=1,v1=ab".to_string());
    /// assert_eq!(map.header("stripe-signature"), Some(&b"t=1,v1=ab"[..]));
    /// ```
    fn header(&self, name: &str) -> Option<&[u8]>;
}

impl<T: HeaderSource + ?Sized> HeaderSource for &T {
    fn header(&self, name: &str) -> Option<&[u8]> {
        (**self).header(name)
    }
}

impl<K: AsRef<str>, V: AsRef<str>> HeaderSource for [(K, V)] {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.iter()
            .find(|(k, _)| k.as_ref().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref().as_bytes())
    }
}

impl<K: AsRef<str>, V: AsRef<str>, const N: usize> HeaderSource for [(K, V); N] {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.as_slice().header(name)
    }
}

impl<K: AsRef<str>, V: AsRef<str>> HeaderSource for Vec<(K, V)> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.as_slice().header(name)
    }
}

impl<V: AsRef<str>, S: BuildHasher> HeaderSource for HashMap<String, V, S> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        match self.get(name) {
            Some(v) => Some(v.as_ref().as_bytes()),
            None => self
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_ref().as_bytes()),
        }
    }
}

#[cfg(feature = "http")]
impl HeaderSource for http::HeaderMap {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.get(name).map(http::HeaderValue::as_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_pairs_and_maps_are_case_insensitive() {
        let owned = vec![("X-Hub-Signature-256".to_string(), "sha256=00".to_string())];
        assert_eq!(owned.header("x-hub-signature-256"), Some(&b"sha256=00"[..]));
        let mut map: HashMap<String, String> = HashMap::new();
        map.insert("X-Slack-Signature".into(), "v0=00".into());
        assert_eq!(map.header("x-slack-signature"), Some(&b"v0=00"[..]));
        assert_eq!(map.header("x-slack-request-timestamp"), None);
    }

    #[test]
    fn first_duplicate_wins() {
        let pairs = [("a", "1"), ("A", "2")];
        assert_eq!(pairs.header("a"), Some(&b"1"[..]));
    }

    #[cfg(feature = "http")]
    #[test]
    fn header_map_lookup_ignores_case_and_keeps_raw_bytes() {
        let mut map = http::HeaderMap::new();
        map.insert(
            "webhook-id",
            http::HeaderValue::from_bytes(b"msg_\xff").expect("obs-text is a valid header value"),
        );
        assert_eq!(map.header("Webhook-ID"), Some(&b"msg_\xff"[..]));
    }
}
