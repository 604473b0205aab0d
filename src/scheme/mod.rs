//! Signature schemes as data: which headers, what is signed, how keys and signatures are encoded.
//!
//! The type, its name and its consistency check live here; its parts by
//! concern: `presets` (the providers' schemes and the empty custom one),
//! `signature` (what is signed, where signatures and the timestamp travel),
//! `identity` (what an event is deduplicated and routed on, and whether that
//! is signed), and `algorithm`, `encoding` and `key_format` (how signatures
//! and keys are computed and written).

mod algorithm;
mod encoding;
mod identity;
mod key_format;
mod presets;
mod signature;

use std::borrow::Cow;

use crate::content::SignedContent;
use crate::error::ConfigError;
use crate::format::SignatureFormat;

pub use algorithm::Algorithm;
pub(crate) use encoding::BASE64_LENIENT;
pub use encoding::Encoding;
pub use identity::DedupOn;
pub(crate) use identity::TypeSource;
pub use key_format::KeyFormat;
pub(crate) use signature::{SignatureHeader, TimestampSource};

type Name = Cow<'static, str>;

/// How a provider signs its deliveries, described as data.
///
/// Start from a preset and change what differs, one line per difference:
///
/// ```
/// use webhook_inbox::Scheme;
///
/// // Bluum with its signature under another header name:
/// let scheme = Scheme::bluum().signature_header("X-Bluum-Signature");
/// assert_eq!(scheme.name(), "bluum");
/// # let _ = scheme;
/// ```
///
/// | preset | signature header | signed content | key |
/// |---|---|---|---|
/// | [`standard`](Self::standard) | `webhook-signature: v1,<base64> v1a,<base64>` | `{id}.{timestamp}.{body}` | `whsec_<base64>` / `whpk_` |
/// | [`bluum`](Self::bluum) | as `standard` (see its docs) | as `standard` | as `standard` |
/// | [`stripe`](Self::stripe) | `Stripe-Signature: t=…,v1=<hex>` | `{timestamp}.{body}` | the whole string |
/// | [`github`](Self::github) | `X-Hub-Signature-256: sha256=<hex>` | `{body}` | the whole string |
/// | [`slack`](Self::slack) | `X-Slack-Signature: v0=<hex>` | `v0:{timestamp}:{body}` | the whole string |
/// | [`shopify`](Self::shopify) | `X-Shopify-Hmac-Sha256: <base64>` | `{body}` | the whole string |
///
/// # Only signed bytes decide deduplication
///
/// Whoever holds one genuine delivery can resend it with any headers the
/// signature does not cover. So the dedup key ([`dedup_on`](Self::dedup_on))
/// is always taken from signed bytes, and what is not signed is said:
///
/// | preset | dedup key | event type | replay window |
/// |---|---|---|---|
/// | `standard`, `bluum` | `webhook-id` (signed: `{id}`) | body field `type` / `event` (signed) | ±tolerance |
/// | `stripe` | body field `id` (signed) | body field `type` (signed) | ±tolerance |
/// | `slack` | body field `event_id` (signed) | body field `type` (signed) | ±tolerance |
/// | `github` | SHA-256 of the body; `X-GitHub-Delivery` is kept for display only | header `X-GitHub-Event`: **not authenticated** | none |
/// | `shopify` | SHA-256 of the body; `X-Shopify-Event-Id` is kept for display only | header `X-Shopify-Topic`: **not authenticated** | none |
/// | `custom` | SHA-256 of the body, unless the id is signed or a body field is named | as configured | as configured |
///
/// A type read from a header ([`type_header`](Self::type_header)) is never
/// covered by a signature: a handler must not trust it for authorisation
/// ([`type_is_signed`](Self::type_is_signed) says which case you are in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheme {
    name: Name,
    id_header: Option<Name>,
    timestamp: TimestampSource,
    signature_headers: Vec<SignatureHeader>,
    format: SignatureFormat,
    encoding: Encoding,
    content: SignedContent,
    key_format: KeyFormat,
    id_field: Option<Name>,
    event_type: TypeSource,
    /// Whether an id header outside the signed content is the dedup key anyway
    /// ([`Scheme::trust_unsigned_id_header`]).
    trust_unsigned_id: bool,
}

impl Scheme {
    /// Renames the scheme (it names the source in errors and logs).
    ///
    /// ```
    /// use webhook_inbox::Scheme;
    ///
    /// assert_eq!(Scheme::standard().named("payments").name(), "payments");
    /// ```
    pub fn named(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.name = name.into();
        self
    }

    /// The scheme's name.
    ///
    /// ```
    /// use webhook_inbox::Scheme;
    ///
    /// assert_eq!(Scheme::github().name(), "github");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every header the scheme reads, for keeping alongside a stored event.
    pub(crate) fn header_names(&self) -> impl Iterator<Item = &str> {
        let timestamp = match &self.timestamp {
            TimestampSource::Header(name) => Some(name.as_ref()),
            _ => None,
        };
        let event_type = match &self.event_type {
            TypeSource::Header(name) => Some(name.as_ref()),
            _ => None,
        };
        self.id_header
            .as_deref()
            .into_iter()
            .chain(timestamp)
            .chain(event_type)
            .chain(self.signature_headers.iter().map(|h| h.name.as_ref()))
    }

    /// Checks that the parts fit together; called when a verifier or signer is built.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        let bad = |reason| ConfigError::InconsistentScheme {
            scheme: self.name.to_string(),
            reason,
        };
        if self.content.uses_id() && self.id_header.is_none() {
            return Err(bad("the signed content uses {id} but no id header is set"));
        }
        if self.content.uses_timestamp() != self.has_timestamp() {
            return Err(bad(
                "a timestamp source is set exactly when the signed content uses {timestamp}",
            ));
        }
        if self.signature_headers.iter().any(|h| h.name.is_empty()) {
            return Err(bad("a signature header name is empty"));
        }
        if !self.signature_headers.iter().any(|h| !h.labels.is_empty()) {
            return Err(bad(
                "no signature label is accepted: call accept(label, algorithm)",
            ));
        }
        let labeled = self.format.label_separator().is_some();
        if !labeled
            && self
                .signature_headers
                .iter()
                .any(|h| h.labels.iter().any(|(l, _)| !l.is_empty()))
        {
            return Err(bad(
                "the signature format has no labels, so the accepted label must be \"\"",
            ));
        }
        if matches!(self.timestamp, TimestampSource::SignatureEntry(_)) && !labeled {
            return Err(bad(
                "a timestamp inside the signature header needs a labeled format",
            ));
        }
        if self.accepts(Algorithm::Ed25519) && self.encoding != Encoding::Base64 {
            return Err(bad("Ed25519 signatures are read as base64"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_without_labels_is_refused() {
        let err = Scheme::custom("x", "X-Sig").check().unwrap_err();
        assert!(matches!(err, ConfigError::InconsistentScheme { .. }));
        Scheme::custom("x", "X-Sig")
            .accept("", Algorithm::HmacSha256)
            .check()
            .unwrap();
    }
}
