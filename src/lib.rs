//! Receive webhooks correctly.
//!
//! Senders such as Bluum, Stripe, GitHub or any Standard Webhooks provider POST
//! signed events and retry them until they get a 2xx, so the same event arrives
//! more than once and forged or replayed requests must be turned away.
//! `webhook-inbox` decides from the raw request alone whether a delivery is
//! genuine, with the provider's scheme described as data.
//!
//! The types you meet:
//!
//! - [`Scheme`] — how a provider signs (presets: [`Scheme::standard`],
//!   [`Scheme::bluum`], [`Scheme::stripe`], [`Scheme::github`], [`Scheme::slack`],
//!   [`Scheme::shopify`]; or [`Scheme::custom`]).
//! - [`Verifier`] — checks a delivery against one or more secrets and returns a
//!   [`Verified`] value, or a [`VerifyError`] that maps to an HTTP status.
//! - [`Signer`] — produces the headers a sender would attach (for tests and tools).
//!
//! ```
//! use webhook_inbox::{Scheme, Signer, Verifier};
//!
//! // At start-up: a verifier per provider. Bad secrets fail here, not per request.
//! let verifier = Verifier::new(Scheme::bluum(), ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"])?;
//!
//! // A delivery as Bluum would send it (here signed locally).
//! let body = br#"{"event":"order.filled","timestamp":"2026-11-28T12:00:00Z","data":{"id":"ord_1"}}"#;
//! let now = std::time::SystemTime::now()
//!     .duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
//! let headers = Signer::new(Scheme::bluum(), "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")?
//!     .sign("evt_1", now, body);
//!
//! // In the HTTP handler: headers from any framework (here a slice of pairs) and the RAW body.
//! match verifier.verify(&headers, body) {
//!     Ok(delivery) => assert_eq!(delivery.id(), Some("evt_1")),          // answer 2xx
//!     Err(reason) => panic!("{} {reason}", reason.status()),            // 400 or 401
//! }
//! # Ok::<(), webhook_inbox::ConfigError>(())
//! ```
//!
//! # Contracts
//!
//! - **Raw bytes.** Signatures are checked over the body exactly as received;
//!   bodies that are not UTF-8 verify too. Never re-serialise JSON before verifying.
//! - **Constant time, length first.** Signatures are decoded and compared with
//!   [`subtle`](https://docs.rs/subtle)'s constant-time equality after a length
//!   check: an empty signature (`v1,`) or a prefix of a valid one never matches.
//! - **Rotation.** Several secrets (and, for Standard Webhooks, Ed25519 public
//!   keys) may be configured, and a header may carry several signatures: any
//!   match passes.
//! - **Replay window.** Timestamps must be within ±300 s of the injected
//!   [`Clock`] by default; schemes without a timestamp have no window.
//! - **Bounded work.** Header values over 8 KiB and more than 16 signatures are
//!   refused before any MAC is computed. The signature-header parser
//!   ([`SignatureFormat::entries`]) allocates nothing and is fuzzed.
//! - **No panics on input, no secrets in output.** [`Secret`] and [`Verifier`]
//!   print no key material.
//!
//! # Bluum
//!
//! Bluum's documentation says every delivery is signed but does not publish the
//! scheme. [`Scheme::bluum`] therefore assumes the Standard Webhooks headers
//! with Bluum's `{"event", "timestamp", "data"}` envelope; a different header
//! layout is one line of configuration (see [`Scheme::bluum`]).
//!
//! # Policies
//!
//! - MSRV: Rust 1.88 (the `rust-version` in `Cargo.toml`).
//! - Threading: [`Verifier`] and [`Signer`] are `Send + Sync`; share one per
//!   provider across request handlers.
//! - No `unsafe` code.
//! - Features: `http` (default) implements [`HeaderSource`] for `http::HeaderMap`;
//!   `cli` builds the `webhook-inbox` command-line tool.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod clock;
mod content;
mod error;
mod format;
mod headers;
mod identity;
mod inbox;
mod ingest;
mod scheme;
mod secret;
mod sign;
mod store;
mod verify;

pub use clock::{Clock, ManualClock, SystemClock};
pub use content::SignedContent;
pub use error::{ConfigError, HeaderProblem, VerifyError};
pub use format::{SignatureEntries, SignatureEntry, SignatureFormat};
pub use headers::HeaderSource;
pub use identity::{EventProblem, MAX_ID_LEN, MAX_TYPE_LEN};
pub use inbox::{
    DEFAULT_CACHE_BYTES, DEFAULT_MAX_PENDING, DEFAULT_RETENTION, Inbox, InboxBuilder, OpenError,
    Rejections, Stats,
};
pub use ingest::{
    DEFAULT_MAX_BODY, IngestError, Ingested, Ingestor, IngestorBuilder, RETRY_AFTER, Reply,
};
pub use scheme::{Algorithm, Encoding, KeyFormat, Scheme};
pub use secret::Secret;
pub use sign::Signer;
pub use store::{Durability, StoreError};
pub use verify::{
    DEFAULT_MAX_HEADER_LEN, DEFAULT_MAX_SIGNATURES, DEFAULT_TOLERANCE, Verified, Verifier,
    VerifierBuilder,
};

#[cfg(test)]
mod thread_safety {
    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn shared_handles_cross_threads() {
        assert_send_sync::<super::Verifier>();
        assert_send_sync::<super::Signer>();
        assert_send_sync::<super::Scheme>();
    }
}
