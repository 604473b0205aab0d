//! A blocking client for Bluum's webhook management API (feature
//! `bluum-client`): list the event types, and create, list, read, change and
//! delete webhooks.
//!
//! The happy path: create a webhook, keep its signing secret (Bluum shows it
//! once), hand the secret to your receiver.
//!
//! ```no_run
//! use webhook_inbox::bluum::client::{Client, NewWebhook, SANDBOX};
//!
//! let client = Client::new(SANDBOX, "your-api-key", "your-api-secret");
//! let hook = client.create_webhook(
//!     &NewWebhook::new("Orders", "https://example.com/webhooks/bluum", ["order.*"]),
//! )?;
//! let secret = hook.secret.expect("create answers with the secret");
//! println!("{} created; store its secret now", hook.id);
//! # let _ = secret;
//! # Ok::<(), webhook_inbox::bluum::client::ClientError>(())
//! ```
//!
//! The [`Webhook`] and [`EventType`] types follow the flat shape of Bluum's
//! webhooks guide, written down in `docs/BLUUM_API.md` (`wh_` ids,
//! snake_case fields such as `event_type_names`, list envelopes); only the
//! fields the guide's own answer shows are required. Requests send
//! `eventTypeNames`: the webhooks guide says explicitly not to use `events`
//! (two other Bluum guides do). Error answers are read in both shapes
//! Bluum's pages show, nested `{"error": {…}}` and flat `{"code",
//! "message"}`; a 429 becomes [`ClientError::RateLimited`] with its
//! `Retry-After`. Authentication is HTTP Basic with a **tenant-wide** API
//! key and its secret: webhook management is a tenant-level operation, and
//! an investor-scoped key is refused with [`ClientError::InvestorScopedKey`].
//!
//! Every text the server sends back (error messages, non-JSON bodies) reaches
//! a [`ClientError`] with its control characters escaped and its length
//! capped, so printing an error cannot move an operator's cursor.

use std::fmt;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use serde::Serialize;

use crate::Secret;

mod error;
mod resources;

pub use error::ClientError;
use error::{error_from_answer, excerpt};
use resources::List;
pub use resources::{EventType, NewWebhook, Webhook, WebhookStatus, WebhookUpdate};

/// Bluum's sandbox API, `/v1` included.
///
/// ```
/// use webhook_inbox::bluum::client::{Client, SANDBOX};
///
/// let client = Client::new(SANDBOX, "key", "secret");
/// assert_eq!(client.base_url(), "https://sandbox.api.bluumfinance.com/v1");
/// ```
pub const SANDBOX: &str = "https://sandbox.api.bluumfinance.com/v1";

/// Bluum's production API, `/v1` included.
///
/// ```
/// use webhook_inbox::bluum::client::{Client, PRODUCTION};
///
/// let client = Client::new(PRODUCTION, "key", "secret");
/// assert!(client.base_url().starts_with("https://api.bluumfinance.com"));
/// ```
pub const PRODUCTION: &str = "https://api.bluumfinance.com/v1";

/// How long a whole request may take unless [`Client::timeout`] says otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The page size `list_webhooks` asks for (the API's maximum).
const PAGE_LIMIT: usize = 200;
/// `list_webhooks` gives up after this many pages (100 000 webhooks): a
/// server that always says `has_more` must not keep the client looping.
const MAX_PAGES: usize = 500;
/// The largest answer body read (a full page of webhooks is far smaller).
const MAX_BODY: u64 = 8 * 1024 * 1024;
/// How much of a non-JSON error body an error keeps.
pub(super) const EXCERPT_CHARS: usize = 200;
/// How much of a server-written error message an error keeps.
pub(super) const MESSAGE_CHARS: usize = 1000;
/// The longest webhook id accepted.
const MAX_ID_LEN: usize = 128;

