//! Reading what the scheme needs from the request's headers, within the
//! limits: the signature entries (one pass), the timestamp entry, the id.

use super::Verifier;
use crate::error::{HeaderProblem, VerifyError};
use crate::headers::HeaderSource;
use crate::scheme::{Algorithm, Scheme, TimestampSource};

/// The most signature entries one request may carry, whatever
/// [`VerifierBuilder::max_signatures`](super::VerifierBuilder::max_signatures)
/// says: the candidates live on the stack.
pub(super) const SIGNATURE_SLOTS: usize = 16;

/// What the one pass over the signature headers found: the entries to check
/// (still encoded, borrowed from the headers), and the timestamp entry if the
/// scheme keeps its timestamp there.
pub(super) struct Candidates<'s, 'a> {
    pub(super) entries: [(Algorithm, &'a [u8]); SIGNATURE_SLOTS],
    pub(super) len: usize,
    pub(super) ignored: usize,
    pub(super) timestamp: Option<(&'s str, &'a [u8])>,
}

impl<'a> Candidates<'_, 'a> {
    pub(super) fn of(&self, algorithm: Algorithm) -> impl Iterator<Item = &'a [u8]> + '_ {
        self.entries
            .iter()
            .take(self.len)
            .filter(move |(a, _)| *a == algorithm)
            .map(|(_, value)| *value)
    }

    pub(super) fn has(&self, algorithm: Algorithm) -> bool {
        self.of(algorithm).next().is_some()
    }
}

impl Verifier {
    /// Reads a header, refusing values over the length limit.
    pub(super) fn read<'a, H: HeaderSource + ?Sized>(
        &self,
        headers: &'a H,
        name: &str,
    ) -> Result<Option<&'a [u8]>, VerifyError> {
        match headers.header(name) {
            Some(value) if value.len() > self.max_header_len => Err(VerifyError::MalformedHeader {
                name: name.to_owned(),
                problem: HeaderProblem::TooLong {
                    len: value.len(),
                    limit: self.max_header_len,
                },
            }),
            other => Ok(other),
        }
    }

    /// Reads every signature header once: the entries with an accepted label
    /// (enforcing the count limit), the ignored ones, and the timestamp entry.
    pub(super) fn candidates<'s, 'a, H: HeaderSource + ?Sized>(
        &'s self,
        headers: &'a H,
    ) -> Result<Candidates<'s, 'a>, VerifyError> {
        let mut found = Candidates {
            entries: [(Algorithm::HmacSha256, &[][..]); SIGNATURE_SLOTS],
            len: 0,
            ignored: 0,
            timestamp: None,
        };
        let timestamp_label = match self.scheme.timestamp_source() {
            TimestampSource::SignatureEntry(label) => Some(label.as_bytes()),
            _ => None,
        };
        let mut present = false;
        let mut count = 0;
        for def in self.scheme.signature_headers() {
            let Some(value) = self.read(headers, &def.name)? else {
                continue;
            };
            present = true;
            for entry in self.scheme.format().entries(value) {
                if timestamp_label == Some(entry.label) {
                    found.timestamp.get_or_insert((&def.name, entry.value));
                    continue;
                }
                count += 1;
                if count > self.max_signatures {
                    return Err(VerifyError::MalformedHeader {
                        name: def.name.to_string(),
                        problem: HeaderProblem::TooManySignatures {
                            count,
                            limit: self.max_signatures,
                        },
                    });
                }
                match (
                    Scheme::algorithm_for(def, entry.label),
                    found.entries.get_mut(found.len),
                ) {
                    (Some(algorithm), Some(slot)) => {
                        *slot = (algorithm, entry.value);
                        found.len += 1;
                    }
                    _ => found.ignored += 1,
                }
            }
        }
        if !present {
            return Err(VerifyError::MissingHeader {
                name: self.scheme.signature_header_name().to_owned(),
            });
        }
        Ok(found)
    }

    pub(super) fn id<'a, H: HeaderSource + ?Sized>(
        &self,
        headers: &'a H,
    ) -> Result<Option<&'a str>, VerifyError> {
        let Some(name) = self.scheme.id_header_name() else {
            return Ok(None);
        };
        match self.read(headers, name)? {
            Some(raw) => {
                std::str::from_utf8(raw)
                    .map(Some)
                    .map_err(|_| VerifyError::MalformedHeader {
                        name: name.to_owned(),
                        problem: HeaderProblem::NotUtf8,
                    })
            }
            None if self.scheme.content().uses_id() => Err(VerifyError::MissingHeader {
                name: name.to_owned(),
            }),
            None => Ok(None),
        }
    }
}
