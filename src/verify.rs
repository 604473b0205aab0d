//! Deciding from the raw request alone whether a delivery is genuine.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::clock::{Clock, SystemClock};
use crate::error::{ConfigError, HeaderProblem, VerifyError};
use crate::headers::HeaderSource;
use crate::scheme::{Algorithm, BASE64_LENIENT, Scheme, TimestampSource};
use crate::secret::Secret;

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

fn parse_public_key(text: &str) -> Result<ed25519_dalek::VerifyingKey, &'static str> {
    let bytes = BASE64_LENIENT
        .decode(text.strip_prefix("whpk_").unwrap_or(text))
        .map_err(|_| "not base64 after the optional `whpk_` prefix")?;
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| "an Ed25519 public key is 32 bytes")?;
    ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| "not a valid Ed25519 point")
}

/// A delivery whose signature has been checked. Only [`Verifier::verify`] makes
/// one, so holding a `Verified` proves the check happened.
///
/// ```
/// use webhook_inbox::{Scheme, Signer, Verifier};
///
/// let signer = Signer::new(Scheme::github(), "s3cret")?;
/// let headers = signer.sign("delivery-1", 0, b"{}");
/// let verifier = Verifier::new(Scheme::github(), ["s3cret"])?;
/// let verified = verifier.verify(&headers, b"{}").expect("genuine");
/// assert_eq!(verified.body(), b"{}");
/// assert_eq!(verified.timestamp(), None);
/// # Ok::<(), webhook_inbox::ConfigError>(())
/// ```
#[derive(Clone, Copy)]
#[must_use]
pub struct Verified<'a> {
    id: Option<&'a str>,
    timestamp: Option<i64>,
    body: &'a [u8],
    key_index: usize,
}

impl<'a> Verified<'a> {
    /// The value of the scheme's id header, if the scheme has one and it was sent.
    ///
    /// It is authenticated only when the signed content holds `{id}`
    /// (Standard Webhooks, Bluum). GitHub's `X-GitHub-Delivery` and Shopify's
    /// `X-Shopify-Event-Id` are not signed: anyone holding a genuine delivery
    /// can resend it with another value here, which is why the inbox never
    /// deduplicates on them (see [`Scheme::dedup_on`]).
    ///
    /// ```
    /// use webhook_inbox::{Scheme, Signer, Verifier};
    ///
    /// let h = Signer::new(Scheme::github(), "k")?.sign("d-1", 0, b"x");
    /// let v = Verifier::new(Scheme::github(), ["k"])?;
    /// assert_eq!(v.verify(&h, b"x").unwrap().id(), Some("d-1"));
    /// # Ok::<(), webhook_inbox::ConfigError>(())
    /// ```
    pub fn id(&self) -> Option<&'a str> {
        self.id
    }

    /// The signed timestamp (Unix seconds), for schemes that carry one.
    ///
    /// ```
    /// use webhook_inbox::{ManualClock, Scheme, Signer, Verifier};
    ///
    /// let h = Signer::new(Scheme::stripe(), "whsec_k")?.sign("", 1_700_000_000, b"{}");
    /// let v = Verifier::builder(Scheme::stripe()).secret("whsec_k")
    ///     .clock(ManualClock::at_unix(1_700_000_010)).build()?;
    /// assert_eq!(v.verify(&h, b"{}").unwrap().timestamp(), Some(1_700_000_000));
    /// # Ok::<(), webhook_inbox::ConfigError>(())
    /// ```
    pub fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }

    /// The raw body that was verified.
    ///
    /// ```
    /// use webhook_inbox::{Scheme, Signer, Verifier};
    ///
    /// let h = Signer::new(Scheme::shopify(), "k")?.sign("", 0, b"\xff");
    /// let v = Verifier::new(Scheme::shopify(), ["k"])?;
    /// assert_eq!(v.verify(&h, b"\xff").unwrap().body(), b"\xff");
    /// # Ok::<(), webhook_inbox::ConfigError>(())
    /// ```
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// Which configured key matched: secrets count from 0 in the order given,
    /// then public keys. Useful to see when the old secret of a rotation stops
    /// being used.
    ///
    /// ```
    /// use webhook_inbox::{Scheme, Signer, Verifier};
    ///
    /// let h = Signer::new(Scheme::github(), "old")?.sign("d", 0, b"x");
    /// let v = Verifier::new(Scheme::github(), ["new", "old"])?;
    /// assert_eq!(v.verify(&h, b"x").unwrap().key_index(), 1);
    /// # Ok::<(), webhook_inbox::ConfigError>(())
    /// ```
    pub fn key_index(&self) -> usize {
        self.key_index
    }
}

impl fmt::Debug for Verified<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verified")
            .field("id", &self.id)
            .field("timestamp", &self.timestamp)
            .field("body_len", &self.body.len())
            .field("key_index", &self.key_index)
            .finish()
    }
}

/// The most signature entries one request may carry, whatever
/// [`VerifierBuilder::max_signatures`] says: the candidates live on the stack.
const SIGNATURE_SLOTS: usize = 16;

