//! `webhook-inbox replay`: put dead letters back to work.

use serde_json::json;
use webhook_inbox::Replay;

use crate::common::{self, Failure};
use crate::remote::Remote;
use crate::store::{Location, StoreArgs};

/// Flags of `webhook-inbox replay`.
#[derive(Debug, clap::Args)]
#[command(group(
    clap::ArgGroup::new("which").required(true).args(["id", "event_type", "all_dead"])
))]
pub struct Args {
    /// The dead letter with this event id (from any source).
    #[arg(value_name = "ID")]
    id: Option<String>,
    /// Every dead letter whose type matches: `transfer.deposit.failed`, `transfer.*` or `*`.
    #[arg(long = "type", value_name = "PATTERN", value_parser = common::parse_pattern)]
    event_type: Option<String>,
    /// Every dead letter.
    #[arg(long)]
    all_dead: bool,
    #[command(flatten)]
    store: StoreArgs,
    /// Print a JSON object (`replayed`) instead of text.
    #[arg(long)]
    json: bool,
}

/// Replays and says how many; exit 1 when an id names no dead letter.
pub fn run(args: Args, remote: Option<&Remote>) -> Result<(), Failure> {
    let which = match (args.id, args.event_type) {
        (Some(id), _) => Replay::Id(id),
        (None, Some(pattern)) => Replay::Type(pattern),
        (None, None) => Replay::AllDead,
    };
    let (replayed, place, shared) = match remote {
        Some(remote) => {
            let body = match &which {
                Replay::Id(id) => json!({ "id": id }),
                Replay::Type(pattern) => json!({ "type": pattern }),
                _ => json!({ "all_dead": true }),
            };
            (
                remote.bulk("/api/replay", "replayed", &body)?,
                remote.url().to_owned(),
                true,
            )
        }
        None => {
            let (replayed, location) = args.store.with(|inbox| inbox.replay(&which))?;
            let shared = matches!(location, Location::Postgres { .. });
            (replayed, location.label(), shared)
        }
    };

    if let (Replay::Id(id), 0) = (&which, replayed) {
        return Err(Failure::Rejected(format!(
            "not found: no dead letter has id `{}` in {} (pending and retrying events are \
             not replayed; see `webhook-inbox show`)",
            common::clean(id),
            place
        )));
    }
    if args.json {
        return common::print_json(&json!({ "replayed": replayed }));
    }
    let mut text = format!(
        "replayed {}\n",
        common::plural(replayed, "dead letter", "dead letters")
    );
    if replayed > 0 {
        text.push_str(
            "They are due now, with attempts counted afresh and their error history kept.\n",
        );
        text.push_str(if shared {
            "The running service's workers pick them up within a few seconds.\n"
        } else {
            "The service's worker runs them once the service has the store open again.\n"
        });
    }
    common::print(&text)
}
