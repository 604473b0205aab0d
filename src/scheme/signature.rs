//! What a scheme signs, and where its signatures and timestamp travel: the
//! signature headers with their accepted labels, format and encoding, the
//! key format, and the timestamp source.

use std::borrow::Cow;

use super::{Algorithm, Encoding, KeyFormat, Name, Scheme};
use crate::content::SignedContent;
use crate::format::SignatureFormat;

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

impl Scheme {
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
}
