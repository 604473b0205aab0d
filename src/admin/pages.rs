//! The dashboard: server-rendered HTML, no script, every stored value escaped.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ::axum::body::Bytes;
use ::axum::extract::{OriginalUri, Query, State};
use ::axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use ::axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use super::api::{Filters, Target, blocking, run};
use super::metrics::{self as m, MINUTES, REASONS};
use super::text::{REDACTED, age, body_text, esc, next_or_dead, url_encode, utc};
use super::{MAX_IDS, MAX_PAGE, Shared};
use crate::events::{EventState, StoredEvent};

const CSS: &str = include_str!("assets/admin.css");

/// Where the admin routes are mounted (`/admin`), from the full and the
/// nested request paths, so links work under any prefix.
fn prefix(original: &Uri, uri: &Uri) -> String {
    let (full, inner) = (original.path(), uri.path());
    let p = if inner == "/" {
        full.trim_end_matches('/')
    } else {
        full.strip_suffix(inner).unwrap_or("")
    };
    p.to_owned()
}

struct Page<'a> {
    shared: &'a Shared,
    prefix: String,
}

impl Page<'_> {
    fn link(&self, path: &str) -> String {
        esc(&format!("{}{path}", self.prefix))
    }

    fn render(&self, title: &str, body: &str, refresh: bool) -> Response {
        let p = &self.prefix;
        let mut out = String::with_capacity(body.len() + 2048);
        let _ = write!(
            out,
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{title} · webhook-inbox</title>\
             <link rel=\"stylesheet\" href=\"{css}\">{refresh}</head><body>\
             <header><strong>webhook-inbox</strong><nav>\
             <a href=\"{home}\">Overview</a>\
             <a href=\"{pending}\">Pending</a>\
             <a href=\"{retrying}\">Retrying</a>\
             <a href=\"{dead}\">Dead letters</a>\
             <a href=\"{all}\">All events</a>\
             <a href=\"{metrics}\">Metrics</a></nav>{ro}</header><main>{body}</main></body></html>\n",
            title = esc(title),
            css = esc(&format!("{p}/assets/admin.css")),
            refresh = if refresh {
                "<meta http-equiv=\"refresh\" content=\"10\">"
            } else {
                ""
            },
            home = esc(if p.is_empty() { "/" } else { p }),
            pending = esc(&format!("{p}/events?state=pending")),
            retrying = esc(&format!("{p}/events?state=retrying")),
            dead = esc(&format!("{p}/events?state=dead")),
            all = esc(&format!("{p}/events")),
            metrics = esc(&format!("{p}/metrics")),
            ro = if self.shared.read_only {
                "<span class=\"badge\">read-only</span>"
            } else {
                ""
            },
        );
        Html(out).into_response()
    }

    fn failure(&self, status: StatusCode, message: &str) -> Response {
        let mut r = self.render(
            "Error",
            &format!("<div class=\"error\">{}</div>", esc(message)),
            false,
        );
        *r.status_mut() = status;
        r
    }
}

pub(crate) async fn stylesheet() -> Response {
    let mut r = CSS.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    r
}

fn card(out: &mut String, class: &str, n: &str, label: &str) {
    let _ = write!(
        out,
        "<div class=\"card {class}\"><div class=\"n\">{}</div><div class=\"l\">{}</div></div>",
        esc(n),
        esc(label)
    );
}

