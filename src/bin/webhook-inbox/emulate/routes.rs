//! The routes under /v1: Bluum's webhook management API and the emulator's
//! own event and delivery routes, each answering Bluum's flat resource shape
//! (docs/BLUUM_API.md).

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{Value, json};
use webhook_inbox::bluum::CATALOG;

use super::auth::Scope;
use super::outbox::{Outbox, new_secret};
use super::registry::{Attempt, Delivery, Registry, RegistryError, Webhook};
use super::reply::{ApiError, Reply};
use super::target::Targets;
use super::validate;
use crate::time::utc;

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 200;

/// A request, as the routes need it: authenticated already (the credential
/// is checked before the body is read).
pub struct Request<'a> {
    pub method: &'a str,
    /// Path and query, as sent.
    pub target: &'a str,
    /// Whose credential it carried.
    pub scope: Scope,
    pub body: &'a [u8],
}

pub struct Api {
    pub registry: Arc<Registry>,
    pub outbox: Outbox,
    /// Where webhooks may point.
    pub targets: Targets,
}

impl Api {
    pub fn handle(&self, request: &Request<'_>) -> Reply {
        match self.route(request) {
            Ok(reply) => reply,
            Err(err) => err.into(),
        }
    }

    fn route(&self, request: &Request<'_>) -> Result<Reply, ApiError> {
        let (path, query) = request
            .target
            .split_once('?')
            .unwrap_or((request.target, ""));
        let scope = request.scope;
        let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
        let (method, body) = (request.method, request.body);
        let known = matches!(
            segments.as_slice(),
            ["v1", "webhooks"]
                | ["v1", "webhooks", _]
                | ["v1", "_emulator", "events"]
                | ["v1", "_emulator", "deliveries"]
                | ["v1", "_emulator", "deliveries", _]
                | ["v1", "_emulator", "deliveries", _, "replay"]
        );
        if !known {
            return Err(ApiError::no_route(method, path));
        }
        // Every route here is webhook management or the emulator's own: tenant-level.
        if scope == Scope::Investor {
            return Err(ApiError::investor_scoped());
        }
        match (segments.as_slice(), method) {
            (["v1", "webhooks", "event-types"], "GET") => Ok(event_types()),
            (["v1", "webhooks"], "GET") => self.list_webhooks(query),
            (["v1", "webhooks"], "POST") => self.create_webhook(body),
            (["v1", "webhooks", "event-types"], _) => {
                Err(ApiError::method_not_allowed(method, path))
            }
            (["v1", "webhooks", id], "GET") => self.get_webhook(id),
            (["v1", "webhooks", id], "PATCH") => self.update_webhook(id, body),
            (["v1", "webhooks", id], "DELETE") => self.delete_webhook(id),
            (["v1", "_emulator", "events"], "POST") => self.trigger(body),
            (["v1", "_emulator", "deliveries"], "GET") => self.list_deliveries(query),
            (["v1", "_emulator", "deliveries", id], "GET") => self.get_delivery(id),
            (["v1", "_emulator", "deliveries", id, "replay"], "POST") => self.replay(id),
            _ => Err(ApiError::method_not_allowed(method, path)),
        }
    }

    /// Refuses a URL the emulator must not deliver to (docs/BLUUM_API.md,
    /// "Emulator safety limits"); delivery checks again.
    fn check_target(&self, url: &str) -> Result<(), ApiError> {
        self.targets.check_url(url).map_err(|refused| {
            ApiError::field(
                "BLUM-400-003",
                "url",
                format!("url is not an allowed delivery target: {refused}"),
            )
        })
    }

    fn create_webhook(&self, body: &[u8]) -> Result<Reply, ApiError> {
        let new = validate::new_webhook(body)?;
        self.check_target(&new.url)?;
        let now = SystemTime::now();
        let webhook = Webhook {
            id: self.registry.new_id("wh_").map_err(ApiError::internal)?,
            name: new.name,
            url: new.url,
            description: new.description,
            event_type_names: new.event_type_names,
            active: true,
            secret: new_secret()
                .map_err(ApiError::internal)?
                .expose()
                .to_owned(),
            created_at: now,
            updated_at: now,
        };
        self.registry
            .put_webhook(&webhook)
            .map_err(ApiError::internal)?;
        let mut body = webhook_json(&webhook);
        if let Some(fields) = body.as_object_mut() {
            fields.insert("secret".into(), Value::String(webhook.secret.clone()));
        }
        Ok(Reply::created(body))
    }

    fn list_webhooks(&self, query: &str) -> Result<Reply, ApiError> {
        let page = Page::read(query)?;
        let (items, has_more) = page.take(
            self.registry
                .webhooks_iter()
                .map(|w| w.map_err(ApiError::internal)),
        )?;
        Ok(Reply::ok(list(
            "/v1/webhooks",
            has_more,
            items.iter().map(webhook_json).collect(),
        )))
    }

