//! How a configured secret string becomes the HMAC key.

use base64::Engine;

use super::BASE64_LENIENT;

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
