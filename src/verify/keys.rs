//! How configured secrets and public keys become keys ready to check with.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;

use crate::scheme::{Algorithm, BASE64_LENIENT};

/// One secret, keyed once for each HMAC algorithm the scheme accepts (cloning a
/// keyed MAC skips re-deriving the inner and outer pads on every request).
#[derive(Clone)]
pub(crate) struct HmacKey {
    pub(crate) sha256: Hmac<Sha256>,
    pub(crate) sha1: Hmac<Sha1>,
}

impl HmacKey {
    pub(crate) fn new(key: &[u8]) -> Self {
        // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
        let sha256 = <Hmac<Sha256> as Mac>::new_from_slice(key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        let sha1 = <Hmac<Sha1> as Mac>::new_from_slice(key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        Self { sha256, sha1 }
    }

    /// The tag of the signed content with `algorithm` (HMAC only), written into `out`.
    pub(crate) fn tag(
        &self,
        algorithm: Algorithm,
        feed: impl Fn(&mut dyn FnMut(&[u8])),
        out: &mut [u8; 32],
    ) {
        match algorithm {
            Algorithm::HmacSha1 => {
                let mut mac = self.sha1.clone();
                feed(&mut |piece| mac.update(piece));
                let tag = mac.finalize().into_bytes();
                if let Some(head) = out.get_mut(..20) {
                    head.copy_from_slice(&tag);
                }
            }
            _ => {
                let mut mac = self.sha256.clone();
                feed(&mut |piece| mac.update(piece));
                out.copy_from_slice(&mac.finalize().into_bytes());
            }
        }
    }
}

pub(super) fn parse_public_key(text: &str) -> Result<ed25519_dalek::VerifyingKey, &'static str> {
    let bytes = BASE64_LENIENT
        .decode(text.strip_prefix("whpk_").unwrap_or(text))
        .map_err(|_| "not base64 after the optional `whpk_` prefix")?;
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| "an Ed25519 public key is 32 bytes")?;
    ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| "not a valid Ed25519 point")
}