/// A bar chart of one value per minute, oldest first.
fn chart(out: &mut String, title: &str, class: &str, values: &[u64], unit: &str) {
    let total: u64 = values.iter().sum();
    let peak = values.iter().copied().max().unwrap_or(0);
    let summary = if unit.is_empty() {
        format!("<b>{total}</b> in the last hour, peak {peak}/min")
    } else {
        format!(
            "latest <b>{}{unit}</b>, peak {peak}{unit}",
            values.last().copied().unwrap_or(0)
        )
    };
    let _ = write!(
        out,
        "<figure><figcaption>{} — {summary}</figcaption>",
        esc(title)
    );
    let _ = write!(
        out,
        "<svg class=\"chart {class}\" viewBox=\"0 0 {w} 60\" preserveAspectRatio=\"none\" role=\"img\" aria-label=\"{label}\">\
         <line x1=\"0\" y1=\"59.5\" x2=\"{w}\" y2=\"59.5\"></line>",
        w = MINUTES * 10,
        label = esc(title),
    );
    for (i, v) in values.iter().enumerate() {
        if *v == 0 {
            continue;
        }
        let h = ((*v as f64 / peak.max(1) as f64) * 58.0).max(1.0);
        let _ = write!(
            out,
            "<rect x=\"{}\" y=\"{:.1}\" width=\"8\" height=\"{h:.1}\"><title>{} min ago: {v}{unit}</title></rect>",
            i * 10 + 1,
            59.0 - h,
            MINUTES - 1 - i,
        );
    }
    out.push_str("</svg></figure>");
}

pub(crate) async fn overview(
    State(shared): State<Arc<Shared>>,
    OriginalUri(original): OriginalUri,
    uri: Uri,
) -> Response {
    let page = Page {
        shared: &shared,
        prefix: prefix(&original, &uri),
    };
    let inbox = shared.inbox.clone();
    let Ok(stats) = blocking(move || Ok(inbox.stats())).await else {
        return page.failure(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    };
    let now = SystemTime::now();
    shared
        .metrics
        .tick(now, stats.fsync.map(|f| f.p99).unwrap_or_default());
    let (series, fsync) = shared.metrics.last_hour(now);

    let mut out = String::with_capacity(16 * 1024);
    out.push_str("<h1>Overview</h1><div class=\"cards\">");
    let fresh = stats.pending.saturating_sub(stats.retrying);
    card(
        &mut out,
        "pending",
        &fresh.to_string(),
        "pending (not attempted yet)",
    );
    card(
        &mut out,
        "retrying",
        &stats.retrying.to_string(),
        "retrying",
    );
    card(&mut out, "dead", &stats.dead.to_string(), "dead letters");
    card(
        &mut out,
        "",
        &stats.oldest_pending_age.map_or_else(|| "–".to_owned(), age),
        "backlog age (oldest pending)",
    );
    card(
        &mut out,
        "",
        &stats.dedup_markers.to_string(),
        "dedup markers",
    );
    card(
        &mut out,
        "",
        &stats.fsync.map_or_else(
            || "—".to_owned(),
            |f| format!("{:.1} ms", f.p99.as_secs_f64() * 1000.0),
        ),
        "fsync p99 (since start)",
    );
    out.push_str("</div><h2>Since the service started</h2><div class=\"cards\">");
    card(
        &mut out,
        "",
        &stats.received.to_string(),
        "deliveries received",
    );
    card(&mut out, "", &stats.accepted.to_string(), "accepted");
    card(&mut out, "", &stats.duplicates.to_string(), "duplicates");
    card(
        &mut out,
        "dead",
        &stats.rejected.total().to_string(),
        "refused",
    );
    out.push_str("</div><h2>The last hour, per minute</h2><div class=\"charts\">");
    chart(&mut out, "Accepted", "ok", &series[m::ACCEPTED], "");
    chart(&mut out, "Duplicates", "", &series[m::DUPLICATES], "");
    let mut refused = [0u64; MINUTES];
    for r in 0..REASONS.len() {
        for (slot, v) in series[m::REFUSED + r].iter().enumerate() {
            refused[slot] += v;
        }
    }
    chart(&mut out, "Refused", "bad", &refused, "");
    chart(&mut out, "Handled", "ok", &series[m::HANDLED], "");
    chart(&mut out, "Failed attempts", "warn", &series[m::FAILED], "");
    let fsync_us: Vec<u64> = fsync
        .iter()
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .collect();
    chart(
        &mut out,
        "fsync p99 (µs, sampled each minute)",
        "",
        &fsync_us,
        "µs",
    );
    out.push_str("</div><h2>Refused in the last hour, by reason</h2><table><tr><th>reason</th><th>count</th></tr>");
    for (r, name) in REASONS.iter().enumerate() {
        let n: u64 = series[m::REFUSED + r].iter().sum();
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"num\">{n}</td></tr>",
            esc(&name.replace('_', " "))
        );
    }
    out.push_str("</table><p class=\"muted\">This page refreshes every 10 seconds.</p>");
    page.render("Overview", &out, true)
}

