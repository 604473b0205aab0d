//! The API's resources as the client reads and writes them: event types,
//! webhooks, and the bodies of create and update.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Secret;

/// A list envelope: `{"object": "list", "has_more": bool, "data": [...]}`.
#[derive(Deserialize)]
pub(super) struct List<T> {
    pub(super) data: Vec<T>,
    #[serde(default)]
    pub(super) has_more: bool,
}

/// One event type a webhook can subscribe to, as
/// `GET /webhooks/event-types` describes it. Fields this version does not
/// know are ignored.
///
/// ```
/// use webhook_inbox::bluum::client::EventType;
///
/// let t: EventType = serde_json::from_str(
///     r#"{"object":"event_type","name":"order.filled","category":"order",
///         "display_name":"Order filled","description":"An order was fully filled."}"#,
/// )?;
/// assert_eq!((t.name.as_str(), t.category.as_str()), ("order.filled", "order"));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct EventType {
    /// The event name, such as `order.filled`.
    pub name: String,
    /// Its domain, such as `order`.
    #[serde(default)]
    pub category: String,
    /// A short human-readable title.
    #[serde(default)]
    pub display_name: String,
    /// When the event fires.
    #[serde(default)]
    pub description: String,
}

/// A webhook as the API returns it (the flat shape of `docs/BLUUM_API.md`).
///
/// Only what Bluum's webhooks guide shows in its create answer is required:
/// `id`, `url`, `status` and `created_at` (`event_type_names` defaults to
/// empty). Every other field is read leniently — absent, `null` or of an
/// unexpected type, it is `None` — and fields this version does not know
/// are ignored, so a create that succeeded is never reported as a failure
/// over a field you may not need (its answer carries the one-time secret).
///
/// ```
/// use webhook_inbox::bluum::client::{Webhook, WebhookStatus};
///
/// let hook: Webhook = serde_json::from_str(
///     r#"{"id":"wh_3f9c2a7d1e8b4c60","object":"webhook","name":"Orders",
///         "url":"http://127.0.0.1:8080/webhooks/bluum","description":null,
///         "event_type_names":["order.*"],"status":"active",
///         "created_at":"2026-11-28T12:00:00Z","updated_at":"2026-11-28T12:00:00Z",
///         "livemode":false,"secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}"#,
/// )?;
/// assert_eq!(hook.status, WebhookStatus::Active);
/// assert_eq!(hook.name.as_deref(), Some("Orders"));
/// assert_eq!(hook.event_type_names, ["order.*"]);
/// assert!(hook.secret.as_ref().is_some_and(|s| s.expose().starts_with("whsec_")));
/// assert!(!format!("{hook:?}").contains("whsec_"));
///
/// // The webhooks guide's answer: no name, description, updated_at or secret.
/// let guide: Webhook = serde_json::from_str(
///     r#"{"id": "wh_5e6f7g8h9i0j1k2l", "object": "webhook", "url": "https://your-app.com/webhooks/bluum",
///         "event_type_names": ["order.filled"], "status": "active", "created_at": "2026-07-01T15:10:00Z"}"#,
/// )?;
/// assert_eq!((guide.name, guide.updated_at, guide.livemode), (None, None, None));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Webhook {
    /// Its id, `wh_…`.
    pub id: String,
    /// Its name, if it has one (Bluum's webhooks guide creates webhooks
    /// without one).
    #[serde(default, deserialize_with = "lenient")]
    pub name: Option<String>,
    /// Where deliveries are POSTed.
    pub url: String,
    /// A free-text description, if one was given.
    #[serde(default, deserialize_with = "lenient")]
    pub description: Option<String>,
    /// What it subscribes to: exact event names and `prefix.*` wildcards.
    #[serde(default)]
    pub event_type_names: Vec<String>,
    /// Whether it receives new events.
    pub status: WebhookStatus,
    /// When it was created, RFC 3339 as the server wrote it.
    pub created_at: String,
    /// When it last changed, if the server says.
    #[serde(default, deserialize_with = "lenient")]
    pub updated_at: Option<String>,
    /// Whether it belongs to the production environment, if the server says
    /// (the emulator always answers `false`).
    #[serde(default, deserialize_with = "lenient")]
    pub livemode: Option<bool>,
    /// Its signing secret (`whsec_…`): in the emulator, present only in the
    /// answer to [`Client::create_webhook`](super::Client::create_webhook),
    /// so store it then. (Bluum's API reference shows a `secret` in the
    /// create answer; that it is never shown again is an assumption.)
    #[serde(default, deserialize_with = "secret")]
    pub secret: Option<Secret>,
}

