//! Setting the admin layer up: its settings ([`Admin`]), the routes they
//! build with their layers, and the same routes behind a plain `http` call.

use std::net::SocketAddr;
use std::sync::Arc;

use ::axum::Router;
use ::axum::body::Body;
use ::axum::extract::{ConnectInfo, DefaultBodyLimit, Request};
use ::axum::http::{HeaderValue, StatusCode, header};
use ::axum::middleware;
use ::axum::response::{IntoResponse, Response};
use ::axum::routing::{get, post};

use super::auth::authenticate;
use super::{
    AdminError, Auth, CREDENTIAL_HEADERS, MAX_BODY, MAX_BULK, Shared, api, metrics, pages,
};
use crate::inbox::Inbox;

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
