//! Building a [`Verifier`]: its keys, replay window, clock and limits.

use std::sync::Arc;
use std::time::Duration;

use super::keys::{HmacKey, parse_public_key};
use super::request::SIGNATURE_SLOTS;
use super::{DEFAULT_MAX_HEADER_LEN, DEFAULT_MAX_SIGNATURES, DEFAULT_TOLERANCE, Verifier};
use crate::clock::{Clock, SystemClock};
use crate::error::ConfigError;
use crate::scheme::{Algorithm, Scheme};
use crate::secret::Secret;

/// Builds a [`Verifier`]; see [`Verifier::builder`].
///
/// ```
/// use std::time::Duration;
/// use webhook_inbox::{Scheme, Verifier};
///
/// let verifier = Verifier::builder(Scheme::stripe())
///     .secret("whsec_new")
///     .secret("whsec_old")
///     .tolerance(Duration::from_secs(600))
///     .build()?;
/// assert_eq!(verifier.tolerance(), Duration::from_secs(600));
/// # Ok::<(), webhook_inbox::ConfigError>(())
/// ```
#[must_use]
pub struct VerifierBuilder {
    scheme: Scheme,
    secrets: Vec<Secret>,
    public_keys: Vec<String>,
    tolerance: Duration,
    clock: Arc<dyn Clock>,
    max_header_len: usize,
    max_signatures: usize,
}

impl VerifierBuilder {
    /// A builder with no keys and the defaults; see [`Verifier::builder`].
    pub(super) fn new(scheme: Scheme) -> Self {
        Self {
            scheme,
            secrets: Vec::new(),
            public_keys: Vec::new(),
            tolerance: DEFAULT_TOLERANCE,
            clock: Arc::new(SystemClock),
            max_header_len: DEFAULT_MAX_HEADER_LEN,
            max_signatures: DEFAULT_MAX_SIGNATURES,
        }
    }

    /// Adds an HMAC secret. Several may be added (key rotation): a delivery
    /// signed with any of them passes.
    ///
    /// ```
    /// use webhook_inbox::{Scheme, Verifier};
    ///
    /// assert!(Verifier::builder(Scheme::github()).secret("s3cret").build().is_ok());
    /// ```
    pub fn secret(mut self, secret: impl Into<Secret>) -> Self {
        self.secrets.push(secret.into());
        self
    }

    /// Adds every secret of `secrets`.
    ///
    /// ```
    /// use webhook_inbox::{Scheme, Verifier};
    ///
    /// let v = Verifier::builder(Scheme::slack()).secrets(["a", "b"]).build()?;
    /// # let _ = v;
    /// # Ok::<(), webhook_inbox::ConfigError>(())
    /// ```
    pub fn secrets<S: Into<Secret>>(mut self, secrets: impl IntoIterator<Item = S>) -> Self {
        self.secrets.extend(secrets.into_iter().map(Into::into));
        self
    }

    /// Adds an Ed25519 public key (`whpk_<base64>`, the prefix optional) for
    /// schemes that accept Ed25519 signatures (Standard Webhooks `v1a`).
    ///
    /// ```
    /// use webhook_inbox::{Scheme, Verifier};
    ///
    /// let v = Verifier::builder(Scheme::standard())
    ///     .public_key("whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4=")
    ///     .build()?;
    /// # let _ = v;
    /// # Ok::<(), webhook_inbox::ConfigError>(())
    /// ```
    pub fn public_key(mut self, key: impl Into<String>) -> Self {
        self.public_keys.push(key.into());
        self
    }