    fn get_webhook(&self, id: &str) -> Result<Reply, ApiError> {
        validate::resource_id(id, "wh_")?;
        match self.registry.webhook(id).map_err(ApiError::internal)? {
            Some(webhook) => Ok(Reply::ok(webhook_json(&webhook))),
            None => Err(ApiError::not_found("webhook", id)),
        }
    }

    fn update_webhook(&self, id: &str, body: &[u8]) -> Result<Reply, ApiError> {
        validate::resource_id(id, "wh_")?;
        let changes = validate::changes(body)?;
        if let Some(url) = &changes.url {
            self.check_target(url)?;
        }
        let updated = self
            .registry
            .update_webhook(id, |w| {
                if let Some(name) = changes.name {
                    w.name = Some(name);
                }
                if let Some(url) = changes.url {
                    w.url = url;
                }
                if let Some(names) = changes.event_type_names {
                    w.event_type_names = names;
                }
                if let Some(description) = changes.description {
                    w.description = description;
                }
                if let Some(active) = changes.active {
                    w.active = active;
                }
                w.updated_at = SystemTime::now();
            })
            .map_err(ApiError::internal)?;
        match updated {
            Some(webhook) => Ok(Reply::ok(webhook_json(&webhook))),
            None => Err(ApiError::not_found("webhook", id)),
        }
    }

    fn delete_webhook(&self, id: &str) -> Result<Reply, ApiError> {
        validate::resource_id(id, "wh_")?;
        if self
            .registry
            .delete_webhook(id)
            .map_err(ApiError::internal)?
        {
            Ok(Reply::ok(
                json!({ "id": id, "object": "webhook", "deleted": true }),
            ))
        } else {
            Err(ApiError::not_found("webhook", id))
        }
    }

    /// Fans one event out to every active webhook subscribed to its type:
    /// the deliveries are recorded (durably) and handed to the outbox before
    /// the answer.
    fn trigger(&self, body: &[u8]) -> Result<Reply, ApiError> {
        let event = validate::new_event(body)?;
        let now = SystemTime::now();
        let event_id = self.registry.new_id("evt_").map_err(ApiError::internal)?;
        let envelope = format!(
            r#"{{"event":{},"timestamp":"{}","data":{}}}"#,
            Value::String(event.event_type.clone()),
            utc(now),
            event.data.get()
        );
        let mut deliveries = Vec::new();
        for webhook in self.registry.webhooks_iter() {
            let webhook = webhook.map_err(ApiError::internal)?;
            if webhook.active && webhook.subscribes_to(&event.event_type) {
                deliveries.push(Delivery {
                    id: self.registry.new_id("dlv_").map_err(ApiError::internal)?,
                    event_id: event_id.clone(),
                    event_type: event.event_type.clone(),
                    webhook_id: webhook.id,
                    created_at: now,
                    body: envelope.clone(),
                    delivered_at: None,
                    attempts: Vec::new(),
                });
            }
        }
        self.registry
            .add_deliveries(&deliveries)
            .map_err(ApiError::internal)?;
        self.outbox.enqueue(&deliveries).map_err(|e| {
            ApiError::internal(format!(
                "event {event_id} was recorded, but its deliveries could not all be queued \
                 ({e}); the rest are queued at the emulator's next start (do not trigger it again)"
            ))
        })?;
        let summary: Vec<Value> = deliveries
            .iter()
            .map(|d| json!({ "id": d.id, "webhook_id": d.webhook_id }))
            .collect();
        Ok(Reply::accepted(json!({
            "object": "event",
            "id": event_id,
            "type": event.event_type,
            "created_at": utc(now),
            "deliveries": summary,
        })))
    }

    fn list_deliveries(&self, query: &str) -> Result<Reply, ApiError> {
        let page = Page::read(query)?;
        let webhook = param(query, "webhook_id");
        let state = param(query, "state");
        if let Some(state) = state
            && !["pending", "retrying", "delivered", "parked"].contains(&state)
        {
            return Err(ApiError::field(
                "BLUM-400-004",
                "state",
                "state must be pending, retrying, delivered or parked.",
            ));
        }
        // A page is read from the index: ids are skipped without decoding,
        // and only what is shown (or, with a state, examined) is decoded.
        let ids = self.registry.delivery_ids(webhook);
        let fetch = |id: Result<String, RegistryError>| -> Result<Option<Delivery>, ApiError> {
            let id = id.map_err(ApiError::internal)?;
            self.registry.delivery(&id).map_err(ApiError::internal)
        };
        let (data, has_more) = match state {
            // The state needs the outbox: examine candidates until the page is full.
            Some(state) => {
                let shown = ids.filter_map(|id| match fetch(id) {
                    Ok(Some(delivery)) => match self.delivery_json(&delivery) {
                        Ok(json) if json["state"] == state => Some(Ok(json)),
                        Ok(_) => None,
                        Err(e) => Some(Err(e)),
                    },
                    Ok(None) => None,
                    Err(e) => Some(Err(e)),
                });
                page.take(shown)?
            }
            None => {
                let (ids, has_more) = page.take(ids.map(|id| id.map_err(ApiError::internal)))?;
                let mut data = Vec::with_capacity(ids.len());
                for id in ids {
                    // Pruned since the ids were read: left out.
                    if let Some(delivery) = fetch(Ok(id))? {
                        data.push(self.delivery_json(&delivery)?);
                    }
                }
                (data, has_more)
            }
        };
        Ok(Reply::ok(list("/v1/_emulator/deliveries", has_more, data)))
    }

