//! Power-loss safety, checked at the system-call level: every `Accepted` is
//! returned only after the log write that carries the event AND an `fdatasync`
//! of that log file have completed.
//!
//! The parent runs this test binary as a child under `strace -f`, the child
//! ingests from several threads and writes `ACK <id>` to stdout after each
//! acknowledgement, and the parent reads the trace in order.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::process::Command;

use common::{SECRET, TempDir, bluum_body, bluum_headers};
use webhook_inbox::{Inbox, Ingested, Scheme, Verifier};

const CHILD_ENV: &str = "WEBHOOK_INBOX_FSYNC_CHILD";

#[test]
#[ignore = "run by `every_ack_follows_an_fdatasync_of_its_log_write` under strace"]
fn fsync_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let inbox = Inbox::open(&dir).expect("open");
    let ingestor = inbox
        .ingestor(Verifier::new(Scheme::bluum(), [SECRET]).expect("secret"))
        .build()
        .expect("ingestor");
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let ingestor = ingestor.clone();
            std::thread::spawn(move || {
                for n in 0..50 {
                    let id = format!("fsync-{t}-{n}-end");
                    let body = bluum_body("order.filled", n);
                    if let Ingested::Accepted { .. } = ingestor
                        .ingest(&bluum_headers(&id, &body), &body)
                        .expect("ingest")
                    {
                        let mut out = std::io::stdout().lock();
                        // One write(2) per acknowledgement, so the trace shows it.
                        out.write_all(format!("ACK {id}\n").as_bytes()).unwrap();
                        out.flush().unwrap();
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

/// One traced system call, in the order strace saw it finish.
#[derive(Debug)]
enum Call {
    OpenWal { fd: String },
    Write { fd: String, data: String },
    Fdatasync { fd: String },
}

/// Parses strace -f output, joining `<unfinished ...>` / `resumed>` pairs and
/// keeping each call at the position where it returned.
fn parse(trace: &str) -> Vec<Call> {
    let mut unfinished: HashMap<String, String> = HashMap::new();
    let mut calls = Vec::new();
    for line in trace.lines() {
        let Some((pid, rest)) = line.split_once(' ') else {
            continue;
        };
        let rest = rest.trim_start();
        let full = if let Some(head) = rest.strip_suffix(" <unfinished ...>") {
            unfinished.insert(pid.to_owned(), head.to_owned());
            continue;
        } else if let Some(tail) = rest.strip_prefix("<... ") {
            let head = unfinished.remove(pid).unwrap_or_default();
            let tail = tail.split_once("resumed>").map_or("", |(_, t)| t);
            format!("{head}{tail}")
        } else {
            rest.to_owned()
        };
        let Some((call, args)) = full.split_once('(') else {
            continue;
        };
        let result = full.rsplit_once(" = ").map_or("", |(_, r)| r.trim());
        if result.starts_with('-') {
            continue;
        }
        let first_arg = args
            .split([',', ')'])
            .next()
            .unwrap_or("")
            .trim()
            .to_owned();
        match call {
            "openat" if args.contains(".wal\"") => calls.push(Call::OpenWal {
                fd: result.to_owned(),
            }),
            "write" | "pwrite64" => calls.push(Call::Write {
                fd: first_arg,
                data: args.to_owned(),
            }),
            "fdatasync" | "fsync" => calls.push(Call::Fdatasync { fd: first_arg }),
            _ => {}
        }
    }
    calls
}

#[test]
fn every_ack_follows_an_fdatasync_of_its_log_write() {
    if Command::new("strace").arg("-V").output().is_err() {
        // .ci/run installs strace: under CI a missing strace is a failure, not a skip.
        assert!(
            std::env::var_os("CI").is_none(),
            "strace is required under CI"
        );
        println!("SKIPPED: strace is not installed (apt-get install strace)");
        return;
    }
    let dir = TempDir::new("fsync");
    let trace_file = dir.path().with_extension("strace");
    let status = Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-s",
            "65536",
            "-e",
            "trace=openat,write,pwrite64,fdatasync,fsync",
            "-o",
        ])
        .arg(&trace_file)
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "fsync_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let trace = std::fs::read_to_string(&trace_file).unwrap();
    let _ = std::fs::remove_file(&trace_file);
    let calls = parse(&trace);

    let mut wal_fds = Vec::new();
    // For each WAL fd: has everything written to it so far been fdatasync'ed?
    let mut written_unsynced: HashMap<String, Vec<String>> = HashMap::new();
    let mut durable_ids: std::collections::HashSet<String> = Default::default();
    let mut acks = 0;
    for call in &calls {
        match call {
            Call::OpenWal { fd } => wal_fds.push(fd.clone()),
            Call::Write { fd, data } if wal_fds.contains(fd) => {
                written_unsynced
                    .entry(fd.clone())
                    .or_default()
                    .push(data.clone());
            }
            Call::Fdatasync { fd } if wal_fds.contains(fd) => {
                for data in written_unsynced.remove(fd).unwrap_or_default() {
                    for piece in data.split("fsync-").skip(1) {
                        if let Some((id, _)) = piece.split_once("-end") {
                            durable_ids.insert(format!("fsync-{id}-end"));
                        }
                    }
                }
            }
            Call::Write { fd, data } if fd == "1" && data.contains("ACK ") => {
                let id = data
                    .split("ACK ")
                    .nth(1)
                    .and_then(|d| d.split("\\n").next())
                    .unwrap_or_default();
                assert!(
                    durable_ids.contains(id),
                    "{id} was acknowledged before its log write was fdatasync'ed"
                );
                acks += 1;
            }
            _ => {}
        }
    }
    assert!(
        !wal_fds.is_empty(),
        "no log file was opened: the trace is not what this test expects"
    );
    assert_eq!(acks, 200, "expected 200 acknowledgements in the trace");
    println!("{acks} acknowledgements, each after the fdatasync of the write carrying its event");
}
