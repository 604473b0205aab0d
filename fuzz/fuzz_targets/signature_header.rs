//! Fuzzes the allocation-free signature-header parser, `SignatureFormat::entries`.
//!
//! For the four presets and a format made from the input's first two bytes, the
//! iteration must end, hand out only sub-slices of the input (in order, without
//! overlap), and agree entry for entry with a naive allocating reference parser
//! written from the documented contract.
#![no_main]

use libfuzzer_sys::fuzz_target;
use webhook_inbox::{SignatureEntry, SignatureFormat};

fuzz_target!(|data: &[u8]| {
    let presets = [
        SignatureFormat::STANDARD,
        SignatureFormat::KEY_VALUE_LIST,
        SignatureFormat::LABELED,
        SignatureFormat::BARE,
    ];
    for format in presets {
        check(format, data);
    }
    if let [a, b, rest @ ..] = data {
        // Both separators present, then each one absent: all four shapes of custom formats.
        check(SignatureFormat::new(Some(*a), Some(*b)), rest);
        check(SignatureFormat::new(Some(*a), None), rest);
        check(SignatureFormat::new(None, Some(*b)), rest);
    }
});

fn check(format: SignatureFormat, header: &[u8]) {
    let expected = reference(format, header);
    let mut entries = format.entries(header);
    let mut got = Vec::new();
    let mut previous_end = 0;
    for entry in entries.by_ref() {
        // Every entry takes at least one byte, so more than `len` entries means a loop.
        assert!(got.len() < header.len(), "more entries than input bytes");
        let label = offset(header, entry.label);
        let value = offset(header, entry.value);
        // In order and disjoint: the label comes first, then the value.
        for (start, end) in label.iter().chain(value.iter()) {
            assert!(*start >= previous_end, "entries overlap or go backwards");
            previous_end = *end;
        }

        for part in [entry.label, entry.value] {
            assert!(
                !part.starts_with(b" ") && !part.starts_with(b"\t"),
                "not trimmed"
            );
            assert!(
                !part.ends_with(b" ") && !part.ends_with(b"\t"),
                "not trimmed"
            );
            if let Some(sep) = format.entry_separator() {
                assert!(!part.contains(&sep), "an entry separator inside an entry");
            }
        }
        match format.label_separator() {
            Some(sep) => assert!(!entry.label.contains(&sep), "a label separator in a label"),
            None => assert!(entry.label.is_empty(), "a label in an unlabeled format"),
        }
        if entry.label.is_empty() && entry.value.is_empty() {
            // Only a lone label separator (`=`, ` , `) gives an entry with nothing
            // on either side: empty *entries* are skipped, empty halves are not.
            assert!(
                format.label_separator().is_some(),
                "an empty entry from an unlabeled format"
            );
        }
        got.push((entry, label, value));
    }
    // Fused: once done, it stays done.
    assert!(entries.next().is_none());
    assert!(entries.next().is_none());
    assert_eq!(
        got.len(),
        expected.len(),
        "differs from the reference parser"
    );
    for ((entry, label, value), (want_label, want_value)) in got.iter().zip(&expected) {
        same(header, entry.label, *label, *want_label);
        same(header, entry.value, *value, *want_value);
    }
    // A cloned iterator replays the same entries.
    let replay: Vec<SignatureEntry<'_>> = format.entries(header).clone().collect();
    assert!(replay.iter().eq(got.iter().map(|(entry, _, _)| entry)));
}

/// The `(start, end)` of `part` inside `whole`, asserting that a non-empty
/// `part` is a sub-slice of it. An empty part has no bytes to misplace: the
/// parser hands out a static `&[]` as the label of unlabeled entries, so its
/// address is not checked (`None` when it lies outside `whole`).
fn offset(whole: &[u8], part: &[u8]) -> Option<(usize, usize)> {
    let base = whole.as_ptr() as usize;
    let start = part.as_ptr() as usize;
    let inside = start >= base && start + part.len() <= base + whole.len();
    assert!(inside || part.is_empty(), "not a sub-slice of the header");
    inside.then(|| (start - base, start - base + part.len()))
}

/// `part` (found at `at`) is what the reference parser expects at `want`.
fn same(header: &[u8], part: &[u8], at: Option<(usize, usize)>, want: (usize, usize)) {
    assert_eq!(
        part,
        &header[want.0..want.1],
        "differs from the reference parser"
    );
    if !part.is_empty() {
        assert_eq!(at, Some(want), "right bytes, wrong place");
    }
}

/// The documented contract, the slow way: split on the entry separator, trim
/// spaces and tabs, skip empty entries, split each at its first label separator
/// and trim both halves. Returns byte ranges of the label and value.
fn reference(format: SignatureFormat, header: &[u8]) -> Vec<((usize, usize), (usize, usize))> {
    let pieces: Vec<(usize, usize)> = match format.entry_separator() {
        Some(sep) => {
            let mut out = Vec::new();
            let mut start = 0;
            for (i, &b) in header.iter().enumerate() {
                if b == sep {
                    out.push((start, i));
                    start = i + 1;
                }
            }
            out.push((start, header.len()));
            out
        }
        None => vec![(0, header.len())],
    };
    let mut out = Vec::new();
    for (start, end) in pieces {
        let (start, end) = trim(header, start, end);
        if start == end {
            continue;
        }
        let at = format
            .label_separator()
            .and_then(|sep| header[start..end].iter().position(|&b| b == sep));
        match at {
            Some(at) => {
                let label = trim(header, start, start + at);
                let value = trim(header, start + at + 1, end);
                out.push((label, value));
            }
            None => out.push(((start, start), (start, end))),
        }
    }
    out
}

fn trim(header: &[u8], mut start: usize, mut end: usize) -> (usize, usize) {
    let space = |b: u8| b == b' ' || b == b'\t';
    while start < end && space(header[start]) {
        start += 1;
    }
    while end > start && space(header[end - 1]) {
        end -= 1;
    }
    (start, end)
}