/// What the one pass over the signature headers found: the entries to check
/// (still encoded, borrowed from the headers), and the timestamp entry if the
/// scheme keeps its timestamp there.
struct Candidates<'s, 'a> {
    entries: [(Algorithm, &'a [u8]); SIGNATURE_SLOTS],
    len: usize,
    ignored: usize,
    timestamp: Option<(&'s str, &'a [u8])>,
}

impl<'a> Candidates<'_, 'a> {
    fn of(&self, algorithm: Algorithm) -> impl Iterator<Item = &'a [u8]> + '_ {
        self.entries
            .iter()
            .take(self.len)
            .filter(move |(a, _)| *a == algorithm)
            .map(|(_, value)| *value)
    }

    fn has(&self, algorithm: Algorithm) -> bool {
        self.of(algorithm).next().is_some()
    }
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
        VerifierBuilder {
            scheme,
            secrets: Vec::new(),
            public_keys: Vec::new(),
            tolerance: DEFAULT_TOLERANCE,
            clock: Arc::new(SystemClock),
            max_header_len: DEFAULT_MAX_HEADER_LEN,
            max_signatures: DEFAULT_MAX_SIGNATURES,
        }
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

    /// Reads a header, refusing values over the length limit.
    fn read<'a, H: HeaderSource + ?Sized>(
        &self,
        headers: &'a H,
        name: &str,
    ) -> Result<Option<&'a [u8]>, VerifyError> {
        match headers.header(name) {
            Some(value) if value.len() > self.max_header_len => Err(VerifyError::MalformedHeader {
                name: name.to_owned(),
                problem: HeaderProblem::TooLong {
                    len: value.len(),
                    limit: self.max_header_len,
                },
            }),
            other => Ok(other),
        }
    }

    /// Reads every signature header once: the entries with an accepted label
    /// (enforcing the count limit), the ignored ones, and the timestamp entry.
    fn candidates<'s, 'a, H: HeaderSource + ?Sized>(
        &'s self,
        headers: &'a H,
    ) -> Result<Candidates<'s, 'a>, VerifyError> {
        let mut found = Candidates {
            entries: [(Algorithm::HmacSha256, &[][..]); SIGNATURE_SLOTS],
            len: 0,
            ignored: 0,
            timestamp: None,
        };
        let timestamp_label = match self.scheme.timestamp_source() {
            TimestampSource::SignatureEntry(label) => Some(label.as_bytes()),
            _ => None,
        };
        let mut present = false;
        let mut count = 0;
        for def in self.scheme.signature_headers() {
            let Some(value) = self.read(headers, &def.name)? else {
                continue;
            };
            present = true;
            for entry in self.scheme.format().entries(value) {
                if timestamp_label == Some(entry.label) {
                    found.timestamp.get_or_insert((&def.name, entry.value));
                    continue;
                }
                count += 1;
                if count > self.max_signatures {
                    return Err(VerifyError::MalformedHeader {
                        name: def.name.to_string(),
                        problem: HeaderProblem::TooManySignatures {
                            count,
                            limit: self.max_signatures,
                        },
                    });
                }
                match (
                    Scheme::algorithm_for(def, entry.label),
                    found.entries.get_mut(found.len),
                ) {
                    (Some(algorithm), Some(slot)) => {
                        *slot = (algorithm, entry.value);
                        found.len += 1;
                    }
                    _ => found.ignored += 1,
                }
            }
        }
        if !present {
            return Err(VerifyError::MissingHeader {
                name: self.scheme.signature_header_name().to_owned(),
            });
        }
        Ok(found)
    }

    /// Parses the timestamp and checks it against now ± tolerance.
    fn check_timestamp(&self, name: &str, raw: &[u8]) -> Result<i64, VerifyError> {
        let ts = parse_unix_seconds(raw).ok_or_else(|| VerifyError::MalformedHeader {
            name: name.to_owned(),
            problem: HeaderProblem::NotATimestamp,
        })?;
        let now = self.clock.unix_seconds();
        let tolerance = i128::from(self.tolerance.as_secs().min(i64::MAX as u64) as i64);
        let age = i128::from(now) - i128::from(ts);
        let secs = |d: i128| u64::try_from(d).unwrap_or(u64::MAX);
        if age > tolerance {
            return Err(VerifyError::TimestampTooOld {
                age_secs: secs(age),
                tolerance_secs: self.tolerance.as_secs(),
            });
        }
        if -age > tolerance {
            return Err(VerifyError::TimestampInFuture {
                ahead_secs: secs(-age),
                tolerance_secs: self.tolerance.as_secs(),
            });
        }
        Ok(ts)
    }

    fn id<'a, H: HeaderSource + ?Sized>(
        &self,
        headers: &'a H,
    ) -> Result<Option<&'a str>, VerifyError> {
        let Some(name) = self.scheme.id_header_name() else {
            return Ok(None);
        };
        match self.read(headers, name)? {
            Some(raw) => {
                std::str::from_utf8(raw)
                    .map(Some)
                    .map_err(|_| VerifyError::MalformedHeader {
                        name: name.to_owned(),
                        problem: HeaderProblem::NotUtf8,
                    })
            }
            None if self.scheme.content().uses_id() => Err(VerifyError::MissingHeader {
                name: name.to_owned(),
            }),
            None => Ok(None),
        }
    }
}

/// Whole seconds since the epoch: 1 to 18 ASCII digits (no sign, no spaces).
fn parse_unix_seconds(raw: &[u8]) -> Option<i64> {
    if raw.is_empty() || raw.len() > 18 || !raw.iter().all(u8::is_ascii_digit) {
        return None;
    }
    raw.iter().try_fold(0i64, |acc, d| {
        acc.checked_mul(10)?.checked_add(i64::from(d - b'0'))
    })
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
    fn timestamps_are_plain_digits() {
        assert_eq!(parse_unix_seconds(b"1614265330"), Some(1_614_265_330));
        for bad in [
            &b""[..],
            b"-1",
            b"+1",
            b" 1",
            b"1.5",
            b"9999999999999999999",
            b"12x",
        ] {
            assert_eq!(parse_unix_seconds(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn debug_shows_no_key_material() {
        let v = Verifier::new(Scheme::github(), ["super-secret-value"]).unwrap();
        let shown = format!("{v:?}");
        assert!(!shown.contains("super-secret-value"), "{shown}");
        assert!(shown.contains("secrets: 1"), "{shown}");
    }
}
