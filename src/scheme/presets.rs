//! The providers' schemes ready-made, and the empty start of a custom one.

use std::borrow::Cow;
use std::str::FromStr;

use super::{Algorithm, Encoding, KeyFormat, Scheme, SignatureHeader, TimestampSource, TypeSource};
use crate::content::SignedContent;
use crate::error::ConfigError;
use crate::format::SignatureFormat;

fn standard_webhooks(name: &'static str) -> Scheme {
    Scheme {
        name: Cow::Borrowed(name),
        id_header: Some(Cow::Borrowed("webhook-id")),
        timestamp: TimestampSource::Header(Cow::Borrowed("webhook-timestamp")),
        signature_headers: vec![SignatureHeader {
            name: Cow::Borrowed("webhook-signature"),
            labels: vec![
                (Cow::Borrowed("v1"), Algorithm::HmacSha256),
                (Cow::Borrowed("v1a"), Algorithm::Ed25519),
            ],
        }],
        format: SignatureFormat::STANDARD,
        encoding: Encoding::Base64,
        content: content("{id}.{timestamp}.{body}"),
        key_format: KeyFormat::StandardWebhooks,
        id_field: None,
        event_type: TypeSource::Field(Cow::Borrowed("type")),
        trust_unsigned_id: false,
    }
}

fn content(template: &'static str) -> SignedContent {
    // Templates of the presets are constants checked by the `presets_are_consistent` test.
    SignedContent::parse(template).unwrap_or_else(|_| unreachable!("preset template {template}"))
}

fn body_only(
    name: &'static str,
    header: &'static str,
    format: SignatureFormat,
    label: &'static str,
    encoding: Encoding,
) -> Scheme {
    Scheme {
        name: Cow::Borrowed(name),
        id_header: None,
        timestamp: TimestampSource::None,
        signature_headers: vec![SignatureHeader {
            name: Cow::Borrowed(header),
            labels: vec![(Cow::Borrowed(label), Algorithm::HmacSha256)],
        }],
        format,
        encoding,
        content: content("{body}"),
        key_format: KeyFormat::Utf8,
        id_field: None,
        event_type: TypeSource::None,
        trust_unsigned_id: false,
    }
}

impl Scheme {
    /// [Standard Webhooks](https://www.standardwebhooks.com/) (Svix and the many
    /// senders built on it): `webhook-id`, `webhook-timestamp` and
    /// `webhook-signature: v1,<base64>` (space-separated, several allowed);
    /// content `{id}.{timestamp}.{body}`; secrets `whsec_<base64>` (the prefix is
    /// optional). Also accepts `v1a,<base64>` Ed25519 signatures, checked against
    /// `whpk_` public keys.
    ///
    /// ```
    /// use webhook_inbox::Scheme;
    ///
    /// assert_eq!(Scheme::standard().id_header_name(), Some("webhook-id"));
    /// ```
    pub fn standard() -> Self {
        standard_webhooks("standard")
    }

    /// Bluum (brokerage API). **Bluum's documentation says every delivery is
    /// signed but does not publish the scheme.** This preset therefore assumes the
    /// Standard Webhooks layout (`webhook-id`, `webhook-timestamp`,
    /// `webhook-signature`, content `{id}.{timestamp}.{body}`, `whsec_` secrets)
    /// carrying Bluum's envelope `{"event": …, "timestamp": …, "data": {…}}`. If
    /// Bluum's deliveries use other header names, change them in one line each:
    ///
    /// ```
    /// use webhook_inbox::Scheme;
    ///
    /// let scheme = Scheme::bluum()
    ///     .signature_header("X-Bluum-Signature")
    ///     .timestamp_header("X-Bluum-Timestamp")
    ///     .id_header("X-Bluum-Delivery");
    /// assert_eq!(scheme.id_header_name(), Some("X-Bluum-Delivery"));
    /// ```
    pub fn bluum() -> Self {
        standard_webhooks("bluum").type_field("event")
    }

