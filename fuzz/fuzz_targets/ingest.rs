//! Fuzzes the whole ingest path — verify, the envelope extractor (event id
//! and type from headers or the JSON body), dedup and the store — with bodies
//! signed inside the target, so every input gets past the signature check and
//! reaches the extractor and the store.
//!
//! Input layout:
//!
//! | bytes | meaning |
//! |---|---|
//! | 1 | scheme (mod 6: standard, bluum, stripe, github, slack, shopify) |
//! | 1 | event id for schemes that take it from a header: `evt_<byte>` (256 ids per scheme, so the store stays small) |
//! | rest | the body, signed as is |
//!
//! Checked: a genuinely signed delivery is accepted, a duplicate, or refused
//! as malformed (400) or too large (413) — never 401, never a storage error,
//! never a panic — and a refusal stores nothing.
#![no_main]

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use webhook_inbox::{Durability, Inbox, Ingestor, Scheme, Signer, Verifier};

const SCHEMES: [(fn() -> Scheme, &str); 6] = [
    (Scheme::standard, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
    (Scheme::bluum, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
    (Scheme::stripe, "whsec_test_secret"),
    (Scheme::github, "It's a Secret to Everybody"),
    (Scheme::slack, "8f742231b10e8888abcd99yyyzzz85a5"),
    (Scheme::shopify, "hush"),
];

/// Schemes whose id can come from the body (Stripe's `id`, Slack's
/// `event_id`) can store a new event per input: start a fresh store after this many.
const FRESH_STORE_AFTER: u64 = 20_000;

struct Target {
    inbox: Inbox,
    ingestors: Vec<(Ingestor, Signer)>,
    dir: std::path::PathBuf,
}

impl Target {
    fn open(generation: u32) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "webhook-inbox-fuzz-ingest-{}-{generation}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        // Buffered: the fuzzer needs speed, not an fsync per input.
        let inbox = Inbox::builder(&dir)
            .durability(Durability::Buffered(std::time::Duration::from_millis(50)))
            .open()
            .expect("a store in the temp dir");
        let ingestors = SCHEMES
            .iter()
            .map(|(scheme, secret)| {
                let ingestor = inbox
                    .ingestor(Verifier::new(scheme(), [*secret]).expect("preset secret"))
                    .max_body(64 * 1024)
                    .build()
                    .expect("ingestor");
                (
                    ingestor,
                    Signer::new(scheme(), *secret).expect("preset secret"),
                )
            })
            .collect();
        Self {
            inbox,
            ingestors,
            dir,
        }
    }
}

/// Removes the stores of earlier fuzzing processes that are gone (libFuzzer
/// ends a run by exiting, with no chance to clean up).
fn remove_stale_stores() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name
            .to_str()
            .and_then(|n| n.strip_prefix("webhook-inbox-fuzz-ingest-"))
        else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or_default();
        if !pid.is_empty() && !std::path::Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

static TARGET: OnceLock<std::sync::Mutex<(Target, u32)>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let [scheme, id, body @ ..] = data else {
        return;
    };
    let mut guard = TARGET
        .get_or_init(|| {
            remove_stale_stores();
            std::sync::Mutex::new((Target::open(0), 0))
        })
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if guard.0.inbox.stats().accepted >= FRESH_STORE_AFTER {
        let generation = guard.1 + 1;
        let old = std::mem::replace(&mut guard.0, Target::open(generation));
        drop(old.ingestors);
        let _ = old.inbox.close();
        let _ = std::fs::remove_dir_all(&old.dir);
        guard.1 = generation;
    }
    let target = &guard.0;
    let (ingestor, signer) = &target.ingestors[usize::from(*scheme) % SCHEMES.len()];
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let headers = signer.sign(&format!("evt_{id}"), now, body);

    let before = target.inbox.stats();
    match ingestor.ingest(&headers, body) {
        Ok(_) => {}
        Err(e) => {
            let status = e.status();
            assert!(
                status == 400 || status == 413,
                "a genuinely signed delivery was refused with {status}: {e}"
            );
            let after = target.inbox.stats();
            assert_eq!(
                (after.accepted, after.pending),
                (before.accepted, before.pending),
                "a refused delivery stored something: {e}"
            );
        }
    }
});
