//! Properties over generated input: sign → verify round-trips for every scheme,
//! any single-byte change fails, arbitrary headers never panic.

use proptest::prelude::*;
use webhook_inbox::{ManualClock, Scheme, SignatureFormat, Signer, Verifier};

const PRESETS: [&str; 6] = ["standard", "bluum", "stripe", "github", "slack", "shopify"];
const T: i64 = 1_700_000_000;

fn pair(scheme: &str, secret: &str) -> (Signer, Verifier) {
    let scheme = Scheme::preset(scheme).expect("preset");
    let signer = Signer::new(scheme.clone(), secret).expect("valid secret");
    let verifier = Verifier::builder(scheme)
        .secret(secret)
        .clock(ManualClock::at_unix(T))
        .build()
        .expect("valid secret");
    (signer, verifier)
}

/// Secrets valid for every preset: base64 text after `whsec_` is also plain UTF-8.
fn secret() -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<u8>(), 1..48).prop_map(|key| {
        use base64::Engine;
        format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(key)
        )
    })
}

proptest! {
    #[test]
    fn sign_then_verify_round_trips(
        scheme in proptest::sample::select(&PRESETS[..]),
        secret in secret(),
        id in "[a-zA-Z0-9_]{1,40}",
        skew in -300i64..=300,
        body in proptest::collection::vec(any::<u8>(), 0..2048),
    ) {
        let (signer, verifier) = pair(scheme, &secret);
        let headers = signer.sign(&id, T + skew, &body);
        let verified = verifier.verify(&headers, &body);
        prop_assert!(verified.is_ok(), "{scheme}: {verified:?}");
    }

    #[test]
    fn any_single_byte_change_fails(
        scheme in proptest::sample::select(&PRESETS[..]),
        secret in secret(),
        body in proptest::collection::vec(any::<u8>(), 1..512),
        which in 0usize..4,
        pos in any::<prop::sample::Index>(),
        delta in 1u8..=255,
    ) {
        let (signer, verifier) = pair(scheme, &secret);
        let mut body = body;
        let mut headers = signer.sign("msg_2WqEsf8Vd3ynLeHv", T, &body);
        let s = Scheme::preset(scheme).expect("preset");
        let position = |name: &str| headers.iter().position(|(k, _)| k.eq_ignore_ascii_case(name));
        let timestamp_header = ["webhook-timestamp", "X-Slack-Request-Timestamp"].into_iter().find_map(position);
        // Only signed parts: GitHub's and Shopify's id headers are not signed.
        let target = match which {
            1 if s.content().uses_id() => s.id_header_name().and_then(position),
            2 => timestamp_header,
            3 => position(s.signature_header_name()),
            _ => None,
        };
        let flip = |bytes: &mut Vec<u8>| {
            let i = pos.index(bytes.len());
            let before = bytes[i];
            bytes[i] = before.wrapping_add(delta);
            (before, bytes[i])
        };
        match target {
            None => { flip(&mut body); }
            Some(h) => {
                let mut bytes = std::mem::take(&mut headers[h].1).into_bytes();
                let (before, after) = flip(&mut bytes);
                // Hex is read in either case: `a` → `A` is the same signature.
                prop_assume!(!(which == 3 && before != after && before.eq_ignore_ascii_case(&after)));
                headers[h].1 = String::from_utf8_lossy(&bytes).into_owned();
            }
        }
        let result = verifier.verify(&headers, &body);
        prop_assert!(result.is_err(), "{scheme} accepted a change of part {which}: {headers:?}");
    }

    #[test]
    fn arbitrary_headers_never_panic(
        scheme in proptest::sample::select(&PRESETS[..]),
        values in proptest::collection::vec(".{0,120}", 3),
        body in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let (_, verifier) = pair(scheme, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let s = Scheme::preset(scheme).expect("preset");
        let headers = [
            (s.signature_header_name().to_owned(), values[0].clone()),
            ("webhook-id".to_owned(), values[1].clone()),
            ("webhook-timestamp".to_owned(), values[2].clone()),
            ("X-Slack-Request-Timestamp".to_owned(), values[2].clone()),
        ];
        let _ = verifier.verify(&headers, &body);
    }

    #[test]
    fn parser_yields_sub_slices_of_its_input(header in proptest::collection::vec(any::<u8>(), 0..256)) {
        let range = header.as_ptr_range();
        for format in [SignatureFormat::STANDARD, SignatureFormat::KEY_VALUE_LIST, SignatureFormat::LABELED, SignatureFormat::BARE] {
            for entry in format.entries(&header) {
                for part in [entry.label, entry.value] {
                    let r = part.as_ptr_range();
                    prop_assert!(part.is_empty() || (range.start <= r.start && r.end <= range.end));
                }
                prop_assert!(!(entry.label.is_empty() && entry.value.is_empty()));
            }
        }
    }
}