    /// How far a delivery's timestamp may be from "now", either way. Schemes
    /// without a timestamp ignore it.
    ///
    /// Defaults to [`DEFAULT_TOLERANCE`] (300 s).
    ///
    /// ```
    /// use std::time::Duration;
    /// use webhook_inbox::{Scheme, Verifier};
    ///
    /// let v = Verifier::builder(Scheme::standard()).secret("whsec_aGk=")
    ///     .tolerance(Duration::from_secs(60)).build()?;
    /// assert_eq!(v.tolerance(), Duration::from_secs(60));
    /// # Ok::<(), webhook_inbox::ConfigError>(())
    /// ```
    pub fn tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// The clock that says what "now" is.
    ///
    /// Defaults to [`SystemClock`].
    ///
    /// ```
    /// use webhook_inbox::{ManualClock, Scheme, Verifier};
    ///
    /// let v = Verifier::builder(Scheme::standard()).secret("whsec_aGk=")
    ///     .clock(ManualClock::at_unix(0)).build()?;
    /// # let _ = v;
    /// # Ok::<(), webhook_inbox::ConfigError>(())
    /// ```
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The longest header value read, in bytes; longer ones are refused as malformed.
    ///
    /// Defaults to [`DEFAULT_MAX_HEADER_LEN`] (8 KiB).
    ///
    /// ```
    /// use webhook_inbox::{Scheme, Verifier};
    ///
    /// let v = Verifier::builder(Scheme::github()).secret("s").max_header_len(1024).build()?;
    /// # let _ = v;
    /// # Ok::<(), webhook_inbox::ConfigError>(())
    /// ```
    pub fn max_header_len(mut self, bytes: usize) -> Self {
        self.max_header_len = bytes;
        self
    }

    /// The most signature entries read from one request; more are refused as
    /// malformed, so a header stuffed with signatures cannot multiply the work.
    ///
    /// Defaults to [`DEFAULT_MAX_SIGNATURES`] (16), which is also the most allowed.
    ///
    /// ```
    /// use webhook_inbox::{Scheme, Verifier};
    ///
    /// let v = Verifier::builder(Scheme::github()).secret("s").max_signatures(4).build()?;
    /// # let _ = v;
    /// # Ok::<(), webhook_inbox::ConfigError>(())
    /// ```
    pub fn max_signatures(mut self, count: usize) -> Self {
        self.max_signatures = count.min(SIGNATURE_SLOTS);
        self
    }

    /// Checks the scheme and decodes every key. Fails on an empty or undecodable
    /// secret, a malformed public key, a key the scheme cannot use, or no key at all.
    ///
    /// ```
    /// use webhook_inbox::{ConfigError, Scheme, Verifier};
    ///
    /// let err = Verifier::builder(Scheme::standard()).build().unwrap_err();
    /// assert_eq!(err, ConfigError::NoKeys);
    /// ```
    pub fn build(self) -> Result<Verifier, ConfigError> {
        self.scheme.check()?;
        let uses_hmac = [Algorithm::HmacSha256, Algorithm::HmacSha1]
            .into_iter()
            .any(|a| self.scheme.accepts(a));
        let mut hmac_keys = Vec::with_capacity(self.secrets.len());
        for (index, secret) in self.secrets.iter().enumerate() {
            if !uses_hmac {
                return Err(ConfigError::InvalidSecret {
                    index,
                    reason: "this scheme accepts no HMAC signatures",
                });
            }
            let key = self
                .scheme
                .key_format_used()
                .derive(secret.expose())
                .map_err(|reason| ConfigError::InvalidSecret { index, reason })?;
            hmac_keys.push(HmacKey::new(&key));
        }
        let mut public_keys = Vec::with_capacity(self.public_keys.len());
        for (index, key) in self.public_keys.iter().enumerate() {
            if !self.scheme.accepts(Algorithm::Ed25519) {
                return Err(ConfigError::InvalidKey {
                    index,
                    reason: "this scheme accepts no Ed25519 signatures",
                });
            }
            public_keys.push(
                parse_public_key(key)
                    .map_err(|reason| ConfigError::InvalidKey { index, reason })?,
            );
        }
        if hmac_keys.is_empty() && public_keys.is_empty() {
            return Err(ConfigError::NoKeys);
        }
        Ok(Verifier {
            scheme: self.scheme,
            hmac_keys,
            public_keys,
            tolerance: self.tolerance,
            clock: self.clock,
            max_header_len: self.max_header_len,
            max_signatures: self.max_signatures,
        })
    }
}