/// An optional field read leniently: absent, `null` or not a `T`, it is `None`.
fn lenient<'de, D: Deserializer<'de>, T: serde::de::DeserializeOwned>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(serde_json::from_value(value).ok())
}

fn secret<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Secret>, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.map(Secret::new))
}

/// Whether a webhook receives new events. Read case-insensitively
/// (`active`, `ACTIVE`); sent as `ACTIVE` / `INACTIVE`; displayed lowercase.
///
/// ```
/// use webhook_inbox::bluum::client::WebhookStatus;
///
/// let s: WebhookStatus = serde_json::from_str(r#""INACTIVE""#)?;
/// assert_eq!(s, WebhookStatus::Inactive);
/// assert_eq!(serde_json::to_string(&WebhookStatus::Active)?, r#""ACTIVE""#);
/// assert_eq!(s.to_string(), "inactive");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WebhookStatus {
    /// It receives new events.
    Active,
    /// It receives no new events.
    Inactive,
    /// A status this version does not know (its text is not kept). It
    /// cannot be sent.
    Other,
}

impl fmt::Display for WebhookStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Active => "active",
            Self::Inactive => "inactive",
            Self::Other => "other",
        })
    }
}

impl Serialize for WebhookStatus {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Active => serializer.serialize_str("ACTIVE"),
            Self::Inactive => serializer.serialize_str("INACTIVE"),
            Self::Other => Err(serde::ser::Error::custom(
                "a webhook's status can be set to Active or Inactive only",
            )),
        }
    }
}

impl<'de> Deserialize<'de> for WebhookStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(if text.eq_ignore_ascii_case("active") {
            Self::Active
        } else if text.eq_ignore_ascii_case("inactive") {
            Self::Inactive
        } else {
            Self::Other
        })
    }
}

/// A webhook to create: the URL deliveries go to, the event names it
/// subscribes to (exact names such as `order.filled`, or wildcards such as
/// `order.*` and `transfer.deposit.*`), and optionally a name and a
/// description. Sent as `{"name"?, "url", "eventTypeNames", "description"?}`.
///
/// Bluum's API reference lists `name` as required, while its webhooks guide
/// registers a webhook without one: [`new`](Self::new) sends a name (the
/// safe choice against the real API), [`without_name`](Self::without_name)
/// sends the guide's exact shape.
///
/// ```
/// use webhook_inbox::bluum::client::NewWebhook;
///
/// let new = NewWebhook::new("Orders", "https://example.com/hooks", ["order.filled", "transfer.*"]);
/// let json = serde_json::to_value(&new)?;
/// assert_eq!(json["eventTypeNames"][1], "transfer.*");
/// assert!(json.get("description").is_none());
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewWebhook {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    url: String,
    #[serde(rename = "eventTypeNames")]
    event_type_names: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
}

impl NewWebhook {
    /// A webhook named `name` POSTing to `url` the events `event_type_names`
    /// match.
    ///
    /// ```
    /// use webhook_inbox::bluum::{self, client::NewWebhook};
    ///
    /// let new = NewWebhook::new("Fills", "https://example.com/hooks", [bluum::ORDER_FILLED]);
    /// assert_eq!(serde_json::to_value(&new)?["name"], "Fills");
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn new(
        name: impl Into<String>,
        url: impl Into<String>,
        event_type_names: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            name: Some(name.into()),
            ..Self::without_name(url, event_type_names)
        }
    }

    /// A webhook without a name, exactly as Bluum's webhooks guide registers
    /// one: `{"url", "eventTypeNames"}`.
    ///
    /// ```
    /// use webhook_inbox::bluum::client::NewWebhook;
    ///
    /// let new = NewWebhook::without_name(
    ///     "https://your-app.com/webhooks/bluum",
    ///     ["order.filled", "transfer.deposit.completed", "kyc.verification.approved"],
    /// );
    /// assert_eq!(
    ///     serde_json::to_string(&new)?,
    ///     r#"{"url":"https://your-app.com/webhooks/bluum","eventTypeNames":["order.filled","transfer.deposit.completed","kyc.verification.approved"]}"#
    /// );
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn without_name(
        url: impl Into<String>,
        event_type_names: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            name: None,
            url: url.into(),
            event_type_names: event_type_names.into_iter().map(Into::into).collect(),
            description: None,
        }
    }

    /// A free-text description. Defaults to none.
    ///
    /// ```
    /// use webhook_inbox::bluum::client::NewWebhook;
    ///
    /// let new = NewWebhook::new("Orders", "https://example.com/hooks", ["order.*"])
    ///     .description("order book sync");
    /// assert_eq!(serde_json::to_value(&new)?["description"], "order book sync");
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    #[must_use]
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }
}