    /// Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]`, content
    /// `{t}.{body}`, the whole secret string (including `whsec_`) is the key.
    /// `v0` (test-mode) signatures are never accepted.
    ///
    /// ```
    /// use webhook_inbox::Scheme;
    ///
    /// assert_eq!(Scheme::stripe().signature_header_name(), "Stripe-Signature");
    /// ```
    pub fn stripe() -> Self {
        Self {
            name: Cow::Borrowed("stripe"),
            id_header: None,
            timestamp: TimestampSource::SignatureEntry(Cow::Borrowed("t")),
            signature_headers: vec![SignatureHeader {
                name: Cow::Borrowed("Stripe-Signature"),
                labels: vec![(Cow::Borrowed("v1"), Algorithm::HmacSha256)],
            }],
            format: SignatureFormat::KEY_VALUE_LIST,
            encoding: Encoding::Hex,
            content: content("{timestamp}.{body}"),
            key_format: KeyFormat::Utf8,
            id_field: Some(Cow::Borrowed("id")),
            event_type: TypeSource::Field(Cow::Borrowed("type")),
            trust_unsigned_id: false,
        }
    }

    /// GitHub: `X-Hub-Signature-256: sha256=<hex>` over the body; no timestamp,
    /// so no replay window. The legacy SHA-1 header is refused unless added:
    ///
    /// ```
    /// use webhook_inbox::{Algorithm, Scheme};
    ///
    /// let with_sha1 = Scheme::github().also_signature_header("X-Hub-Signature", "sha1", Algorithm::HmacSha1);
    /// assert_ne!(with_sha1, Scheme::github());
    /// ```
    ///
    /// **GitHub signs the body only.** `X-GitHub-Delivery` and
    /// `X-GitHub-Event` are not authenticated: anyone holding one genuine
    /// delivery can resend it with other values. Therefore:
    ///
    /// - the dedup key is the SHA-256 of the body (the event id is
    ///   `sha256:<hex>`; a redelivery from GitHub's UI is byte-identical and
    ///   deduplicates). `X-GitHub-Delivery` is kept with the stored event's
    ///   headers, for display and search, never as the key;
    /// - the event type comes from `X-GitHub-Event`, **unauthenticated**: a
    ///   copy sent first with another type reaches that type's handler (a
    ///   later copy with any type is a duplicate). A handler must not trust the
    ///   type for authorisation; check the payload's shape instead.
    ///
    /// ```
    /// use webhook_inbox::{DedupOn, Scheme};
    ///
    /// assert_eq!(Scheme::github().dedup_on(), DedupOn::BodyHash);
    /// assert!(!Scheme::github().type_is_signed());
    /// ```
    pub fn github() -> Self {
        body_only(
            "github",
            "X-Hub-Signature-256",
            SignatureFormat::LABELED,
            "sha256",
            Encoding::Hex,
        )
        .id_header("X-GitHub-Delivery")
        .type_header("X-GitHub-Event")
    }

    /// Slack: `X-Slack-Signature: v0=<hex>` over `v0:{timestamp}:{body}`, the
    /// timestamp in `X-Slack-Request-Timestamp`.
    ///
    /// ```
    /// use webhook_inbox::Scheme;
    ///
    /// assert_eq!(Scheme::slack().content().to_string(), "v0:{timestamp}:{body}");
    /// ```
    pub fn slack() -> Self {
        Self {
            timestamp: TimestampSource::Header(Cow::Borrowed("X-Slack-Request-Timestamp")),
            content: content("v0:{timestamp}:{body}"),
            id_field: Some(Cow::Borrowed("event_id")),
            event_type: TypeSource::Field(Cow::Borrowed("type")),
            ..body_only(
                "slack",
                "X-Slack-Signature",
                SignatureFormat::LABELED,
                "v0",
                Encoding::Hex,
            )
        }
    }

