//! Where a scheme takes an event's id and type from, and which of them the
//! signature covers: the dedup key is always signed bytes unless the user
//! says otherwise, and an unsigned type is said.

use std::borrow::Cow;

use super::{Name, Scheme};

/// What a scheme's events are deduplicated on; see [`Scheme::dedup_on`].
///
/// ```
/// use webhook_inbox::{DedupOn, Scheme};
///
/// assert_eq!(Scheme::bluum().dedup_on(), DedupOn::SignedIdHeader("webhook-id"));
/// assert_eq!(Scheme::stripe().dedup_on(), DedupOn::BodyField("id"));
/// assert_eq!(Scheme::github().dedup_on(), DedupOn::BodyHash);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DedupOn<'a> {
    /// The id header, covered by the signature (the signed content holds
    /// `{id}`): Standard Webhooks, Bluum. An empty value falls back to the
    /// body field (if one is named), then to the body's SHA-256.
    SignedIdHeader(&'a str),
    /// This top-level field of the signed JSON body (Stripe's `id`, Slack's
    /// `event_id`); the body's SHA-256 when the field is absent.
    BodyField(&'a str),
    /// The SHA-256 of the signed body (the id is `sha256:<hex>`): GitHub,
    /// Shopify, and custom schemes without a signed id. A provider's
    /// redelivery of an event is byte-identical, so it deduplicates; two
    /// genuinely distinct events with identical bytes are one event.
    BodyHash,
    /// An id header the signature does not cover, made the key by
    /// [`Scheme::trust_unsigned_id_header`]: a genuine delivery can be
    /// accepted again under any fresh id.
    UnsignedIdHeader(&'a str),
}
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TypeSource {
    None,
    Header(Name),
    /// A top-level field of the JSON body.
    Field(Name),
}

impl Scheme {
    /// Sets the header that carries the delivery id. It is signed, and the
    /// dedup key, when the content template uses `{id}`; otherwise it is kept
    /// with the stored event for display and search, and the key comes from
    /// signed bytes (see [`dedup_on`](Self::dedup_on)).
    ///
    /// ```
    /// use webhook_inbox::{DedupOn, Scheme};
    ///
    /// assert_eq!(Scheme::bluum().id_header("X-Id").id_header_name(), Some("X-Id"));
    /// let unsigned = Scheme::custom("acme", "X-Sig").id_header("X-Acme-Delivery");
    /// assert_eq!(unsigned.dedup_on(), DedupOn::BodyHash);
    /// ```
    pub fn id_header(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.id_header = Some(name.into());
        self
    }

    /// Reads the event id from this top-level field of the JSON body (Stripe's
    /// `id`, Slack's `event_id`) when there is no signed id header. Without
    /// either, the id is the SHA-256 of the body, so a retried delivery of the
    /// same bytes still deduplicates.
    ///
    /// ```
    /// use webhook_inbox::Scheme;
    ///
    /// let s = Scheme::bluum().id_field("event_id");
    /// assert_ne!(s, Scheme::bluum());
    /// ```
    pub fn id_field(mut self, field: impl Into<Cow<'static, str>>) -> Self {
        self.id_field = Some(field.into());
        self
    }

    /// Reads the event type from this top-level field of the JSON body (`event`
    /// for Bluum, `type` for Stripe and Standard Webhooks).
    ///
    /// ```
    /// use webhook_inbox::Scheme;
    ///
    /// assert_eq!(Scheme::standard().type_field("event"), Scheme::bluum().named("standard"));
    /// ```
    pub fn type_field(mut self, field: impl Into<Cow<'static, str>>) -> Self {
        self.event_type = TypeSource::Field(field.into());
        self
    }

    /// Reads the event type from this header (`X-GitHub-Event`, `X-Shopify-Topic`).
    ///
    /// **No signature covers a header type**: whoever holds one genuine
    /// delivery can send it first under another type, to another handler. A
    /// handler must not trust such a type for authorisation. When the sender
    /// also puts the type in the body, use [`type_field`](Self::type_field)
    /// instead.
    ///
    /// ```
    /// use webhook_inbox::Scheme;
    ///
    /// let s = Scheme::custom("acme", "X-Sig").type_header("X-Acme-Event");
    /// assert!(!s.type_is_signed());
    /// ```
    pub fn type_header(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.event_type = TypeSource::Header(name.into());
        self
    }

    /// Makes an [`id_header`](Self::id_header) that the signature does not
    /// cover the dedup key anyway. **This re-opens the replay hole the default
    /// closes**: anyone holding one genuine delivery can have it accepted (and
    /// handled) again under each fresh id they send, as often as they like.
    /// Use it only for a sender whose retries of one event differ in their
    /// bytes (so the default body hash would not deduplicate them) and whose
    /// deliveries carry a signed timestamp, which at least bounds replays to
    /// the tolerance. Has no effect when the content signs `{id}`.
    ///
    /// ```
    /// use webhook_inbox::{DedupOn, Scheme};
    ///
    /// let s = Scheme::custom("acme", "X-Sig")
    ///     .id_header("X-Acme-Delivery")
    ///     .trust_unsigned_id_header();
    /// assert_eq!(s.dedup_on(), DedupOn::UnsignedIdHeader("X-Acme-Delivery"));
    /// ```
    pub fn trust_unsigned_id_header(mut self) -> Self {
        self.trust_unsigned_id = true;
        self
    }

    /// What events of this scheme are deduplicated on: always signed bytes
    /// (a signed id header, a field of the signed body, or the body's
    /// SHA-256), unless [`trust_unsigned_id_header`](Self::trust_unsigned_id_header)
    /// says otherwise.
    ///
    /// ```
    /// use webhook_inbox::{DedupOn, Scheme};
    ///
    /// assert_eq!(Scheme::slack().dedup_on(), DedupOn::BodyField("event_id"));
    /// assert_eq!(Scheme::shopify().dedup_on(), DedupOn::BodyHash);
    /// ```
    pub fn dedup_on(&self) -> DedupOn<'_> {
        match (self.id_header.as_deref(), self.id_field.as_deref()) {
            (Some(header), _) if self.content.uses_id() => DedupOn::SignedIdHeader(header),
            (Some(header), _) if self.trust_unsigned_id => DedupOn::UnsignedIdHeader(header),
            (_, Some(field)) => DedupOn::BodyField(field),
            _ => DedupOn::BodyHash,
        }
    }

    /// Whether the event type is covered by the signature: read from a field
    /// of the signed body, or not read at all. `false` for a type header
    /// (GitHub's `X-GitHub-Event`, Shopify's `X-Shopify-Topic`), which a
    /// handler must not trust for authorisation.
    ///
    /// ```
    /// use webhook_inbox::Scheme;
    ///
    /// assert!(Scheme::bluum().type_is_signed());
    /// assert!(!Scheme::shopify().type_is_signed());
    /// ```
    pub fn type_is_signed(&self) -> bool {
        !matches!(self.event_type, TypeSource::Header(_))
    }

    /// The header carrying the delivery id, if the scheme has one.
    ///
    /// ```
    /// use webhook_inbox::Scheme;
    ///
    /// assert_eq!(Scheme::stripe().id_header_name(), None);
    /// ```
    pub fn id_header_name(&self) -> Option<&str> {
        self.id_header.as_deref()
    }

    pub(crate) fn id_field_name(&self) -> Option<&str> {
        self.id_field.as_deref()
    }

    pub(crate) fn type_source(&self) -> &TypeSource {
        &self.event_type
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::SignedContent;

    #[test]
    fn no_preset_dedups_on_or_routes_by_an_unsigned_field_unsaid() {
        for name in ["standard", "bluum", "stripe", "github", "slack", "shopify"] {
            let scheme = Scheme::preset(name).unwrap();
            let key_is_signed = match scheme.dedup_on() {
                DedupOn::SignedIdHeader(_) => scheme.content().uses_id(),
                DedupOn::BodyField(_) | DedupOn::BodyHash => true,
                DedupOn::UnsignedIdHeader(_) => false,
            };
            assert!(key_is_signed, "{name}");
            // The type is unsigned exactly where the docs say so.
            assert_eq!(
                scheme.type_is_signed(),
                !matches!(name, "github" | "shopify"),
                "{name}"
            );
        }
        let custom = Scheme::custom("x", "X-Sig").id_header("X-Id");
        assert_eq!(custom.dedup_on(), DedupOn::BodyHash);
        assert_eq!(
            custom.clone().id_field("id").dedup_on(),
            DedupOn::BodyField("id")
        );
        assert_eq!(
            custom
                .timestamp_header("X-Ts")
                .signed_content(SignedContent::parse("{id}.{timestamp}.{body}").unwrap())
                .dedup_on(),
            DedupOn::SignedIdHeader("X-Id")
        );
    }
}