fn state_class(s: EventState) -> &'static str {
    match s {
        EventState::Dead => "state-dead",
        EventState::Retrying => "state-retrying",
        _ => "state-pending",
    }
}

fn when(t: SystemTime, now: SystemTime) -> String {
    let rel = match t.duration_since(now) {
        Ok(ahead) => format!("in {}", age(ahead)),
        Err(behind) => format!("{} ago", age(behind.duration())),
    };
    format!("{} ({rel})", utc(t, false))
}

/// The filter fields as hidden inputs (for the bulk forms).
fn hidden_filters(f: &Filters) -> String {
    let mut out = String::new();
    for (name, v) in [
        ("source", &f.source),
        ("type", &f.event_type),
        ("since", &f.since),
        ("until", &f.until),
    ] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            let _ = write!(
                out,
                "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
                esc(v)
            );
        }
    }
    out
}

fn query_string(f: &Filters) -> String {
    let mut parts = Vec::new();
    for (name, v) in [
        ("state", &f.state),
        ("source", &f.source),
        ("type", &f.event_type),
        ("since", &f.since),
        ("until", &f.until),
        ("id", &f.id),
        ("limit", &f.limit),
    ] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            parts.push(format!("{name}={}", url_encode(v)));
        }
    }
    parts.join("&")
}

#[derive(Debug, Deserialize)]
pub(crate) struct Done {
    done: Option<String>,
    n: Option<usize>,
    more: Option<String>,
}

fn notice(done: &Done) -> String {
    let what = match done.done.as_deref() {
        Some("replayed") => "replayed",
        Some("purged") => "purged",
        _ => return String::new(),
    };
    let n = done.n.unwrap_or(0);
    let more = if done.more.is_some() {
        " (the per-request limit: more may match, press again)"
    } else {
        ""
    };
    format!(
        "<div class=\"notice\">{what} {n} dead letter{}{more}</div>",
        if n == 1 { "" } else { "s" }
    )
}

