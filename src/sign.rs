//! Producing the headers a sender would attach: for tests, the demo, the CLI and the emulator.

use std::fmt;

use base64::Engine;

use crate::error::ConfigError;
use crate::scheme::{Algorithm, BASE64_LENIENT, Scheme, TimestampSource};
use crate::secret::Secret;
use crate::verify::HmacKey;

/// Signs payloads the way a provider using `scheme` would, producing the
/// headers to send with the body.
///
/// ```
/// use webhook_inbox::{ManualClock, Scheme, Signer, Verifier};
///
/// let signer = Signer::new(Scheme::bluum(), "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?;
/// let body = br#"{"event":"order.filled","timestamp":"2026-11-28T12:00:00Z","data":{"id":"ord_1"}}"#;
/// let headers = signer.sign("evt_1", 1_764_331_200, body);
/// assert_eq!(headers[0], ("webhook-id".to_string(), "evt_1".to_string()));
///
/// let verifier = Verifier::builder(Scheme::bluum())
///     .secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
///     .clock(ManualClock::at_unix(1_764_331_200))
///     .build()?;
/// assert!(verifier.verify(&headers, body).is_ok());
/// # Ok::<(), webhook_inbox::ConfigError>(())
/// ```
pub struct Signer {
    scheme: Scheme,
    key: SigningKey,
    header: String,
    label: String,
}

enum SigningKey {
    Hmac(Box<HmacKey>, Algorithm),
    Ed25519(Box<ed25519_dalek::SigningKey>),
}

impl Signer {
    /// A signer using HMAC with `secret`, decoded as the scheme's key format.
    /// It signs with the scheme's first HMAC label (`v1`, `sha256`, …),
    /// preferring SHA-256.
    ///
    /// ```
    /// use webhook_inbox::{ConfigError, Scheme, Signer};
    ///
    /// assert!(Signer::new(Scheme::stripe(), "whsec_test_secret").is_ok());
    /// assert!(matches!(Signer::new(Scheme::standard(), ""), Err(ConfigError::InvalidSecret { .. })));
    /// ```
    pub fn new(scheme: Scheme, secret: impl Into<Secret>) -> Result<Self, ConfigError> {
        scheme.check()?;
        let secret = secret.into();
        let key = scheme
            .key_format_used()
            .derive(secret.expose())
            .map_err(|reason| ConfigError::InvalidSecret { index: 0, reason })?;
        let algorithm = [Algorithm::HmacSha256, Algorithm::HmacSha1]
            .into_iter()
            .find(|a| scheme.accepts(*a))
            .ok_or(ConfigError::InvalidSecret {
                index: 0,
                reason: "this scheme accepts no HMAC signatures",
            })?;
        Self::with_key(
            scheme,
            SigningKey::Hmac(Box::new(HmacKey::new(&key)), algorithm),
            algorithm,
        )
    }

    /// A signer using Ed25519 with a `whsk_<base64>` signing key (the prefix
    /// optional; 64 bytes of key pair or a 32-byte seed), for schemes that
    /// accept Ed25519 (Standard Webhooks `v1a`).
    ///
    /// ```
    /// use webhook_inbox::{Scheme, Signer};
    ///
    /// let key = "whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6Kvg==";
    /// let signer = Signer::ed25519(Scheme::standard(), key)?;
    /// let headers = signer.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#);
    /// assert!(headers[2].1.starts_with("v1a,hnO3f9T8"));
    /// # Ok::<(), webhook_inbox::ConfigError>(())
    /// ```
    pub fn ed25519(scheme: Scheme, signing_key: impl Into<Secret>) -> Result<Self, ConfigError> {
        scheme.check()?;
        let signing_key = signing_key.into();
        let signing_key = signing_key.expose();
        let invalid = |reason| ConfigError::InvalidKey { index: 0, reason };
        let bytes = BASE64_LENIENT
            .decode(signing_key.strip_prefix("whsk_").unwrap_or(signing_key))
            .map_err(|_| invalid("not base64 after the optional `whsk_` prefix"))?;
        let key = match bytes.len() {
            64 => {
                let pair: [u8; 64] = bytes.try_into().map_err(|_| invalid("not 64 bytes"))?;
                ed25519_dalek::SigningKey::from_keypair_bytes(&pair)
                    .map_err(|_| invalid("the public half does not match the secret half"))?
            }
            32 => {
                let seed: [u8; 32] = bytes.try_into().map_err(|_| invalid("not 32 bytes"))?;
                ed25519_dalek::SigningKey::from_bytes(&seed)
            }
            _ => {
                return Err(invalid(
                    "an Ed25519 signing key is 64 bytes (or a 32-byte seed)",
                ));
            }
        };
        Self::with_key(
            scheme,
            SigningKey::Ed25519(Box::new(key)),
            Algorithm::Ed25519,
        )
    }

