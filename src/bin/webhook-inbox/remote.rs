//! The store commands over HTTP (`--url`): the admin API of a running
//! service (or of `webhook-inbox admin`), with the same output and exit
//! status as on a local store.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::Failure;

/// The environment variable holding the admin token.
pub const TOKEN_ENV: &str = "WEBHOOK_INBOX_ADMIN_TOKEN";

/// The token from `--token-file`, else from `WEBHOOK_INBOX_ADMIN_TOKEN`.
pub fn token(file: Option<&Path>) -> Result<Option<String>, Failure> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Failure::Usage(format!("cannot read token file `{}`: {e}", path.display()))
        })?;
        return Ok(Some(text.trim().to_owned()));
    }
    Ok(std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty()))
}

/// A running admin API: its base URL (`http://host:port/admin`) and token.
#[derive(Debug, Clone)]
pub struct Remote {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

/// An API answer: status and JSON body.
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Remote {
    pub fn new(url: &str, token_file: Option<&Path>) -> Result<Self, Failure> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Failure::Usage(format!(
                "--url `{url}`: expected http://host:port/prefix"
            )));
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        Ok(Self {
            base: url.trim_end_matches('/').to_owned(),
            token: token(token_file)?,
            agent,
        })
    }

    /// Where the store is, for messages.
    pub fn url(&self) -> &str {
        &self.base
    }

    fn auth(&self) -> Option<String> {
        self.token.as_ref().map(|t| format!("Bearer {t}"))
    }

    fn answer(
        &self,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Answer, Failure> {
        let mut response = response.map_err(|e| {
            Failure::Unavailable(format!("cannot reach the admin API at {}: {e}", self.base))
        })?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        match status {
            401 => Err(Failure::Usage(format!(
                "the admin API at {} refused the credentials: set {TOKEN_ENV} or --token-file",
                self.base
            ))),
            403 => Err(Failure::Unavailable(format!(
                "the admin API at {} refused: {}",
                self.base,
                body["error"].as_str().unwrap_or(text.trim())
            ))),
            200 | 404 => Ok(Answer { status, body }),
            _ => Err(Failure::Unavailable(format!(
                "the admin API at {} answered {status}: {}",
                self.base,
                body["error"].as_str().unwrap_or(text.trim())
            ))),
        }
    }

    /// `GET {base}{path}` with `query` pairs (percent-encoded).
    pub fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Answer, Failure> {
        let mut request = self.agent.get(format!("{}{path}", self.base));
        for (k, v) in query {
            request = request.query(*k, v);
        }
        if let Some(a) = self.auth() {
            request = request.header("authorization", &a);
        }
        self.answer(request.call())
    }

    /// `POST {base}{path}` with a JSON body and the CSRF token.
    pub fn post(&self, path: &str, body: &Value) -> Result<Answer, Failure> {
        let csrf = self.get("/api/csrf", &[])?;
        let token = csrf.body["csrf"].as_str().unwrap_or_default().to_owned();
        let mut request = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("x-csrf-token", &token)
            .header("content-type", "application/json");
        if let Some(a) = self.auth() {
            request = request.header("authorization", &a);
        }
        self.answer(request.send(body.to_string()))
    }

    /// Repeats a bounded bulk action while it says more may match; the total.
    pub fn bulk(&self, path: &str, key: &str, body: &Value) -> Result<usize, Failure> {
        let mut total = 0;
        for _ in 0..100_000 {
            let a = self.post(path, body)?;
            total += usize::try_from(a.body[key].as_u64().unwrap_or(0)).unwrap_or(0);
            if a.body["more"].as_bool() != Some(true) {
                return Ok(total);
            }
        }
        Ok(total)
    }
}

/// The JSON object `stats --json` prints, from the API's.
pub fn stats_subset(v: &Value) -> Value {
    json!({
        "store": v["store"],
        "pending": v["pending"],
        "retrying": v["retrying"],
        "dead": v["dead"],
        "dedup_markers": v["dedup_markers"],
        "oldest_pending_age_secs": v["oldest_pending_age_secs"],
        "disk_bytes": v["disk_bytes"],
    })
}
