//! Signature schemes as data: which headers, what is signed, how keys and signatures are encoded.

use std::borrow::Cow;
use std::str::FromStr;

use base64::Engine;

use crate::content::SignedContent;
use crate::error::ConfigError;
use crate::format::SignatureFormat;

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TimestampSource {
    None,
    Header(Name),
    /// An entry of the signature header with this label (Stripe's `t=`).
    SignatureEntry(Name),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SignatureHeader {
    pub(crate) name: Name,
    pub(crate) labels: Vec<(Name, Algorithm)>,
}

/// The signature algorithm behind a version label.
///
/// ```
/// use webhook_inbox::Algorithm;
///
/// assert_eq!(Algorithm::HmacSha256.signature_len(), 32);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// HMAC-SHA256 with the shared secret: every provider's default.
    HmacSha256,
    /// HMAC-SHA1: GitHub's legacy `X-Hub-Signature`; accepted only where a
    /// scheme explicitly adds it.
    HmacSha1,
    /// Ed25519 with the sender's public key (Standard Webhooks `v1a`).
    Ed25519,
}

impl Algorithm {
    /// Length in bytes of a decoded signature.
    ///
    /// ```
    /// use webhook_inbox::Algorithm;
    ///
    /// assert_eq!(Algorithm::Ed25519.signature_len(), 64);
    /// assert_eq!(Algorithm::HmacSha1.signature_len(), 20);
    /// ```
    pub const fn signature_len(self) -> usize {
        match self {
            Self::HmacSha256 => 32,
            Self::HmacSha1 => 20,
            Self::Ed25519 => 64,
        }
    }
}

/// How signatures are written in the header.
///
/// ```
/// use webhook_inbox::Encoding;
///
/// assert_eq!(Encoding::Hex.encode(&[0xab, 0x01]), "ab01");
/// assert_eq!(Encoding::Base64.encode(b"hi"), "aGk=");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Encoding {
    /// Standard base64 alphabet; padding optional when decoding.
    Base64,
    /// Hexadecimal, either case when decoding, lower case when encoding.
    Hex,
}

impl Encoding {
    /// Encodes `bytes` as this encoding writes them.
    ///
    /// ```
    /// use webhook_inbox::Encoding;
    ///
    /// assert_eq!(Encoding::Hex.encode(b"\x00\xff"), "00ff");
    /// ```
    pub fn encode(self, bytes: &[u8]) -> String {
        match self {
            Self::Base64 => base64::engine::general_purpose::STANDARD.encode(bytes),
            Self::Hex => hex::encode(bytes),
        }
    }

    /// Decodes `text` into `out` without allocating; `None` if it is not valid
    /// in this encoding or does not decode to exactly `out.len()` bytes.
    pub(crate) fn decode_exact(self, text: &[u8], out: &mut [u8]) -> Option<()> {
        match self {
            Self::Base64 => {
                // Longest base64 text for out.len() bytes: 4 chars per 3 bytes, padded.
                if text.len() > out.len().div_ceil(3) * 4 {
                    return None;
                }
                let mut buf = [0u8; 66];
                let n = BASE64_LENIENT.decode_slice(text, &mut buf).ok()?;
                let decoded = buf.get(..n)?;
                (n == out.len()).then(|| out.copy_from_slice(decoded))
            }
            Self::Hex => hex::decode_to_slice(text, out).ok(),
        }
    }
}

/// Base64 that accepts missing padding (some senders strip it).
pub(crate) const BASE64_LENIENT: base64::engine::GeneralPurpose =
    base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );

/// How a configured secret string becomes the HMAC key.
///
/// ```
/// use webhook_inbox::KeyFormat;
///
/// assert_eq!(KeyFormat::StandardWebhooks.derive("whsec_aGk=").unwrap(), b"hi");
/// assert_eq!(KeyFormat::StandardWebhooks.derive("aGk=").unwrap(), b"hi");
/// assert_eq!(KeyFormat::Utf8.derive("whsec_aGk=").unwrap(), b"whsec_aGk=");
/// assert!(KeyFormat::StandardWebhooks.derive("whsec_").is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyFormat {
    /// Standard Webhooks: an optional `whsec_` prefix, then base64.
    StandardWebhooks,
    /// The string's UTF-8 bytes as they are (Stripe, GitHub, Slack, Shopify).
    Utf8,
    /// Base64 with no prefix.
    Base64,
    /// Hexadecimal.
    Hex,
}

