//! The signature algorithm behind a version label.

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
