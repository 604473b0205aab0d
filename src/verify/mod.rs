//! Deciding from the raw request alone whether a delivery is genuine.
//!
//! The [`Verifier`] and its one check live here; around it: `builder` (keys
//! and settings, checked once at start-up), `keys` (secrets and public keys
//! made ready), `request` (reading the headers within the limits),
//! `timestamp` (the replay window) and `verified` (the proof of a check).

mod builder;
mod keys;
mod request;
mod timestamp;
mod verified;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use subtle::ConstantTimeEq;

use crate::clock::Clock;
use crate::error::{ConfigError, HeaderProblem, VerifyError};
use crate::headers::HeaderSource;
use crate::scheme::{Algorithm, Scheme, TimestampSource};
use crate::secret::Secret;

pub use builder::VerifierBuilder;
pub(crate) use keys::HmacKey;
pub use verified::Verified;

/// The default replay window: deliveries signed more than 5 minutes before or
/// after "now" are refused (the Standard Webhooks and Stripe recommendation).
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);
/// The default longest header value the verifier reads, in bytes.
pub const DEFAULT_MAX_HEADER_LEN: usize = 8 * 1024;
/// The default most signature entries read from one request.
pub const DEFAULT_MAX_SIGNATURES: usize = 16;

/// Checks deliveries of one scheme against one or more keys.
///
/// Build it once at start-up (bad secrets fail there, not per request) and
/// share it: it is `Send + Sync` and verifying takes `&self`.
///
/// ```
/// use webhook_inbox::{ManualClock, Scheme, Verifier};
///
/// let verifier = Verifier::builder(Scheme::standard())
///     .secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
///     .clock(ManualClock::at_unix(1614265330))
///     .build()?;
/// let headers = [
///     ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
///     ("webhook-timestamp", "1614265330"),
///     ("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
/// ];
/// let verified = verifier.verify(&headers, br#"{"test": 2432232314}"#).expect("genuine");
/// assert_eq!(verified.id(), Some("msg_p5jXN8AQM9LWM0D4loKWxJek"));
/// assert!(verifier.verify(&headers, br#"{"test":2432232314}"#).is_err());
/// # Ok::<(), webhook_inbox::ConfigError>(())
/// ```
pub struct Verifier {
    scheme: Scheme,
    hmac_keys: Vec<HmacKey>,
    public_keys: Vec<ed25519_dalek::VerifyingKey>,
    tolerance: Duration,
    clock: Arc<dyn Clock>,
    max_header_len: usize,
    max_signatures: usize,
}

/// Constant-time equality of two byte strings of public length: every
/// byte's difference is OR-ed in with no early exit, and only the final "all
/// zero?" goes through `subtle` (which keeps the optimizer from turning it
/// back into a short-circuiting comparison).
fn ct_equal(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    bool::from(diff.ct_eq(&0))
}

impl Verifier {
    /// A verifier for `scheme` with these HMAC secrets and the defaults: a
    /// tolerance of 300 s, the system clock.
    ///
    /// ```
    /// use webhook_inbox::{Scheme, Verifier};
    ///
    /// let verifier = Verifier::new(Scheme::bluum(), ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"])?;
    /// assert_eq!(verifier.scheme().name(), "bluum");
    /// # Ok::<(), webhook_inbox::ConfigError>(())
    /// ```
    pub fn new<S: Into<Secret>>(
        scheme: Scheme,
        secrets: impl IntoIterator<Item = S>,
    ) -> Result<Self, ConfigError> {
        Self::builder(scheme).secrets(secrets).build()
    }

    /// A builder for a verifier of `scheme`, to add keys and change the defaults.
    ///
    /// ```
    /// use webhook_inbox::{Scheme, Verifier};
    ///
    /// let verifier = Verifier::builder(Scheme::github()).secret("s3cret").build()?;
    /// # let _ = verifier;
    /// # Ok::<(), webhook_inbox::ConfigError>(())
    /// ```
    pub fn builder(scheme: Scheme) -> VerifierBuilder {
        VerifierBuilder::new(scheme)
    }

    /// The scheme this verifier checks.
    ///
    /// ```
    /// use webhook_inbox::{Scheme, Verifier};
    ///
    /// let v = Verifier::new(Scheme::slack(), ["k"])?;
    /// assert_eq!(v.scheme(), &Scheme::slack());
    /// # Ok::<(), webhook_inbox::ConfigError>(())
    /// ```
    pub fn scheme(&self) -> &Scheme {
        &self.scheme
    }

    /// The timestamp tolerance in force.
    ///
    /// ```
    /// use std::time::Duration;
    /// use webhook_inbox::{Scheme, Verifier};
    ///
    /// let v = Verifier::new(Scheme::slack(), ["k"])?;
    /// assert_eq!(v.tolerance(), Duration::from_secs(300));
    /// # Ok::<(), webhook_inbox::ConfigError>(())
    /// ```
    pub fn tolerance(&self) -> Duration {
        self.tolerance
    }

