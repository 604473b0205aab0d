//! How a stored event is shown: as a JSON object (`--json`), and its body as
//! text — JSON re-indented, other text escaped, other bytes as a hex dump.

use std::fmt::Write as _;

use base64::Engine as _;
use serde_json::{Value, json};
use webhook_inbox::{EventState, StoredEvent};

use crate::time;

// The dashboard's file, compiled in here too: one way to show a body.
#[path = "../../admin/body_view.rs"]
mod body_view;
use body_view::{hex_dump, reindent};

/// The last recorded error, if any.
pub fn last_error(e: &StoredEvent) -> Option<&str> {
    e.errors.last().map(|a| a.error.as_str())
}

/// When the event is next due (retrying) or since when it is dead.
pub fn next_or_dead(e: &StoredEvent) -> Option<std::time::SystemTime> {
    match e.state {
        EventState::Dead => e.dead_at,
        _ => e.next_attempt,
    }
}

/// The event as a JSON object; `full` adds the headers and the body (as
/// text when it is UTF-8, else base64, saying which in `body_encoding`).
pub fn event_json(e: &StoredEvent, full: bool) -> Value {
    let at = |t: Option<std::time::SystemTime>| t.map(time::utc_millis);
    let mut object = json!({
        "seq": e.seq,
        "source": e.source,
        "id": e.id,
        "type": e.event_type,
        "state": e.state.to_string(),
        "attempts": e.attempts,
        "received_at": time::utc_millis(e.received_at),
        "next_attempt": at(e.next_attempt),
        "dead_at": at(e.dead_at),
        "last_error": last_error(e),
        "errors": e.errors.iter().map(|a| json!({
            "attempt": a.attempt,
            "at": time::utc_millis(a.at),
            "error": a.error,
        })).collect::<Vec<_>>(),
    });
    if full && let Value::Object(map) = &mut object {
        let headers = e
            .headers
            .iter()
            .map(|(name, value)| json!({ "name": name, "value": value }))
            .collect();
        map.insert("headers".into(), Value::Array(headers));
        let (encoding, body) = match std::str::from_utf8(&e.body) {
            Ok(text) => ("utf-8", text.to_owned()),
            Err(_) => (
                "base64",
                base64::engine::general_purpose::STANDARD.encode(&e.body),
            ),
        };
        map.insert("body_encoding".into(), Value::from(encoding));
        map.insert("body".into(), Value::from(body));
    }
    object
}

/// The body for a terminal, with a one-line description of what it is.
pub fn body_text(body: &[u8]) -> (&'static str, String) {
    if body.is_empty() {
        return ("empty", String::new());
    }
    if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok()
        && let Ok(text) = std::str::from_utf8(body)
    {
        return ("JSON", escape_json_controls(&reindent(text)));
    }
    match std::str::from_utf8(body) {
        Ok(text) => ("text", escape_text(text)),
        Err(_) => ("not UTF-8, shown as hex", hex_dump(body)),
    }
}

/// Raw DEL and C1 controls, which valid JSON may hold inside strings
/// (U+009B starts a terminal escape), written as `\uXXXX` escapes: the text
/// stays the same JSON and is terminal-safe. The re-indenter writes no other
/// control than its newlines.
fn escape_json_controls(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_control() && c != '\n' {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

/// Text with control characters escaped, except newlines and tabs.
fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_reindented_in_the_senders_order_and_digits() {
        let body = br#"{"z":1.10,"a":{"s":"x,{\"y\":[]}"},"e":[],"o":{ },"l":[1,[2]]}"#;
        let (kind, text) = body_text(body);
        assert_eq!(kind, "JSON");
        assert_eq!(
            text,
            "{\n  \"z\": 1.10,\n  \"a\": {\n    \"s\": \"x,{\\\"y\\\":[]}\"\n  },\n  \
             \"e\": [],\n  \"o\": {},\n  \"l\": [\n    1,\n    [\n      2\n    ]\n  ]\n}"
        );
        // Re-indenting changes nothing but whitespace.
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed, serde_json::from_slice::<Value>(body).unwrap());
        assert_eq!(body_text(b" 42 ").1, "42");
    }

    #[test]
    fn raw_del_and_c1_controls_inside_json_strings_are_escaped() {
        let body = "{\"a\":\"x\u{9b}31m\u{7f}\"}";
        let (kind, text) = body_text(body.as_bytes());
        assert_eq!(kind, "JSON");
        assert!(!text.contains(['\u{9b}', '\u{7f}']), "{text:?}");
        assert!(text.contains("\\u009b31m\\u007f"), "{text:?}");
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed, serde_json::from_str::<Value>(body).unwrap());
    }

    #[test]
    fn deep_json_is_indented_at_most_64_levels() {
        // Unbounded indentation grows with the square of the depth: 2,000
        // levels gave 8 MB; capped, each line is at most 64 levels deep.
        let depth = 2_000;
        let body = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let (kind, text) = body_text(body.as_bytes());
        assert_eq!(kind, "JSON");
        assert!(
            text.lines().all(|l| l.len() <= 2 * 64 + 2),
            "a line too deep"
        );
        assert_eq!(text.lines().count(), 2 * depth - 1);
        assert!(text.len() < 2 * depth * 140, "{}", text.len());
        assert_eq!(text.replace([' ', '\n'], ""), body);
    }

    #[test]
    fn other_bodies_are_text_or_hex() {
        assert_eq!(body_text(b""), ("empty", String::new()));
        assert_eq!(
            body_text(b"a=1&b=2\n\x1b[2J"),
            ("text", "a=1&b=2\n\\u{1b}[2J".to_owned())
        );
        let (kind, dump) = body_text(b"\xff\xfe\x00binary\x80body\n and more bytes");
        assert_eq!(kind, "not UTF-8, shown as hex");
        assert_eq!(
            dump,
            "00000000  ff fe 00 62 69 6e 61 72  79 80 62 6f 64 79 0a 20  |...binary.body. |\n\
             00000010  61 6e 64 20 6d 6f 72 65  20 62 79 74 65 73        |and more bytes|\n"
        );
    }
}
