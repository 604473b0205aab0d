//! API keys and HTTP Basic authentication, as Bluum does it: the API key is
//! the user name, the API secret the password. A key is tenant-wide or
//! investor-scoped; webhook management is tenant-level.

use std::path::Path;

use base64::Engine as _;
use serde::Deserialize;
use subtle::ConstantTimeEq;

/// Who a credential belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Tenant,
    Investor,
}

/// Why a request is not authenticated, with Bluum's code for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Missing,
    Malformed,
    Invalid,
}

impl Refusal {
    pub fn code(self) -> &'static str {
        match self {
            Self::Missing => "BLUM-401-001",
            Self::Malformed => "BLUM-401-002",
            Self::Invalid => "BLUM-401-003",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Self::Missing => {
                "Missing authorization header: send `Authorization: Basic base64(API_KEY:API_SECRET)`."
            }
            Self::Malformed => {
                "Malformed authorization header: expected `Basic base64(API_KEY:API_SECRET)`."
            }
            Self::Invalid => "Invalid API key or secret.",
        }
    }
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Key {
    pub key: String,
    pub secret: String,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("key", &self.key)
            .field("secret", &"***")
            .finish()
    }
}

/// The keys the emulator accepts.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Keys {
    #[serde(default)]
    pub tenant_keys: Vec<Key>,
    #[serde(default)]
    pub investor_keys: Vec<Key>,
}

impl Keys {
    /// Reads `{"tenant_keys": [{"key", "secret"}], "investor_keys": [...]}`.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read(path)
            .map_err(|e| format!("cannot read the config file {}: {e}", path.display()))?;
        let keys: Self = serde_json::from_slice(&text)
            .map_err(|e| format!("config file {}: {e}", path.display()))?;
        let mut all = keys.tenant_keys.iter().chain(&keys.investor_keys);
        if all.any(|k| k.key.is_empty() || k.secret.is_empty()) {
            return Err(format!(
                "config file {}: every key needs a non-empty `key` and `secret`",
                path.display()
            ));
        }
        Ok(keys)
    }

    /// Parses `KEY:SECRET` from a flag. The error never repeats the text: it
    /// holds a secret.
    pub fn parse_flag(text: &str) -> Result<Key, String> {
        match text.split_once(':') {
            Some((key, secret)) if !key.is_empty() && !secret.is_empty() => Ok(Key {
                key: key.to_owned(),
                secret: secret.to_owned(),
            }),
            _ => Err("expected KEY:SECRET, both non-empty".to_owned()),
        }
    }

    /// Whose credential `authorization` (the header's value) is.
    pub fn check(&self, authorization: Option<&str>) -> Result<Scope, Refusal> {
        let header = authorization.ok_or(Refusal::Missing)?;
        let encoded = header
            .strip_prefix("Basic ")
            .or_else(|| header.strip_prefix("basic "))
            .ok_or(Refusal::Malformed)?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| Refusal::Malformed)?;
        let decoded = String::from_utf8(decoded).map_err(|_| Refusal::Malformed)?;
        let (key, secret) = decoded.split_once(':').ok_or(Refusal::Malformed)?;
        // Both halves are compared as SHA-256 digests, in constant time, and
        // every known key is looked at: neither the secret's length nor which
        // key id exists shows in how long the answer takes.
        let (key, secret) = (digest(key), digest(secret));
        let scopes = [
            (Scope::Tenant, &self.tenant_keys),
            (Scope::Investor, &self.investor_keys),
        ];
        let mut found = None;
        for (scope, keys) in scopes {
            for known in keys.iter() {
                let same = same_digest(&digest(&known.key), &key)
                    & same_digest(&digest(&known.secret), &secret);
                if bool::from(same) && found.is_none() {
                    found = Some(scope);
                }
            }
        }
        found.ok_or(Refusal::Invalid)
    }
}

/// SHA-256 of `text`: a fixed length, whatever the length of `text`.
fn digest(text: &str) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(text.as_bytes()).into()
}

/// Whether two digests are equal, in time that does not depend on where they differ.
fn same_digest(a: &[u8; 32], b: &[u8; 32]) -> subtle::Choice {
    a.ct_eq(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(text: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(text)
        )
    }

    #[test]
    fn each_credential_gets_its_scope_or_its_refusal() {
        let keys = Keys {
            tenant_keys: vec![Keys::parse_flag("t:ts").unwrap()],
            investor_keys: vec![Keys::parse_flag("i:is").unwrap()],
        };
        assert_eq!(keys.check(Some(&basic("t:ts"))), Ok(Scope::Tenant));
        assert_eq!(keys.check(Some(&basic("i:is"))), Ok(Scope::Investor));
        assert_eq!(keys.check(None), Err(Refusal::Missing));
        assert_eq!(keys.check(Some("Bearer x")), Err(Refusal::Malformed));
        assert_eq!(keys.check(Some("Basic !!!")), Err(Refusal::Malformed));
        assert_eq!(
            keys.check(Some(&basic("no-colon"))),
            Err(Refusal::Malformed)
        );
        assert_eq!(keys.check(Some(&basic("t:wrong"))), Err(Refusal::Invalid));
        assert_eq!(keys.check(Some(&basic("t:"))), Err(Refusal::Invalid));
        assert_eq!(keys.check(Some(&basic("x:ts"))), Err(Refusal::Invalid));
    }

    #[test]
    fn flags_need_both_halves_and_secrets_stay_out_of_debug() {
        let key = Keys::parse_flag("k:s:with:colons").unwrap();
        assert_eq!(key.secret, "s:with:colons");
        assert!(!format!("{key:?}").contains("with"));
        for bad in ["", "k", "k:", ":s"] {
            assert!(Keys::parse_flag(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_and_secrets_match_only_in_full_whatever_their_length() {
        let keys = Keys {
            tenant_keys: vec![Keys::parse_flag("tenant:s3cret").unwrap()],
            investor_keys: vec![Keys::parse_flag("tenant-2:other").unwrap()],
        };
        // A prefix, an extension, a different case, of the key id or the secret.
        for bad in [
            "tenant:s3cre",
            "tenant:s3crett",
            "tenant:S3cret",
            "tenan:s3cret",
            "tenantt:s3cret",
            "TENANT:s3cret",
            "tenant-2:s3cret",
            "tenant:other",
        ] {
            assert_eq!(
                keys.check(Some(&basic(bad))),
                Err(Refusal::Invalid),
                "{bad}"
            );
        }
        assert_eq!(keys.check(Some(&basic("tenant:s3cret"))), Ok(Scope::Tenant));
        assert_eq!(
            keys.check(Some(&basic("tenant-2:other"))),
            Ok(Scope::Investor)
        );
        // The digests are of fixed length: texts of any length compare.
        assert!(bool::from(same_digest(&digest("a"), &digest("a"))));
        assert!(!bool::from(same_digest(
            &digest("a"),
            &digest(&"a".repeat(10_000))
        )));
        assert_eq!(digest("").len(), digest(&"x".repeat(1 << 16)).len());
    }
}