    /// Shopify: `X-Shopify-Hmac-Sha256: <base64>` of the HMAC of the body; no
    /// timestamp, so no replay window.
    ///
    /// **Shopify signs the body only.** As for [`github`](Self::github): the
    /// dedup key is the SHA-256 of the body (`X-Shopify-Event-Id` is kept with
    /// the stored headers for display and search, never as the key; Shopify's
    /// retries resend the same bytes), and the type from `X-Shopify-Topic` is
    /// **not authenticated**: a handler must not trust it for authorisation.
    ///
    /// ```
    /// use webhook_inbox::{DedupOn, Scheme};
    ///
    /// assert_eq!(Scheme::shopify().id_header_name(), Some("X-Shopify-Event-Id"));
    /// assert_eq!(Scheme::shopify().dedup_on(), DedupOn::BodyHash);
    /// ```
    pub fn shopify() -> Self {
        body_only(
            "shopify",
            "X-Shopify-Hmac-Sha256",
            SignatureFormat::BARE,
            "",
            Encoding::Base64,
        )
        .id_header("X-Shopify-Event-Id")
        .type_header("X-Shopify-Topic")
    }

    /// A scheme built from scratch: signatures in `signature_header`, content
    /// `{body}`, hex, unlabeled entries ([`SignatureFormat::BARE`]), keys taken as
    /// the secret's bytes, no id, no timestamp. Change what differs, and say which
    /// labels to accept with [`accept`](Self::accept) (`""` for unlabeled
    /// entries); a scheme with no accepted label is refused when a verifier is built.
    ///
    /// Its events are deduplicated on the body's SHA-256 unless the signed
    /// content holds `{id}` or an [`id_field`](Self::id_field) is named: an
    /// [`id_header`](Self::id_header) outside the signed content is kept for
    /// display only (see [`dedup_on`](Self::dedup_on)).
    ///
    /// ```
    /// use webhook_inbox::{Encoding, Scheme, SignatureFormat, SignedContent};
    ///
    /// let acme = Scheme::custom("acme", "X-Acme-Signature")
    ///     .signature_format(SignatureFormat::LABELED)
    ///     .accept("sha256", webhook_inbox::Algorithm::HmacSha256)
    ///     .timestamp_header("X-Acme-Timestamp")
    ///     .signed_content("{timestamp}.{body}".parse::<SignedContent>()?)
    ///     .encoding(Encoding::Base64);
    /// assert_eq!(acme.name(), "acme");
    /// # Ok::<(), webhook_inbox::ConfigError>(())
    /// ```
    pub fn custom(
        name: impl Into<Cow<'static, str>>,
        signature_header: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            name: name.into(),
            signature_headers: vec![SignatureHeader {
                name: signature_header.into(),
                labels: Vec::new(),
            }],
            ..body_only("custom", "", SignatureFormat::BARE, "", Encoding::Hex)
        }
    }

    /// Looks a preset up by name: `standard`, `bluum`, `stripe`, `github`,
    /// `slack`, `shopify` (also available through [`FromStr`]).
    ///
    /// ```
    /// use webhook_inbox::Scheme;
    ///
    /// assert_eq!(Scheme::preset("stripe")?, Scheme::stripe());
    /// assert!(Scheme::preset("paypal").is_err());
    /// # Ok::<(), webhook_inbox::ConfigError>(())
    /// ```
    pub fn preset(name: &str) -> Result<Self, ConfigError> {
        Ok(match name.to_ascii_lowercase().as_str() {
            "standard" | "standard-webhooks" | "svix" => Self::standard(),
            "bluum" => Self::bluum(),
            "stripe" => Self::stripe(),
            "github" => Self::github(),
            "slack" => Self::slack(),
            "shopify" => Self::shopify(),
            _ => return Err(ConfigError::UnknownScheme(name.to_owned())),
        })
    }
}

impl FromStr for Scheme {
    type Err = ConfigError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::preset(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_consistent() {
        for name in ["standard", "bluum", "stripe", "github", "slack", "shopify"] {
            let scheme = Scheme::preset(name).unwrap();
            scheme.check().unwrap();
            assert_eq!(scheme.name(), name);
        }
    }
}
