//! The dashboard in a real browser (headless Chromium over WebDriver):
//! the overview, a dead letter replayed with its button and then handled,
//! a bulk replay through its confirmation page, and deliveries whose id,
//! type, headers and body carry markup that must render as inert text.
//! Screenshots go under `target/`; with `WEBHOOK_INBOX_UPDATE_SCREENSHOT=1`
//! the overview is also written to `docs/dashboard.png`.
#![cfg(feature = "admin")]

mod admin_support;
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use admin_support::{Served, bluum, dead_count, deliver, envelope, state_of, wait_for, worker};
use common::TempDir;
use common::browser::Browser;
use webhook_inbox::Inbox;
use webhook_inbox::admin::{Admin, Auth};

const XSS_ID: &str = "evt_<script>alert('id')</script>";
const XSS_TYPE: &str = "order.\"><img src=x onerror=alert('type')>";
const XSS_NOTE: &str = "</textarea><script>alert('body')</script><img src=x onerror=alert('img')>";

/// Reloads `url` until `css` matches (the page has no script to do it).
fn reload_until(b: &mut Browser, url: &str, css: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        b.goto(url);
        if b.count(css) > 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{url}: no {css} after 20 s:\n{}",
            b.source()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// No alert was raised and no element the payloads would inject exists.
fn assert_inert(b: &mut Browser, what: &str) {
    b.assert_no_alert();
    assert_eq!(
        b.count_js("script"),
        0,
        "{what}: a <script> element is in the page"
    );
    assert_eq!(
        b.count_js("img"),
        0,
        "{what}: an <img> element is in the page"
    );
    assert_eq!(
        b.count_js("[onerror]"),
        0,
        "{what}: an onerror attribute is in the page"
    );
}

#[test]
fn the_dashboard_replays_dead_letters_and_shows_hostile_deliveries_as_text() {
    let Some(mut b) = Browser::launch("admin_dashboard") else {
        return;
    };
    let dir = TempDir::new("admin-browser");
    let inbox = Inbox::open(dir.path()).unwrap();
    // Mounted at start-up, as a service does: the charts count from here.
    let s = Served::start(&inbox, Admin::new(Auth::loopback_only()));
    let failing = Arc::new(AtomicBool::new(true));
    let w = worker(&inbox, Arc::clone(&failing));
    let ingest = bluum(&inbox);
    deliver(&ingest, "evt_plain", &envelope("order.filled", 1));
    let hostile = serde_json::json!({
        "event": XSS_TYPE,
        "timestamp": "2026-11-28T14:00:00Z",
        "data": {"note": XSS_NOTE, "bell": "\u{7}\u{1b}[2J"},
    });
    deliver(&ingest, XSS_ID, hostile.to_string().as_bytes());
    wait_for("two dead letters", || dead_count(&inbox) == 2);
    // Some traffic for the charts.
    for n in 0..5 {
        let body = envelope("order.filled", 100 + n);
        let _ = ingest.ingest(
            &common::bluum_headers(&format!("evt_dup{}", n % 2), &body),
            &body,
        );
    }
    let _ = ingest.ingest(&[("webhook-id", "evt_forged")], b"{}");
    wait_for("four dead letters", || dead_count(&inbox) == 4);

    // The overview: counts by state and the charts.
    b.goto(&s.base);
    assert!(b.title().starts_with("Overview"), "{}", b.title());
    assert_eq!(b.text(".card.dead .n"), "4");
    assert_eq!(b.count("svg.chart"), 6);
    assert_inert(&mut b, "overview");
    b.screenshot("admin-overview");

    // The dead letters: the hostile id and type are shown literally.
    b.goto(&format!("{}/events?state=dead", s.base));
    let ids = b.texts("td.mono a");
    assert!(ids.iter().any(|t| t == XSS_ID), "{ids:?}");
    let cells = b.texts("td.mono");
    assert!(cells.iter().any(|t| t == XSS_TYPE), "{cells:?}");
    assert_inert(&mut b, "dead letters");
    b.screenshot("admin-dead-letters");

    // The hostile event's page, reached through its (percent-encoded) link.
    let link = b.attr("a[href*='evt_%3Cscript']", "href").unwrap();
    b.goto(&link);
    assert_eq!(b.text("h1 span"), XSS_ID);
    let body = b.text("#body");
    assert!(body.contains(XSS_NOTE), "{body}");
    assert!(
        body.contains("\\u0007\\u001b[2J"),
        "controls are shown escaped: {body}"
    );
    let headers = b.texts("td.mono");
    assert!(
        headers.iter().any(|h| h == XSS_ID),
        "the webhook-id header: {headers:?}"
    );
    assert_inert(&mut b, "hostile event");
    b.screenshot("admin-hostile-event");

    // Replay one dead letter with its button; it becomes handled.
    failing.store(false, Ordering::SeqCst);
    let plain = format!("{}/event?id=evt_plain", s.base);
    b.goto(&plain);
    assert_eq!(b.text("#state"), "dead");
    b.click("#replay");
    assert_eq!(b.text("div.notice"), "replayed", "{}", b.source());
    reload_until(&mut b, &plain, "#gone");
    assert_eq!(
        state_of(&inbox, "evt_plain"),
        None,
        "handled events are not kept"
    );
    assert_inert(&mut b, "after replay");

    // Bulk: replay every dead letter, through the confirmation page.
    b.goto(&format!("{}/events?state=dead", s.base));
    b.submit("div.actions form.inline");
    b.find("#confirm");
    assert!(b.title().starts_with("Confirm"), "{}", b.title());
    assert_eq!(dead_count(&inbox), 3, "nothing happens before confirming");
    b.click("#confirm");
    b.find("div.notice");
    assert!(
        b.text("div.notice").starts_with("replayed 3 dead letters"),
        "{}",
        b.source()
    );
    wait_for("the hostile event handled", || {
        dead_count(&inbox) == 0 && state_of(&inbox, XSS_ID).is_none()
    });
    assert_inert(&mut b, "after bulk replay");

    b.goto(&s.base);
    assert_eq!(b.text(".card.dead .n"), "0");
    let shot = b.screenshot("admin-dashboard");
    if std::env::var_os("WEBHOOK_INBOX_UPDATE_SCREENSHOT").is_some() {
        let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/dashboard.png");
        std::fs::copy(&shot, docs).unwrap();
    }
    drop(w);
}
