//! Power-loss safety, checked at the system-call level: every `Accepted` is
//! returned only after the log write that carries the event AND an `fdatasync`
//! of that log file have completed; and the worker's observer hears of a
//! handled event only after the `fdatasync` of the log write carrying its
//! `forget` record.
//!
//! The parent runs this test binary as a child under `strace -f`, the child
//! ingests from several threads and writes `ACK <id>` to stdout after each
//! acknowledgement, runs a worker whose observer writes `DONE <seq>` for each
//! handled event, and the parent reads the trace in order, decoding the log's
//! frames from the traced writes.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::process::Command;

use common::{SECRET, TempDir, bluum_body, bluum_headers};
use webhook_inbox::{
    Event, Inbox, Ingested, Report, Router, Scheme, Verifier, Worker, WorkerConfig,
};

const CHILD_ENV: &str = "WEBHOOK_INBOX_FSYNC_CHILD";

#[test]
#[ignore = "run by `every_ack_and_every_success_follows_an_fdatasync_of_its_log_write` under strace"]
fn fsync_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let inbox = Inbox::open(&dir).expect("open");
    let config = WorkerConfig::default().observe(|e: &Event, r: &Report| {
        if matches!(r, Report::Handled) {
            let mut out = std::io::stdout().lock();
            out.write_all(format!("DONE {}\n", e.seq()).as_bytes())
                .unwrap();
            out.flush().unwrap();
        }
    });
    let router = Router::builder()
        .on("*", |_: &Event| Ok(()))
        .build()
        .expect("router");
    let worker = Worker::start(&inbox, router, config).expect("worker");
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
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while inbox.stats().pending > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    worker.shutdown().expect("shutdown");
}

/// The bytes of the first string argument of a traced call, as strace
/// escapes them (`\n`, `\"`, `\\`, octal `\NNN`, and so on).
fn unescape(args: &str) -> Vec<u8> {
    let Some(start) = args.find('"') else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut chars = args[start + 1..].bytes().peekable();
    while let Some(c) = chars.next() {
        match c {
            b'"' => break,
            b'\\' => match chars.next() {
                Some(b'n') => out.push(b'\n'),
                Some(b't') => out.push(b'\t'),
                Some(b'r') => out.push(b'\r'),
                Some(b'v') => out.push(0x0b),
                Some(b'f') => out.push(0x0c),
                Some(d @ b'0'..=b'7') => {
                    let mut v = u32::from(d - b'0');
                    for _ in 0..2 {
                        match chars.peek() {
                            Some(&n @ b'0'..=b'7') => {
                                v = v * 8 + u32::from(n - b'0');
                                chars.next();
                            }
                            _ => break,
                        }
                    }
                    out.push(v as u8);
                }
                Some(other) => out.push(other),
                None => break,
            },
            other => out.push(other),
        }
    }
    out
}

/// The seqs of the `forget` records among the log frames in `bytes` (one
/// write of whole frames: `[len u32 LE][crc u32][lsn u64][payload]`).
fn forgotten(bytes: &[u8]) -> Vec<u64> {
    let mut seqs = Vec::new();
    let mut at = 0;
    while let Some(header) = bytes.get(at..at + 16) {
        let len = (u32::from_le_bytes([header[0], header[1], header[2], header[3]]) & 0x7fff_ffff)
            as usize;
        let Some(payload) = bytes.get(at + 16..at + 16 + len) else {
            break;
        };
        if let [2, seq @ ..] = payload
            && let Ok(seq) = <[u8; 8]>::try_from(seq)
        {
            seqs.push(u64::from_be_bytes(seq));
        }
        at += 16 + len;
    }
    seqs
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
fn every_ack_and_every_success_follows_an_fdatasync_of_its_log_write() {
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
            "1048576",
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
    let mut durable_forgets: std::collections::HashSet<u64> = Default::default();
    let mut acks = 0;
    let mut dones = 0;
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
                    durable_forgets.extend(forgotten(&unescape(&data)));
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
            Call::Write { fd, data } if fd == "1" && data.contains("DONE ") => {
                let seq: u64 = data
                    .split("DONE ")
                    .nth(1)
                    .and_then(|d| d.split("\\n").next())
                    .and_then(|d| d.parse().ok())
                    .expect("a seq after DONE");
                assert!(
                    durable_forgets.contains(&seq),
                    "the observer heard of event {seq}'s success before the fdatasync of its forget record"
                );
                dones += 1;
            }
            _ => {}
        }
    }
    assert!(
        !wal_fds.is_empty(),
        "no log file was opened: the trace is not what this test expects"
    );
    assert_eq!(acks, 200, "expected 200 acknowledgements in the trace");
    assert_eq!(dones, 200, "expected 200 handled events in the trace");
    println!(
        "{acks} acknowledgements and {dones} successes told to the observer, each after the fdatasync of the write carrying its record"
    );
}
