//! The dashboard: server-rendered HTML, no script, every stored value escaped.
//!
//! The page frame and what every page shares live here; one file a page:
//! `overview`, `events` (the filtered list), `event` (one event), and
//! `actions` (the replay and purge buttons, with their confirmation).

mod actions;
mod event;
mod events;
mod overview;

use std::fmt::Write as _;
use std::time::SystemTime;

use ::axum::http::{HeaderValue, StatusCode, Uri, header};
use ::axum::response::{Html, IntoResponse, Response};

use super::Shared;
use super::api::Filters;
use super::text::{age, esc, utc};
use crate::events::EventState;

pub(crate) use actions::{purge, replay};
pub(crate) use event::event;
pub(crate) use events::events;
pub(crate) use overview::overview;

const CSS: &str = include_str!("../assets/admin.css");

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