    /// Checks a delivery: the headers the scheme needs are present and readable,
    /// the timestamp is within the tolerance, and at least one signature matches
    /// at least one key, over the **raw** body bytes.
    ///
    /// Signatures are decoded and compared in constant time after a length
    /// check, so an empty signature or a prefix of a valid one never matches.
    ///
    /// ```
    /// use webhook_inbox::{Scheme, Verifier, VerifyError};
    ///
    /// let verifier = Verifier::new(Scheme::github(), ["It's a Secret to Everybody"])?;
    /// let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    /// assert!(verifier.verify(&[("X-Hub-Signature-256", sig)], b"Hello, World!").is_ok());
    /// let err = verifier.verify(&[("X-Hub-Signature", "sha1=00")], b"Hello, World!").unwrap_err();
    /// assert_eq!(err, VerifyError::MissingHeader { name: "X-Hub-Signature-256".into() });
    /// # Ok::<(), webhook_inbox::ConfigError>(())
    /// ```
    pub fn verify<'a, H: HeaderSource + ?Sized>(
        &self,
        headers: &'a H,
        body: &'a [u8],
    ) -> Result<Verified<'a>, VerifyError> {
        let candidates = self.candidates(headers)?;
        let raw_timestamp =
            match self.scheme.timestamp_source() {
                TimestampSource::None => None,
                TimestampSource::Header(name) => match self.read(headers, name)? {
                    Some(raw) => Some((name.as_ref(), raw)),
                    None => {
                        return Err(VerifyError::MissingHeader {
                            name: name.to_string(),
                        });
                    }
                },
                TimestampSource::SignatureEntry(_) => Some(candidates.timestamp.ok_or_else(
                    || VerifyError::MalformedHeader {
                        name: self.scheme.signature_header_name().to_owned(),
                        problem: HeaderProblem::NoTimestamp,
                    },
                )?),
            };
        let timestamp = match raw_timestamp {
            Some((name, raw)) => Some(self.check_timestamp(name, raw)?),
            None => None,
        };
        let id = self.id(headers)?;
        let (id_bytes, ts_bytes) = (
            id.map_or(&[][..], str::as_bytes),
            raw_timestamp.map_or(&[][..], |(_, raw)| raw),
        );
        let verified = |key_index| Verified {
            id,
            timestamp,
            body,
            key_index,
        };

        let content = self.scheme.content();
        let feed = |sink: &mut dyn FnMut(&[u8])| content.feed(id_bytes, ts_bytes, body, &mut *sink);
        let encoding = self.scheme.encoding_used();
        let mut decoded = [0u8; 64];
        for (key_index, key) in self.hmac_keys.iter().enumerate() {
            for algorithm in [Algorithm::HmacSha256, Algorithm::HmacSha1] {
                if !candidates.has(algorithm) {
                    continue;
                }
                let mut tag = [0u8; 32];
                key.tag(algorithm, feed, &mut tag);
                let len = algorithm.signature_len();
                let (tag, out) = (
                    tag.get(..len).unwrap_or_default(),
                    decoded.get_mut(..len).unwrap_or_default(),
                );
                for encoded in candidates.of(algorithm) {
                    if encoding.decode_exact(encoded, out).is_some() && ct_equal(out, tag) {
                        return Ok(verified(key_index));
                    }
                }
            }
        }
        if candidates.has(Algorithm::Ed25519) && !self.public_keys.is_empty() {
            let message = content.to_bytes(id_bytes, ts_bytes, body);
            for (i, key) in self.public_keys.iter().enumerate() {
                for encoded in candidates.of(Algorithm::Ed25519) {
                    if encoding.decode_exact(encoded, &mut decoded).is_some()
                        && key
                            .verify_strict(
                                &message,
                                &ed25519_dalek::Signature::from_bytes(&decoded),
                            )
                            .is_ok()
                    {
                        return Ok(verified(self.hmac_keys.len() + i));
                    }
                }
            }
        }
        Err(VerifyError::NoMatchingSignature {
            tried: candidates.len,
            ignored: candidates.ignored,
            keys: self.hmac_keys.len() + self.public_keys.len(),
        })
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("scheme", &self.scheme.name())
            .field("secrets", &self.hmac_keys.len())
            .field("public_keys", &self.public_keys.len())
            .field("tolerance", &self.tolerance)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_no_key_material() {
        let v = Verifier::new(Scheme::github(), ["super-secret-value"]).unwrap();
        let shown = format!("{v:?}");
        assert!(!shown.contains("super-secret-value"), "{shown}");
        assert!(shown.contains("secrets: 1"), "{shown}");
    }
}
