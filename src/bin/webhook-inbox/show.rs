//! `webhook-inbox show ID`: one stored event — where it stands, every
//! recorded error, its headers and body.

use std::fmt::Write as _;
use std::time::SystemTime;

use webhook_inbox::StoredEvent;

use crate::common::{self, Failure};
use crate::remote::Remote;
use crate::store::StoreArgs;
use crate::{time, view};

/// Flags of `webhook-inbox show`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The event id (as the sender set it). If several sources used it, the
    /// latest accepted is shown, unless `--source` says which.
    #[arg(value_name = "ID")]
    id: String,
    /// Only the event from this source (the ingestor's name, such as `bluum`).
    #[arg(long, value_name = "NAME")]
    source: Option<String>,
    #[command(flatten)]
    store: StoreArgs,
    /// Print a JSON object (with `headers`, and `body` as text or base64) instead of text.
    #[arg(long, conflicts_with = "raw")]
    json: bool,
    /// Write only the body's raw bytes to stdout (for piping, for example to
    /// `webhook-inbox verify --body-file -`).
    #[arg(long)]
    raw: bool,
}

/// Looks the event up and prints it; exit 1 when no stored event has the id.
pub fn run(args: Args, remote: Option<&Remote>) -> Result<(), Failure> {
    if let Some(remote) = remote {
        let mut query = vec![("id", args.id.clone())];
        query.extend(args.source.clone().map(|s| ("source", s)));
        let a = remote.get("/api/event", &query)?;
        if a.status == 404 {
            return Err(Failure::Rejected(format!(
                "not found: no stored event has id `{}` at {} (never accepted, or \
                 already handled: handled events are not kept)",
                common::clean(&args.id),
                remote.url()
            )));
        }
        let v = a.body;
        let shown = Shown::from_json(&v).ok_or_else(|| {
            Failure::Unavailable(format!(
                "the admin API at {} sent an unreadable event",
                remote.url()
            ))
        })?;
        return if args.raw {
            common::print_bytes(&shown.body)
        } else if args.json {
            common::print_json(&v)
        } else {
            common::print(&text(&shown, SystemTime::now()))
        };
    }
    let (found, location) = args.store.with(|inbox| match &args.source {
        Some(source) => inbox.event_from(source, &args.id),
        None => inbox.event(&args.id),
    })?;
    let event = found.ok_or_else(|| {
        Failure::Rejected(format!(
            "not found: no stored event has id `{}` in {} (never accepted, or \
                 already handled: handled events are not kept)",
            common::clean(&args.id),
            location.label()
        ))
    })?;
    if args.raw {
        common::print_bytes(&event.body)
    } else if args.json {
        common::print_json(&view::event_json(&event, true))
    } else {
        common::print(&text(&Shown::from(&event), SystemTime::now()))
    }
}

/// What `show` prints, from a local store or the admin API's JSON.
struct Shown {
    id: String,
    source: String,
    event_type: String,
    seq: u64,
    state: String,
    attempts: u64,
    received_at: SystemTime,
    next_attempt: Option<SystemTime>,
    dead_at: Option<SystemTime>,
    errors: Vec<(u64, SystemTime, String)>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl From<&StoredEvent> for Shown {
    fn from(e: &StoredEvent) -> Self {
        Self {
            id: e.id.clone(),
            source: e.source.clone(),
            event_type: e.event_type.clone(),
            seq: e.seq,
            state: e.state.to_string(),
            attempts: u64::from(e.attempts),
            received_at: e.received_at,
            next_attempt: e.next_attempt,
            dead_at: e.dead_at,
            errors: e
                .errors
                .iter()
                .map(|a| (u64::from(a.attempt), a.at, a.error.clone()))
                .collect(),
            headers: e.headers.clone(),
            body: e.body.clone(),
        }
    }
}

impl Shown {
    fn from_json(v: &serde_json::Value) -> Option<Self> {
        use base64::Engine as _;
        let s = |k: &str| v[k].as_str().unwrap_or("").to_owned();
        let at = |x: &serde_json::Value| x.as_str().and_then(time::parse_utc_millis);
        let body = match v["body_encoding"].as_str() {
            Some("base64") => base64::engine::general_purpose::STANDARD
                .decode(v["body"].as_str()?)
                .ok()?,
            _ => v["body"].as_str()?.as_bytes().to_vec(),
        };
        Some(Self {
            id: s("id"),
            source: s("source"),
            event_type: s("type"),
            seq: v["seq"].as_u64()?,
            state: s("state"),
            attempts: v["attempts"].as_u64().unwrap_or(0),
            received_at: at(&v["received_at"])?,
            next_attempt: at(&v["next_attempt"]),
            dead_at: at(&v["dead_at"]),
            errors: v["errors"]
                .as_array()?
                .iter()
                .map(|a| {
                    Some((
                        a["attempt"].as_u64()?,
                        at(&a["at"])?,
                        a["error"].as_str()?.to_owned(),
                    ))
                })
                .collect::<Option<_>>()?,
            headers: v["headers"]
                .as_array()?
                .iter()
                .map(|h| {
                    Some((
                        h["name"].as_str()?.to_owned(),
                        h["value"].as_str()?.to_owned(),
                    ))
                })
                .collect::<Option<_>>()?,
            body,
        })
    }
}

fn text(e: &Shown, now: SystemTime) -> String {
    let when = |t: SystemTime| format!("{} ({})", time::utc(t), time::relative(t, now));
    let mut out = String::new();
    let mut field = |name: &str, value: &str| {
        let _ = writeln!(out, "{:<14}{value}", format!("{name}:"));
    };
    field("id", &common::clean(&e.id));
    field("source", &common::clean(&e.source));
    field("type", &common::clean(&e.event_type));
    field("seq", &e.seq.to_string());
    field("state", &e.state);
    field("attempts", &e.attempts.to_string());
    field("received", &when(e.received_at));
    if let Some(t) = e.next_attempt {
        field("next attempt", &when(t));
    }
    if let Some(t) = e.dead_at {
        field("dead since", &when(t));
    }

    if e.errors.is_empty() {
        out.push_str("errors:       none recorded\n");
    } else {
        let _ = writeln!(out, "errors ({}, oldest first):", e.errors.len());
        for (attempt, at, error) in &e.errors {
            let _ = writeln!(
                out,
                "  attempt {:<3} {}  {}",
                attempt,
                time::utc(*at),
                common::clean(error)
            );
        }
    }

    let _ = writeln!(out, "headers ({}):", e.headers.len());
    for (name, value) in &e.headers {
        let _ = writeln!(out, "  {}: {}", common::clean(name), common::clean(value));
    }

    let (kind, body) = view::body_text(&e.body);
    let _ = writeln!(
        out,
        "body ({}, {kind}):",
        common::plural(e.body.len(), "byte", "bytes")
    );
    out.push_str(&body);
    if !body.is_empty() && !body.ends_with('\n') {
        out.push('\n');
    }
    out
}
