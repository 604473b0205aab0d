//! `webhook-inbox show ID`: one stored event — where it stands, every
//! recorded error, its headers and body.

use std::fmt::Write as _;
use std::time::SystemTime;

use webhook_inbox::StoredEvent;

use crate::common::{self, Failure};
use crate::store::StoreArgs;
use crate::{time, view};

/// Flags of `webhook-inbox show`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The event id (as the sender set it). If several sources used it, the
    /// latest accepted is shown.
    #[arg(value_name = "ID")]
    id: String,
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
pub fn run(args: Args) -> Result<(), Failure> {
    let (found, path) = args.store.with(|inbox| inbox.event(&args.id))?;
    let event = found.ok_or_else(|| {
        Failure::Rejected(format!(
            "not found: no stored event has id `{}` in {} (never accepted, or \
                 already handled: handled events are not kept)",
            common::clean(&args.id),
            path.display()
        ))
    })?;
    if args.raw {
        common::print_bytes(&event.body)
    } else if args.json {
        common::print_json(&view::event_json(&event, true))
    } else {
        common::print(&text(&event, SystemTime::now()))
    }
}

fn text(e: &StoredEvent, now: SystemTime) -> String {
    let when = |t: SystemTime| format!("{} ({})", time::utc(t), time::relative(t, now));
    let mut out = String::new();
    let mut field = |name: &str, value: &str| {
        let _ = writeln!(out, "{:<14}{value}", format!("{name}:"));
    };
    field("id", &common::clean(&e.id));
    field("source", &common::clean(&e.source));
    field("type", &common::clean(&e.event_type));
    field("seq", &e.seq.to_string());
    field("state", &e.state.to_string());
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
        for a in &e.errors {
            let _ = writeln!(
                out,
                "  attempt {:<3} {}  {}",
                a.attempt,
                time::utc(a.at),
                common::clean(&a.error)
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
