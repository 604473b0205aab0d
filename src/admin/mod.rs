//! Live operations (feature `admin`): a JSON API, a server-rendered
//! dashboard and Prometheus metrics for a running service's [`Inbox`], as an
//! axum [`Router`] to mount under any prefix.
//!
//! ```no_run
//! use webhook_inbox::Inbox;
//! use webhook_inbox::admin::{self, Auth};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let inbox = Inbox::open("/var/lib/webhooks")?;
//! let token = std::env::var("WEBHOOK_INBOX_ADMIN_TOKEN")?;
//! let app: axum::Router = axum::Router::new()
//!     .nest("/admin", admin::router(&inbox, Auth::token(token)?));
//! # drop(app);
//! # Ok(())
//! # }
//! ```
//!
//! What it serves, under the prefix:
//!
//! - `GET /` the overview (counts by state, backlog age, the last hour's
//!   charts), `GET /events` lists with filters and paging, `GET /event?id=`
//!   one event; `POST /actions/replay` and `/actions/purge` for the buttons.
//! - `GET /api/stats`, `GET /api/events`, `GET /api/event?id=`,
//!   `GET /api/csrf`, `POST /api/replay`, `POST /api/purge`: JSON, the same
//!   objects the `webhook-inbox` CLI prints with `--json`.
//! - `GET /metrics`: Prometheus metrics (OpenMetrics text).
//!
//! Security: every route needs the [`Auth`]; mutations need `POST`, a
//! same-origin request (`Sec-Fetch-Site`, `Origin`) and the CSRF token
//! (`X-CSRF-Token` header or `csrf` form field, from `GET /api/csrf` or the
//! page); [`Admin::read_only`] refuses them all. Every response carries a
//! Content-Security-Policy without script, `X-Frame-Options: DENY` and
//! `Cache-Control: no-store`. Stored values are escaped wherever shown, and
//! credential headers are redacted.
//!
//! Limits: a page lists at most [`MAX_PAGE`] events; a bulk replay or purge
//! changes at most [`MAX_BULK`] events per request (it answers `"more":
//! true` when more may match: send it again), written 512 to a transaction;
//! a list of ids holds at most [`MAX_IDS`]; request bodies at most 64 KiB.

// Handlers return their refusals as ready responses (built once per request).
#![allow(clippy::result_large_err)]

mod api;
mod auth;
mod body_view;
mod metrics;
mod pages;
mod routes;
mod text;

use std::net::SocketAddr;
use std::sync::Arc;

#[cfg(doc)]
use ::axum::Router;

use crate::inbox::Inbox;

pub use auth::{Auth, check_bind};
pub use routes::{Admin, CONTENT_SECURITY_POLICY, Handler, router};

/// The most events one page lists.
pub const MAX_PAGE: usize = 500;
/// The most events one bulk replay or purge request changes.
pub const MAX_BULK: usize = 10_000;
/// The most ids one replay request names.
pub const MAX_IDS: usize = 100;
/// The shortest token [`Auth::token`] accepts.
pub const MIN_TOKEN_LEN: usize = 16;
const MAX_BODY: usize = 64 * 1024;

/// Header names whose values are always redacted.
const CREDENTIAL_HEADERS: [&str; 5] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
];

/// Why the admin layer could not be set up.
///
/// ```
/// use webhook_inbox::admin::{AdminError, Auth};
///
/// assert!(matches!(Auth::token("short"), Err(AdminError::WeakToken)));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// A token or password under [`MIN_TOKEN_LEN`] characters (or a Basic
    /// user name that is empty or holds `:`).
    #[error(
        "the admin token or password must be at least {MIN_TOKEN_LEN} characters without control characters (and a Basic user name, non-empty, without `:`)"
    )]
    WeakToken,
    /// Credentials are needed to serve on an address other than loopback.
    #[error(
        "refusing to serve the admin API on {0} without credentials: set a token, or listen on 127.0.0.1 / [::1]"
    )]
    NotLoopback(SocketAddr),
    /// The CSRF secret could not be drawn from the operating system.
    #[error("cannot draw a random CSRF secret: {0}")]
    Random(String),
}

/// What every handler shares.
pub(crate) struct Shared {
    inbox: Inbox,
    metrics: Arc<metrics::Metrics>,
    auth: Auth,
    read_only: bool,
    redact: Vec<String>,
    bulk_limit: usize,
    csrf: String,
}

impl Shared {
    fn redacts(&self, name: &str) -> bool {
        self.redact.iter().any(|r| r.eq_ignore_ascii_case(name))
    }
}
