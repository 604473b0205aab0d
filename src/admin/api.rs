//! The JSON API and `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use ::axum::Json;
use ::axum::body::Bytes;
use ::axum::extract::{Query, State};
use ::axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use ::axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::text::{event_json, parse_time, secs_f64};
use super::{MAX_IDS, MAX_PAGE, Shared};
use crate::events::{EventQuery, EventState, Replay};
use crate::inbox::Inbox;

/// A JSON error answer: `{"error": "..."}`.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// Runs store work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Response> + Send + 'static,
) -> Result<T, Response> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|_| Err(error(StatusCode::SERVICE_UNAVAILABLE, "shutting down")))
}

fn store_error(e: &crate::OperatorError) -> Response {
    error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
}

/// The list filters, from the query string (the API and the pages).
#[derive(Debug, Default, Clone, Deserialize)]
pub(crate) struct Filters {
    pub(crate) state: Option<String>,
    pub(crate) source: Option<String>,
    #[serde(rename = "type")]
    pub(crate) event_type: Option<String>,
    pub(crate) since: Option<String>,
    pub(crate) until: Option<String>,
    pub(crate) after: Option<String>,
    pub(crate) limit: Option<String>,
    pub(crate) id: Option<String>,
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl Filters {
    pub(crate) fn state(&self) -> Result<Option<EventState>, String> {
        match given(&self.state) {
            None | Some("all") => Ok(None),
            Some("pending") => Ok(Some(EventState::Pending)),
            Some("retrying") => Ok(Some(EventState::Retrying)),
            Some("dead") => Ok(Some(EventState::Dead)),
            Some(_) => Err("state must be pending, retrying, dead or all".into()),
        }
    }

    pub(crate) fn id(&self) -> Option<&str> {
        given(&self.id)
    }

    /// The query these filters describe; `default_limit` when none is given.
    pub(crate) fn query(&self, default_limit: usize, max: usize) -> Result<EventQuery, String> {
        let mut q = EventQuery::all();
        if let Some(state) = self.state()? {
            q = q.state(state);
        }
        if let Some(source) = given(&self.source) {
            if source.len() > 256 {
                return Err("source is too long".into());
            }
            q = q.source(source);
        }
        if let Some(pattern) = given(&self.event_type) {
            if pattern.len() > 256 {
                return Err("type pattern is too long".into());
            }
            q = q.event_type(pattern);
        }
        let time = |name: &str,
                    v: &Option<String>|
         -> Result<Option<std::time::SystemTime>, String> {
            given(v)
                .map(|t| {
                    parse_time(t).ok_or_else(|| {
                        format!("{name}: expected YYYY-MM-DDTHH:MM[:SS][Z] (UTC) or Unix seconds")
                    })
                })
                .transpose()
        };
        if let Some(t) = time("since", &self.since)? {
            q = q.received_since(t);
        }
        if let Some(t) = time("until", &self.until)? {
            q = q.received_before(t);
        }
        if let Some(after) = given(&self.after) {
            q = q.after(
                after
                    .parse()
                    .map_err(|_| "after must be a sequence number")?,
            );
        }
        let limit = match given(&self.limit) {
            Some(l) => l
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| format!("limit must be between 1 and {max}"))?,
            None => default_limit,
        };
        Ok(q.limit(limit))
    }
}

/// The stats object: what `webhook-inbox stats --json` prints, plus the
/// live counters the service has.
pub(crate) fn stats_json(inbox: &Inbox) -> Value {
    let s = inbox.stats();
    json!({
        "store": &inbox.inner().label,
        "pending": s.pending,
        "retrying": s.retrying,
        "dead": s.dead,
        "dedup_markers": s.dedup_markers,
        "oldest_pending_age_secs": s.oldest_pending_age.map(secs_f64),
        "disk_bytes": s.disk_bytes,
        "received": s.received,
        "accepted": s.accepted,
        "duplicates": s.duplicates,
        "rejected": {
            "missing_header": s.rejected.missing_header,
            "malformed_header": s.rejected.malformed_header,
            "bad_signature": s.rejected.bad_signature,
            "stale_timestamp": s.rejected.stale_timestamp,
            "malformed_event": s.rejected.malformed_event,
            "too_large": s.rejected.too_large,
            "overloaded": s.rejected.overloaded,
            "storage": s.rejected.storage,
        },
        "fsync": s.fsync.map(|f| json!({
            "count": f.count,
            "mean_secs": f.mean.as_secs_f64(),
            "p99_secs": f.p99.as_secs_f64(),
            "max_secs": f.max.as_secs_f64(),
        })),
    })
}