/// A blocking client for Bluum's webhook management API. Cheap to clone
/// (clones share one connection pool); `Send + Sync`.
///
/// `Debug` shows the base URL, the API key and the timeout, never the API
/// secret.
///
/// ```
/// use std::time::Duration;
/// use webhook_inbox::bluum::client::Client;
///
/// let client = Client::new("http://127.0.0.1:8080/v1/", "key_1", "s3cr3t")
///     .timeout(Duration::from_secs(5));
/// assert_eq!(client.base_url(), "http://127.0.0.1:8080/v1");
/// assert!(!format!("{client:?}").contains("s3cr3t"));
/// ```
#[derive(Clone)]
pub struct Client {
    base_url: String,
    api_key: String,
    /// `Basic base64(key:secret)`, kept wrapped so it never prints.
    authorization: Secret,
    timeout: Duration,
    agent: ureq::Agent,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key)
            .field("api_secret", &"***")
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Client {
    /// A client for the API at `base_url` (`/v1` included, such as
    /// [`SANDBOX`], [`PRODUCTION`] or an emulator's `http://127.0.0.1:PORT/v1`;
    /// a trailing slash is dropped), authenticating with a tenant-wide API
    /// key and its secret. Nothing is sent until the first call.
    ///
    /// ```
    /// use webhook_inbox::bluum::client::{Client, SANDBOX};
    ///
    /// let secret = String::from("from-a-vault");
    /// let client = Client::new(SANDBOX, "key_1", secret);
    /// # let _ = client;
    /// ```
    pub fn new(
        base_url: impl Into<String>,
        api_key: impl Into<String>,
        api_secret: impl Into<Secret>,
    ) -> Self {
        let base_url = base_url.into().trim_end_matches('/').to_owned();
        let api_key = api_key.into();
        let api_secret = api_secret.into();
        let credentials = base64::engine::general_purpose::STANDARD
            .encode(format!("{api_key}:{}", api_secret.expose()));
        Self {
            base_url,
            api_key,
            authorization: Secret::new(format!("Basic {credentials}")),
            timeout: DEFAULT_TIMEOUT,
            agent: agent(DEFAULT_TIMEOUT),
        }
    }

    /// Gives up on a call (connecting, sending, waiting, reading the answer)
    /// after `timeout`, reporting [`ClientError::Transport`]. Defaults to 30 s.
    ///
    /// ```
    /// use std::time::Duration;
    /// use webhook_inbox::bluum::client::{Client, SANDBOX};
    ///
    /// let client = Client::new(SANDBOX, "key", "secret").timeout(Duration::from_secs(10));
    /// assert!(format!("{client:?}").contains("10s"));
    /// ```
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self.agent = agent(timeout);
        self
    }

    /// The base URL calls go to, without a trailing slash.
    ///
    /// ```
    /// use webhook_inbox::bluum::client::Client;
    ///
    /// let client = Client::new("http://127.0.0.1:9000/v1/", "key", "secret");
    /// assert_eq!(client.base_url(), "http://127.0.0.1:9000/v1");
    /// ```
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Every event type a webhook can subscribe to
    /// (`GET /webhooks/event-types`).
    ///
    /// ```no_run
    /// use webhook_inbox::bluum::client::{Client, SANDBOX};
    ///
    /// let client = Client::new(SANDBOX, "key", "secret");
    /// for t in client.event_types()? {
    ///     println!("{:<32} {}", t.name, t.display_name);
    /// }
    /// # Ok::<(), webhook_inbox::bluum::client::ClientError>(())
    /// ```
    pub fn event_types(&self) -> Result<Vec<EventType>, ClientError> {
        let list: List<EventType> = self.call(Method::Get, "/webhooks/event-types", None)?;
        Ok(list.data)
    }

    /// Creates a webhook (`POST /webhooks`). The answer is the only one that
    /// carries the webhook's signing secret ([`Webhook::secret`]): store it
    /// now.
    ///
    /// ```no_run
    /// use webhook_inbox::bluum::client::{Client, NewWebhook, SANDBOX};
    ///
    /// let client = Client::new(SANDBOX, "key", "secret");
    /// let new = NewWebhook::new("Money", "https://example.com/hooks", ["transfer.*", "order.filled"])
    ///     .description("ledger sync");
    /// let hook = client.create_webhook(&new)?;
    /// assert!(hook.secret.is_some());
    /// # Ok::<(), webhook_inbox::bluum::client::ClientError>(())
    /// ```
    pub fn create_webhook(&self, webhook: &NewWebhook) -> Result<Webhook, ClientError> {
        let body = encode(webhook)?;
        let answer = self.send(Method::Post, "/webhooks", Some(body))?;
        serde_json::from_slice(&answer.body).map_err(|e| created_but_unreadable(&answer, &e))
    }

    /// Every webhook, in creation order, without secrets (`GET /webhooks`,
    /// following `has_more` a page of 200 at a time).
    ///
    /// ```no_run
    /// use webhook_inbox::bluum::client::{Client, SANDBOX};
    ///
    /// let client = Client::new(SANDBOX, "key", "secret");
    /// for hook in client.list_webhooks()? {
    ///     println!("{} {} {}", hook.id, hook.status, hook.url);
    /// }
    /// # Ok::<(), webhook_inbox::bluum::client::ClientError>(())
    /// ```
    pub fn list_webhooks(&self) -> Result<Vec<Webhook>, ClientError> {
        let mut all = Vec::new();
        for _ in 0..MAX_PAGES {
            let path = format!("/webhooks?limit={PAGE_LIMIT}&offset={}", all.len());
            let page: List<Webhook> = self.call(Method::Get, &path, None)?;
            let empty = page.data.is_empty();
            all.extend(page.data);
            if !page.has_more {
                return Ok(all);
            }
            if empty {
                return Err(ClientError::Decode(format!(
                    "{}: the server said has_more but sent an empty page at offset {}",
                    self.url("/webhooks"),
                    all.len()
                )));
            }
        }
        Err(ClientError::Decode(format!(
            "{}: still has_more after {MAX_PAGES} pages of {PAGE_LIMIT}; giving up",
            self.url("/webhooks")
        )))
    }

    /// One webhook, without its secret (`GET /webhooks/{id}`);
    /// [`ClientError::NotFound`] if there is none with that id.
    ///
    /// An id that is not letters, digits, `_` and `-` (as `wh_…` ids are) is
    /// refused before anything is sent, so it can never reach another path.
    ///
    /// ```
    /// use webhook_inbox::bluum::client::{Client, ClientError, SANDBOX};
    ///
    /// let client = Client::new(SANDBOX, "key", "secret");
    /// let err = client.get_webhook("../event-types").unwrap_err();
    /// assert!(matches!(err, ClientError::Invalid { param: Some(ref p), .. } if p == "id"));
    /// ```
    pub fn get_webhook(&self, id: &str) -> Result<Webhook, ClientError> {
        let path = webhook_path(id)?;
        self.call(Method::Get, &path, None)
    }

    /// Changes the fields set in `update` (`PATCH /webhooks/{id}`) and
    /// returns the webhook as it now is (without its secret).
    ///
    /// Refused before anything is sent, as [`ClientError::Invalid`] with an
    /// empty `code`: an id that is not a webhook id (see
    /// [`get_webhook`](Self::get_webhook)), an update that sets no field
    /// (`param` is `None`), and [`WebhookStatus::Other`] (`param` is
    /// `status`).
    ///
    /// ```no_run
    /// use webhook_inbox::bluum::client::{Client, SANDBOX, WebhookStatus, WebhookUpdate};
    ///
    /// let client = Client::new(SANDBOX, "key", "secret");
    /// let hook = client.update_webhook(
    ///     "wh_3f9c2a7d1e8b4c60",
    ///     &WebhookUpdate::new().status(WebhookStatus::Inactive),
    /// )?;
    /// assert_eq!(hook.status, WebhookStatus::Inactive);
    /// # Ok::<(), webhook_inbox::bluum::client::ClientError>(())
    /// ```
    ///
    /// An empty update never reaches the server:
    ///
    /// ```
    /// use webhook_inbox::bluum::client::{Client, ClientError, SANDBOX, WebhookUpdate};
    ///
    /// let client = Client::new(SANDBOX, "key", "secret");
    /// let err = client.update_webhook("wh_3f9c2a7d1e8b4c60", &WebhookUpdate::new()).unwrap_err();
    /// assert!(matches!(err, ClientError::Invalid { param: None, ref code, .. } if code.is_empty()));
    /// assert!(err.to_string().starts_with("invalid request: nothing to update"));
    /// ```
    pub fn update_webhook(&self, id: &str, update: &WebhookUpdate) -> Result<Webhook, ClientError> {
        let path = webhook_path(id)?;
        if update.is_empty() {
            return Err(ClientError::Invalid {
                param: None,
                code: String::new(),
                message: "nothing to update: set at least one of the name, URL, event type names, \
                          description or status"
                    .to_owned(),
            });
        }
        if update.status == Some(WebhookStatus::Other) {
            return Err(local_invalid(
                "status",
                "a webhook's status can be set to Active or Inactive only",
            ));
        }
        let body = encode(update)?;
        self.call(Method::Patch, &path, Some(body))
    }

    /// Deletes a webhook (`DELETE /webhooks/{id}`); it receives no further
    /// events. [`ClientError::NotFound`] if there is none with that id.
    ///
    /// ```no_run
    /// use webhook_inbox::bluum::client::{Client, SANDBOX};
    ///
    /// let client = Client::new(SANDBOX, "key", "secret");
    /// client.delete_webhook("wh_3f9c2a7d1e8b4c60")?;
    /// # Ok::<(), webhook_inbox::bluum::client::ClientError>(())
    /// ```
    pub fn delete_webhook(&self, id: &str) -> Result<(), ClientError> {
        let path = webhook_path(id)?;
        let _: serde::de::IgnoredAny = self.call(Method::Delete, &path, None)?;
        Ok(())
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Sends one request and reads a 2xx answer as `T`, or the error answer
    /// as a [`ClientError`].
    fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, ClientError> {
        let answer = self.send(method, path, body)?;
        serde_json::from_slice(&answer.body).map_err(|e| {
            ClientError::Decode(format!(
                "{} {} answered {} with unexpected JSON ({e}): {}",
                method.as_str(),
                answer.url,
                answer.status,
                excerpt(&String::from_utf8_lossy(&answer.body), EXCERPT_CHARS)
            ))
        })
    }

    /// Sends one request: the 2xx answer's body, or the error answer as a
    /// [`ClientError`].
    fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Answer, ClientError> {
        let url = self.url(path);
        let transport = |e: ureq::Error| {
            ClientError::Transport(format!("{} {url}: {}", method.as_str(), describe(&e)))
        };
        let authorization = self.authorization.expose();
        let accept = "application/json";
        let result = match (method, body) {
            (Method::Get, _) => self
                .agent
                .get(&url)
                .header("authorization", authorization)
                .header("accept", accept)
                .call(),
            (Method::Delete, _) => self
                .agent
                .delete(&url)
                .header("authorization", authorization)
                .header("accept", accept)
                .call(),
            (Method::Post, body) => self
                .agent
                .post(&url)
                .header("authorization", authorization)
                .header("accept", accept)
                .header("content-type", "application/json")
                .send(body.unwrap_or_default()),
            (Method::Patch, body) => self
                .agent
                .patch(&url)
                .header("authorization", authorization)
                .header("accept", accept)
                .header("content-type", "application/json")
                .send(body.unwrap_or_default()),
        };
        let mut response = result.map_err(transport)?;
        let status = response.status().as_u16();
        let bytes = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_vec();
        if !(200..300).contains(&status) {
            let wait = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| error::retry_after(v, SystemTime::now()));
            // An unreadable error body still says the status.
            return Err(error_from_answer(status, &bytes.unwrap_or_default(), wait));
        }
        let body = bytes.map_err(transport)?;
        Ok(Answer { url, status, body })
    }
}