/// The changes to make to a webhook: only the fields set are sent, and at
/// least one must be — [`Client::update_webhook`](super::Client::update_webhook)
/// refuses an empty update before sending anything.
///
/// ```
/// use webhook_inbox::bluum::client::{WebhookStatus, WebhookUpdate};
///
/// let update = WebhookUpdate::new().url("https://example.com/v2").status(WebhookStatus::Active);
/// assert_eq!(
///     serde_json::to_string(&update)?,
///     r#"{"url":"https://example.com/v2","status":"ACTIVE"}"#
/// );
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WebhookUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(rename = "eventTypeNames", skip_serializing_if = "Option::is_none")]
    event_type_names: Option<Vec<String>>,
    /// `Some(None)` is sent as `"description": null`, which clears it.
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) status: Option<WebhookStatus>,
}

impl WebhookUpdate {
    /// An update that changes nothing yet.
    ///
    /// ```
    /// use webhook_inbox::bluum::client::WebhookUpdate;
    ///
    /// assert_eq!(serde_json::to_string(&WebhookUpdate::new())?, "{}");
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Renames the webhook.
    ///
    /// ```
    /// use webhook_inbox::bluum::client::WebhookUpdate;
    ///
    /// let update = WebhookUpdate::new().name("Orders (EU)");
    /// assert_eq!(serde_json::to_value(&update)?["name"], "Orders (EU)");
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sends deliveries to another URL.
    ///
    /// ```
    /// use webhook_inbox::bluum::client::WebhookUpdate;
    ///
    /// let update = WebhookUpdate::new().url("https://example.com/hooks/v2");
    /// assert_eq!(serde_json::to_value(&update)?["url"], "https://example.com/hooks/v2");
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    #[must_use]
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// Replaces what the webhook subscribes to.
    ///
    /// ```
    /// use webhook_inbox::bluum::client::WebhookUpdate;
    ///
    /// let update = WebhookUpdate::new().event_type_names(["order.*", "kyc.verification.approved"]);
    /// assert_eq!(serde_json::to_value(&update)?["eventTypeNames"][0], "order.*");
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    #[must_use]
    pub fn event_type_names(
        mut self,
        event_type_names: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.event_type_names = Some(event_type_names.into_iter().map(Into::into).collect());
        self
    }

    /// Replaces the description (undoing an earlier
    /// [`clear_description`](Self::clear_description)).
    ///
    /// ```
    /// use webhook_inbox::bluum::client::WebhookUpdate;
    ///
    /// let update = WebhookUpdate::new().description("paused for the migration");
    /// assert_eq!(serde_json::to_value(&update)?["description"], "paused for the migration");
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    #[must_use]
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(Some(description.into()));
        self
    }

    /// Removes the description: sends `"description": null` (undoing an
    /// earlier [`description`](Self::description)).
    ///
    /// ```
    /// use webhook_inbox::bluum::client::WebhookUpdate;
    ///
    /// let update = WebhookUpdate::new().clear_description();
    /// assert_eq!(serde_json::to_string(&update)?, r#"{"description":null}"#);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    #[must_use]
    pub fn clear_description(mut self) -> Self {
        self.description = Some(None);
        self
    }

    /// Turns deliveries on ([`WebhookStatus::Active`]) or off
    /// ([`WebhookStatus::Inactive`]); sent uppercase. [`WebhookStatus::Other`]
    /// cannot be sent: [`Client::update_webhook`](super::Client::update_webhook) refuses it.
    ///
    /// ```
    /// use webhook_inbox::bluum::client::{WebhookStatus, WebhookUpdate};
    ///
    /// let update = WebhookUpdate::new().status(WebhookStatus::Inactive);
    /// assert_eq!(serde_json::to_value(&update)?["status"], "INACTIVE");
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    #[must_use]
    pub fn status(mut self, status: WebhookStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// Whether no field is set (nothing would be sent).
    pub(super) fn is_empty(&self) -> bool {
        let Self {
            name,
            url,
            event_type_names,
            description,
            status,
        } = self;
        name.is_none()
            && url.is_none()
            && event_type_names.is_none()
            && description.is_none()
            && status.is_none()
    }
}
