//! Who may use the admin routes: the credentials every request must carry,
//! and for a change, the same-origin and CSRF checks.

use std::net::SocketAddr;
use std::sync::Arc;

use ::axum::extract::{ConnectInfo, Request, State};
use ::axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use ::axum::middleware::Next;
use ::axum::response::{IntoResponse, Response};
use base64::Engine as _;
use subtle::ConstantTimeEq as _;

use super::{AdminError, MIN_TOKEN_LEN, Shared};

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

impl Shared {
    /// Refuses a mutation that is not from this origin or lacks the CSRF
    /// token; `None` when it may go ahead.
    pub(super) fn refuse_mutation(
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

pub(super) async fn authenticate(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
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
