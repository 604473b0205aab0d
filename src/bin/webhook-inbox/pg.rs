//! PostgreSQL stores: telling a URL from a directory, and keeping the
//! password out of everything printed.
//!
//! A URL's password can sit in its user info (`postgres://user:pw@host/db`)
//! or in its query (`?password=pw`); both are replaced by `***` in the label
//! the commands print, and any message that might quote the URL (a driver
//! error, say) has the password itself scrubbed too, raw or decoded.

use std::borrow::Cow;

/// Whether `text` is a PostgreSQL URL (`postgres://` or `postgresql://`,
/// any case) rather than a directory.
pub fn is_url(text: &str) -> bool {
    scheme_end(text).is_some()
}

/// The byte offset just past `://` when `text` starts with a PostgreSQL scheme.
fn scheme_end(text: &str) -> Option<usize> {
    ["postgres://", "postgresql://"].iter().find_map(|scheme| {
        text.get(..scheme.len())
            .filter(|head| head.eq_ignore_ascii_case(scheme))
            .map(|_| scheme.len())
    })
}

/// `url` with its password replaced by `***`, wherever it is given, and
/// control characters escaped: safe to print.
///
/// The user info is taken to end at the *last* `@`, so a password holding a
/// raw `@` is hidden whole (the driver splits at the first, so it never sees
/// more than this hides).
pub fn redact(url: &str) -> String {
    let Some(start) = scheme_end(url) else {
        return crate::common::clean(url).into_owned();
    };
    let (scheme, rest) = url.split_at(start);
    let rest = match rest.rfind('@') {
        Some(at) => {
            let (userinfo, host) = rest.split_at(at);
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:***{host}"),
                None => rest.to_owned(),
            }
        }
        None => rest.to_owned(),
    };
    let redacted = match rest.split_once('?') {
        Some((path, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|param| match param.split_once('=') {
                    Some((key, _)) if is_password_key(key) => format!("{key}=***"),
                    _ => param.to_owned(),
                })
                .collect();
            format!("{scheme}{path}?{}", params.join("&"))
        }
        None => format!("{scheme}{rest}"),
    };
    crate::common::clean(&redacted).into_owned()
}

fn is_password_key(key: &str) -> bool {
    let decoded = percent_decode(key);
    decoded.trim().eq_ignore_ascii_case("password")
}

/// Every form in which `url`'s password could be quoted: as written in the
/// URL and percent-decoded, from the user info and from the query.
fn passwords(url: &str) -> Vec<String> {
    let Some(start) = scheme_end(url) else {
        return Vec::new();
    };
    let rest = &url[start..];
    let mut found = Vec::new();
    // The user info up to the first `@` (what the driver reads) and up to the last.
    for at in [rest.find('@'), rest.rfind('@')].into_iter().flatten() {
        if let Some((_, password)) = rest[..at].split_once(':') {
            found.push(password.to_owned());
        }
    }
    if let Some((_, query)) = rest.split_once('?') {
        for param in query.split('&') {
            if let Some((key, value)) = param.split_once('=')
                && is_password_key(key)
            {
                found.push(value.to_owned());
            }
        }
    }
    let decoded: Vec<String> = found
        .iter()
        .map(|p| percent_decode(p).into_owned())
        .collect();
    found.extend(decoded);
    found.retain(|p| !p.is_empty());
    found.sort_unstable_by_key(|p| std::cmp::Reverse(p.len()));
    found.dedup();
    found
}

/// `message` with `url` (whole) replaced by its redacted form and every form
/// of its password replaced by `***`.
pub fn scrub(message: &str, url: &str) -> String {
    let mut out = message.replace(url, &redact(url));
    for password in passwords(url) {
        out = out.replace(&password, "***");
    }
    out
}

/// `%XX` sequences decoded (invalid ones kept as written; invalid UTF-8 lossily).
fn percent_decode(text: &str) -> Cow<'_, str> {
    if !text.contains('%') {
        return Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_told_from_directories() {
        for url in [
            "postgres://localhost/hooks",
            "postgresql://u:p@db/hooks",
            "POSTGRES://db/hooks",
        ] {
            assert!(is_url(url), "{url}");
        }
        for dir in [
            "/var/lib/hooks",
            "postgres",
            "./postgres://x",
            "",
            "pg://db",
        ] {
            assert!(!is_url(dir), "{dir}");
        }
    }

    #[test]
    fn passwords_are_redacted_wherever_they_are() {
        let cases = [
            (
                "postgres://hooks:s3cret@db:5432/hooks",
                "postgres://hooks:***@db:5432/hooks",
            ),
            ("postgres://hooks@db/hooks", "postgres://hooks@db/hooks"),
            ("postgres://db/hooks", "postgres://db/hooks"),
            ("postgresql://u:p@ss:w@rd@db/x", "postgresql://u:***@db/x"),
            (
                "postgres://u@db/x?sslmode=disable&password=s3cret",
                "postgres://u@db/x?sslmode=disable&password=***",
            ),
            (
                "postgres://u@db/x?PassWord=s3cret",
                "postgres://u@db/x?PassWord=***",
            ),
            (
                "postgres://u@db/x?pass%77ord=s3cret",
                "postgres://u@db/x?pass%77ord=***",
            ),
            ("postgres://u:p\n@db/x", "postgres://u:***@db/x"),
            ("postgres://u@db/x\x1b[31m", "postgres://u@db/x\\u{1b}[31m"),
        ];
        for (url, expected) in cases {
            assert_eq!(redact(url), expected, "{url}");
        }
    }

    #[test]
    fn messages_are_scrubbed_of_every_form_of_the_password() {
        let url = "postgres://hooks:p%40ss%2Fword@db/hooks?password=other";
        let message = format!("failed for {url}: p@ss/word, p%40ss%2Fword and other");
        let scrubbed = scrub(&message, url);
        for secret in ["p@ss/word", "p%40ss%2Fword", "other"] {
            assert!(!scrubbed.contains(secret), "{secret} in {scrubbed}");
        }
        assert!(
            scrubbed.contains("postgres://hooks:***@db/hooks"),
            "{scrubbed}"
        );
        assert_eq!(
            scrub("no password here", "postgres://db/x"),
            "no password here"
        );
    }

    #[test]
    fn percent_decoding_keeps_what_is_not_an_escape() {
        assert_eq!(percent_decode("a%40b"), "a@b");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%e2%82%ac"), "€");
    }
}