pub(crate) async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    let inbox = shared.inbox.clone();
    match blocking(move || Ok(stats_json(&inbox))).await {
        Ok(v) => Json(v).into_response(),
        Err(r) => r,
    }
}

pub(crate) async fn events(
    State(shared): State<Arc<Shared>>,
    Query(filters): Query<Filters>,
) -> Response {
    let query = match filters.query(50, MAX_PAGE) {
        Ok(q) => q,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    let shared2 = Arc::clone(&shared);
    let page = blocking(move || {
        let redact = |n: &str| shared2.redacts(n);
        if let Some(id) = filters.id() {
            // An id search is one index lookup, then the other filters.
            let found = match given(&filters.source) {
                Some(source) => shared2.inbox.event_from(source, id),
                None => shared2.inbox.event(id),
            }
            .map_err(|e| store_error(&e))?;
            let found = found.filter(|e| {
                filters.state().ok().flatten().is_none_or(|s| s == e.state)
                    && given(&filters.source).is_none_or(|s| s == e.source)
                    && given(&filters.event_type)
                        .is_none_or(|p| crate::pattern::matches(p, &e.event_type))
            });
            return Ok(json!({
                "events": found.iter().map(|e| event_json(e, false, &redact)).collect::<Vec<_>>(),
                "next": Value::Null,
            }));
        }
        let page = shared2.inbox.events(&query).map_err(|e| store_error(&e))?;
        Ok(json!({
            "events": page.events.iter().map(|e| event_json(e, false, &redact)).collect::<Vec<_>>(),
            "next": page.next,
        }))
    })
    .await;
    match page {
        Ok(v) => Json(v).into_response(),
        Err(r) => r,
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct IdParam {
    id: Option<String>,
    /// The ingestor's source name, when several sources may share the id.
    source: Option<String>,
}

pub(crate) async fn event(State(shared): State<Arc<Shared>>, Query(p): Query<IdParam>) -> Response {
    let Some(id) = p.id.filter(|id| !id.is_empty()) else {
        return error(StatusCode::BAD_REQUEST, "give the event id: ?id=");
    };
    let found = blocking(move || {
        let found = match given(&p.source) {
            Some(source) => shared.inbox.event_from(source, &id),
            None => shared.inbox.event(&id),
        }
        .map_err(|e| store_error(&e))?;
        Ok(found.map(|e| event_json(&e, true, &|n: &str| shared.redacts(n))))
    })
    .await;
    match found {
        Ok(Some(v)) => Json(v).into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            "not found: no stored event has this id (never accepted, or already handled: handled events are not kept)",
        ),
        Err(r) => r,
    }
}

pub(crate) async fn csrf(State(shared): State<Arc<Shared>>) -> Response {
    Json(json!({ "csrf": shared.csrf, "read_only": shared.read_only })).into_response()
}

/// Which dead letters a replay or purge request selects.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Selection {
    id: Option<String>,
    ids: Option<Vec<String>>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    all_dead: Option<bool>,
    filter: Option<FilterBody>,
    older_than_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FilterBody {
    source: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

/// A replay or purge to run: by ids (each its own small transaction), or
/// by a query (bounded by the bulk limit).
pub(crate) enum Target {
    Ids(Vec<String>),
    Query(EventQuery),
}

impl Selection {
    fn target(self, bulk: usize) -> Result<(Target, Option<Duration>), String> {
        let chosen = usize::from(self.id.is_some())
            + usize::from(self.ids.is_some())
            + usize::from(self.event_type.is_some())
            + usize::from(self.all_dead == Some(true))
            + usize::from(self.filter.is_some());
        if chosen != 1 {
            return Err("give exactly one of: id, ids, type, all_dead: true, filter".into());
        }
        let older = self.older_than_secs.map(Duration::from_secs);
        if let Some(id) = self.id {
            return Ok((Target::Ids(vec![id]), older));
        }
        if let Some(ids) = self.ids {
            if ids.is_empty() || ids.len() > MAX_IDS {
                return Err(format!("ids: between 1 and {MAX_IDS} ids per request"));
            }
            return Ok((Target::Ids(ids), older));
        }
        let f = match (self.event_type, self.filter) {
            (Some(t), _) => Filters {
                event_type: Some(t),
                ..Filters::default()
            },
            (None, Some(f)) => Filters {
                source: f.source,
                event_type: f.event_type,
                since: f.since,
                until: f.until,
                ..Filters::default()
            },
            (None, None) => Filters::default(),
        };
        Ok((
            Target::Query(f.query(bulk, bulk)?.state(EventState::Dead)),
            older,
        ))
    }
}

/// Runs a replay (`purge: None`) or purge; `(changed, more)`.
pub(crate) fn run(
    inbox: &Inbox,
    target: &Target,
    purge: Option<Option<Duration>>,
) -> Result<(usize, bool), crate::OperatorError> {
    match target {
        Target::Ids(ids) => {
            let mut done = 0;
            for id in ids {
                let which = Replay::Id(id.clone());
                done += match purge {
                    None => inbox.replay(&which)?,
                    Some(older) => {
                        let q = match inbox.event(id)? {
                            Some(e) if e.state == EventState::Dead => {
                                EventQuery::dead().after(e.seq - 1).limit(1)
                            }
                            _ => continue,
                        };
                        inbox.purge_matching(&q, older)?.done
                    }
                };
            }
            Ok((done, false))
        }
        Target::Query(q) => {
            let bulk = match purge {
                None => inbox.replay_matching(q)?,
                Some(older) => inbox.purge_matching(q, older)?,
            };
            Ok((bulk.done, bulk.more))
        }
    }
}

fn csrf_header(headers: &HeaderMap) -> Option<&str> {
    headers.get("x-csrf-token").and_then(|v| v.to_str().ok())
}

async fn mutate(shared: Arc<Shared>, headers: HeaderMap, body: Bytes, purge: bool) -> Response {
    if let Some((status, why)) = shared.refuse_mutation(&headers, csrf_header(&headers)) {
        return error(status, why);
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send a JSON body (Content-Type: application/json)",
        );
    }
    let selection: Selection = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("bad request body: {e}")),
    };
    if !purge && selection.older_than_secs.is_some() {
        return error(StatusCode::BAD_REQUEST, "older_than_secs is for purge");
    }
    let (target, older) = match selection.target(shared.bulk_limit) {
        Ok(t) => t,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    let outcome = blocking(move || {
        run(&shared.inbox, &target, purge.then_some(older)).map_err(|e| store_error(&e))
    })
    .await;
    match outcome {
        Ok((done, more)) => {
            let key = if purge { "purged" } else { "replayed" };
            Json(json!({ key: done, "more": more })).into_response()
        }
        Err(r) => r,
    }
}

pub(crate) async fn replay(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    mutate(shared, headers, body, false).await
}

pub(crate) async fn purge(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    mutate(shared, headers, body, true).await
}

/// `/metrics`: OpenMetrics when the scraper asks for it (Prometheus does),
/// else the classic text format.
pub(crate) async fn metrics(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    let metrics = Arc::clone(&shared.metrics);
    match blocking(move || Ok(metrics.encode(openmetrics))).await {
        Ok(text) => {
            let mut response = text.into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(if openmetrics {
                    "application/openmetrics-text; version=1.0.0; charset=utf-8"
                } else {
                    "text/plain; version=0.0.4; charset=utf-8"
                }),
            );
            response
        }
        Err(r) => r,
    }
}
