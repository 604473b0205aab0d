//! How a stored event is shown: as a JSON object (`--json`), and its body as
//! text — JSON re-indented, other text escaped, other bytes as a hex dump.

use std::fmt::Write as _;

use base64::Engine as _;
use serde_json::{Value, json};
use webhook_inbox::{EventState, StoredEvent};

use crate::time;

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
        return ("JSON", reindent(text));
    }
    match std::str::from_utf8(body) {
        Ok(text) => ("text", escape_text(text)),
        Err(_) => ("not UTF-8, shown as hex", hex_dump(body)),
    }
}

/// Re-indents valid JSON text, two spaces per level, keeping the sender's
/// key order and every number and string exactly as sent (parsing into a
/// `serde_json::Value` would sort keys and could round numbers). Control
/// characters inside strings are written as `\uXXXX` escapes, so the output is
/// terminal-safe.
fn reindent(json: &str) -> String {
    let mut out = String::with_capacity(json.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.push_str(&"  ".repeat(depth));
    };
    let mut chars = json.chars().peekable();
    while let Some(c) = chars.next() {
        if in_string {
            if c.is_control() {
                // DEL and C1 controls (U+009B starts a terminal escape) may
                // occur raw in valid JSON strings: write them escaped.
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            } else {
                out.push(c);
            }
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                // Skip whitespace to see whether the container is empty.
                while chars.peek().is_some_and(|n| n.is_ascii_whitespace()) {
                    chars.next();
                }
                if matches!(chars.peek(), Some('}' | ']')) {
                    out.extend(chars.next());
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_ascii_whitespace() => {}
            c => out.push(c),
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

/// `00000000  ff fe 00 62 …  |...b|`, 16 bytes a line.
fn hex_dump(bytes: &[u8]) -> String {
    let mut out = String::new();
    for (i, chunk) in bytes.chunks(16).enumerate() {
        let _ = write!(out, "{:08x} ", i * 16);
        for j in 0..16 {
            if j % 8 == 0 {
                out.push(' ');
            }
            match chunk.get(j) {
                Some(b) => {
                    let _ = write!(out, "{b:02x} ");
                }
                None => out.push_str("   "),
            }
        }
        out.push_str(" |");
        out.extend(chunk.iter().map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                char::from(b)
            } else {
                '.'
            }
        }));
        out.push_str("|\n");
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
