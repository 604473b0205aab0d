//! What bytes a scheme signs: a template such as `{id}.{timestamp}.{body}`.

use std::fmt;
use std::str::FromStr;

use crate::error::ConfigError;

/// The layout of the signed content, as a template over the delivery's parts.
///
/// Placeholders are `{id}` (the id header's raw value), `{timestamp}` (the
/// timestamp exactly as sent, not re-formatted) and `{body}` (the raw body
/// bytes, never re-serialised); everything else is literal. `{body}` must appear
/// exactly once. The content is fed to the MAC piece by piece, so the body is
/// never copied.
///
/// ```
/// use webhook_inbox::SignedContent;
///
/// let slack: SignedContent = "v0:{timestamp}:{body}".parse()?;
/// assert!(slack.uses_timestamp() && !slack.uses_id());
/// assert_eq!(slack.to_string(), "v0:{timestamp}:{body}");
/// assert!("{id}.{body}.{body}".parse::<SignedContent>().is_err());
/// # Ok::<(), webhook_inbox::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SignedContent {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Part {
    Literal(Box<str>),
    Id,
    Timestamp,
    Body,
}

impl SignedContent {
    /// Parses a template; see the type's documentation for the placeholders.
    ///
    /// ```
    /// use webhook_inbox::SignedContent;
    ///
    /// let stripe = SignedContent::parse("{timestamp}.{body}")?;
    /// assert!(stripe.uses_timestamp());
    /// assert!(SignedContent::parse("{nonce}.{body}").is_err());
    /// # Ok::<(), webhook_inbox::ConfigError>(())
    /// ```
    pub fn parse(template: &str) -> Result<Self, ConfigError> {
        let bad = |reason: &'static str| ConfigError::InvalidTemplate {
            template: template.to_owned(),
            reason,
        };
        let mut parts = Vec::new();
        let mut rest = template;
        while !rest.is_empty() {
            match rest.find(['{', '}']) {
                Some(0) => {
                    if !rest.starts_with('{') {
                        return Err(bad("a `}` without its `{`"));
                    }
                    let close = rest.find('}').ok_or_else(|| bad("a `{` without its `}`"))?;
                    let name = rest.get(1..close).unwrap_or_default();
                    parts.push(match name {
                        "id" => Part::Id,
                        "timestamp" => Part::Timestamp,
                        "body" => Part::Body,
                        _ => {
                            return Err(bad(
                                "unknown placeholder: use {id}, {timestamp} or {body}",
                            ));
                        }
                    });
                    rest = rest.get(close + 1..).unwrap_or_default();
                }
                found => {
                    let at = found.unwrap_or(rest.len());
                    let (literal, tail) = rest.split_at(at);
                    parts.push(Part::Literal(literal.into()));
                    rest = tail;
                }
            }
        }
        match parts.iter().filter(|p| **p == Part::Body).count() {
            1 => Ok(Self { parts }),
            0 => Err(bad("`{body}` is missing")),
            _ => Err(bad("`{body}` appears more than once")),
        }
    }

    /// Whether the template signs the id header.
    ///
    /// ```
    /// use webhook_inbox::SignedContent;
    ///
    /// assert!(SignedContent::parse("{id}.{timestamp}.{body}")?.uses_id());
    /// # Ok::<(), webhook_inbox::ConfigError>(())
    /// ```
    pub fn uses_id(&self) -> bool {
        self.parts.contains(&Part::Id)
    }

    /// Whether the template signs the timestamp.
    ///
    /// ```
    /// use webhook_inbox::SignedContent;
    ///
    /// assert!(!SignedContent::parse("{body}")?.uses_timestamp());
    /// # Ok::<(), webhook_inbox::ConfigError>(())
    /// ```
    pub fn uses_timestamp(&self) -> bool {
        self.parts.contains(&Part::Timestamp)
    }

    /// Feeds the signed content to `sink` piece by piece, without copying the body.
    pub(crate) fn feed(
        &self,
        id: &[u8],
        timestamp: &[u8],
        body: &[u8],
        mut sink: impl FnMut(&[u8]),
    ) {
        for part in &self.parts {
            sink(match part {
                Part::Literal(text) => text.as_bytes(),
                Part::Id => id,
                Part::Timestamp => timestamp,
                Part::Body => body,
            });
        }
    }

    /// The signed content as one buffer (for Ed25519, which cannot stream).
    pub(crate) fn to_bytes(&self, id: &[u8], timestamp: &[u8], body: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(id.len() + timestamp.len() + body.len() + 8);
        self.feed(id, timestamp, body, |piece| out.extend_from_slice(piece));
        out
    }
}

impl FromStr for SignedContent {
    type Err = ConfigError;

    fn from_str(template: &str) -> Result<Self, Self::Err> {
        Self::parse(template)
    }
}

impl fmt::Display for SignedContent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                Part::Literal(text) => f.write_str(text)?,
                Part::Id => f.write_str("{id}")?,
                Part::Timestamp => f.write_str("{timestamp}")?,
                Part::Body => f.write_str("{body}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feeds_parts_in_order() {
        let content = SignedContent::parse("{id}.{timestamp}.{body}").unwrap();
        assert_eq!(
            content.to_bytes(b"msg", b"12", b"\xff\x00"),
            b"msg.12.\xff\x00"
        );
    }

    #[test]
    fn rejects_broken_templates() {
        for bad in [
            "",
            "{body",
            "body}",
            "{}{body}",
            "{body}{body}",
            "{ID}.{body}",
        ] {
            assert!(SignedContent::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
