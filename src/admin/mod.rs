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
mod body_view;
mod metrics;
mod pages;
mod text;

use std::net::SocketAddr;
use std::sync::Arc;

use ::axum::Router;
use ::axum::body::Body;
use ::axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use ::axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use ::axum::middleware::{self, Next};
use ::axum::response::{IntoResponse, Response};
use ::axum::routing::{get, post};
use base64::Engine as _;
use subtle::ConstantTimeEq as _;

use crate::inbox::Inbox;

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

type Check = dyn Fn(&::axum::http::request::Parts) -> bool + Send + Sync;

/// Who may use the admin routes.
///
/// ```
/// use webhook_inbox::admin::Auth;
///
/// let token = Auth::token("a-long-random-admin-token")?;
/// let basic = Auth::basic("ops", "correct horse battery staple")?;
/// let host = Auth::callback(|req| req.headers.contains_key("x-internal-user"));
/// assert!(Auth::token("short").is_err());
/// # let _ = (token, basic, host, Auth::loopback_only());
/// # Ok::<(), webhook_inbox::admin::AdminError>(())
/// ```
#[derive(Clone)]
pub struct Auth(AuthKind);

#[derive(Clone)]
enum AuthKind {
    Token(String),
    Basic(String, String),
    Callback(Arc<Check>),
    Loopback,
}

impl Auth {
    /// A shared secret: `Authorization: Bearer <token>`, or Basic
    /// credentials with the token as password (so a browser can log in).
    /// At least [`MIN_TOKEN_LEN`] characters.
    ///
    /// ```
    /// # use webhook_inbox::admin::Auth;
    /// let auth = Auth::token("0123456789abcdef0123")?;
    /// # let _ = auth;
    /// # Ok::<(), webhook_inbox::admin::AdminError>(())
    /// ```
    pub fn token(token: impl Into<String>) -> Result<Self, AdminError> {
        let token = token.into();
        if token.chars().count() < MIN_TOKEN_LEN || token.chars().any(char::is_control) {
            return Err(AdminError::WeakToken);
        }
        Ok(Self(AuthKind::Token(token)))
    }

    /// HTTP Basic credentials (the browser's login prompt); the password
    /// must be at least [`MIN_TOKEN_LEN`] characters.
    ///
    /// ```
    /// # use webhook_inbox::admin::Auth;
    /// let auth = Auth::basic("ops", "a long enough password")?;
    /// # let _ = auth;
    /// # Ok::<(), webhook_inbox::admin::AdminError>(())
    /// ```
    pub fn basic(user: impl Into<String>, password: impl Into<String>) -> Result<Self, AdminError> {
        let (user, password) = (user.into(), password.into());
        if password.chars().count() < MIN_TOKEN_LEN || user.is_empty() || user.contains(':') {
            return Err(AdminError::WeakToken);
        }
        Ok(Self(AuthKind::Basic(user, password)))
    }

    /// Delegates to the host application's own authentication: `check` sees
    /// the request's method, URI, headers and extensions and says whether
    /// to let it through (refused: 401).
    ///
    /// ```
    /// # use webhook_inbox::admin::Auth;
    /// let auth = Auth::callback(|req| req.headers.get("x-user-role").is_some_and(|r| r == "ops"));
    /// # let _ = auth;
    /// ```
    pub fn callback<F>(check: F) -> Self
    where
        F: Fn(&::axum::http::request::Parts) -> bool + Send + Sync + 'static,
    {
        Self(AuthKind::Callback(Arc::new(check)))
    }

    /// No credentials, for a service reachable only from this machine:
    /// every request from an address other than loopback is refused (403),
    /// and so is every request whose peer address is unknown — serve with
    /// `into_make_service_with_connect_info::<SocketAddr>()`.
    ///
    /// ```
    /// # use webhook_inbox::admin::Auth;
    /// let auth = Auth::loopback_only();
    /// # let _ = auth;
    /// ```
    pub fn loopback_only() -> Self {
        Self(AuthKind::Loopback)
    }

    /// Whether this needs no credentials (only loopback may be served).
    ///
    /// ```
    /// # use webhook_inbox::admin::Auth;
    /// assert!(Auth::loopback_only().is_loopback_only());
    /// ```
    pub fn is_loopback_only(&self) -> bool {
        matches!(self.0, AuthKind::Loopback)
    }

