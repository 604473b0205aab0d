//! `webhook-inbox purge --dead`: delete dead letters for good.

use std::time::Duration;

use serde_json::json;

use crate::common::{self, Failure};
use crate::duration;
use crate::remote::Remote;
use crate::store::StoreArgs;

/// Flags of `webhook-inbox purge`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Purge dead letters (required: the only kind of event purged for now).
    #[arg(long, required = true)]
    dead: bool,
    /// Only those dead for at least this long: `30s`, `15m`, `2h`, `7d` [default: all].
    #[arg(long, value_name = "DURATION", value_parser = duration::parse)]
    older_than: Option<Duration>,
    #[command(flatten)]
    store: StoreArgs,
    /// Print a JSON object (`purged`) instead of text.
    #[arg(long)]
    json: bool,
}

/// Purges and says how many.
pub fn run(args: Args, remote: Option<&Remote>) -> Result<(), Failure> {
    let purged = match remote {
        Some(remote) => {
            let body = json!({
                "all_dead": true,
                "older_than_secs": args.older_than.map(|d| d.as_secs()),
            });
            remote.bulk("/api/purge", "purged", &body)?
        }
        None => {
            args.store
                .with(|inbox| inbox.purge_dead(args.older_than))?
                .0
        }
    };

    if args.json {
        return common::print_json(&json!({ "purged": purged }));
    }
    let which = args.older_than.map_or_else(String::new, |d| {
        format!(" dead for at least {}", duration::display(d))
    });
    let mut text = format!(
        "purged {}{which}\n",
        common::plural(purged, "dead letter", "dead letters")
    );
    if purged > 0 {
        text.push_str(
            "Their dedup markers stay until the retention passes: redeliveries are still \
             answered `duplicate`.\n",
        );
    }
    common::print(&text)
}
