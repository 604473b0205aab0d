//! The list of stored events: filters, paging, and the bulk forms on dead letters.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::SystemTime;

use ::axum::extract::{OriginalUri, Query, State};
use ::axum::http::{StatusCode, Uri};
use ::axum::response::Response;
use serde::Deserialize;

use super::{Page, hidden_filters, prefix, state_class, when};
use crate::admin::api::{Filters, blocking};
use crate::admin::text::{esc, next_or_dead, url_encode, utc};
use crate::admin::{MAX_IDS, MAX_PAGE, Shared};
use crate::events::EventState;

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
            let found = inbox.event(id).map_err(|e| {
                crate::admin::api::error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            })?;
            let state = f2.state().ok().flatten();
            return Ok((
                found
                    .into_iter()
                    .filter(|e| state.is_none_or(|s| s == e.state))
                    .collect::<Vec<_>>(),
                None,
            ));
        }
        let page = inbox.events(&query).map_err(|e| {
            crate::admin::api::error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        })?;
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
