//! `webhook-inbox trigger`: ask a running emulator to emit an event, which it
//! fans out to every active webhook subscribed to the type.

use std::time::Duration;

use serde_json::Value;

use crate::bluum;
use crate::common::{self, Failure};

/// Where the emulator listens unless told otherwise (its default `--listen`).
const DEFAULT_URL: &str = "http://127.0.0.1:8787/v1";

/// Flags of `webhook-inbox trigger`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
The API key and secret are read from BLUUM_API_KEY and BLUUM_API_SECRET (a tenant
key the emulator was started with), never from the command line.")]
pub struct Args {
    /// The event type, such as `order.filled` (one of `bluum event-types`).
    #[arg(value_name = "TYPE")]
    event_type: String,
    /// The event's data, a JSON object; it is sent as written.
    #[arg(long, value_name = "JSON", default_value = "{}")]
    data: String,
    /// The emulator's API base URL [default: $BLUUM_BASE_URL, else http://127.0.0.1:8787/v1].
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Print the emulator's answer as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let data: Value = serde_json::from_str(&args.data)
        .map_err(|e| Failure::Usage(format!("--data is not valid JSON: {e}")))?;
    if !data.is_object() {
        return Err(Failure::Usage("--data must be a JSON object".into()));
    }
    let (key, secret) = bluum::credentials(&bluum::env)?;
    let base = args
        .url
        .or_else(|| bluum::env(bluum::BASE_URL_ENV).filter(|v| !v.is_empty()))
        .unwrap_or_else(|| DEFAULT_URL.to_owned());
    let url = format!("{}/_emulator/events", base.trim_end_matches('/'));
    // The data goes as written: splice its text rather than re-serialise it.
    let body = format!(
        r#"{{"type":{},"data":{}}}"#,
        Value::String(args.event_type.clone()),
        args.data
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    use base64::Engine as _;
    let credentials = base64::engine::general_purpose::STANDARD.encode(format!("{key}:{secret}"));
    let mut response = agent
        .post(&url)
        .header("authorization", format!("Basic {credentials}"))
        .header("content-type", "application/json")
        .send(body.as_bytes())
        .map_err(|e| Failure::Unavailable(format!("cannot reach the emulator at {url}: {e}")))?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .read_to_string()
        .map_err(|e| Failure::Unavailable(format!("cannot read the emulator's answer: {e}")))?;
    let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if status != 202 {
        let message = answer["error"]["message"].as_str().map_or_else(
            || common::truncate(text.trim(), 200),
            |m| common::truncate(m, 500),
        );
        let message = format!("the emulator answered {status}: {message}");
        // Refused (4xx): exit 1; the emulator failing or not an emulator: exit 2.
        return Err(if (400..500).contains(&status) {
            Failure::Rejected(message)
        } else {
            Failure::Unavailable(message)
        });
    }
    if !answer["id"].is_string() {
        return Err(Failure::Unavailable(format!(
            "{url} answered 202 but not with an event: {}",
            common::truncate(text.trim(), 200)
        )));
    }
    if args.json {
        return common::print_json(&answer);
    }
    let deliveries = answer["deliveries"].as_array().cloned().unwrap_or_default();
    let mut text = format!(
        "event {} ({}): {}\n",
        common::clean(answer["id"].as_str().unwrap_or("?")),
        common::clean(&args.event_type),
        match deliveries.len() {
            0 => "no active webhook is subscribed to it".to_owned(),
            n => format!("{} queued", common::plural(n, "delivery", "deliveries")),
        }
    );
    for d in &deliveries {
        text.push_str(&format!(
            "  {} → {}\n",
            common::clean(d["id"].as_str().unwrap_or("?")),
            common::clean(d["webhook_id"].as_str().unwrap_or("?"))
        ));
    }
    common::print(&text)
}
