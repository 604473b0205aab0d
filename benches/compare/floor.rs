//! The machine's floor, so that every figure reads as a ratio to a physical
//! limit:
//!
//! - `fdatasync`: one thread overwrites 4 KiB of a file written (and synced)
//!   beforehand with `pwrite`, then `fdatasync`s, in a loop: the device's
//!   round trip for a durable write, with no file-system metadata to journal;
//! - the bare group-committed log at each concurrency is the `bare-log` row of
//!   the ingest table (measured there, interleaved with the others);
//! - HMAC-SHA256 of 1 KiB (key + MAC of the body), one thread.

use std::hint::black_box;
use std::os::unix::fs::FileExt;
use std::time::Instant;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use webhook_inbox::KeyFormat;

use crate::common::{self, SECRET, Settings};
use crate::fixture::{self, Latencies, Scratch};
use crate::report::{Floor, Stat};
use crate::verify;

const BLOCK: usize = 4096;
/// The file cycled through: 1 024 blocks.
const FILE_BYTES: usize = 4 << 20;

/// Operations/s and latencies of `ops` 4 KiB overwrites, each `fdatasync`ed.
fn fdatasync_loop(ops: usize) -> (f64, Latencies) {
    let dir = Scratch::new("floor");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(dir.path().join("blocks"))
        .expect("floor file");
    file.write_all_at(&vec![0xA5; FILE_BYTES], 0).expect("fill");
    file.sync_all().expect("fsync the fill");
    let block = [0x5Au8; BLOCK];
    let blocks = FILE_BYTES / BLOCK;
    let start = Instant::now();
    let nanos: Vec<u64> = (0..ops)
        .map(|i| {
            let t = Instant::now();
            file.write_all_at(&block, ((i % blocks) * BLOCK) as u64)
                .expect("pwrite");
            file.sync_data().expect("fdatasync");
            fixture::nanos_since(t)
        })
        .collect();
    (
        ops as f64 / start.elapsed().as_secs_f64(),
        Latencies::new(nanos),
    )
}

pub fn measure(settings: &Settings) -> Floor {
    let ops = if settings.quick { 300 } else { 4_000 };
    let (mut rates, mut p50, mut p99) = (vec![], vec![], vec![]);
    for round in 0..settings.rounds {
        let (rate, lat) = fdatasync_loop(ops);
        eprintln!(
            "  4 KiB pwrite + fdatasync round {}: {rate:>6.0} ops/s, p50 {:.3} ms, p99 {:.3} ms",
            round + 1,
            lat.ms(0.5),
            lat.ms(0.99)
        );
        rates.push(rate);
        p50.push(lat.ms(0.50));
        p99.push(lat.ms(0.99));
    }

    let (rounds, iterations) = verify::scale(settings);
    let key = KeyFormat::StandardWebhooks
        .derive(SECRET)
        .expect("a valid secret");
    let body = common::body(1);
    let hmac: Vec<f64> = (0..rounds)
        .map(|_| {
            1e9 / verify::time_ns(iterations, || {
                let mut mac =
                    Hmac::<Sha256>::new_from_slice(black_box(&key)).expect("any key length");
                mac.update(black_box(&body));
                black_box(mac.finalize().into_bytes());
            })
        })
        .collect();
    Floor {
        fdatasync_ops: ops,
        fdatasync_ops_per_sec: Stat::of(&rates),
        fdatasync_p50_ms: Stat::of(&p50),
        fdatasync_p99_ms: Stat::of(&p99),
        hmac_1kib_ops_per_sec: Stat::of(&hmac),
    }
}