/// A 2xx answer.
struct Answer {
    url: String,
    status: u16,
    body: Vec<u8>,
}

/// The agent every call of a client goes through: status codes are answers,
/// not errors; no redirects (the credentials stay with the configured host).
fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(timeout))
        .user_agent(concat!("webhook-inbox/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// ureq's message, with the timeout and refusal cases said plainly.
fn describe(err: &ureq::Error) -> String {
    match err {
        ureq::Error::Timeout(_) => format!("timed out ({err})"),
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            format!("connection refused ({io})")
        }
        ureq::Error::HostNotFound => "host not found".to_owned(),
        other => other.to_string(),
    }
}

#[derive(Debug, Clone, Copy)]
enum Method {
    Get,
    Post,
    Patch,
    Delete,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
        }
    }
}

/// A create that succeeded (2xx) but whose answer cannot be read: the
/// webhook probably exists now, so the text says not to simply retry, names
/// its id when the answer has one, and never quotes the body (it holds the
/// signing secret).
fn created_but_unreadable(answer: &Answer, err: &serde_json::Error) -> ClientError {
    #[derive(serde::Deserialize)]
    struct Id {
        id: String,
    }
    let id = serde_json::from_slice::<Id>(&answer.body)
        .map(|i| format!(" as {}", excerpt(&i.id, 64)))
        .unwrap_or_default();
    ClientError::Decode(format!(
        "POST {} answered {}: the webhook was probably created{id}, but the answer is not a \
         webhook ({err}); do not retry blindly: list the webhooks, delete the one this call \
         created and create it again to get its secret",
        answer.url,
        answer.status,
        err = excerpt(&err.to_string(), EXCERPT_CHARS)
    ))
}