pub(crate) async fn events(
    State(shared): State<Arc<Shared>>,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    Query(filters): Query<Filters>,
    Query(done): Query<Done>,
) -> Response {
    let page = Page {
        shared: &shared,
        prefix: prefix(&original, &uri),
    };
    let query = match filters.query(50, MAX_PAGE) {
        Ok(q) => q,
        Err(e) => return page.failure(StatusCode::BAD_REQUEST, &e),
    };
    let (inbox, f2) = (shared.inbox.clone(), filters.clone());
    let listed = blocking(move || {
        if let Some(id) = f2.id() {
            let found = inbox
                .event(id)
                .map_err(|e| super::api::error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
            let state = f2.state().ok().flatten();
            return Ok((
                found
                    .into_iter()
                    .filter(|e| state.is_none_or(|s| s == e.state))
                    .collect::<Vec<_>>(),
                None,
            ));
        }
        let page = inbox
            .events(&query)
            .map_err(|e| super::api::error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
        Ok((page.events, page.next))
    })
    .await;
    let (events, next) = match listed {
        Ok(l) => l,
        Err(_) => {
            return page.failure(
                StatusCode::SERVICE_UNAVAILABLE,
                "the store could not be read",
            );
        }
    };
    let state = filters.state().ok().flatten();
    let title = match state {
        Some(EventState::Dead) => "Dead letters",
        Some(EventState::Retrying) => "Retrying events",
        Some(EventState::Pending) => "Pending events",
        None => "Stored events",
    };
    let now = SystemTime::now();
    let mut out = String::with_capacity(16 * 1024);
    let _ = write!(out, "<h1>{title}</h1>{}", notice(&done));
    // The filters (a plain GET form).
    let v = |o: &Option<String>| esc(o.as_deref().unwrap_or(""));
    let selected = |s: &str| {
        if filters.state.as_deref().unwrap_or("") == s {
            " selected"
        } else {
            ""
        }
    };
    let _ = write!(
        out,
        "<form class=\"filters\" method=\"get\" action=\"{action}\">\
         <label>state<select name=\"state\"><option value=\"\"{s0}>all</option><option{s1}>pending</option>\
         <option{s2}>retrying</option><option{s3}>dead</option></select></label>\
         <label>source<input name=\"source\" value=\"{source}\" size=\"10\"></label>\
         <label>type (exact, domain.*)<input name=\"type\" value=\"{ty}\" size=\"16\"></label>\
         <label>received since (UTC)<input name=\"since\" value=\"{since}\" placeholder=\"2026-11-30T12:00\" size=\"16\"></label>\
         <label>until (UTC)<input name=\"until\" value=\"{until}\" size=\"16\"></label>\
         <label>event id<input name=\"id\" value=\"{id}\" size=\"14\"></label>\
         <label>per page<input name=\"limit\" value=\"{limit}\" size=\"4\"></label>\
         <button type=\"submit\">Filter</button></form>",
        action = page.link("/events"),
        s0 = selected(""),
        s1 = selected("pending"),
        s2 = selected("retrying"),
        s3 = selected("dead"),
        source = v(&filters.source),
        ty = v(&filters.event_type),
        since = v(&filters.since),
        until = v(&filters.until),
        id = v(&filters.id),
        limit = v(&filters.limit),
    );
    let bulk = state == Some(EventState::Dead) && !shared.read_only;
    if bulk {
        let _ = write!(
            out,
            "<div class=\"actions\"><form class=\"inline\" method=\"post\" action=\"{replay}\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"scope\" value=\"filter\">{hidden}\
             <button type=\"submit\">Replay all matching…</button></form>\
             <form class=\"inline\" method=\"post\" action=\"{purge}\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"scope\" value=\"filter\">{hidden}\
             <label>dead for at least <input name=\"older_than\" placeholder=\"7d\" size=\"5\"></label> \
             <button class=\"danger\" type=\"submit\">Purge all matching…</button></form>\
             <span class=\"muted\">Each asks for confirmation; at most {bulk} per request.</span></div>",
            bulk = shared.bulk_limit,
            replay = page.link("/actions/replay"),
            purge = page.link("/actions/purge"),
            csrf = esc(&shared.csrf),
            hidden = hidden_filters(&filters),
        );
    }
    if events.is_empty() {
        out.push_str("<p class=\"muted\">No stored events match.</p>");
    } else {
        if bulk {
            let _ = write!(
                out,
                "<form method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">",
                page.link("/actions/replay"),
                esc(&shared.csrf)
            );
        }
        out.push_str("<table><tr>");
        if bulk {
            out.push_str("<th></th>");
        }
        out.push_str("<th>seq</th><th>source</th><th>id</th><th>type</th><th>state</th><th>attempts</th><th>received (UTC)</th><th>next / dead since</th><th>last error</th></tr>");
        for e in &events {
            out.push_str("<tr>");
            if bulk {
                let _ = write!(
                    out,
                    "<td><input type=\"checkbox\" name=\"ids\" value=\"{}\" aria-label=\"select\"></td>",
                    esc(&e.id)
                );
            }
            let last = e.errors.last().map(|a| a.error.as_str()).unwrap_or("");
            let short: String = last.chars().take(80).collect();
            let _ = write!(
                out,
                "<td class=\"num\">{seq}</td><td>{source}</td><td class=\"mono\"><a href=\"{href}\">{id}</a></td>\
                 <td class=\"mono\">{ty}</td><td class=\"{class}\">{state}</td><td class=\"num\">{attempts}</td>\
                 <td>{received}</td><td>{next}</td><td class=\"mono\">{error}</td></tr>",
                seq = e.seq,
                source = esc(&e.source),
                href = esc(&format!("{}/event?id={}", page.prefix, url_encode(&e.id))),
                id = esc(&e.id),
                ty = esc(&e.event_type),
                class = state_class(e.state),
                state = e.state,
                attempts = e.attempts,
                received = utc(e.received_at, false),
                next = next_or_dead(e).map_or_else(|| "–".to_owned(), |t| when(t, now)),
                error = esc(&short),
            );
        }
        out.push_str("</table>");
        if bulk {
            let _ = write!(
                out,
                "<p><button type=\"submit\">Replay selected (at most {MAX_IDS})</button></p></form>"
            );
        }
    }
    if let Some(next) = next {
        let qs = query_string(&filters);
        let sep = if qs.is_empty() { "" } else { "&" };
        let _ = write!(
            out,
            "<p><a href=\"{}\">Next page →</a></p>",
            esc(&format!("{}/events?{qs}{sep}after={next}", page.prefix))
        );
    }
    page.render(title, &out, false)
}

#[derive(Debug, Deserialize)]
pub(crate) struct EventParams {
    id: Option<String>,
    done: Option<String>,
}

pub(crate) async fn event(
    State(shared): State<Arc<Shared>>,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    Query(params): Query<EventParams>,
) -> Response {
    let page = Page {
        shared: &shared,
        prefix: prefix(&original, &uri),
    };
    let Some(id) = params.id.filter(|i| !i.is_empty()) else {
        return page.failure(StatusCode::BAD_REQUEST, "give the event id: ?id=");
    };
    let (inbox, id2) = (shared.inbox.clone(), id.clone());
    let found = match blocking(move || Ok(inbox.event(&id2))).await {
        Ok(Ok(found)) => found,
        _ => {
            return page.failure(
                StatusCode::SERVICE_UNAVAILABLE,
                "the store could not be read",
            );
        }
    };
    let mut out = String::with_capacity(16 * 1024);
    let _ = write!(
        out,
        "<h1>Event <span class=\"mono\">{}</span></h1>",
        esc(&id)
    );
    if let Some(done) = params
        .done
        .as_deref()
        .filter(|d| *d == "replayed" || *d == "purged")
    {
        let _ = write!(out, "<div class=\"notice\">{done}</div>");
    }
    let Some(e) = found else {
        out.push_str(
            "<p id=\"gone\">No stored event has this id: it was never accepted, or it was handled \
                      (handled events are not kept) or purged.</p>",
        );
        let mut r = page.render("Event", &out, false);
        *r.status_mut() = StatusCode::NOT_FOUND;
        return r;
    };
    render_event(&page, &mut out, &e);
    page.render("Event", &out, false)
}

fn render_event(page: &Page<'_>, out: &mut String, e: &StoredEvent) {
    let now = SystemTime::now();
    let _ = write!(
        out,
        "<dl class=\"fields\"><dt>state</dt><dd class=\"{class}\" id=\"state\">{state}</dd>\
         <dt>source</dt><dd>{source}</dd><dt>type</dt><dd class=\"mono\">{ty}</dd><dt>seq</dt><dd>{seq}</dd>\
         <dt>attempts</dt><dd>{attempts}</dd><dt>received</dt><dd>{received}</dd>",
        class = state_class(e.state),
        state = e.state,
        source = esc(&e.source),
        ty = esc(&e.event_type),
        seq = e.seq,
        attempts = e.attempts,
        received = when(e.received_at, now),
    );
    if let Some(t) = e.next_attempt {
        let _ = write!(out, "<dt>next attempt</dt><dd>{}</dd>", when(t, now));
    }
    if let Some(t) = e.dead_at {
        let _ = write!(out, "<dt>dead since</dt><dd>{}</dd>", when(t, now));
    }
    out.push_str("</dl>");
    if e.state == EventState::Dead && !page.shared.read_only {
        let _ = write!(
            out,
            "<div class=\"actions\"><form class=\"inline\" method=\"post\" action=\"{replay}\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"id\" value=\"{id}\">\
             <button type=\"submit\" id=\"replay\">Replay</button></form>\
             <form class=\"inline\" method=\"post\" action=\"{purge}\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"id\" value=\"{id}\">\
             <button class=\"danger\" type=\"submit\" id=\"purge\">Purge…</button></form></div>",
            replay = page.link("/actions/replay"),
            purge = page.link("/actions/purge"),
            csrf = esc(&page.shared.csrf),
            id = esc(&e.id),
        );
    }
    let _ = write!(out, "<h2>Attempt errors ({})</h2>", e.errors.len());
    if e.errors.is_empty() {
        out.push_str("<p class=\"muted\">None recorded.</p>");
    } else {
        out.push_str("<table><tr><th>attempt</th><th>at (UTC)</th><th>error</th></tr>");
        for a in &e.errors {
            let _ = write!(
                out,
                "<tr><td class=\"num\">{}</td><td>{}</td><td class=\"mono\">{}</td></tr>",
                a.attempt,
                utc(a.at, true),
                esc(&a.error)
            );
        }
        out.push_str("</table>");
    }
    let _ = write!(
        out,
        "<h2>Headers ({})</h2><table><tr><th>name</th><th>value</th></tr>",
        e.headers.len()
    );
    for (name, value) in &e.headers {
        let shown = if page.shared.redacts(name) {
            REDACTED
        } else {
            value.as_str()
        };
        let _ = write!(
            out,
            "<tr><td class=\"mono\">{}</td><td class=\"mono\">{}</td></tr>",
            esc(name),
            esc(shown)
        );
    }
    let (kind, body) = body_text(&e.body);
    let _ = write!(
        out,
        "</table><h2>Body ({} bytes, {kind})</h2><pre id=\"body\">{}</pre>",
        e.body.len(),
        esc(&body)
    );
}

/// A dashboard button's form.
#[derive(Debug, Default)]
struct ActionForm {
    csrf: Option<String>,
    id: Option<String>,
    ids: Vec<String>,
    scope: Option<String>,
    confirm: bool,
    older_than: Option<String>,
    filters: Filters,
}

fn parse_form(body: &[u8]) -> Result<ActionForm, String> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_bytes(body).map_err(|e| format!("unreadable form: {e}"))?;
    let mut f = ActionForm::default();
    for (k, v) in pairs {
        let v = Some(v).filter(|v| !v.is_empty());
        match k.as_str() {
            "csrf" => f.csrf = v,
            "id" => f.id = v,
            "ids" => f.ids.extend(v),
            "scope" => f.scope = v,
            "confirm" => f.confirm = v.as_deref() == Some("yes"),
            "older_than" => f.older_than = v,
            "source" => f.filters.source = v,
            "type" => f.filters.event_type = v,
            "since" => f.filters.since = v,
            "until" => f.filters.until = v,
            _ => {}
        }
    }
    if f.ids.len() > MAX_IDS {
        return Err(format!("at most {MAX_IDS} selected events per request"));
    }
    Ok(f)
}

fn parse_age(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let per = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err("older than: a whole number and a unit, s, m, h or d (such as 7d)".into()),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(per))
        .map(Duration::from_secs)
        .ok_or_else(|| "older than: a whole number and a unit, s, m, h or d (such as 7d)".into())
}

