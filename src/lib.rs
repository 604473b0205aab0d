//! Receive webhooks correctly.
//!
//! Senders such as Bluum, Stripe, GitHub or any Standard Webhooks provider POST
//! signed events, count slow answers as failures and retry, so the same event
//! arrives more than once and forged or replayed requests must be turned away.
//! One synchronous call, [`Ingestor::ingest`], verifies the signature over the
//! raw bytes, drops duplicates and makes the event durable before your HTTP
//! handler answers. A [`Worker`] then runs your handlers on the stored events,
//! retrying failures on a persisted schedule and parking what keeps failing as
//! dead letters you can list and replay.
//!
//! The types you meet:
//!
//! - [`Inbox`] — the embedded store (a directory), shared by every ingestor.
//! - [`Ingestor`] — one per provider: `ingest(headers, body)` returns
//!   [`Ingested`] (answer 200) or an [`IngestError`] with its HTTP status; a
//!   [`Reply`] turns either into status, `Retry-After` and body.
//! - [`Verifier`] and [`Scheme`] — how a provider signs (presets:
//!   [`Scheme::standard`], [`Scheme::bluum`], [`Scheme::stripe`],
//!   [`Scheme::github`], [`Scheme::slack`], [`Scheme::shopify`]; or
//!   [`Scheme::custom`]). Usable alone when you only need verification.
//! - [`Signer`] — produces the headers a sender would attach (for tests and tools).
//! - [`Router`] — handlers by event type (exact, `domain.*`, fallback; typed
//!   payloads); each returns `Ok`, a retryable, retry-after or permanent
//!   [`HandlerError`].
//! - [`Worker`] and [`WorkerConfig`] — threads, [`Backoff`] (exponential with
//!   jitter, or a ladder such as [`Backoff::bluum`]), per-key ordering,
//!   slow-handler reports, graceful shutdown.
//! - [`Inbox::events`], [`Inbox::event`], [`Inbox::replay`],
//!   [`Inbox::purge_dead`] — what is pending, retrying or dead, and what to do
//!   about it.
//! - [`bluum`] — Bluum's event names, envelope and payload types (exact
//!   decimal strings).
//! - [`Stats`] (backlog, oldest pending age, retries, dead letters, fsync
//!   latency) and [`WorkerStats`] — what to watch in production.
//!
//! ```
//! use webhook_inbox::{
//!     Event, HandlerError, Inbox, Ingested, Reply, Router, Scheme, Signer, Verifier, Worker,
//!     WorkerConfig,
//! };
//!
//! # let dir = std::env::temp_dir().join(format!("crate-doc-{}", std::process::id()));
//! // At start-up: the inbox, an ingestor per provider (bad secrets fail here),
//! // and the worker with your handlers.
//! let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
//! let inbox = Inbox::open(&dir)?;
//! let bluum = inbox.ingestor(Verifier::new(Scheme::bluum(), [secret])?).build()?;
//! let router = Router::builder()
//!     .on("order.filled", |e: &Event| {
//!         let order: serde_json::Value = e.data()?; // or your own serde type
//!         println!("order {} filled (event {}, attempt {})", order["id"], e.id(), e.attempt());
//!         Ok(())
//!     })
//!     .on("transfer.*", |_e: &Event| Err(HandlerError::retry("ledger unavailable")))
//!     .build()?;
//! let worker = Worker::start(&inbox, router, WorkerConfig::default())?;
//!
//! // A delivery as Bluum would send it (here signed locally).
//! let body = br#"{"event":"order.filled","timestamp":"2026-11-28T12:00:00Z","data":{"id":"ord_1"}}"#;
//! let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
//! let headers = Signer::new(Scheme::bluum(), secret)?.sign("evt_1", now, body);
//!
//! // In the HTTP handler: headers as your framework has them, and the RAW body.
//! let outcome = bluum.ingest(&headers, body);
//! assert!(matches!(outcome, Ok(Ingested::Accepted { .. })));    // durable: answer 200
//! let reply = Reply::from(&bluum.ingest(&headers, body));       // the sender retried
//! assert_eq!((reply.status, reply.body.as_str()), (200, "duplicate"));
//!
//! // At shutdown: running handlers finish and their outcomes are recorded.
//! worker.shutdown()?;
//! # drop(bluum); inbox.close()?; std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Contracts
//!
//! - **Accepted means durable.** With the default [`Durability::Fsync`],
//!   `ingest` returns `Accepted` only after the event's log write and an
//!   `fdatasync` of it have completed; concurrent callers share one write and
//!   one `fdatasync` (group commit). An acknowledged event survives `kill -9`
//!   and power loss: the store's own log is the record (every directory entry
//!   it relies on fsynced), sled only an index rebuilt from it (tested: a
//!   SIGKILL loop, a syscall trace showing every acknowledgement after the
//!   `fdatasync` of the write carrying its event, and a FUSE file system that
//!   keeps only what was synced, cut at random moments).
//! - **Everything else stores nothing.** A rejected delivery (signature,
//!   timestamp, headers, body size, unreadable id or type, overload) writes
//!   nothing.
//! - **A duplicate is a no-op.** The dedup key is (source, event id); a
//!   duplicate of an event still being written waits until it is durable, so a
//!   200 always means "on disk". Markers are kept for the retention (7 days by
//!   default) and then collected — but never while their event is still
//!   stored (pending, retrying or dead). The retention must cover the replay
//!   window: an ingestor whose verifier has tolerance `t` is refused on an
//!   inbox whose retention is under `2 × t` ([`ConfigError::RetentionTooShort`]).
//! - **Only signed bytes decide deduplication.** The event id is a signed id
//!   header (Standard Webhooks, Bluum), a field of the signed body (Stripe,
//!   Slack) or the body's SHA-256 (GitHub, Shopify, custom schemes by default):
//!   see [`Scheme::dedup_on`]. An id header the signature does not cover
//!   (`X-GitHub-Delivery`, `X-Shopify-Event-Id`) is stored for display, never
//!   the key, so a genuine delivery resent under fresh ids is a duplicate. Two
//!   genuinely distinct events with identical bytes are then one event.
//! - **Unsigned types are said.** The event type of GitHub and Shopify
//!   deliveries (`X-GitHub-Event`, `X-Shopify-Topic`) is not authenticated; a
//!   handler must not trust it for authorisation ([`Scheme::type_is_signed`]).
//! - **Raw bytes.** Signatures are checked over the body exactly as received;
//!   bodies that are not UTF-8 verify too. Never re-serialise JSON before verifying.
//! - **Constant time, length first.** Signatures are decoded and compared with
//!   [`subtle`](https://docs.rs/subtle)'s constant-time equality after a length
//!   check: an empty signature (`v1,`) or a prefix of a valid one never matches.
//! - **Rotation.** Several secrets (and, for Standard Webhooks, Ed25519 public
//!   keys) may be configured, and a header may carry several signatures: any
//!   match passes.
//! - **Replay window.** Timestamps must be within ±300 s of the injected
//!   [`Clock`] by default; schemes without a timestamp (GitHub, Shopify) have
//!   no window: a copy of a genuine delivery sent after its dedup marker
//!   expired (the retention) is accepted again.
//! - **Bounded work.** Header values over 8 KiB and more than 16 signatures are
//!   refused before any MAC is computed. The signature-header parser
//!   ([`SignatureFormat::entries`]) allocates nothing and is fuzzed.
//! - **At-least-once handling, never lost.** An accepted event is handed to
//!   its handler until it succeeds, becomes a dead letter, or the router's
//!   unknown-type policy completes it. A crash mid-handler means it runs again
//!   after restart (handlers get the event id to be idempotent). Once its
//!   success is recorded (durably, before the observer hears of it) it never
//!   runs again.
//! - **Retry state is on disk.** Attempt count, next attempt time and the
//!   error history survive restarts.
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
//! - Threading: [`Inbox`], [`Ingestor`], [`Verifier`] and [`Signer`] are
//!   `Send + Sync`; share them across request handlers. `ingest` blocks for
//!   about one `fdatasync`: call it from `spawn_blocking` in async frameworks.
//! - One process per store directory: a second opener gets [`OpenError::InUse`].
//!   Several [`Worker`]s may share an inbox: each event is claimed by one at a
//!   time, under a lease its worker extends while the handler runs
//!   ([`WorkerConfig::lease`]); an outcome that arrives after the event was
//!   claimed again is refused ([`Report::LeaseLost`]).
//! - Tests: [`Inbox::memory`] is the same inbox in memory (not durable).
//! - No `unsafe` code.
//! - Features: `http` (default) implements [`HeaderSource`] for `http::HeaderMap`;
//!   `axum` adds a ready-made axum handler (`webhook_inbox::axum`); `admin`
//!   adds live operations (`webhook_inbox::admin`): a router with a JSON API,
//!   a script-free dashboard and Prometheus metrics, authenticated and
//!   CSRF-protected, to mount in the service; `tracing`
//!   emits `tracing` events for every delivery's outcome (a refusal is a
//!   `warn` at most once per 10 s per ingestor and kind, with the count of
//!   those logged at `debug` meanwhile, so a flood of forged requests cannot
//!   fill the logs) and every recorded handler outcome, and runs each handler
//!   inside a `webhook_inbox.handle` span naming its event; `bluum-client` adds a typed, blocking client for
//!   Bluum's webhook management API (`webhook_inbox::bluum::client`, with TLS);
//!   `cli` builds the `webhook-inbox` command-line tool, including `emulate`,
//!   a local Bluum (its webhook API and signed, retried deliveries) for
//!   end-to-end tests without a network.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