/// `/webhooks/{id}`, or a refusal if the id could leave that path.
fn webhook_path(id: &str) -> Result<String, ClientError> {
    let valid = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(format!("/webhooks/{id}"))
    } else {
        Err(local_invalid(
            "id",
            &format!(
                "a webhook id is 1 to {MAX_ID_LEN} letters, digits, `_` and `-` \
                 (such as wh_3f9c2a7d1e8b4c60), not `{}`",
                excerpt(id, 80)
            ),
        ))
    }
}

/// A request refused before it was sent: no server code.
fn local_invalid(param: &str, message: &str) -> ClientError {
    ClientError::Invalid {
        param: Some(param.to_owned()),
        code: String::new(),
        message: message.to_owned(),
    }
}

fn encode(body: &impl Serialize) -> Result<Vec<u8>, ClientError> {
    serde_json::to_vec(body).map_err(|e| ClientError::Invalid {
        param: None,
        code: String::new(),
        message: format!("cannot encode the request: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn error_body(code: &str, message: &str, param: Option<&str>) -> Vec<u8> {
        let mut error = json!({"type": "invalid_request_error", "code": code, "message": message});
        if let Some(param) = param {
            error["param"] = json!(param);
        }
        serde_json::to_vec(&json!({ "error": error })).unwrap()
    }

    #[test]
    fn fields_the_guide_does_not_show_are_optional_and_lenient() {
        let guide: Webhook = serde_json::from_value(json!({
            "id": "wh_5e6f7g8h9i0j1k2l", "object": "webhook",
            "url": "https://your-app.com/webhooks/bluum",
            "event_type_names": ["order.filled"], "status": "active",
            "created_at": "2026-07-01T15:10:00Z"
        }))
        .unwrap();
        assert_eq!(guide.name, None);
        assert_eq!((guide.description, guide.updated_at), (None, None));
        assert_eq!((guide.livemode, guide.secret), (None, None));
        let odd: Webhook = serde_json::from_value(json!({
            "id": "wh_1", "url": "http://x/", "status": "active", "created_at": "t",
            "name": 42, "description": {"text": "d"}, "updated_at": 1_718_455_800,
            "livemode": "no", "secret": "whsec_abc"
        }))
        .unwrap();
        assert_eq!(
            (odd.name, odd.description, odd.updated_at),
            (None, None, None)
        );
        assert_eq!(odd.livemode, None);
        assert!(odd.secret.is_some(), "the secret is still read");
        // What the guide does show stays required.
        for missing in ["id", "url", "status", "created_at"] {
            let mut body = json!({"id": "wh_1", "url": "http://x/", "status": "active",
                                  "created_at": "t"});
            body.as_object_mut().unwrap().remove(missing);
            assert!(
                serde_json::from_value::<Webhook>(body).is_err(),
                "{missing}"
            );
        }
    }

    #[test]
    fn a_webhook_can_be_created_without_a_name() {
        let new = NewWebhook::without_name("http://127.0.0.1/h", ["order.*"]);
        assert_eq!(
            serde_json::to_value(&new).unwrap(),
            json!({"url": "http://127.0.0.1/h", "eventTypeNames": ["order.*"]})
        );
        let named = NewWebhook::new("n", "http://127.0.0.1/h", ["order.*"]);
        assert_eq!(serde_json::to_value(&named).unwrap()["name"], "n");
    }

    #[test]
    fn new_webhook_sends_event_type_names_never_events() {
        let new = NewWebhook::new("Orders", "http://127.0.0.1/h", ["order.*", "order.filled"]);
        let json = serde_json::to_value(&new).unwrap();
        assert_eq!(
            json,
            json!({"name": "Orders", "url": "http://127.0.0.1/h",
                   "eventTypeNames": ["order.*", "order.filled"]})
        );
        assert!(json.get("events").is_none());
        let json = serde_json::to_value(new.description("d")).unwrap();
        assert_eq!(json["description"], "d");
    }

    #[test]
    fn updates_send_only_the_fields_set_and_status_uppercase() {
        assert_eq!(
            serde_json::to_value(WebhookUpdate::new()).unwrap(),
            json!({})
        );
        let all = WebhookUpdate::new()
            .name("n")
            .url("http://x/")
            .event_type_names(["kyc.*"])
            .description("d")
            .status(WebhookStatus::Inactive);
        assert_eq!(
            serde_json::to_value(&all).unwrap(),
            json!({"name": "n", "url": "http://x/", "eventTypeNames": ["kyc.*"],
                   "description": "d", "status": "INACTIVE"})
        );
        let status = WebhookUpdate::new().status(WebhookStatus::Active);
        assert_eq!(
            serde_json::to_string(&status).unwrap(),
            r#"{"status":"ACTIVE"}"#
        );
        assert!(serde_json::to_string(&WebhookUpdate::new().status(WebhookStatus::Other)).is_err());
    }

    #[test]
    fn descriptions_can_be_set_or_cleared_and_the_last_call_wins() {
        let clear = WebhookUpdate::new().clear_description();
        assert_eq!(
            serde_json::to_string(&clear).unwrap(),
            r#"{"description":null}"#
        );
        assert!(!clear.is_empty());
        let set_then_cleared = WebhookUpdate::new().description("d").clear_description();
        assert_eq!(set_then_cleared, clear);
        let cleared_then_set = WebhookUpdate::new().clear_description().description("d");
        assert_eq!(
            serde_json::to_value(&cleared_then_set).unwrap(),
            json!({"description": "d"})
        );
        let both = WebhookUpdate::new().name("n").clear_description();
        assert_eq!(
            serde_json::to_value(&both).unwrap(),
            json!({"name": "n", "description": null})
        );
    }

    #[test]
    fn an_update_is_empty_until_a_field_is_set() {
        assert!(WebhookUpdate::new().is_empty());
        for update in [
            WebhookUpdate::new().name("n"),
            WebhookUpdate::new().url("http://x/"),
            WebhookUpdate::new().event_type_names(["order.*"]),
            WebhookUpdate::new().event_type_names(Vec::<String>::new()),
            WebhookUpdate::new().description(""),
            WebhookUpdate::new().clear_description(),
            WebhookUpdate::new().status(WebhookStatus::Active),
        ] {
            assert!(!update.is_empty(), "{update:?}");
        }
    }

    #[test]
    fn status_reads_any_case() {
        for (text, status) in [
            ("active", WebhookStatus::Active),
            ("ACTIVE", WebhookStatus::Active),
            ("Inactive", WebhookStatus::Inactive),
            ("INACTIVE", WebhookStatus::Inactive),
            ("disabled", WebhookStatus::Other),
        ] {
            let read: WebhookStatus = serde_json::from_value(json!(text)).unwrap();
            assert_eq!(read, status, "{text}");
        }
    }

    #[test]
    fn webhooks_ignore_unknown_fields_and_secrets_do_not_print() {
        let hook: Webhook = serde_json::from_value(json!({
            "id": "wh_1", "object": "webhook", "name": "n", "url": "http://x/",
            "event_type_names": ["order.*"], "status": "active",
            "created_at": "2026-11-28T12:00:00Z", "livemode": false, "future": {"a": 1},
            "secret": "whsec_abc"
        }))
        .unwrap();
        assert_eq!(hook.description, None);
        assert_eq!(hook.updated_at, None);
        assert_eq!(hook.secret.as_ref().map(Secret::expose), Some("whsec_abc"));
        assert!(!format!("{hook:?}").contains("whsec_abc"));
        let listed: Webhook = serde_json::from_value(json!({
            "id": "wh_1", "name": "n", "url": "http://x/", "event_type_names": [],
            "status": "inactive", "created_at": "t", "description": "d"
        }))
        .unwrap();
        assert_eq!(listed.secret, None);
        assert_eq!(listed.description.as_deref(), Some("d"));
    }

    #[test]
    fn error_answers_map_to_variants() {
        let err = error_from_answer(401, &error_body("BLUM-401-003", "bad secret", None), None);
        assert_eq!(
            err,
            ClientError::Unauthorized {
                code: "BLUM-401-003".into(),
                message: "bad secret".into()
            }
        );
        let err = error_from_answer(403, &error_body("BLUM-403-001", "investor key", None), None);
        assert_eq!(
            err,
            ClientError::InvestorScopedKey {
                code: "BLUM-403-001".into(),
                message: "investor key".into()
            }
        );
        assert!(err.to_string().contains("tenant-level"));
        assert!(err.to_string().contains("tenant-wide"));
        assert!(err.to_string().contains("BLUM-403-001"));
        assert!(err.to_string().ends_with("(Bluum said: investor key)"));
        // A 403 that is not Bluum's JSON error is not blamed on the key.
        let err = error_from_answer(403, b"<html>Forbidden</html>", None);
        assert!(
            matches!(err, ClientError::Api { status: 403, .. }),
            "{err:?}"
        );
        for status in [400, 409, 413, 422] {
            let body = error_body("BLUM-400-004", "unknown event", Some("eventTypeNames"));
            let err = error_from_answer(status, &body, None);
            assert_eq!(
                err,
                ClientError::Invalid {
                    param: Some("eventTypeNames".into()),
                    code: "BLUM-400-004".into(),
                    message: "unknown event".into()
                },
                "{status}"
            );
            assert!(err.to_string().contains("`eventTypeNames`"), "{err}");
        }
        let err = error_from_answer(404, &error_body("BLUM-404-001", "no webhook", None), None);
        assert!(matches!(err, ClientError::NotFound { ref code, .. } if code == "BLUM-404-001"));
        let err = error_from_answer(500, &error_body("BLUM-500-001", "boom", None), None);
        assert!(matches!(err, ClientError::Api { status: 500, .. }));
    }

    #[test]
    fn every_error_reads_well_with_and_without_code_and_param() {
        fn unauthorized(code: &str) -> ClientError {
            ClientError::Unauthorized {
                code: code.into(),
                message: "Unknown API key or wrong secret.".into(),
            }
        }
        fn investor(code: &str) -> ClientError {
            ClientError::InvestorScopedKey {
                code: code.into(),
                message: "Use a tenant-wide key.".into(),
            }
        }
        fn invalid(param: Option<&str>, code: &str, message: &str) -> ClientError {
            ClientError::Invalid {
                param: param.map(Into::into),
                code: code.into(),
                message: message.into(),
            }
        }
        fn not_found(code: &str) -> ClientError {
            ClientError::NotFound {
                code: code.into(),
                message: "No webhook wh_1.".into(),
            }
        }
        fn api(code: &str) -> ClientError {
            ClientError::Api {
                status: 500,
                code: code.into(),
                message: "Internal error.".into(),
            }
        }
        let cases = [
            (
                unauthorized("BLUM-401-003"),
                "Bluum refused the API key and secret (BLUM-401-003): \
                 Unknown API key or wrong secret.",
            ),
            (
                unauthorized(""),
                "Bluum refused the API key and secret: Unknown API key or wrong secret.",
            ),
            (
                investor("BLUM-403-001"),
                "this API key is not allowed to manage webhooks (BLUM-403-001): \
                 webhook management is tenant-level; an investor-scoped key is refused: \
                 use a tenant-wide API key (Bluum said: Use a tenant-wide key.)",
            ),
            (
                investor(""),
                "this API key is not allowed to manage webhooks: \
                 webhook management is tenant-level; an investor-scoped key is refused: \
                 use a tenant-wide API key (Bluum said: Use a tenant-wide key.)",
            ),
            (
                invalid(
                    Some("eventTypeNames"),
                    "BLUM-400-004",
                    "Unknown event type.",
                ),
                "invalid `eventTypeNames` (BLUM-400-004): Unknown event type.",
            ),
            (
                invalid(Some("id"), "", "not a webhook id"),
                "invalid `id`: not a webhook id",
            ),
            (
                invalid(None, "BLUM-409-001", "The delivery is not parked."),
                "Bluum refused the request (BLUM-409-001): The delivery is not parked.",
            ),
            (
                invalid(None, "", "nothing to update"),
                "invalid request: nothing to update",
            ),
            (
                not_found("BLUM-404-001"),
                "not found (BLUM-404-001): No webhook wh_1.",
            ),
            (not_found(""), "not found: No webhook wh_1."),
            (
                api("BLUM-500-001"),
                "Bluum answered HTTP 500 (BLUM-500-001): Internal error.",
            ),
            (api(""), "Bluum answered HTTP 500: Internal error."),
            (
                ClientError::Transport("GET http://x/v1/webhooks: connection refused".into()),
                "cannot reach Bluum: GET http://x/v1/webhooks: connection refused",
            ),
            (
                ClientError::Decode("GET http://x/v1/webhooks answered 200 with …".into()),
                "cannot read Bluum's answer: GET http://x/v1/webhooks answered 200 with …",
            ),
        ];
        for (err, text) in cases {
            assert_eq!(err.to_string(), text, "{err:?}");
        }
        // Through the mapping too: a 409 or 413 without a param.
        for (status, code) in [(409, "BLUM-409-001"), (413, "BLUM-400-008")] {
            let err = error_from_answer(status, &error_body(code, "m", None), None);
            assert_eq!(
                err.to_string(),
                format!("Bluum refused the request ({code}): m")
            );
        }
    }

    #[test]
    fn flat_and_nested_errors_map_to_the_same_variants() {
        let flat = |code: &str, param: Option<&str>| {
            let mut body = json!({"code": code, "message": "m"});
            if let Some(param) = param {
                body["param"] = json!(param);
            }
            serde_json::to_vec(&body).unwrap()
        };
        let cases: [(u16, &str, Option<&str>); 6] = [
            (401, "BLUM-401-001", None),
            (403, "BLUM-403-001", None),
            (404, "BLUM-404-001", None),
            (400, "BLUM-400-002", Some("url")),
            (409, "BLUM-409-001", None),
            (422, "BLUM-422-001", None),
        ];
        for (status, code, param) in cases {
            let nested = error_from_answer(status, &error_body(code, "m", param), None);
            let flat = error_from_answer(status, &flat(code, param), None);
            assert_eq!(flat, nested, "{status}");
            assert!(
                !matches!(flat, ClientError::Api { .. }),
                "{status}: {flat:?}"
            );
        }
        assert!(matches!(
            error_from_answer(404, &flat("BLUM-404-001", None), None),
            ClientError::NotFound { ref code, .. } if code == "BLUM-404-001"
        ));
        assert!(matches!(
            error_from_answer(401, &flat("BLUM-401-003", None), None),
            ClientError::Unauthorized { .. }
        ));
        // A `{"code", "message"}` that is not Bluum's (a gateway's) is not
        // read as Bluum's error.
        for body in [
            &br#"{"code": 404, "message": "no Route matched"}"#[..],
            br#"{"code": "NOT_FOUND", "message": "no Route matched"}"#,
            br#"{"message": "Not Found"}"#,
            br#"{"error": "Not Found"}"#,
        ] {
            let err = error_from_answer(404, body, None);
            assert!(
                matches!(err, ClientError::Api { status: 404, .. }),
                "{err:?}"
            );
        }
    }

    #[test]
    fn a_429_is_rate_limited_with_its_wait_in_any_shape() {
        let wait = Some(Duration::from_secs(7));
        let nested = error_from_answer(429, &error_body("BLUM-429-001", "slow down", None), wait);
        assert_eq!(
            nested,
            ClientError::RateLimited {
                retry_after: wait,
                code: "BLUM-429-001".into(),
                message: "slow down".into()
            }
        );
        assert_eq!(nested.retry_after(), wait);
        let flat = error_from_answer(
            429,
            br#"{"code":"BLUM-429-001","message":"slow down"}"#,
            wait,
        );
        assert_eq!(flat, nested);
        let bare = error_from_answer(429, b"Too Many Requests", None);
        assert!(
            matches!(bare, ClientError::RateLimited { retry_after: None, ref code, .. } if code.is_empty()),
            "{bare:?}"
        );
        assert!(bare.to_string().contains("no Retry-After given"), "{bare}");
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates_bounded() {
        use std::time::UNIX_EPOCH;
        let now = UNIX_EPOCH + Duration::from_secs(1_445_412_480); // Wed, 21 Oct 2015 07:28:00 GMT
        let secs = |n| Some(Duration::from_secs(n));
        assert_eq!(error::retry_after("120", now), secs(120));
        assert_eq!(error::retry_after(" 0 ", now), secs(0));
        assert_eq!(
            error::retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            secs(30)
        );
        // A date already past: no wait.
        assert_eq!(
            error::retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            secs(0)
        );
        // Bounded: a day, a year, more digits than a u64 holds, a far date.
        for huge in [
            "86400",
            "31536000",
            "99999999999999999999999999",
            "Fri, 01 Jan 9999 00:00:00 GMT",
        ] {
            assert_eq!(
                error::retry_after(huge, now),
                Some(error::MAX_RETRY_AFTER),
                "{huge}"
            );
        }
        for bad in [
            "",
            "-1",
            "1.5",
            "soon",
            "120s",
            &"9".repeat(65),
            "Wed, 21 Oct 2015",
        ] {
            assert_eq!(error::retry_after(bad, now), None, "{bad:?}");
        }
        let err = ClientError::RateLimited {
            retry_after: Some(Duration::from_millis(1500)),
            code: String::new(),
            message: "m".into(),
        };
        assert_eq!(
            err.to_string(),
            "Bluum is rate-limiting these credentials, retry after 2s: m"
        );
    }

    #[test]
    fn non_json_error_bodies_become_short_clean_excerpts() {
        let body = format!("<html>\x1b[31mBad gateway\n{}</html>", "x".repeat(1000));
        let err = error_from_answer(502, body.as_bytes(), None);
        let ClientError::Api {
            status,
            code,
            message,
        } = &err
        else {
            panic!("{err:?}");
        };
        assert_eq!((*status, code.as_str()), (502, ""));
        assert!(message.starts_with("<html>\\u{1b}[31mBad gateway\\n"));
        assert!(message.ends_with('…'));
        assert!(message.chars().count() < 300);
        assert!(!err.to_string().chars().any(char::is_control));
        assert_eq!(err.to_string().matches("()").count(), 0);
        // A 404 from something that is not Bluum is not "no such webhook".
        let err = error_from_answer(404, b"Not Found", None);
        assert!(matches!(err, ClientError::Api { status: 404, .. }));
        let err = error_from_answer(401, b"", None);
        assert!(
            matches!(err, ClientError::Api { status: 401, ref message, .. } if message == "(empty body)")
        );
    }

    #[test]
    fn server_messages_lose_their_control_characters() {
        let err = error_from_answer(400, &error_body("C\n", "a\x1b[2Jb", Some("p\r")), None);
        assert!(!err.to_string().chars().any(char::is_control), "{err}");
    }

    #[test]
    fn ids_that_could_leave_the_path_are_refused() {
        assert_eq!(
            webhook_path("wh_3f9c2a7d1e8b4c60").unwrap(),
            "/webhooks/wh_3f9c2a7d1e8b4c60"
        );
        for bad in [
            "", ".", "..", "../x", "wh_1/x", "wh_1?x=1", "wh_1#f", "wh 1", "wh_1\n", "wh%2F",
            "wh_é",
        ] {
            let err = webhook_path(bad).unwrap_err();
            assert!(
                matches!(err, ClientError::Invalid { param: Some(ref p), .. } if p == "id"),
                "{bad:?}"
            );
            assert!(!err.to_string().chars().any(char::is_control));
        }
        assert!(webhook_path(&"a".repeat(MAX_ID_LEN + 1)).is_err());
    }

    #[test]
    fn other_status_is_refused_before_sending() {
        // The status is checked before anything is sent.
        let client = Client::new("http://127.0.0.1:9/v1", "k", "s");
        let err = client
            .update_webhook("wh_1", &WebhookUpdate::new().status(WebhookStatus::Other))
            .unwrap_err();
        assert!(matches!(err, ClientError::Invalid { param: Some(ref p), .. } if p == "status"));
    }

    #[test]
    fn empty_updates_are_refused_before_sending() {
        // Nothing listens on port 9: a request would be a Transport error.
        let client = Client::new("http://127.0.0.1:9/v1", "k", "s");
        let err = client
            .update_webhook("wh_1", &WebhookUpdate::new())
            .unwrap_err();
        let ClientError::Invalid {
            param,
            code,
            message,
        } = &err
        else {
            panic!("{err:?}");
        };
        assert_eq!((param, code.as_str()), (&None, ""));
        assert!(message.starts_with("nothing to update"), "{message}");
        // The id is still checked first.
        let err = client
            .update_webhook("../x", &WebhookUpdate::new())
            .unwrap_err();
        assert!(matches!(err, ClientError::Invalid { param: Some(ref p), .. } if p == "id"));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let client = Client::new("http://127.0.0.1:9/v1/", "key_1", "hunter2");
        let debug = format!("{client:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        // Nor its base64 form inside the Authorization header.
        let encoded = base64::engine::general_purpose::STANDARD.encode("key_1:hunter2");
        assert!(!debug.contains(&encoded));
        assert!(debug.contains("key_1") && debug.contains("http://127.0.0.1:9/v1\""));
    }

    #[test]
    fn clients_cross_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Client>();
        assert_send_sync::<ClientError>();
    }
}