    fn with_key(
        scheme: Scheme,
        key: SigningKey,
        algorithm: Algorithm,
    ) -> Result<Self, ConfigError> {
        let (header, label) = scheme
            .signature_headers()
            .iter()
            .find_map(|h| {
                h.labels
                    .iter()
                    .find(|(_, a)| *a == algorithm)
                    .map(|(label, _)| (h.name.to_string(), label.to_string()))
            })
            .ok_or(ConfigError::InvalidKey {
                index: 0,
                reason: "this scheme accepts no signature of the key's algorithm",
            })?;
        Ok(Self {
            scheme,
            key,
            header,
            label,
        })
    }

    /// The scheme this signer signs for.
    ///
    /// ```
    /// use webhook_inbox::{Scheme, Signer};
    ///
    /// assert_eq!(Signer::new(Scheme::slack(), "k")?.scheme().name(), "slack");
    /// # Ok::<(), webhook_inbox::ConfigError>(())
    /// ```
    pub fn scheme(&self) -> &Scheme {
        &self.scheme
    }

    /// The headers to send with `body`: the id header (when the scheme has one),
    /// the timestamp header (when the scheme carries the timestamp in its own
    /// header) and the signature header, in that order. `id` and `timestamp`
    /// (Unix seconds) are ignored by schemes that do not use them.
    ///
    /// ```
    /// use webhook_inbox::{Scheme, Signer};
    ///
    /// let headers = Signer::new(Scheme::stripe(), "whsec_test_secret")?
    ///     .sign("", 1492774577, br#"{"id":"evt_test_webhook","object":"event"}"#);
    /// assert_eq!(headers, [(
    ///     "Stripe-Signature".to_string(),
    ///     "t=1492774577,v1=88a022085c6bdb887b02cb26ff76dd681234d9675c0f22844059f55552a8883a".to_string(),
    /// )]);
    /// # Ok::<(), webhook_inbox::ConfigError>(())
    /// ```
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> Vec<(String, String)> {
        let ts = timestamp.to_string();
        let content = self.scheme.content();
        let signature = match &self.key {
            SigningKey::Hmac(key, algorithm) => {
                let mut tag = [0u8; 32];
                let feed = |sink: &mut dyn FnMut(&[u8])| {
                    content.feed(id.as_bytes(), ts.as_bytes(), body, &mut *sink)
                };
                key.tag(*algorithm, feed, &mut tag);
                self.scheme
                    .encoding_used()
                    .encode(tag.get(..algorithm.signature_len()).unwrap_or_default())
            }
            SigningKey::Ed25519(key) => {
                use ed25519_dalek::Signer as _;
                let message = content.to_bytes(id.as_bytes(), ts.as_bytes(), body);
                self.scheme
                    .encoding_used()
                    .encode(&key.sign(&message).to_bytes())
            }
        };

        let format = self.scheme.format();
        let mut value = String::new();
        let mut headers = Vec::with_capacity(3);
        if let Some(name) = self.scheme.id_header_name() {
            headers.push((name.to_owned(), id.to_owned()));
        }
        match self.scheme.timestamp_source() {
            TimestampSource::Header(name) => headers.push((name.to_string(), ts)),
            TimestampSource::SignatureEntry(label) => {
                format.write_entry(&mut value, label, &ts);
                value.push(char::from(format.entry_separator().unwrap_or(b',')));
            }
            TimestampSource::None => {}
        }
        format.write_entry(&mut value, &self.label, &signature);
        headers.push((self.header.clone(), value));
        headers
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("scheme", &self.scheme.name())
            .field("header", &self.header)
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}
