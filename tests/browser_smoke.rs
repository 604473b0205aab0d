//! The browser test helper (`tests/common/browser.rs`) against a real HTTP
//! server on 127.0.0.1: typing, clicking, a form round-trip, screenshots, and
//! the alert detector both ways (escaped markup runs nothing; a real `alert`
//! is caught).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use common::browser::Browser;

/// A tiny server-rendered app: `/` has a form and a counter button; POST
/// `/greet` echoes the name HTML-escaped; `/count` counts clicks;
/// `/raw-alert` really runs `alert(1)`; `/iframe-alert` calls a fresh
/// iframe's own `alert`.
struct App {
    addr: String,
}

impl App {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let mut clicks = 0u32;
            for stream in listener.incoming().flatten() {
                // One at a time: the browser's requests are few and short.
                let _ = serve(stream, &mut clicks);
            }
        });
        Self { addr }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.addr)
    }
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `application/x-www-form-urlencoded` value `key` of `body`.
fn form_value(body: &str, key: &str) -> Option<String> {
    body.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| {
            let bytes = v.as_bytes();
            let mut out = Vec::new();
            let mut i = 0;
            while i < bytes.len() {
                match bytes[i] {
                    b'+' => out.push(b' '),
                    b'%' if i + 2 < bytes.len() => {
                        let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                        match u8::from_str_radix(hex, 16) {
                            Ok(b) => {
                                out.push(b);
                                i += 2;
                            }
                            Err(_) => out.push(b'%'),
                        }
                    }
                    b => out.push(b),
                }
                i += 1;
            }
            String::from_utf8_lossy(&out).into_owned()
        })
    })
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=utf-8><title>{title}</title></head><body>{body}</body></html>"
    )
}

const FORM: &str = r#"<h1>Smoke</h1>
<form id="greet" method="post" action="/greet">
  <label>Name <input id="name" name="name" value="nobody"></label>
  <button id="send" type="submit">Greet</button>
</form>
<form id="counter" method="post" action="/count"><button id="click" type="submit">Click</button></form>
<p id="greeting">no greeting yet</p>"#;

fn serve(stream: TcpStream, clicks: &mut u32) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.by_ref().take(8192).read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let path = parts.next().unwrap_or("").to_owned();
    let mut length = 0usize;
    loop {
        let mut h = String::new();
        if reader.by_ref().take(8192).read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap_or(0).min(64 * 1024);
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let body = String::from_utf8_lossy(&body).into_owned();

    let (status, html) = match (method.as_str(), path.as_str()) {
        ("GET", "/") => ("200 OK", page("Smoke", FORM)),
        ("POST", "/greet") => {
            let name = form_value(&body, "name").unwrap_or_default();
            let html = FORM.replace(
                "<p id=\"greeting\">no greeting yet</p>",
                &format!("<p id=\"greeting\">Hello, {}!</p>", escape(&name)),
            );
            ("200 OK", page("Greeted", &html))
        }
        ("POST", "/count") => {
            *clicks += 1;
            let html = format!("<p id=\"clicks\">{clicks} clicks</p>");
            ("200 OK", page("Counted", &html))
        }
        ("GET", "/raw-alert") => (
            "200 OK",
            page("Raw", "<p id=\"x\">raw</p><script>alert(1)</script>"),
        ),
        ("GET", "/iframe-alert") => (
            "200 OK",
            page(
                "Iframe",
                "<p id=\"x\">iframe</p><script>const f = document.createElement('iframe');\
                 document.body.appendChild(f); setTimeout(() => f.contentWindow.alert('via iframe'), 0);</script>",
            ),
        ),
        _ => ("404 Not Found", page("Not found", "<p>not found</p>")),
    };
    let mut out = stream;
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{html}",
        html.len()
    )?;
    out.flush()
}

/// Typing, a submit click and a server round-trip change what the page shows;
/// the screenshot is a real PNG.
#[test]
fn form_round_trip_and_screenshot() {
    let Some(mut b) = Browser::launch("form_round_trip_and_screenshot") else {
        return;
    };
    let app = App::start();
    b.goto(&app.url("/"));
    assert_eq!(b.title(), "Smoke");
    assert_eq!(b.text("#greeting"), "no greeting yet");
    assert_eq!(b.attr("#name", "value").as_deref(), Some("nobody"));

    b.fill("#name", "Ada Lovelace & co");
    b.click("#send");
    b.wait_for_text("#greeting", "Hello, Ada Lovelace & co!");
    assert_eq!(b.title(), "Greeted");
    assert!(b.url().ends_with("/greet"), "{}", b.url());

    // The other form, through the form helper, twice: the server counts.
    b.submit("#counter");
    b.wait_for_text("#clicks", "1 clicks");
    b.goto(&app.url("/"));
    b.click("#click");
    b.wait_for_text("#clicks", "2 clicks");
    assert_eq!(b.count("#clicks"), 1);
    assert_eq!(b.count_js("p"), 1);
    assert_eq!(b.count("#greeting"), 0);

    let shot = b.screenshot("counted");
    let png = std::fs::read(&shot).unwrap();
    assert!(png.len() > 1000, "{} bytes", png.len());
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    b.assert_no_alert();
}

/// A name of `<script>alert(1)</script>` comes back as escaped text: it shows
/// literally and runs nothing.
#[test]
fn escaped_script_runs_no_alert() {
    let Some(mut b) = Browser::launch("escaped_script_runs_no_alert") else {
        return;
    };
    let app = App::start();
    b.goto(&app.url("/"));
    b.fill(
        "#name",
        "<script>alert(1)</script><img src=x onerror=alert(2)>",
    );
    b.submit("#greet");
    b.wait_for_text(
        "#greeting",
        "Hello, <script>alert(1)</script><img src=x onerror=alert(2)>!",
    );
    assert_eq!(b.count("#greeting script"), 0);
    assert_eq!(b.count("img"), 0);
    b.assert_no_alert();
    assert!(b.alerts().is_empty());
    b.screenshot("escaped");
}

/// The detector works: a page that really calls `alert(1)` is caught by the
/// hook, and `assert_no_alert` fails on it.
#[test]
fn real_alert_is_detected() {
    let Some(mut b) = Browser::launch("real_alert_is_detected") else {
        return;
    };
    let app = App::start();
    b.goto(&app.url("/raw-alert"));
    assert_eq!(b.text("#x"), "raw");
    assert_eq!(b.alerts(), ["alert:1"]);
    let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| b.assert_no_alert()));
    assert!(
        failed.is_err(),
        "assert_no_alert passed on a page that ran alert(1)"
    );
}

/// A dialog that gets around the hook (a new iframe's own `alert`) is still
/// seen: as a hook record, or else as a native dialog left open.
#[test]
fn iframe_alert_is_detected() {
    let Some(mut b) = Browser::launch("iframe_alert_is_detected") else {
        return;
    };
    let app = App::start();
    b.goto(&app.url("/iframe-alert"));
    let mut seen = None;
    for _ in 0..100 {
        if let Some(text) = b.alert_open() {
            seen = Some(format!("native:{text}"));
            break;
        }
        if let Some(a) = b.alerts().into_iter().next() {
            seen = Some(a);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let seen = seen.expect("the iframe's alert was not detected");
    assert!(seen.contains("via iframe"), "{seen}");
    let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| b.assert_no_alert()));
    assert!(failed.is_err(), "assert_no_alert passed after {seen}");
}
