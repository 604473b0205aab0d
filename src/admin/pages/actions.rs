//! The dashboard's replay and purge buttons: the form, the CSRF and
//! read-only checks, a confirmation for bulk actions and purges, then the
//! action and a redirect.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use ::axum::body::Bytes;
use ::axum::extract::{OriginalUri, State};
use ::axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use ::axum::response::{IntoResponse, Response};

use super::{Page, hidden_filters, prefix};
use crate::admin::api::{Filters, Target, blocking, run};
use crate::admin::text::{age, esc, url_encode};
use crate::admin::{MAX_IDS, Shared};
use crate::events::EventState;

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
            .map_err(|e| crate::admin::api::error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))
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
