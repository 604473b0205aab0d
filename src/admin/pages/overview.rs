//! The overview: the queue's state, totals since start, and the last hour per minute.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::SystemTime;

use ::axum::extract::{OriginalUri, State};
use ::axum::http::{StatusCode, Uri};
use ::axum::response::Response;

use super::{Page, prefix};
use crate::admin::Shared;
use crate::admin::api::blocking;
use crate::admin::metrics::{self as m, MINUTES, REASONS};
use crate::admin::text::{age, esc};

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
