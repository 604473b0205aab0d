//! One stored event: its state, attempt errors, headers (credentials
//! redacted) and body, with the replay and purge buttons of a dead letter.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::SystemTime;

use ::axum::extract::{OriginalUri, Query, State};
use ::axum::http::{StatusCode, Uri};
use ::axum::response::Response;
use serde::Deserialize;

use super::{Page, prefix, state_class, when};
use crate::admin::Shared;
use crate::admin::api::blocking;
use crate::admin::text::{REDACTED, body_text, esc, utc};
use crate::events::{EventState, StoredEvent};

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
