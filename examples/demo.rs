//! The README's demo: sign Bluum-style deliveries, tamper with some, verify all.
//!
//! Run with `cargo run --example demo`. It exits non-zero if any verdict is not
//! the expected one, so CI runs it as a check.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use webhook_inbox::{ConfigError, Inbox, Reply, Scheme, Signer, Verifier};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

struct Delivery {
    what: &'static str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    genuine: bool,
}

fn envelope(event: &str, data: &str) -> Vec<u8> {
    format!(r#"{{"event":"{event}","timestamp":"2026-11-28T14:00:00Z","data":{data}}}"#)
        .into_bytes()
}

fn deliveries(now: i64) -> Result<Vec<Delivery>, ConfigError> {
    let bluum = Signer::new(Scheme::bluum(), SECRET)?;
    let filled = envelope(
        "order.filled",
        r#"{"id":"ord_7f3a","investor_id":"inv_42","symbol":"AAPL","side":"buy","status":"filled","filled_quantity":"10","average_price":"189.4200"}"#,
    );
    let deposit = envelope(
        "transfer.deposit.completed",
        r#"{"id":"dep_19","amount":"2500.00","currency":"USD"}"#,
    );
    let kyc = envelope("kyc.verification.approved", r#"{"investor_id":"inv_42"}"#);

    let genuine = |what, id: &str, body: &[u8]| Delivery {
        what,
        headers: bluum.sign(id, now, body),
        body: body.to_vec(),
        genuine: true,
    };
    let mut out = vec![
        genuine("order.filled, as sent", "evt_001", &filled),
        genuine("transfer.deposit.completed, as sent", "evt_002", &deposit),
        genuine("kyc.verification.approved, as sent", "evt_003", &kyc),
    ];

    // The amount changed in transit.
    let mut forged = genuine("deposit with the amount changed", "evt_002", &deposit);
    forged.body = String::from_utf8_lossy(&deposit)
        .replace("2500.00", "25000.00")
        .into_bytes();
    forged.genuine = false;
    out.push(forged);

    // A proxy re-serialised the JSON: the bytes differ although the data is equal.
    let mut reserialised = genuine("order.filled, JSON re-serialised", "evt_001", &filled);
    reserialised.body = String::from_utf8_lossy(&filled)
        .replace(':', ": ")
        .into_bytes();
    reserialised.genuine = false;
    out.push(reserialised);

    // Signed with a secret that is not ours.
    let stranger = Signer::new(Scheme::bluum(), "whsec_c29tZWJvZHkgZWxzZQ==")?;
    out.push(Delivery {
        what: "order.filled, signed with another secret",
        headers: stranger.sign("evt_004", now, &filled),
        body: filled.clone(),
        genuine: false,
    });

    // A captured delivery replayed ten minutes later.
    out.push(Delivery {
        what: "order.filled, replayed 10 minutes later",
        headers: bluum.sign("evt_001", now - 600, &filled),
        body: filled.clone(),
        genuine: false,
    });

    // No signature at all.
    let mut unsigned = genuine("kyc approval without a signature", "evt_005", &kyc);
    unsigned
        .headers
        .retain(|(name, _)| name != "webhook-signature");
    unsigned.genuine = false;
    out.push(unsigned);
    Ok(out)
}

fn main() -> ExitCode {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let (verifier, deliveries) =
        match Verifier::new(Scheme::bluum(), [SECRET]).and_then(|v| Ok((v, deliveries(now)?))) {
            Ok(pair) => pair,
            Err(e) => {
                eprintln!("configuration error: {e}");
                return ExitCode::FAILURE;
            }
        };

    println!(
        "Verifying {} Bluum deliveries (scheme `bluum`, tolerance {:?})\n",
        deliveries.len(),
        verifier.tolerance()
    );
    let mut surprises = 0;
    for d in &deliveries {
        let verdict = verifier.verify(&d.headers, &d.body);
        let line = match &verdict {
            Ok(v) => format!("200 accepted  id={}", v.id().unwrap_or("-")),
            Err(e) => format!("{} rejected  {e}", e.status()),
        };
        let expected = verdict.is_ok() == d.genuine;
        surprises += usize::from(!expected);
        println!(
            "{} {:<42} {line}",
            if expected { "ok  " } else { "FAIL" },
            d.what
        );
    }
    if surprises > 0 {
        eprintln!("\n{surprises} verdict(s) differ from what was expected");
        return ExitCode::FAILURE;
    }
    println!("\nEvery genuine delivery was accepted and every tampered one rejected.");

    match ingest_all(&deliveries) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ingest failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Ingests the same deliveries (and Bluum's retry of the first) into a durable
/// inbox in a temporary directory, as an HTTP handler would.
fn ingest_all(deliveries: &[Delivery]) -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("webhook-inbox-demo-{}", std::process::id()));
    let inbox = Inbox::open(&dir)?;
    let bluum = inbox
        .ingestor(Verifier::new(Scheme::bluum(), [SECRET])?)
        .build()?;
    println!(
        "\nIngesting into {} (durable before each answer)\n",
        dir.display()
    );
    let retry = deliveries
        .first()
        .map(|d| ("Bluum retries order.filled", d));
    for (what, d) in deliveries.iter().map(|d| (d.what, d)).chain(retry) {
        let reply = Reply::from(&bluum.ingest(&d.headers, &d.body));
        println!("     {what:<42} {} {}", reply.status, reply.body);
    }
    let stats = inbox.stats();
    println!(
        "\n{} received: {} accepted, {} duplicate, {} rejected; {} pending for the handlers",
        stats.received,
        stats.accepted,
        stats.duplicates,
        stats.rejected.total(),
        stats.pending
    );
    drop(bluum);
    inbox.close()?;
    std::fs::remove_dir_all(&dir)?;
    if (stats.accepted, stats.duplicates) != (3, 1) {
        return Err("expected 3 accepted and 1 duplicate".into());
    }
    Ok(())
}
