//! The proof that a delivery's signature was checked.

use std::fmt;

/// A delivery whose signature has been checked. Only
/// [`Verifier::verify`](super::Verifier::verify) makes one, so holding a
/// `Verified` proves the check happened.
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
    pub(super) id: Option<&'a str>,
    pub(super) timestamp: Option<i64>,
    pub(super) body: &'a [u8],
    pub(super) key_index: usize,
}

impl<'a> Verified<'a> {
    /// The value of the scheme's id header, if the scheme has one and it was sent.
    ///
    /// It is authenticated only when the signed content holds `{id}`
    /// (Standard Webhooks, Bluum). GitHub's `X-GitHub-Delivery` and Shopify's
    /// `X-Shopify-Event-Id` are not signed: anyone holding a genuine delivery
    /// can resend it with another value here, which is why the inbox never
    /// deduplicates on them (see [`Scheme::dedup_on`](crate::Scheme::dedup_on)).
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
