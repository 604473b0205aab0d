//! An event's identity: its id (for deduplication) and its type (for routing).
//!
//! The id (the dedup key) comes only from signed bytes ([`Scheme::dedup_on`]):
//! an id header the signature covers, else a top-level field of the signed
//! JSON body — parsed without building a tree: only the wanted fields are kept,
//! every other value is skipped — else the SHA-256 of the body, so a retried
//! delivery of the same bytes deduplicates. An id header outside the signed
//! content (GitHub's, Shopify's) is never the key: anyone holding one genuine
//! delivery could resend it under fresh ids. The type comes from a body field
//! or a header; a header type is not authenticated.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use sha2::{Digest, Sha256};

use crate::headers::HeaderSource;
use crate::scheme::{DedupOn, Scheme, TypeSource};
use crate::verify::Verified;

/// The longest event id accepted, in bytes.
pub const MAX_ID_LEN: usize = 256;
/// The longest event type accepted, in bytes.
pub const MAX_TYPE_LEN: usize = 128;

/// Why a verified delivery's id or type could not be read.
///
/// ```
/// use webhook_inbox::EventProblem;
///
/// let p = EventProblem::MissingType { place: "field `event`".into() };
/// assert_eq!(p.to_string(), "no event type: field `event` is absent");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventProblem {
    /// The body had to be read as JSON (for the id or the type) and is not a JSON object.
    #[error("the body is not a JSON object: {detail}")]
    NotJson {
        /// What the JSON parser said.
        detail: String,
    },
    /// The scheme's type header or field is absent.
    #[error("no event type: {place} is absent")]
    MissingType {
        /// Where it was looked for: ``header `X-GitHub-Event` `` or ``field `event` ``.
        place: String,
    },
    /// The id is empty, too long or holds control characters.
    #[error("invalid event id: {reason}")]
    InvalidId {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The type is empty, too long, not text or holds control characters.
    #[error("invalid event type: {reason}")]
    InvalidType {
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// The id and type of a verified delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) id: String,
    pub(crate) event_type: String,
}

/// Reads the id and type of `verified` as `scheme` says.
pub(crate) fn identify<H: HeaderSource + ?Sized>(
    scheme: &Scheme,
    headers: &H,
    verified: &Verified<'_>,
) -> Result<Identity, EventProblem> {
    // Only an id header the signature covers (or one the scheme explicitly
    // trusts) may be the key; otherwise the key comes from the signed body.
    let header_id = match scheme.dedup_on() {
        DedupOn::SignedIdHeader(_) | DedupOn::UnsignedIdHeader(_) => {
            verified.id().filter(|id| !id.is_empty())
        }
        _ => None,
    };
    let id_field = scheme.id_field_name().filter(|_| header_id.is_none());
    let type_field = match scheme.type_source() {
        TypeSource::Field(name) => Some(name.as_ref()),
        _ => None,
    };
    let fields = if id_field.is_some() || type_field.is_some() {
        top_level_fields(verified.body(), [id_field, type_field])?
    } else {
        [None, None]
    };
    let [json_id, json_type] = fields;

    let id = match (header_id, json_id) {
        (Some(id), _) => id.to_owned(),
        (None, Some(id)) => id,
        (None, None) => format!("sha256:{}", hex::encode(Sha256::digest(verified.body()))),
    };
    check_text(&id, MAX_ID_LEN).map_err(|reason| EventProblem::InvalidId { reason })?;

    let event_type: std::borrow::Cow<'_, str> = match scheme.type_source() {
        TypeSource::None => {
            return Ok(Identity {
                id,
                event_type: String::new(),
            });
        }
        TypeSource::Field(name) => json_type
            .ok_or_else(|| EventProblem::MissingType {
                place: format!("field `{name}`"),
            })?
            .into(),
        TypeSource::Header(name) => {
            let raw = headers
                .header(name)
                .ok_or_else(|| EventProblem::MissingType {
                    place: format!("header `{name}`"),
                })?;
            std::str::from_utf8(raw)
                .map_err(|_| EventProblem::InvalidType {
                    reason: "not UTF-8",
                })?
                .into()
        }
    };
    // Checked before it is copied: a header value can be large.
    check_text(&event_type, MAX_TYPE_LEN).map_err(|reason| EventProblem::InvalidType { reason })?;
    let event_type = event_type.into_owned();
    Ok(Identity { id, event_type })
}

