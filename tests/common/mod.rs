//! Helpers shared by the integration tests: temporary store directories and
//! signed Bluum deliveries; the test PostgreSQL database in [`postgres`].
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use webhook_inbox::{Scheme, Signer};

pub mod browser;
pub mod emulator;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod prometheus;

pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A fresh directory under the system temp dir, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "webhook-inbox-test-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A Bluum envelope of about 1 KiB.
pub fn bluum_body(event: &str, n: u64) -> Vec<u8> {
    let pad = "x".repeat(800);
    format!(
        r#"{{"event":"{event}","timestamp":"2026-11-28T14:00:00Z","data":{{"id":"ord_{n}","investor_id":"inv_42","symbol":"AAPL","side":"buy","status":"filled","filled_quantity":"10","average_price":"189.4200","note":"{pad}"}}}}"#
    )
    .into_bytes()
}

/// Headers of a Bluum delivery `id` signed now with [`SECRET`].
pub fn bluum_headers(id: &str, body: &[u8]) -> Vec<(String, String)> {
    signer().sign(id, now(), body)
}

pub fn signer() -> Signer {
    Signer::new(Scheme::bluum(), SECRET).expect("valid secret")
}

/// This test binary run as a child process for one ignored test, its stdout
/// lines collected as they arrive (for the kill -9 loops).
pub struct Child {
    process: std::process::Child,
    pub lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Child {
    /// Starts test `test` with `var` set to `value` in its environment.
    pub fn spawn(test: &str, var: &str, value: String) -> Self {
        use std::io::BufRead;
        let mut process = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                test,
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(var, value)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdout = process.stdout.take().unwrap();
        let lines: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
        let sink = std::sync::Arc::clone(&lines);
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                sink.lock().unwrap().push(line);
            }
        });
        Self {
            process,
            lines,
            reader: Some(reader),
        }
    }

    /// SIGKILLs the child and returns every line it printed.
    pub fn kill(mut self) -> Vec<String> {
        self.process.kill().unwrap();
        self.process.wait().unwrap();
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        std::mem::take(&mut *self.lines.lock().unwrap())
    }
}

/// A seed from the clock, for random kill moments.
pub fn seed() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1
}

/// xorshift64: random kill moments without a dependency.
pub fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}
