//! `webhook-inbox stats`: what the store holds.
//!
//! Only the store-level figures are shown. `Stats` also has delivery counters
//! (received, accepted, duplicates, rejections) and `fdatasync` latencies, but
//! those count from when a process opened the store: in this short-lived
//! process they are always zero (or measure the CLI's own writes), and
//! printing them would read as "nothing received". The service reads them
//! from its own `Inbox::stats`.

use serde_json::json;
use webhook_inbox::Stats;

use crate::common::{self, Failure};
use crate::remote::Remote;
use crate::store::StoreArgs;
use crate::time;

/// Flags of `webhook-inbox stats`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    store: StoreArgs,
    /// Print a JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Opens the store, reads its counts, closes it, prints them.
pub fn run(args: Args, remote: Option<&Remote>) -> Result<(), Failure> {
    if let Some(remote) = remote {
        let v = remote.get("/api/stats", &[])?.body;
        if args.json {
            return common::print_json(&crate::remote::stats_subset(&v));
        }
        let n = |k: &str| v[k].as_u64().unwrap_or(0);
        let mut stats = Stats::default();
        stats.pending = n("pending");
        stats.retrying = n("retrying");
        stats.dead = n("dead");
        stats.dedup_markers = n("dedup_markers");
        stats.disk_bytes = v["disk_bytes"].as_u64();
        stats.oldest_pending_age = v["oldest_pending_age_secs"]
            .as_f64()
            .map(|s| std::time::Duration::from_millis((s * 1000.0).round() as u64));
        return common::print(&text(v["store"].as_str().unwrap_or(""), &stats));
    }
    let (stats, location) = args.store.with(|inbox| Ok(inbox.stats()))?;
    let path = location.label();
    if args.json {
        common::print_json(&json!({
            "store": path,
            "pending": stats.pending,
            "retrying": stats.retrying,
            "dead": stats.dead,
            "dedup_markers": stats.dedup_markers,
            "oldest_pending_age_secs": stats.oldest_pending_age.map(time::secs_f64),
            "disk_bytes": stats.disk_bytes,
        }))
    } else {
        common::print(&text(&path, &stats))
    }
}

fn text(path: &str, s: &Stats) -> String {
    let fresh = s.pending.saturating_sub(s.retrying);
    let oldest = s
        .oldest_pending_age
        .map_or_else(|| "-".to_owned(), |age| format!("{} ago", time::age(age)));
    format!(
        "store            {path}\n\
         pending          {} ({fresh} not attempted yet, {} retrying)\n\
         dead letters     {}\n\
         dedup markers    {}\n\
         oldest pending   {oldest}\n\
         disk             {}\n\
         \n\
         Delivery counters (received, accepted, duplicates, rejected) and fsync latency\n\
         count from when a process opens the store; the service reports them (Inbox::stats).\n",
        s.pending,
        s.retrying,
        s.dead,
        s.dedup_markers,
        s.disk_bytes.map_or_else(|| "-".to_owned(), bytes),
    )
}

/// `1.2 MiB (1234567 bytes)`.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = UNITS[0];
    for next in &UNITS[1..] {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = next;
    }
    format!("{value:.1} {unit} ({n} bytes)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_readable() {
        assert_eq!(bytes(512), "512 bytes");
        assert_eq!(bytes(1536), "1.5 KiB (1536 bytes)");
        assert_eq!(bytes(5 << 20), "5.0 MiB (5242880 bytes)");
    }
}
