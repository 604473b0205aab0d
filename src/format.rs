//! The shape of a signature header, and its parser.
//!
//! The parser is pure and allocation-free: it walks the header's bytes and hands
//! out sub-slices. It never panics, whatever the input (it is a cargo-fuzz target).

/// How a signature header is laid out: what separates its entries, and what
/// separates an entry's label (version) from its value.
///
/// | preset | header example |
/// |---|---|
/// | [`STANDARD`](Self::STANDARD) | `v1,K5oZ… v1a,hnO3…` |
/// | [`KEY_VALUE_LIST`](Self::KEY_VALUE_LIST) | `t=1492774577,v1=5257a8…,v1=…` (Stripe) |
/// | [`LABELED`](Self::LABELED) | `sha256=757107…` (GitHub), `v0=a2114d…` (Slack) |
/// | [`BARE`](Self::BARE) | `plW8VGqq0nDM…` (Shopify) |
///
/// ```
/// use webhook_inbox::SignatureFormat;
///
/// let entries: Vec<_> = SignatureFormat::KEY_VALUE_LIST
///     .entries(b"t=1492774577,v1=abcd,v0=ef")
///     .map(|e| (e.label, e.value))
///     .collect();
/// assert_eq!(entries, [
///     (&b"t"[..], &b"1492774577"[..]),
///     (&b"v1"[..], &b"abcd"[..]),
///     (&b"v0"[..], &b"ef"[..]),
/// ]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SignatureFormat {
    entry_separator: Option<u8>,
    label_separator: Option<u8>,
}

impl SignatureFormat {
    /// Standard Webhooks: entries separated by spaces, `label,value`.
    ///
    /// ```
    /// use webhook_inbox::SignatureFormat;
    ///
    /// let first = SignatureFormat::STANDARD.entries(b"v1,abc v1a,def").next().unwrap();
    /// assert_eq!((first.label, first.value), (&b"v1"[..], &b"abc"[..]));
    /// ```
    pub const STANDARD: Self = Self::new(Some(b' '), Some(b','));

    /// Stripe: entries separated by commas, `label=value`.
    ///
    /// ```
    /// use webhook_inbox::SignatureFormat;
    ///
    /// assert_eq!(SignatureFormat::KEY_VALUE_LIST.entries(b"t=1,v1=ab").count(), 2);
    /// ```
    pub const KEY_VALUE_LIST: Self = Self::new(Some(b','), Some(b'='));

    /// One entry, `label=value` (GitHub's `sha256=…`, Slack's `v0=…`).
    ///
    /// ```
    /// use webhook_inbox::SignatureFormat;
    ///
    /// let e = SignatureFormat::LABELED.entries(b"sha256=00ff").next().unwrap();
    /// assert_eq!((e.label, e.value), (&b"sha256"[..], &b"00ff"[..]));
    /// ```
    pub const LABELED: Self = Self::new(None, Some(b'='));

    /// One entry, the encoded signature alone, no label (Shopify).
    ///
    /// ```
    /// use webhook_inbox::SignatureFormat;
    ///
    /// let e = SignatureFormat::BARE.entries(b"plW8VGqq=").next().unwrap();
    /// assert_eq!((e.label, e.value), (&b""[..], &b"plW8VGqq="[..]));
    /// ```
    pub const BARE: Self = Self::new(None, None);

    /// A custom layout: `entry_separator` splits entries (`None`: the header is one
    /// entry), `label_separator` splits each entry's label from its value at its first
    /// occurrence (`None`: entries carry no label).
    ///
    /// ```
    /// use webhook_inbox::SignatureFormat;
    ///
    /// let semicolons = SignatureFormat::new(Some(b';'), Some(b':'));
    /// assert_eq!(semicolons.entries(b"v1:aa;v1:bb").count(), 2);
    /// ```
    pub const fn new(entry_separator: Option<u8>, label_separator: Option<u8>) -> Self {
        Self {
            entry_separator,
            label_separator,
        }
    }

    /// The separator between entries, if the header can hold several.
    ///
    /// ```
    /// use webhook_inbox::SignatureFormat;
    ///
    /// assert_eq!(SignatureFormat::STANDARD.entry_separator(), Some(b' '));
    /// ```
    pub const fn entry_separator(&self) -> Option<u8> {
        self.entry_separator
    }

    /// The separator between an entry's label and its value, if entries are labeled.
    ///
    /// ```
    /// use webhook_inbox::SignatureFormat;
    ///
    /// assert_eq!(SignatureFormat::BARE.label_separator(), None);
    /// ```
    pub const fn label_separator(&self) -> Option<u8> {
        self.label_separator
    }