fn check_text(text: &str, max: usize) -> Result<(), &'static str> {
    if text.is_empty() {
        Err("empty")
    } else if text.len() > max {
        Err("too long")
    } else if text.chars().any(char::is_control) {
        Err("holds control characters")
    } else {
        Ok(())
    }
}

/// The values of up to two top-level fields of a JSON object body, as text.
/// Integers become their decimal digits (`{"id": 123}` has id `123`); other
/// numbers (fractions, integers past 64 bits) would lose precision, so they
/// count as absent, like `null`, arrays and objects.
fn top_level_fields(
    body: &[u8],
    wanted: [Option<&str>; 2],
) -> Result<[Option<String>; 2], EventProblem> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let found = Picker { wanted }
        .deserialize(&mut de)
        .and_then(|found| de.end().map(|()| found))
        .map_err(|e| EventProblem::NotJson {
            detail: e.to_string(),
        })?;
    Ok(found)
}

struct Picker<'w> {
    wanted: [Option<&'w str>; 2],
}

impl<'de> DeserializeSeed<'de> for Picker<'_> {
    type Value = [Option<String>; 2];

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Picker<'_> {
    type Value = [Option<String>; 2];

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found: [Option<String>; 2] = [None, None];
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let slot = self.wanted.iter().position(|w| *w == Some(key.as_ref()));
            match slot {
                Some(i) if found.get(i).is_some_and(Option::is_none) => {
                    let value = map.next_value::<Scalar>()?.0;
                    if let Some(place) = found.get_mut(i) {
                        *place = value;
                    }
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(found)
    }
}

/// A string or number as text; anything else (null, objects) counts as absent.
struct Scalar(Option<String>);

impl<'de> de::Deserialize<'de> for Scalar {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(Some(v.to_owned())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(Some(v.to_string())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(Some(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Scalar, E> {
                Ok(Scalar(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Scalar, E> {
                Ok(Scalar(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar(None))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar(None))
            }
        }
        deserializer.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exact_numbers_make_ids() {
        let big = br#"{"id":123456789012345678901234567890}"#;
        assert_eq!(
            top_level_fields(big, [Some("id"), None]).unwrap(),
            [None, None]
        );
        let neg = br#"{"id":-7}"#;
        assert_eq!(
            top_level_fields(neg, [Some("id"), None]).unwrap(),
            [Some("-7".to_owned()), None]
        );
    }

    #[test]
    fn picks_top_level_fields_only() {
        let body = br#"{"data":{"event":"nested","id":"inner"},"event":"order.filled","id":42,"x":[1,{"y":2}]}"#;
        let got = top_level_fields(body, [Some("id"), Some("event")]).unwrap();
        assert_eq!(
            got,
            [Some("42".to_owned()), Some("order.filled".to_owned())]
        );
    }

    #[test]
    fn non_objects_and_deep_nesting_are_errors_not_crashes() {
        for body in [
            &b"[1,2]"[..],
            b"\"s\"",
            b"{\"a\":1",
            b"{\"a\":1} trailing",
            b"\xff\xfe",
            b"",
        ] {
            assert!(
                top_level_fields(body, [Some("id"), None]).is_err(),
                "{body:?}"
            );
        }
        // Skipped values are walked without recursion: deep nesting neither
        // overflows the stack nor hides the top-level fields.
        let deep = format!(
            "{{\"a\":{}{},\"id\":\"x\"}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(
            top_level_fields(deep.as_bytes(), [Some("id"), None]).unwrap(),
            [Some("x".to_owned()), None]
        );
        let deep_id = format!("{{\"id\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        // A non-scalar id counts as absent (the body hash becomes the id).
        assert_eq!(
            top_level_fields(deep_id.as_bytes(), [Some("id"), None]).unwrap(),
            [None, None]
        );
    }
}