pub(crate) async fn replay(
    State(shared): State<Arc<Shared>>,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    action(shared, prefix(&original, &uri), headers, body, false).await
}

pub(crate) async fn purge(
    State(shared): State<Arc<Shared>>,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    action(shared, prefix(&original, &uri), headers, body, true).await
}

async fn action(
    shared: Arc<Shared>,
    prefix: String,
    headers: HeaderMap,
    body: Bytes,
    purge: bool,
) -> Response {
    let page = Page {
        shared: &shared,
        prefix,
    };
    let form = match parse_form(&body) {
        Ok(f) => f,
        Err(e) => return page.failure(StatusCode::BAD_REQUEST, &e),
    };
    if let Some((status, why)) = shared.refuse_mutation(&headers, form.csrf.as_deref()) {
        return page.failure(status, why);
    }
    let older = match form.older_than.as_deref().map(parse_age).transpose() {
        Ok(o) => o,
        Err(e) => return page.failure(StatusCode::BAD_REQUEST, &e),
    };
    let verb = if purge { "Purge" } else { "Replay" };
    let (target, single, description) = if !form.ids.is_empty() {
        let n = form.ids.len();
        (
            Target::Ids(form.ids.clone()),
            None,
            format!(
                "the {n} selected dead letter{}",
                if n == 1 { "" } else { "s" }
            ),
        )
    } else if let Some(id) = form.id.clone() {
        (
            Target::Ids(vec![id.clone()]),
            Some(id.clone()),
            format!("dead letter {id}"),
        )
    } else if form.scope.as_deref() == Some("filter") {
        let q = match form.filters.query(shared.bulk_limit, shared.bulk_limit) {
            Ok(q) => q.state(EventState::Dead),
            Err(e) => return page.failure(StatusCode::BAD_REQUEST, &e),
        };
        let mut d = String::from("every dead letter");
        for (name, v) in [
            ("source", &form.filters.source),
            ("type", &form.filters.event_type),
            ("received since", &form.filters.since),
            ("received before", &form.filters.until),
        ] {
            if let Some(v) = v {
                let _ = write!(d, ", {name} {v}");
            }
        }
        (Target::Query(q), None, d)
    } else {
        return page.failure(
            StatusCode::BAD_REQUEST,
            "say which dead letters: an id, selected ids, or the filter",
        );
    };
    // Bulk actions and purges ask first.
    if (single.is_none() || purge) && !form.confirm {
        let mut out = format!("<h1>{verb}?</h1><p>{verb} {}", esc(&description));
        if let Some(d) = older {
            let _ = write!(out, ", only those dead for at least {}", age(d));
        }
        let _ = write!(
            out,
            "? At most {} per request.{}</p>",
            shared.bulk_limit,
            if purge {
                " Purged events are deleted for good."
            } else {
                ""
            }
        );
        let _ = write!(
            out,
            "<form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <input type=\"hidden\" name=\"confirm\" value=\"yes\">",
            action = page.link(if purge {
                "/actions/purge"
            } else {
                "/actions/replay"
            }),
            csrf = esc(&shared.csrf),
        );
        for id in &form.ids {
            let _ = write!(
                out,
                "<input type=\"hidden\" name=\"ids\" value=\"{}\">",
                esc(id)
            );
        }
        for (name, v) in [
            ("id", &form.id),
            ("scope", &form.scope),
            ("older_than", &form.older_than),
        ] {
            if let Some(v) = v {
                let _ = write!(
                    out,
                    "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
                    esc(v)
                );
            }
        }
        out.push_str(&hidden_filters(&form.filters));
        let _ = write!(
            out,
            "<button type=\"submit\" id=\"confirm\" class=\"{}\">Yes, {}</button> <a href=\"{}\">Cancel</a></form>",
            if purge { "danger" } else { "" },
            verb.to_lowercase(),
            page.link("/events?state=dead"),
        );
        return page.render("Confirm", &out, false);
    }
    let inbox = shared.inbox.clone();
    let outcome = blocking(move || {
        run(&inbox, &target, purge.then_some(older))
            .map_err(|e| super::api::error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))
    })
    .await;
    let Ok((done, more)) = outcome else {
        return page.failure(
            StatusCode::SERVICE_UNAVAILABLE,
            "the store failed; nothing or part was done: try again",
        );
    };
    let what = if purge { "purged" } else { "replayed" };
    let to = match single {
        Some(id) if !purge => format!("{}/event?id={}&done={what}", page.prefix, url_encode(&id)),
        _ => format!(
            "{}/events?state=dead&done={what}&n={done}{}",
            page.prefix,
            if more { "&more=1" } else { "" }
        ),
    };
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(&to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}
