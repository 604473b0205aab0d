//! Helpers shared by the integration tests: temporary store directories and
//! signed Bluum deliveries.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use webhook_inbox::{Scheme, Signer};

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
