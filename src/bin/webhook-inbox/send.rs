//! `webhook-inbox send`: POST a signed test delivery to a receiver, as the
//! provider would, and print each answer.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use webhook_inbox::{Scheme, Signer};

use crate::common::{self, Failure};
use crate::{duration, sign, time};

/// Flags of `webhook-inbox send`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The receiver's URL, `http://` or `https://`.
    #[arg(long, value_name = "URL")]
    url: String,
    #[arg(long, value_name = "NAME", help = common::SCHEME_HELP)]
    scheme: Scheme,
    #[command(flatten)]
    key: common::SigningKey,
    /// The event type, such as `order.filled`.
    #[arg(long = "type", value_name = "TYPE", value_parser = parse_text)]
    event_type: String,
    /// The event's data, as JSON; it goes into the scheme's envelope as written.
    #[arg(long, value_name = "JSON")]
    data: String,
    /// The event id [default: a fresh `msg_<hex>`, `evt_<hex>` for stripe].
    #[arg(long, value_name = "ID", value_parser = parse_text)]
    id: Option<String>,
    /// Send the same delivery (same id, bytes and signature) N times, as a
    /// retrying sender would: the receiver answers `duplicate` after the first.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    repeat: u32,
    /// Give up on an attempt after this long: `10s`, `1m`.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_timeout)]
    timeout: Duration,
    /// Print a JSON object (`id`, `type`, `attempts` with `status` and `body`) instead of text.
    #[arg(long)]
    json: bool,
}

/// Ids and types travel in headers for some schemes, and HTTP header values
/// are printable ASCII: say so here rather than let the connection fail.
fn parse_text(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err("must not be empty".into());
    }
    if !text.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        return Err("must be printable ASCII (it may travel in an HTTP header)".into());
    }
    Ok(text.to_owned())
}

/// A per-attempt timeout: at least a second, so every attempt has a chance.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    let timeout = duration::parse(text)?;
    if timeout < Duration::from_secs(1) {
        return Err("must be at least 1s".into());
    }
    Ok(timeout)
}

/// A signed delivery: the headers and body a provider would send.
#[derive(Debug)]
struct Delivery {
    id: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// One attempt's answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: String,
}