    fn get_delivery(&self, id: &str) -> Result<Reply, ApiError> {
        validate::resource_id(id, "dlv_")?;
        match self.registry.delivery(id).map_err(ApiError::internal)? {
            Some(delivery) => Ok(Reply::ok(self.delivery_json(&delivery)?)),
            None => Err(ApiError::not_found("delivery", id)),
        }
    }

    fn replay(&self, id: &str) -> Result<Reply, ApiError> {
        validate::resource_id(id, "dlv_")?;
        let Some(delivery) = self.registry.delivery(id).map_err(ApiError::internal)? else {
            return Err(ApiError::not_found("delivery", id));
        };
        if !self.outbox.replay(id).map_err(ApiError::internal)? {
            let (state, _) = self.outbox.state(&delivery).map_err(ApiError::internal)?;
            return Err(ApiError::conflict(format!(
                "Delivery {id} is {}: only a parked delivery can be replayed.",
                state.name()
            )));
        }
        Ok(Reply::accepted(self.delivery_json(&delivery)?))
    }

    fn delivery_json(&self, delivery: &Delivery) -> Result<Value, ApiError> {
        let (state, next) = self.outbox.state(delivery).map_err(ApiError::internal)?;
        let url = self
            .registry
            .webhook(&delivery.webhook_id)
            .map_err(ApiError::internal)?
            .map(|w| w.url);
        let attempts: Vec<Value> = delivery
            .attempts
            .iter()
            .enumerate()
            .map(|(i, a)| attempt_json(i + 1, a))
            .collect();
        Ok(json!({
            "object": "delivery",
            "id": delivery.id,
            "event_id": delivery.event_id,
            "event_type": delivery.event_type,
            "webhook_id": delivery.webhook_id,
            "url": url,
            "state": state.name(),
            "created_at": utc(delivery.created_at),
            "delivered_at": delivery.delivered_at.map(utc),
            "next_attempt_at": next.map(crate::time::utc_millis),
            "attempts": attempts,
        }))
    }
}

fn attempt_json(number: usize, attempt: &Attempt) -> Value {
    json!({
        "attempt": number,
        "at": crate::time::utc_millis(attempt.at),
        "status": attempt.status,
        "error": attempt.error,
        "response": attempt.response,
        "duration_ms": attempt.duration_ms,
    })
}

fn webhook_json(webhook: &Webhook) -> Value {
    json!({
        "id": webhook.id,
        "object": "webhook",
        "name": webhook.name,
        "url": webhook.url,
        "description": webhook.description,
        "event_type_names": webhook.event_type_names,
        "status": if webhook.active { "active" } else { "inactive" },
        "created_at": utc(webhook.created_at),
        "updated_at": utc(webhook.updated_at),
        "livemode": false,
    })
}

fn event_types() -> Reply {
    let data = CATALOG
        .iter()
        .map(|e| {
            json!({
                "object": "event_type",
                "name": e.name,
                "category": e.category(),
                "display_name": e.display_name,
                "description": e.description,
            })
        })
        .collect();
    Reply::ok(list("/v1/webhooks/event-types", false, data))
}

fn list(url: &str, has_more: bool, data: Vec<Value>) -> Value {
    json!({ "object": "list", "url": url, "has_more": has_more, "data": data })
}

/// `limit` and `offset` from a query string.
struct Page {
    limit: usize,
    offset: usize,
}

impl Page {
    fn read(query: &str) -> Result<Self, ApiError> {
        let number = |name: &str, default: usize, max: usize| match param(query, name) {
            None => Ok(default),
            Some(text) => match text.parse::<usize>() {
                Ok(n) if n <= max && !(name == "limit" && n == 0) => Ok(n),
                _ => Err(ApiError::field(
                    "BLUM-400-003",
                    name,
                    format!(
                        "{name} must be a whole number{}.",
                        if name == "limit" {
                            " from 1 to 200"
                        } else {
                            ""
                        }
                    ),
                )),
            },
        };
        Ok(Self {
            limit: number("limit", DEFAULT_LIMIT, MAX_LIMIT)?,
            offset: number("offset", 0, usize::MAX)?,
        })
    }

    /// This page of `items`, and whether more follow; reads no further than
    /// one item past the page.
    fn take<T>(
        &self,
        items: impl Iterator<Item = Result<T, ApiError>>,
    ) -> Result<(Vec<T>, bool), ApiError> {
        let mut page = Vec::new();
        let mut has_more = false;
        for item in items.skip(self.offset) {
            let item = item?;
            if page.len() == self.limit {
                has_more = true;
                break;
            }
            page.push(item);
        }
        Ok((page, has_more))
    }
}

/// The value of `name` in a query string (ids and numbers: no decoding needed).
fn param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}