#[cfg(feature = "admin")]
pub mod admin;
#[cfg(feature = "axum")]
pub mod axum;
mod backoff;
pub mod bluum;
mod clock;
mod content;
mod error;
mod events;
mod format;
mod headers;
mod identity;
mod inbox;
mod ingest;
mod limits;
mod outcome;
mod pattern;
#[cfg(feature = "postgres")]
pub mod postgres;
mod router;
mod scheme;
mod secret;
mod sign;
mod stats;
mod store;
mod sync;
mod verify;
mod worker;

pub use backoff::{Backoff, Jitter};
pub use clock::{Clock, ManualClock, SystemClock};
pub use content::SignedContent;
pub use error::{ConfigError, HeaderProblem, VerifyError};
pub use events::{
    AttemptError, Bulk, EventQuery, EventState, OperatorError, Page, Replay, StoredEvent,
};
pub use format::{SignatureEntries, SignatureEntry, SignatureFormat};
pub use headers::HeaderSource;
pub use identity::{EventProblem, MAX_ID_LEN, MAX_TYPE_LEN};
pub use inbox::{
    DEFAULT_CACHE_BYTES, DEFAULT_MAX_PENDING, DEFAULT_RETENTION, Inbox, InboxBuilder, OpenError,
};
pub use ingest::{DEFAULT_MAX_BODY, Ingestor, IngestorBuilder};
pub use limits::MAX_BODY_LIMIT;
pub use outcome::{IngestError, Ingested, RETRY_AFTER, Reply};
pub use router::{
    Dispatch, Event, HandlerError, HandlerResult, Router, RouterBuilder, UnknownTypes,
};
pub use scheme::{Algorithm, DedupOn, Encoding, KeyFormat, Scheme};
pub use secret::Secret;
pub use sign::Signer;
pub use stats::{FsyncStats, Rejections, Stats};
pub use store::{Durability, StoreError};
pub use verify::{
    DEFAULT_MAX_HEADER_LEN, DEFAULT_MAX_SIGNATURES, DEFAULT_TOLERANCE, Verified, Verifier,
    VerifierBuilder,
};
pub use worker::{Report, Worker, WorkerConfig, WorkerError, WorkerStats};

#[cfg(test)]
mod thread_safety {
    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn shared_handles_cross_threads() {
        assert_send_sync::<super::Verifier>();
        assert_send_sync::<super::Signer>();
        assert_send_sync::<super::Scheme>();
        assert_send_sync::<super::Inbox>();
        assert_send_sync::<super::Ingestor>();
        assert_send_sync::<super::Router>();
    }
}
