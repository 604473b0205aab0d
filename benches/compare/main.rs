//! `cargo bench --bench compare`: everything that says how fast the inbox is,
//! in one process, on the same generated 1 KiB Bluum deliveries, each
//! measurement repeated in rounds (interleaved with its baselines so machine
//! noise hits them alike) and reported as medians:
//!
//! - verify only, per scheme, against a bare HMAC-SHA256 of the same bytes and
//!   the `svix` crate (`verify.rs`);
//! - the machine's floor: 4 KiB `pwrite` + `fdatasync`, HMAC of 1 KiB
//!   (`floor.rs`);
//! - durable ingest at 1, 4, 16 and 64 callers: this library against SQLite
//!   (WAL, `synchronous=FULL` and `NORMAL`) and a bare group-committed log
//!   (`ingest.rs`);
//! - end to end, ingest → no-op handler done, paced and saturated; the drain
//!   of 100 000 pending events with 1, 2 and 4 handler threads (`worker.rs`);
//! - 1 000 000 pending events in a child process: disk per event, reopen to
//!   first dispatch, drain, peak RSS (`million.rs`);
//! - the PostgreSQL backend (with `--features postgres`, when
//!   `WEBHOOK_INBOX_TEST_POSTGRES` names a database; skipped otherwise):
//!   durable ingest against a hand-rolled inbox and a bare client's floor,
//!   drains in one and two processes, `pg_test_fsync` (`pg.rs`).
//!
//! It prints a table (`report.rs`) and writes `target/bench-results.json`
//! (with `BENCH_ONLY=postgres`, only the PostgreSQL rows, to
//! `target/bench-results-postgres.json`).
//!
//! ```sh
//! cargo bench --bench compare                       # the full run (about 7 minutes here)
//! BENCH_QUICK=1 cargo bench --bench compare         # smoke run, under a minute
//! BENCH_ROUNDS=9 cargo bench --bench compare        # more rounds (default 5)
//! BENCH_ONLY=postgres cargo bench --bench compare --features postgres   # only the PostgreSQL rows
//! # (the PostgreSQL rows take about 11 minutes at 3 rounds here, 18 at 5; a quick run, seconds)
//! cargo bench --bench compare -- --chart [in.json]  # docs/bench.svg from the results, runs nothing
//! cargo bench --bench compare -- --table a.json b.json c.json   # the table of several runs' medians
//! ```

#[path = "../common/mod.rs"]
mod common;
mod fixture;
mod floor;
mod ingest;
mod million;
#[cfg(feature = "postgres")]
mod pg;
mod report;
#[cfg(feature = "postgres")]
#[allow(dead_code)]
#[path = "../../tests/common/postgres.rs"]
mod testdb;
mod verify;
mod worker;

use std::path::PathBuf;
use std::time::Instant;

/// The `.json` arguments after `flag`.
fn files_after(args: &[String], flag: &str) -> Option<Vec<PathBuf>> {
    let at = args.iter().position(|a| a == flag)?;
    Some(
        args[at + 1..]
            .iter()
            .filter(|a| a.ends_with(".json"))
            .map(PathBuf::from)
            .collect(),
    )
}

fn main() {
    if std::env::var(million::CHILD_ENV).is_ok_and(|v| v == "million") {
        million::child();
        return;
    }
    #[cfg(feature = "postgres")]
    if std::env::var(million::CHILD_ENV).is_ok_and(|v| v == pg::CHILD) {
        pg::child();
        return;
    }
    // cargo adds `--bench`; anything unknown is ignored.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(files) = files_after(&args, "--chart") {
        let input = files.first().cloned().unwrap_or_else(report::results_path);
        let values = [report::read_json(&input)];
        let results = report::merge(&values);
        let out = report::chart_path();
        std::fs::write(&out, report::chart(&results)).expect("write the chart");
        println!("{} → {}", input.display(), out.display());
        return;
    }
    if let Some(mut files) = files_after(&args, "--table") {
        if files.is_empty() {
            files.push(report::results_path());
        }
        let values: Vec<_> = files.iter().map(|f| report::read_json(f)).collect();
        report::print_table(&report::merge(&values));
        return;
    }
    let Some(settings) = common::settings() else {
        return;
    };
    let only_postgres = match std::env::var("BENCH_ONLY").as_deref() {
        Err(_) | Ok("") => false,
        Ok("postgres") => true,
        Ok(other) => {
            eprintln!("BENCH_ONLY={other}: only `postgres` is known");
            std::process::exit(2);
        }
    };

    let start = Instant::now();
    let mut machine = report::machine();
    let section = |name: &str| eprintln!("[{:>5.1} s] {name}", start.elapsed().as_secs_f64());
    eprintln!(
        "compare: {} run, {} rounds{}",
        if settings.quick { "QUICK" } else { "full" },
        settings.rounds,
        if only_postgres {
            ", PostgreSQL rows only"
        } else {
            ""
        }
    );
    if only_postgres {
        section("PostgreSQL");
        let postgres = measure_postgres(&settings);
        machine.load_after = report::loadavg();
        let results = report::Results {
            schema: report::SCHEMA.to_owned(),
            quick: settings.quick,
            rounds: settings.rounds,
            runs: 1,
            machine,
            wall_secs: start.elapsed().as_secs_f64(),
            verify: Default::default(),
            ingest: Vec::new(),
            end_to_end: Vec::new(),
            drain: Vec::new(),
            million: Default::default(),
            floor: Default::default(),
            postgres,
            targets: Vec::new(),
        };
        let path = report::results_path().with_file_name("bench-results-postgres.json");
        report::write_json(&results, &path);
        report::print_table(&results);
        println!("results: {}", path.display());
        return;
    }
    section("verify");
    let verify = verify::measure(&settings);
    section("machine floor");
    let floor = floor::measure(&settings);
    section("durable ingest");
    let ingest = ingest::measure(&settings);
    let ingest16 = ingest
        .iter()
        .find(|r| r.callers == 16 && r.system == ingest::System::Library.id())
        .map_or(1.0, |r| r.events_per_sec.median);
    section("end to end");
    let end_to_end = worker::measure_end_to_end(&settings);
    section("drain");
    let drain = worker::measure_drain(&settings, ingest16);
    section("pending events in a child process");
    let million = million::measure(&settings);
    section("PostgreSQL");
    let postgres = measure_postgres(&settings);
    machine.load_after = report::loadavg();

    let mut results = report::Results {
        schema: report::SCHEMA.to_owned(),
        quick: settings.quick,
        rounds: settings.rounds,
        runs: 1,
        machine,
        wall_secs: start.elapsed().as_secs_f64(),
        verify,
        ingest,
        end_to_end,
        drain,
        million,
        floor,
        postgres,
        targets: Vec::new(),
    };
    results.targets = results.judge();
    let path = report::results_path();
    report::write_json(&results, &path);
    report::print_table(&results);
    println!("results: {}", path.display());
}

/// The PostgreSQL rows, or `None` (said why) when they cannot run.
fn measure_postgres(settings: &common::Settings) -> Option<report::Postgres> {
    #[cfg(feature = "postgres")]
    return pg::measure(settings);
    #[cfg(not(feature = "postgres"))]
    {
        let _ = settings;
        eprintln!("  PostgreSQL rows skipped: built without the `postgres` feature");
        None
    }
}