impl KeyFormat {
    /// The key bytes for `secret`, or why it cannot be one. An empty key is
    /// always refused: HMAC with an empty key authenticates nothing.
    ///
    /// ```
    /// use webhook_inbox::KeyFormat;
    ///
    /// assert_eq!(KeyFormat::Hex.derive("00ff").unwrap(), [0, 255]);
    /// assert!(KeyFormat::Utf8.derive("").is_err());
    /// ```
    pub fn derive(self, secret: &str) -> Result<Vec<u8>, &'static str> {
        let key = match self {
            Self::Utf8 => secret.as_bytes().to_vec(),
            Self::StandardWebhooks => BASE64_LENIENT
                .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
                .map_err(|_| "not base64 after the optional `whsec_` prefix")?,
            Self::Base64 => BASE64_LENIENT
                .decode(secret)
                .map_err(|_| "not valid base64")?,
            Self::Hex => hex::decode(secret).map_err(|_| "not valid hexadecimal")?,
        };
        if key.is_empty() {
            return Err("the key is empty");
        }
        Ok(key)
    }
}

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

    /// Sets the header that carries the signatures (the first one, if the scheme has several).
    ///
    /// ```
    /// use webhook_inbox::Scheme;
    ///
    /// let s = Scheme::bluum().signature_header("X-Signature");
    /// assert_eq!(s.signature_header_name(), "X-Signature");
    /// ```
    pub fn signature_header(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        if let Some(first) = self.signature_headers.first_mut() {
            first.name = name.into();
        }
        self
    }

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

    /// Takes the timestamp from this header (Unix seconds).
    ///
    /// ```
    /// use webhook_inbox::Scheme;
    ///
    /// let s = Scheme::bluum().timestamp_header("X-Timestamp");
    /// assert!(s.has_timestamp());
    /// ```
    pub fn timestamp_header(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.timestamp = TimestampSource::Header(name.into());
        self
    }

    /// Takes the timestamp from the signature-header entry with this label
    /// (Stripe's `t=`).
    ///
    /// ```
    /// use webhook_inbox::Scheme;
    ///
    /// assert_eq!(Scheme::stripe(), Scheme::stripe().timestamp_in_signature("t"));
    /// ```
    pub fn timestamp_in_signature(mut self, label: impl Into<Cow<'static, str>>) -> Self {
        self.timestamp = TimestampSource::SignatureEntry(label.into());
        self
    }

    /// Drops the timestamp: no replay window is enforced.
    ///
    /// ```
    /// use webhook_inbox::Scheme;
    ///
    /// assert!(!Scheme::github().has_timestamp());
    /// ```
    pub fn without_timestamp(mut self) -> Self {
        self.timestamp = TimestampSource::None;
        self
    }

    /// Accepts signatures with `label` in the (first) signature header, checked with `algorithm`.
    ///
    /// ```
    /// use webhook_inbox::{Algorithm, Scheme};
    ///
    /// let s = Scheme::standard().accept("v2", Algorithm::HmacSha256);
    /// assert_ne!(s, Scheme::standard());
    /// ```
    pub fn accept(mut self, label: impl Into<Cow<'static, str>>, algorithm: Algorithm) -> Self {
        if let Some(first) = self.signature_headers.first_mut() {
            first.labels.push((label.into(), algorithm));
        }
        self
    }

    /// Also reads signatures from another header (same format and encoding);
    /// any valid signature in any of the headers passes.
    ///
    /// ```
    /// use webhook_inbox::{Algorithm, Scheme};
    ///
    /// let s = Scheme::github().also_signature_header("X-Hub-Signature", "sha1", Algorithm::HmacSha1);
    /// assert_eq!(s.signature_header_name(), "X-Hub-Signature-256");
    /// ```
    pub fn also_signature_header(
        mut self,
        name: impl Into<Cow<'static, str>>,
        label: impl Into<Cow<'static, str>>,
        algorithm: Algorithm,
    ) -> Self {
        self.signature_headers.push(SignatureHeader {
            name: name.into(),
            labels: vec![(label.into(), algorithm)],
        });
        self
    }

    /// Sets how the signature header is split into entries.
    ///
    /// ```
    /// use webhook_inbox::{Scheme, SignatureFormat};
    ///
    /// let s = Scheme::custom("x", "X-Sig").signature_format(SignatureFormat::LABELED);
    /// # let _ = s;
    /// ```
    pub fn signature_format(mut self, format: SignatureFormat) -> Self {
        self.format = format;
        self
    }

    /// Sets how signatures are encoded.
    ///
    /// ```
    /// use webhook_inbox::{Encoding, Scheme};
    ///
    /// let s = Scheme::custom("x", "X-Sig").encoding(Encoding::Base64);
    /// # let _ = s;
    /// ```
    pub fn encoding(mut self, encoding: Encoding) -> Self {
        self.encoding = encoding;
        self
    }

    /// Sets what is signed.
    ///
    /// ```
    /// use webhook_inbox::{Scheme, SignedContent};
    ///
    /// let s = Scheme::custom("x", "X-Sig")
    ///     .timestamp_header("X-Ts")
    ///     .signed_content(SignedContent::parse("{timestamp}:{body}")?);
    /// assert_eq!(s.content().to_string(), "{timestamp}:{body}");
    /// # Ok::<(), webhook_inbox::ConfigError>(())
    /// ```
    pub fn signed_content(mut self, content: SignedContent) -> Self {
        self.content = content;
        self
    }

    /// Sets how secret strings become HMAC keys.
    ///
    /// ```
    /// use webhook_inbox::{KeyFormat, Scheme};
    ///
    /// let s = Scheme::custom("x", "X-Sig").key_format(KeyFormat::Base64);
    /// # let _ = s;
    /// ```
    pub fn key_format(mut self, key_format: KeyFormat) -> Self {
        self.key_format = key_format;
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

    /// The (first) header carrying signatures.
    ///
    /// ```
    /// use webhook_inbox::Scheme;
    ///
    /// assert_eq!(Scheme::standard().signature_header_name(), "webhook-signature");
    /// ```
    pub fn signature_header_name(&self) -> &str {
        self.signature_headers.first().map_or("", |h| &h.name)
    }

    /// Whether deliveries carry a timestamp (and so a replay window applies).
    ///
    /// ```
    /// use webhook_inbox::Scheme;
    ///
    /// assert!(Scheme::slack().has_timestamp());
    /// ```
    pub fn has_timestamp(&self) -> bool {
        self.timestamp != TimestampSource::None
    }

    /// What the scheme signs.
    ///
    /// ```
    /// use webhook_inbox::Scheme;
    ///
    /// assert_eq!(Scheme::github().content().to_string(), "{body}");
    /// ```
    pub fn content(&self) -> &SignedContent {
        &self.content
    }

    pub(crate) fn id_field_name(&self) -> Option<&str> {
        self.id_field.as_deref()
    }

    pub(crate) fn type_source(&self) -> &TypeSource {
        &self.event_type
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

    pub(crate) fn timestamp_source(&self) -> &TimestampSource {
        &self.timestamp
    }

    pub(crate) fn signature_headers(&self) -> &[SignatureHeader] {
        &self.signature_headers
    }

    pub(crate) fn format(&self) -> SignatureFormat {
        self.format
    }

    pub(crate) fn encoding_used(&self) -> Encoding {
        self.encoding
    }

    pub(crate) fn key_format_used(&self) -> KeyFormat {
        self.key_format
    }

    /// Whether any label of any signature header is checked with `algorithm`.
    pub(crate) fn accepts(&self, algorithm: Algorithm) -> bool {
        self.signature_headers
            .iter()
            .any(|h| h.labels.iter().any(|(_, a)| *a == algorithm))
    }

    /// The algorithm for `label` in signature header `header`, if that label is accepted there.
    pub(crate) fn algorithm_for(header: &SignatureHeader, label: &[u8]) -> Option<Algorithm> {
        // Lengths first: comparing two empty slices through memcmp is needlessly
        // slow on some CPUs (the empty label is the common case for Shopify).
        header
            .labels
            .iter()
            .find(|(l, _)| l.len() == label.len() && (label.is_empty() || l.as_bytes() == label))
            .map(|(_, a)| *a)
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

    #[test]
    fn custom_without_labels_is_refused() {
        let err = Scheme::custom("x", "X-Sig").check().unwrap_err();
        assert!(matches!(err, ConfigError::InconsistentScheme { .. }));
        Scheme::custom("x", "X-Sig")
            .accept("", Algorithm::HmacSha256)
            .check()
            .unwrap();
    }

    #[test]
    fn base64_decode_checks_length_without_panicking() {
        let mut out = [0u8; 32];
        assert!(Encoding::Base64.decode_exact(b"", &mut out).is_none());
        assert!(
            Encoding::Base64
                .decode_exact(&[b'A'; 200], &mut out)
                .is_none()
        );
        assert!(Encoding::Base64.decode_exact(b"aGk=", &mut out).is_none());
        let mut two = [0u8; 2];
        assert!(Encoding::Base64.decode_exact(b"aGk", &mut two).is_some());
        assert_eq!(&two, b"hi");
    }
}
