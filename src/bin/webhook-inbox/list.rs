//! `webhook-inbox list`: the stored events (pending, retrying, dead), a page
//! at a time.

use std::fmt::Write as _;

use serde_json::json;
use webhook_inbox::{EventQuery, EventState, Page};

use crate::common::{self, Failure};
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
pub fn run(args: Args) -> Result<(), Failure> {
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
        common::print(&text(&page))
    }
}

fn text(page: &Page) -> String {
    if page.events.is_empty() {
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
    for e in &page.events {
        table.push(vec![
            e.seq.to_string(),
            common::clean(&e.source).into_owned(),
            common::clean(&e.id).into_owned(),
            common::clean(&e.event_type).into_owned(),
            e.state.to_string(),
            e.attempts.to_string(),
            time::utc(e.received_at),
            view::next_or_dead(e).map_or_else(|| "-".to_owned(), time::utc),
            view::last_error(e).map_or_else(|| "-".to_owned(), |m| common::truncate(m, 48)),
        ]);
    }
    let mut out = table.render();
    if let Some(next) = page.next {
        let _ = writeln!(
            out,
            "\nmore may follow: repeat with --after {next} for the next page"
        );
    }
    out
}
