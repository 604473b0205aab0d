//! How signatures are written in a header: base64 or hex.

use base64::Engine;

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

#[cfg(test)]
mod tests {
    use super::*;

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