    fn allows(&self, parts: &::axum::http::request::Parts) -> Verdict {
        match &self.0 {
            AuthKind::Callback(check) => {
                if check(parts) {
                    Verdict::Allowed
                } else {
                    Verdict::Unauthenticated
                }
            }
            AuthKind::Loopback => match parts.extensions.get::<ConnectInfo<SocketAddr>>() {
                Some(ConnectInfo(peer)) if peer.ip().is_loopback() => Verdict::Allowed,
                _ => Verdict::Forbidden,
            },
            AuthKind::Token(token) => match credentials(&parts.headers) {
                Some(Credentials::Bearer(given) | Credentials::Basic(_, given))
                    if bool::from(given.as_bytes().ct_eq(token.as_bytes())) =>
                {
                    Verdict::Allowed
                }
                _ => Verdict::Unauthenticated,
            },
            AuthKind::Basic(user, password) => match credentials(&parts.headers) {
                Some(Credentials::Basic(u, p))
                    if bool::from(u.as_bytes().ct_eq(user.as_bytes()))
                        & bool::from(p.as_bytes().ct_eq(password.as_bytes())) =>
                {
                    Verdict::Allowed
                }
                _ => Verdict::Unauthenticated,
            },
        }
    }
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            AuthKind::Token(_) => "Auth::Token(..)",
            AuthKind::Basic(..) => "Auth::Basic(..)",
            AuthKind::Callback(_) => "Auth::Callback(..)",
            AuthKind::Loopback => "Auth::LoopbackOnly",
        })
    }
}

enum Verdict {
    Allowed,
    Unauthenticated,
    Forbidden,
}

enum Credentials {
    Bearer(String),
    Basic(String, String),
}

fn credentials(headers: &HeaderMap) -> Option<Credentials> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(Credentials::Bearer(rest.to_owned()));
    }
    if scheme.eq_ignore_ascii_case("basic") && rest.len() <= 4096 {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, password) = text.split_once(':')?;
        return Some(Credentials::Basic(user.to_owned(), password.to_owned()));
    }
    None
}

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

/// The admin layer's settings; [`router`] is the short form.
///
/// ```
/// use webhook_inbox::Inbox;
/// use webhook_inbox::admin::{Admin, Auth};
///
/// # let dir = std::env::temp_dir().join(format!("admin-doc-{}", std::process::id()));
/// let inbox = Inbox::open(&dir)?;
/// let routes: axum::Router = Admin::new(Auth::token("a-long-random-admin-token")?)
///     .read_only(true)
///     .redact_header("x-shopify-access-token")
///     .router(&inbox)?;
/// # drop(routes); inbox.close()?; std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
#[derive(Debug, Clone)]
pub struct Admin {
    auth: Auth,
    read_only: bool,
    redact: Vec<String>,
    bulk_limit: usize,
}

impl Admin {
    /// Settings with `auth`, mutations allowed, the standard credential
    /// headers redacted.
    ///
    /// ```
    /// # use webhook_inbox::admin::{Admin, Auth};
    /// let admin = Admin::new(Auth::loopback_only());
    /// # let _ = admin;
    /// ```
    pub fn new(auth: Auth) -> Self {
        Self {
            auth,
            read_only: false,
            redact: CREDENTIAL_HEADERS.iter().map(|h| (*h).to_owned()).collect(),
            bulk_limit: MAX_BULK,
        }
    }

    /// The most events one bulk replay or purge request changes (1 to
    /// [`MAX_BULK`], the default); past it the answer says `"more": true`.
    ///
    /// ```
    /// # use webhook_inbox::admin::{Admin, Auth};
    /// let admin = Admin::new(Auth::loopback_only()).bulk_limit(1_000);
    /// # let _ = admin;
    /// ```
    pub fn bulk_limit(mut self, events: usize) -> Self {
        self.bulk_limit = events.clamp(1, MAX_BULK);
        self
    }

    /// Hides every button and refuses every mutation (403).
    ///
    /// ```
    /// # use webhook_inbox::admin::{Admin, Auth};
    /// let admin = Admin::new(Auth::loopback_only()).read_only(true);
    /// # let _ = admin;
    /// ```
    pub fn read_only(mut self, on: bool) -> Self {
        self.read_only = on;
        self
    }