/// Builds, signs and sends the delivery `--repeat` times; exit 1 if any
/// attempt is not answered 2xx, exit 2 if the receiver cannot be reached.
pub fn run(args: Args) -> Result<(), Failure> {
    check_url(&args.url)?;
    serde_json::from_str::<serde::de::IgnoredAny>(&args.data)
        .map_err(|e| Failure::Usage(format!("--data is not valid JSON: {e}")))?;
    let signer = args.key.signer(args.scheme)?;
    let delivery = build(
        &signer,
        args.id,
        &args.event_type,
        &args.data,
        SystemTime::now(),
    )?;

    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(args.timeout))
        .user_agent(concat!("webhook-inbox-cli/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();

    if !args.json {
        common::print(&format!(
            "sending {} ({}, {}) to {}\n",
            common::clean(&delivery.id),
            common::clean(&args.event_type),
            common::plural(delivery.body.len(), "byte", "bytes"),
            args.url
        ))?;
    }
    let mut answers = Vec::new();
    for attempt in 1..=args.repeat {
        let answer = post(&agent, &args.url, &delivery)?;
        if !args.json {
            common::print(&format!("attempt {attempt}: {}\n", describe(&answer)))?;
        }
        answers.push(answer);
    }
    if args.json {
        common::print_json(&json!({
            "id": delivery.id,
            "type": args.event_type,
            "url": args.url,
            "attempts": answers.iter().map(|a| json!({
                "status": a.status,
                "retry_after": a.retry_after,
                "body": a.body,
            })).collect::<Vec<_>>(),
        }))?;
    }
    match answers.iter().find(|a| !(200..300).contains(&a.status)) {
        Some(refused) => Err(Failure::Rejected(format!(
            "refused: the receiver answered {} ({})",
            refused.status,
            common::truncate(refused.body.trim(), 200)
        ))),
        None => Ok(()),
    }
}

fn check_url(url: &str) -> Result<(), Failure> {
    let lower = url.to_ascii_lowercase();
    if !lower.starts_with("http://") && !lower.starts_with("https://") {
        return Err(Failure::Usage(format!(
            "--url must be an http:// or https:// URL, not `{}`",
            common::clean(url)
        )));
    }
    Ok(())
}

/// The body the scheme's provider would send, its extra headers, and the
/// signature headers; `data` (already checked to be JSON) goes in verbatim,
/// so its numbers and key order reach the receiver exactly as written.
fn build(
    signer: &Signer,
    id: Option<String>,
    event_type: &str,
    data: &str,
    now: SystemTime,
) -> Result<Delivery, Failure> {
    let scheme = signer.scheme().name().to_owned();
    let id = id.unwrap_or_else(|| {
        let fresh = sign::fresh_id(data.as_bytes());
        match scheme.as_str() {
            "stripe" => fresh.replacen("msg_", "evt_", 1),
            _ => fresh,
        }
    });
    let quote = |text: &str| {
        serde_json::to_string(text)
            .map_err(|e| Failure::Usage(format!("cannot quote `{text}` as JSON: {e}")))
    };
    let (t, i, ts) = (quote(event_type)?, quote(&id)?, quote(&time::utc(now))?);
    let unix = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let data = data.trim();
    let mut extra = Vec::new();
    // Each envelope puts the id and type where the scheme reads them (see
    // `Scheme`): a header the signer adds, or a top-level field.
    let body = match scheme.as_str() {
        "bluum" => format!(r#"{{"event":{t},"timestamp":{ts},"data":{data}}}"#),
        "standard" => format!(r#"{{"type":{t},"timestamp":{ts},"data":{data}}}"#),
        "stripe" => format!(
            r#"{{"id":{i},"object":"event","type":{t},"created":{unix},"data":{{"object":{data}}}}}"#
        ),
        "slack" => format!(
            r#"{{"type":{t},"event_id":{i},"event_time":{unix},"event":{data}}}"#
        ),
        "github" => {
            extra.push(("X-GitHub-Event".to_owned(), event_type.to_owned()));
            data.to_owned()
        }
        "shopify" => {
            extra.push(("X-Shopify-Topic".to_owned(), event_type.to_owned()));
            data.to_owned()
        }
        other => {
            return Err(Failure::Usage(format!(
                "`send` has no envelope for scheme `{other}`"
            )));
        }
    }
    .into_bytes();
    let timestamp = i64::try_from(unix).unwrap_or(i64::MAX);
    let mut headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
    headers.extend(extra);
    headers.extend(signer.sign(&id, timestamp, &body));
    Ok(Delivery { id, headers, body })
}

fn post(agent: &ureq::Agent, url: &str, delivery: &Delivery) -> Result<Answer, Failure> {
    let unreachable = |e: ureq::Error| {
        Failure::Unavailable(format!("cannot deliver to {}: {e}", common::clean(url)))
    };
    let mut request = agent.post(url);
    for (name, value) in &delivery.headers {
        request = request.header(name, value);
    }
    let mut response = request.send(&delivery.body[..]).map_err(unreachable)?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response
        .body_mut()
        .with_config()
        .limit(64 * 1024)
        .read_to_vec()
        .map_err(unreachable)?;
    Ok(Answer {
        status,
        retry_after,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// `200 accepted`, `503 overloaded (Retry-After: 5)`.
fn describe(answer: &Answer) -> String {
    let mut text = answer.status.to_string();
    let body = answer.body.trim();
    if !body.is_empty() {
        let _ = write!(text, " {}", common::truncate(body, 200));
    }
    if let Some(after) = &answer.retry_after {
        let _ = write!(text, " (Retry-After: {})", common::clean(after));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use webhook_inbox::{Ingested, Verifier};

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn urls_must_be_http_or_https() {
        assert!(check_url("http://127.0.0.1:8080/hooks").is_ok());
        assert!(check_url("HTTP://localhost/").is_ok());
        assert!(check_url("https://example.com/hooks").is_ok());
        for bad in ["ftp://x", "localhost:8080", ""] {
            assert!(matches!(check_url(bad), Err(Failure::Usage(_))), "{bad}");
        }
    }

    /// What `send` builds for each preset is verified, and its id and type
    /// read, by that preset's ingestor.
    #[test]
    fn every_preset_envelope_is_accepted_by_its_ingestor() {
        let dir = std::env::temp_dir().join(format!("cli-send-unit-{}", std::process::id()));
        let inbox = webhook_inbox::Inbox::open(&dir).unwrap();
        for name in ["standard", "bluum", "stripe", "github", "slack", "shopify"] {
            let scheme: Scheme = name.parse().unwrap();
            let signer = Signer::new(scheme.clone(), SECRET).unwrap();
            let id = format!("unit_{name}");
            let d = build(
                &signer,
                Some(id.clone()),
                "order.filled",
                r#" {"amount":"10.50","n":1.10} "#,
                SystemTime::now(),
            )
            .unwrap();
            assert!(
                String::from_utf8(d.body.clone())
                    .unwrap()
                    .contains(r#"{"amount":"10.50","n":1.10}"#)
            );
            let ingestor = inbox
                .ingestor(Verifier::new(scheme, [SECRET]).unwrap())
                .build()
                .unwrap();
            let outcome = ingestor.ingest(&d.headers, &d.body).unwrap();
            assert!(
                matches!(outcome, Ingested::Accepted { .. }),
                "{name}: {outcome:?}"
            );
            // GitHub and Shopify do not sign their delivery id: the event id
            // is the body's hash, the delivery id a stored header.
            let signed_id = !matches!(name, "github" | "shopify");
            assert_eq!(outcome.id() == id, signed_id, "{name}: {}", outcome.id());
            let stored = inbox.event(outcome.id()).unwrap().unwrap();
            assert!(
                signed_id || stored.headers.iter().any(|(_, v)| *v == id),
                "{name}"
            );
            assert_eq!(stored.event_type, "order.filled", "{name}");
        }
        inbox.close().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
