//! A webhook secret that never shows itself in logs.

use std::fmt;

/// A webhook signing secret as the provider hands it out (`whsec_…`, a GitHub
/// secret, …). `Debug` and `Display` print `Secret(***)` / `***`, so the value
/// cannot leak through a log line or a panic message; only
/// [`expose`](Self::expose) gives it back.
///
/// ```
/// use webhook_inbox::Secret;
///
/// let secret = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
/// assert_eq!(format!("{secret:?} {secret}"), "Secret(***) ***");
/// assert!(secret.expose().starts_with("whsec_"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Box<str>);

impl Secret {
    /// Wraps a secret string.
    ///
    /// ```
    /// use webhook_inbox::Secret;
    ///
    /// let s: Secret = "abc".into();
    /// assert_eq!(s, Secret::new(String::from("abc")));
    /// ```
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into().into_boxed_str())
    }

    /// The secret's value. Call it only where the value is really needed.
    ///
    /// ```
    /// use webhook_inbox::Secret;
    ///
    /// assert_eq!(Secret::new("abc").expose(), "abc");
    /// ```
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl From<&String> for Secret {
    fn from(value: &String) -> Self {
        Self::new(value.as_str())
    }
}