    /// Also redacts the values of stored headers named `name` (any case);
    /// `Authorization`, `Proxy-Authorization`, `Cookie`, `Set-Cookie` and
    /// `X-Api-Key` always are.
    ///
    /// ```
    /// # use webhook_inbox::admin::{Admin, Auth};
    /// let admin = Admin::new(Auth::loopback_only()).redact_header("X-Partner-Secret");
    /// # let _ = admin;
    /// ```
    pub fn redact_header(mut self, name: impl Into<String>) -> Self {
        self.redact.push(name.into().to_ascii_lowercase());
        self
    }

    /// The routes, to `nest` under a prefix of the service's app. Installs
    /// the inbox's metrics hooks (once per inbox): delivery and handler
    /// metrics count from then on, so build it at start-up.
    ///
    /// ```
    /// # use webhook_inbox::{Inbox, admin::{Admin, Auth}};
    /// # let dir = std::env::temp_dir().join(format!("admin-router-doc-{}", std::process::id()));
    /// let inbox = Inbox::open(&dir)?;
    /// let app: axum::Router = axum::Router::new()
    ///     .nest("/ops", Admin::new(Auth::loopback_only()).router(&inbox)?);
    /// # drop(app); inbox.close()?; std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn router<S>(self, inbox: &Inbox) -> Result<Router<S>, AdminError>
    where
        S: Clone + Send + Sync + 'static,
    {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| AdminError::Random(e.to_string()))?;
        let shared = Arc::new(Shared {
            inbox: inbox.clone(),
            metrics: metrics::Metrics::of(inbox),
            auth: self.auth,
            read_only: self.read_only,
            redact: self.redact,
            bulk_limit: self.bulk_limit,
            csrf: hex::encode(secret),
        });
        let routes = Router::new()
            .route("/", get(pages::overview))
            .route("/events", get(pages::events))
            .route("/event", get(pages::event))
            .route("/actions/replay", post(pages::replay))
            .route("/actions/purge", post(pages::purge))
            .route("/assets/admin.css", get(pages::stylesheet))
            .route("/metrics", get(api::metrics))
            .route("/api/stats", get(api::stats))
            .route("/api/events", get(api::events))
            .route("/api/event", get(api::event))
            .route("/api/csrf", get(api::csrf))
            .route("/api/replay", post(api::replay))
            .route("/api/purge", post(api::purge))
            .fallback(not_found)
            .layer(middleware::from_fn_with_state(
                Arc::clone(&shared),
                authenticate,
            ))
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .layer(middleware::map_response(secure_headers))
            .with_state(shared);
        Ok(routes)
    }

    /// A handler for other frameworks: give it the request (body collected)
    /// and the peer's address, send back the response.
    ///
    /// ```
    /// use webhook_inbox::Inbox;
    /// use webhook_inbox::admin::{Admin, Auth};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = std::env::temp_dir().join(format!("admin-handler-doc-{}", std::process::id()));
    /// let inbox = Inbox::open(&dir)?;
    /// let admin = Admin::new(Auth::token("a-long-random-admin-token")?).handler(&inbox)?;
    /// let request = http::Request::get("/api/stats")
    ///     .header("authorization", "Bearer a-long-random-admin-token")
    ///     .body(Vec::new())?;
    /// let response = admin.handle(request, None).await;
    /// assert_eq!(response.status(), 200);
    /// # inbox.close()?; std::fs::remove_dir_all(&dir)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn handler(self, inbox: &Inbox) -> Result<Handler, AdminError> {
        Ok(Handler {
            router: self.router(inbox)?,
        })
    }
}

/// The admin routes behind a plain `http::Request` → `http::Response` call,
/// for frameworks other than axum; see [`Admin::handler`].
///
/// ```
/// fn takes(h: &webhook_inbox::admin::Handler) { let _ = h; }
/// ```
#[derive(Debug, Clone)]
pub struct Handler {
    router: Router,
}

