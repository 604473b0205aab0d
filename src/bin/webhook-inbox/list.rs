//! `webhook-inbox list`: the stored events (pending, retrying, dead), a page
//! at a time.

use std::fmt::Write as _;

use serde_json::json;
use webhook_inbox::{EventQuery, EventState};

use crate::common::{self, Failure};
use crate::remote::Remote;
use crate::store::StoreArgs;
use crate::table::{Align, Table};
use crate::{time, view};

/// Where an event stands, as `--state` names it.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum State {
    /// Not attempted yet.
    Pending,
    /// Failed at least once; the next attempt is scheduled.
    Retrying,
    /// Failed for good; waits for `replay` or `purge`.
    Dead,
}

impl From<State> for EventState {
    fn from(state: State) -> Self {
        match state {
            State::Pending => Self::Pending,
            State::Retrying => Self::Retrying,
            State::Dead => Self::Dead,
        }
    }
}

/// Flags of `webhook-inbox list`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    store: StoreArgs,
    /// Only events in this state.
    #[arg(long, value_enum)]
    state: Option<State>,
    /// Only events whose type matches: `order.filled`, `order.*` or `*`.
    #[arg(long = "type", value_name = "PATTERN", value_parser = common::parse_pattern)]
    event_type: Option<String>,
    /// Events per page.
    #[arg(long, value_name = "N", default_value_t = 50,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    limit: u64,
    /// Start after this sequence number (the value the previous page printed).
    #[arg(long, value_name = "SEQ")]
    after: Option<u64>,
    /// Print a JSON object (`events`, and `next` for the following page) instead of a table.
    #[arg(long)]
    json: bool,
}

/// Reads one page and prints it.
pub fn run(args: Args, remote: Option<&Remote>) -> Result<(), Failure> {
    if let Some(remote) = remote {
        let mut query = vec![("limit", args.limit.to_string())];
        if let Some(after) = args.after {
            query.push(("after", after.to_string()));
        }
        if let Some(state) = args.state {
            query.push(("state", EventState::from(state).to_string()));
        }
        if let Some(pattern) = &args.event_type {
            query.push(("type", pattern.clone()));
        }
        let v = remote.get("/api/events", &query)?.body;
        if args.json {
            return common::print_json(&v);
        }
        let rows = v["events"]
            .as_array()
            .map(|events| events.iter().map(json_row).collect())
            .unwrap_or_default();
        return common::print(&text(rows, v["next"].as_u64()));
    }
    let mut query = EventQuery::all()
        .limit(usize::try_from(args.limit).unwrap_or(usize::MAX))
        .after(args.after.unwrap_or(0));
    if let Some(state) = args.state {
        query = query.state(state.into());
    }
    if let Some(pattern) = &args.event_type {
        query = query.event_type(pattern.as_str());
    }
    let (page, _) = args.store.with(|inbox| inbox.events(&query))?;

    if args.json {
        common::print_json(&json!({
            "events": page.events.iter().map(|e| view::event_json(e, false)).collect::<Vec<_>>(),
            "next": page.next,
        }))
    } else {
        common::print(&text(page.events.iter().map(row).collect(), page.next))
    }
}

/// A table row for a stored event.
fn row(e: &webhook_inbox::StoredEvent) -> Vec<String> {
    vec![
        e.seq.to_string(),
        common::clean(&e.source).into_owned(),
        common::clean(&e.id).into_owned(),
        common::clean(&e.event_type).into_owned(),
        e.state.to_string(),
        e.attempts.to_string(),
        time::utc(e.received_at),
        view::next_or_dead(e).map_or_else(|| "-".to_owned(), time::utc),
        view::last_error(e).map_or_else(|| "-".to_owned(), |m| common::truncate(m, 48)),
    ]
}

/// The same row from the admin API's JSON (`--url`).
fn json_row(e: &serde_json::Value) -> Vec<String> {
    let s = |k: &str| e[k].as_str().unwrap_or("");
    let at = |k: &str| {
        e[k].as_str()
            .and_then(time::parse_utc_millis)
            .map(time::utc)
    };
    let next = if s("state") == "dead" {
        at("dead_at")
    } else {
        at("next_attempt")
    };
    vec![
        e["seq"].as_u64().unwrap_or(0).to_string(),
        common::clean(s("source")).into_owned(),
        common::clean(s("id")).into_owned(),
        common::clean(s("type")).into_owned(),
        s("state").to_owned(),
        e["attempts"].as_u64().unwrap_or(0).to_string(),
        at("received_at").unwrap_or_default(),
        next.unwrap_or_else(|| "-".to_owned()),
        e["last_error"]
            .as_str()
            .map_or_else(|| "-".to_owned(), |m| common::truncate(m, 48)),
    ]
}

fn text(rows: Vec<Vec<String>>, next: Option<u64>) -> String {
    if rows.is_empty() {
        return "no stored events match\n".to_owned();
    }
    let mut table = Table::new(&[
        ("SEQ", Align::Right),
        ("SOURCE", Align::Left),
        ("ID", Align::Left),
        ("TYPE", Align::Left),
        ("STATE", Align::Left),
        ("ATTEMPTS", Align::Right),
        ("RECEIVED (UTC)", Align::Left),
        ("NEXT/DEAD AT (UTC)", Align::Left),
        ("LAST ERROR", Align::Left),
    ]);
    for r in rows {
        table.push(r);
    }
    let mut out = table.render();
    if let Some(next) = next {
        let _ = writeln!(
            out,
            "\nmore may follow: repeat with --after {next} for the next page"
        );
    }
    out
}