    /// Splits `header` into entries, lazily and without allocating.
    ///
    /// Empty entries (doubled separators) are skipped; spaces and tabs around an
    /// entry are trimmed. An entry without a label separator has an empty label
    /// and the whole entry as its value, so it can only match an unlabeled scheme.
    ///
    /// ```
    /// use webhook_inbox::SignatureFormat;
    ///
    /// let mut it = SignatureFormat::STANDARD.entries(b"  v1,  garbage v1,");
    /// let a = it.next().unwrap();
    /// assert_eq!((a.label, a.value), (&b"v1"[..], &b""[..]));
    /// let b = it.next().unwrap();
    /// assert_eq!((b.label, b.value), (&b""[..], &b"garbage"[..]));
    /// let c = it.next().unwrap();
    /// assert_eq!((c.label, c.value), (&b"v1"[..], &b""[..]));
    /// assert!(it.next().is_none());
    /// ```
    pub fn entries<'a>(&self, header: &'a [u8]) -> SignatureEntries<'a> {
        SignatureEntries {
            rest: header,
            format: *self,
        }
    }

    /// Writes one entry in this format: `label`, the label separator, `value`.
    pub(crate) fn write_entry(&self, out: &mut String, label: &str, value: &str) {
        if let (Some(sep), false) = (self.label_separator, label.is_empty()) {
            out.push_str(label);
            out.push(char::from(sep));
        }
        out.push_str(value);
    }
}

/// One `label`/`value` pair of a signature header, borrowed from it.
///
/// ```
/// use webhook_inbox::{SignatureEntry, SignatureFormat};
///
/// let e: SignatureEntry<'_> = SignatureFormat::LABELED.entries(b"v0=ab").next().unwrap();
/// assert_eq!(e.label, b"v0");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignatureEntry<'a> {
    /// The version label (`v1`, `sha256`, `t`), empty for unlabeled formats.
    pub label: &'a [u8],
    /// The encoded signature (or, for Stripe's `t`, the timestamp).
    pub value: &'a [u8],
}

/// Iterator over the entries of a signature header; see [`SignatureFormat::entries`].
///
/// ```
/// use webhook_inbox::SignatureFormat;
///
/// let n = SignatureFormat::STANDARD.entries(b"v1,a v1,b v1,c").count();
/// assert_eq!(n, 3);
/// ```
#[derive(Debug, Clone)]
pub struct SignatureEntries<'a> {
    rest: &'a [u8],
    format: SignatureFormat,
}

impl<'a> Iterator for SignatureEntries<'a> {
    type Item = SignatureEntry<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let raw = match self.format.entry_separator {
                Some(sep) => match memchr::memchr(sep, self.rest) {
                    Some(at) => {
                        let (head, tail) = self.rest.split_at(at);
                        self.rest = tail.get(1..).unwrap_or_default();
                        head
                    }
                    None => std::mem::take(&mut self.rest),
                },
                None => std::mem::take(&mut self.rest),
            };
            let entry = trim(raw);
            if entry.is_empty() {
                continue;
            }
            let split = self
                .format
                .label_separator
                .and_then(|sep| memchr::memchr(sep, entry));
            return Some(match split {
                Some(at) => {
                    let (label, value) = entry.split_at(at);
                    SignatureEntry {
                        label: trim(label),
                        value: trim(value.get(1..).unwrap_or_default()),
                    }
                }
                None => SignatureEntry {
                    label: entry.get(..0).unwrap_or_default(),
                    value: entry,
                },
            });
        }
    }
}

fn trim(bytes: &[u8]) -> &[u8] {
    let is_space = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes
        .iter()
        .position(|b| !is_space(b))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_space(b))
        .map_or(start, |i| i + 1);
    bytes.get(start..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripe_header_splits_into_labeled_entries() {
        let got: Vec<_> = SignatureFormat::KEY_VALUE_LIST
            .entries(b"t=1, v1=aa ,,v1=bb")
            .map(|e| (e.label, e.value))
            .collect();
        assert_eq!(
            got,
            [
                (&b"t"[..], &b"1"[..]),
                (&b"v1"[..], &b"aa"[..]),
                (&b"v1"[..], &b"bb"[..])
            ]
        );
    }

    #[test]
    fn labeled_value_keeps_later_separators() {
        let e = SignatureFormat::LABELED.entries(b"sha256=a=b").next();
        assert_eq!(
            e,
            Some(SignatureEntry {
                label: b"sha256",
                value: b"a=b"
            })
        );
    }

    #[test]
    fn separators_only_yield_nothing() {
        assert_eq!(SignatureFormat::STANDARD.entries(b"    ").count(), 0);
        assert_eq!(SignatureFormat::KEY_VALUE_LIST.entries(b",,,").count(), 0);
        assert_eq!(SignatureFormat::BARE.entries(b"").count(), 0);
    }
}