impl Handler {
    /// Answers one request. `uri` is the path under the admin prefix
    /// (`/api/stats`); `peer` is needed by [`Auth::loopback_only`].
    ///
    /// ```
    /// # async fn f(h: webhook_inbox::admin::Handler) {
    /// let response = h.handle(http::Request::get("/metrics").body(Vec::new()).unwrap(), None).await;
    /// # let _ = response;
    /// # }
    /// ```
    pub async fn handle(
        &self,
        request: ::axum::http::Request<Vec<u8>>,
        peer: Option<SocketAddr>,
    ) -> ::axum::http::Response<Vec<u8>> {
        use tower_service::Service as _;
        let (mut parts, body) = request.into_parts();
        if let Some(peer) = peer {
            parts.extensions.insert(ConnectInfo(peer));
        }
        let request = Request::from_parts(parts, Body::from(body));
        let mut router = self.router.clone();
        let response = match router.call(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let (parts, body) = response.into_parts();
        let bytes = ::axum::body::to_bytes(body, usize::MAX)
            .await
            .map(|b| b.to_vec())
            .unwrap_or_default();
        ::axum::http::Response::from_parts(parts, bytes)
    }
}

/// The admin routes for `inbox` with `auth` and the defaults; see [`Admin`].
/// Mount them with `.nest("/admin", ...)`.
///
/// ```
/// use webhook_inbox::Inbox;
/// use webhook_inbox::admin::{self, Auth};
///
/// # let dir = std::env::temp_dir().join(format!("admin-fn-doc-{}", std::process::id()));
/// let inbox = Inbox::open(&dir)?;
/// let app: axum::Router = axum::Router::new()
///     .nest("/admin", admin::router(&inbox, Auth::token("a-long-random-admin-token")?));
/// # drop(app); inbox.close()?; std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn router<S>(inbox: &Inbox, auth: Auth) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    match Admin::new(auth).router(inbox) {
        Ok(router) => router,
        // Without randomness for the CSRF token, serve nothing but refusals.
        Err(e) => {
            let message = e.to_string();
            Router::new().fallback(move || {
                let message = message.clone();
                async move { (StatusCode::SERVICE_UNAVAILABLE, message) }
            })
        }
    }
}

/// Checks that `addr` may be served with `auth`: without credentials, only loopback.
///
/// ```
/// use webhook_inbox::admin::{Auth, check_bind};
///
/// assert!(check_bind(&Auth::loopback_only(), "127.0.0.1:9000".parse()?).is_ok());
/// assert!(check_bind(&Auth::loopback_only(), "0.0.0.0:9000".parse()?).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn check_bind(auth: &Auth, addr: SocketAddr) -> Result<(), AdminError> {
    if auth.is_loopback_only() && !addr.ip().is_loopback() {
        return Err(AdminError::NotLoopback(addr));
    }
    Ok(())
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

    /// Refuses a mutation that is not from this origin or lacks the CSRF
    /// token; `None` when it may go ahead.
    fn refuse_mutation(
        &self,
        headers: &HeaderMap,
        token: Option<&str>,
    ) -> Option<(StatusCode, &'static str)> {
        if self.read_only {
            return Some((
                StatusCode::FORBIDDEN,
                "read-only: this admin refuses every change",
            ));
        }
        // Browsers set `Sec-Fetch-Site` themselves (pages cannot); older ones
        // only `Origin`. Clients that are not browsers send neither.
        if let Some(site) = headers.get("sec-fetch-site") {
            if !matches!(site.as_bytes(), b"same-origin" | b"none") {
                return Some((StatusCode::FORBIDDEN, "cross-site request refused"));
            }
        } else if let Some(origin) = headers.get(header::ORIGIN) {
            let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
            let origin = origin.to_str().ok();
            let same = match (origin, host) {
                (Some(origin), Some(host)) => {
                    origin
                        .strip_prefix("http://")
                        .or_else(|| origin.strip_prefix("https://"))
                        == Some(host)
                }
                _ => false,
            };
            if !same {
                return Some((StatusCode::FORBIDDEN, "cross-origin request refused"));
            }
        }
        match token {
            Some(t) if bool::from(t.as_bytes().ct_eq(self.csrf.as_bytes())) => None,
            _ => Some((
                StatusCode::FORBIDDEN,
                "missing or wrong CSRF token (X-CSRF-Token header, or the page's form)",
            )),
        }
    }
}

async fn authenticate(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    match shared.auth.allows(&parts) {
        Verdict::Allowed => next.run(Request::from_parts(parts, body)).await,
        Verdict::Forbidden => (
            StatusCode::FORBIDDEN,
            "this admin has no credentials configured and serves loopback clients only",
        )
            .into_response(),
        Verdict::Unauthenticated => {
            let mut response =
                (StatusCode::UNAUTHORIZED, "authentication required").into_response();
            let challenge = match shared.auth.0 {
                AuthKind::Callback(_) => None,
                _ => Some("Basic realm=\"webhook-inbox admin\", charset=\"UTF-8\""),
            };
            if let Some(c) = challenge {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(c));
            }
            response
        }
    }
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "no such admin page").into_response()
}

/// The content security policy: no script at all, styles and images from
/// this origin only, forms only to this origin, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn secure_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}
