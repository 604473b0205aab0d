//! Request bodies and path ids, checked field by field the way Bluum
//! documents them. Each refusal names its field (`param`) and carries Bluum's
//! validation code.

use serde_json::value::RawValue;
use serde_json::{Map, Value};
use webhook_inbox::bluum::{CATALOG, EVENT_TYPES};

use super::reply::ApiError;

const MISSING: &str = "BLUM-400-002";
const FORMAT: &str = "BLUM-400-003";
const ENUM: &str = "BLUM-400-004";

const MAX_NAME: usize = 200;
const MAX_URL: usize = 2048;
const MAX_DESCRIPTION: usize = 1000;
const MAX_EVENT_TYPES: usize = 100;

/// `POST /v1/webhooks`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWebhook {
    /// Bluum's API reference requires a name; its webhooks guide registers
    /// a webhook without one. Absent (or `null`): none is stored, and the
    /// webhook reads `"name": null` (docs/BLUUM_API.md).
    pub name: Option<String>,
    pub url: String,
    pub event_type_names: Vec<String>,
    pub description: Option<String>,
}

/// `PATCH /v1/webhooks/{id}`, checked: only what the body sets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub name: Option<String>,
    pub url: Option<String>,
    pub event_type_names: Option<Vec<String>>,
    pub description: Option<Option<String>>,
    pub active: Option<bool>,
}

/// `POST /v1/_emulator/events`, checked; `data` keeps the sender's exact text.
#[derive(Debug)]
pub struct NewEvent {
    pub event_type: String,
    pub data: Box<RawValue>,
}

const WEBHOOK_FIELDS: &[&str] = &["name", "url", "eventTypeNames", "description"];
const CHANGE_FIELDS: &[&str] = &["name", "url", "eventTypeNames", "description", "status"];

pub fn new_webhook(body: &[u8]) -> Result<NewWebhook, ApiError> {
    let mut fields = object(body, WEBHOOK_FIELDS)?;
    let url = required(&mut fields, "url")?;
    let names = required(&mut fields, "eventTypeNames")?;
    Ok(NewWebhook {
        name: match fields.remove("name") {
            None | Some(Value::Null) => None,
            Some(name) => Some(name_of(name)?),
        },
        url: url_of(url)?,
        event_type_names: event_type_names(names)?,
        description: fields
            .remove("description")
            .map(description)
            .transpose()?
            .flatten(),
    })
}

pub fn changes(body: &[u8]) -> Result<Changes, ApiError> {
    let mut fields = object(body, CHANGE_FIELDS)?;
    if fields.is_empty() {
        return Err(ApiError::missing(
            "Nothing to update: send at least one of name, url, eventTypeNames, description, status.",
        ));
    }
    Ok(Changes {
        name: fields.remove("name").map(name_of).transpose()?,
        url: fields.remove("url").map(url_of).transpose()?,
        event_type_names: fields
            .remove("eventTypeNames")
            .map(event_type_names)
            .transpose()?,
        description: fields.remove("description").map(description).transpose()?,
        active: fields.remove("status").map(status).transpose()?,
    })
}

pub fn new_event(body: &[u8]) -> Result<NewEvent, ApiError> {
    let mut fields = object(body, &["type", "data"])?;
    let event_type = match required(&mut fields, "type")? {
        Value::String(t) if EVENT_TYPES.contains(&t.as_str()) => t,
        Value::String(t) => {
            return Err(ApiError::field(
                ENUM,
                "type",
                format!(
                    "`{}` is not an event type in the catalog (GET /v1/webhooks/event-types).",
                    crate::common::truncate(&t, 100)
                ),
            ));
        }
        _ => return Err(ApiError::field(FORMAT, "type", "type must be a string.")),
    };
    if !required(&mut fields, "data")?.is_object() {
        return Err(ApiError::field(
            FORMAT,
            "data",
            "data must be a JSON object.",
        ));
    }
    #[derive(serde::Deserialize)]
    struct Raw {
        data: Box<RawValue>,
    }
    let raw: Raw = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("The body is not valid JSON: {e}.")))?;
    Ok(NewEvent {
        event_type,
        data: raw.data,
    })
}

/// Refuses a raw UUID where a prefixed id (`wh_…`, `dlv_…`) belongs: Bluum's
/// conventions page says raw UUIDs are rejected on the external surface, so
/// this is a 400 (`BLUM-400-003`, `param` `id`), not a 404. Any other id
/// that matches nothing is a 404, as before.
pub fn resource_id(id: &str, prefix: &str) -> Result<(), ApiError> {
    if is_raw_uuid(id) {
        return Err(ApiError::field(
            FORMAT,
            "id",
            format!(
                "`{id}` is a raw UUID; ids are prefixed strings such as `{prefix}…`: pass the id \
                 exactly as it was returned."
            ),
        ));
    }
    Ok(())
}

/// `8-4-4-4-12` hex digits, either case (`3c90c3cc-0d44-4b50-8888-8dd25736052a`),
/// optionally in braces or as a `urn:uuid:`; or the same 32 digits without
/// hyphens.
fn is_raw_uuid(id: &str) -> bool {
    let id = id
        .strip_prefix('{')
        .and_then(|i| i.strip_suffix('}'))
        .or_else(|| id.strip_prefix("urn:uuid:"))
        .unwrap_or(id);
    let bytes = id.as_bytes();
    match bytes.len() {
        36 => bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        }),
        32 => bytes.iter().all(u8::is_ascii_hexdigit),
        _ => false,
    }
}

/// The body as a JSON object whose fields are all among `known`.
fn object(body: &[u8], known: &[&str]) -> Result<Map<String, Value>, ApiError> {
    let fields = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(fields)) => fields,
        Ok(_) => return Err(ApiError::bad_request("The body must be a JSON object.")),
        Err(e) => {
            return Err(ApiError::bad_request(format!(
                "The body is not valid JSON: {e}."
            )));
        }
    };
    if let Some(unknown) = fields.keys().find(|k| !known.contains(&k.as_str())) {
        let message = if unknown == "events" && known.contains(&"eventTypeNames") {
            "Unknown field `events`: the field is `eventTypeNames`, an array of event type names \
             or `domain.*` wildcards."
                .to_owned()
        } else {
            format!(
                "Unknown field `{}`; expected {}.",
                crate::common::truncate(unknown, 100),
                known.join(", ")
            )
        };
        return Err(ApiError::field("BLUM-400-001", unknown, message));
    }
    Ok(fields)
}

fn required(fields: &mut Map<String, Value>, name: &str) -> Result<Value, ApiError> {
    fields
        .remove(name)
        .ok_or_else(|| ApiError::field(MISSING, name, format!("{name} is required.")))
}

fn string(value: Value, field: &str, max: usize) -> Result<String, ApiError> {
    match value {
        Value::String(s) if s.trim().is_empty() => Err(ApiError::field(
            FORMAT,
            field,
            format!("{field} must not be empty."),
        )),
        Value::String(s) if s.chars().count() > max => Err(ApiError::field(
            FORMAT,
            field,
            format!("{field} is longer than {max} characters."),
        )),
        Value::String(s) if s.chars().any(char::is_control) && field != "description" => {
            Err(ApiError::field(
                FORMAT,
                field,
                format!("{field} contains a control character."),
            ))
        }
        Value::String(s) => Ok(s),
        _ => Err(ApiError::field(
            FORMAT,
            field,
            format!("{field} must be a string."),
        )),
    }
}

fn name_of(value: Value) -> Result<String, ApiError> {
    string(value, "name", MAX_NAME)
}

fn url_of(value: Value) -> Result<String, ApiError> {
    let url = string(value, "url", MAX_URL)?;
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or(""));
    match host {
        Some(host) if host.contains('@') => Err(ApiError::field(
            FORMAT,
            "url",
            "url must not carry credentials (user:password@): they would be sent and logged.",
        )),
        Some(host) if !host.is_empty() && !url.contains(char::is_whitespace) => Ok(url),
        _ => Err(ApiError::field(
            FORMAT,
            "url",
            "url must be an absolute http:// or https:// URL with a host.",
        )),
    }
}

fn description(value: Value) -> Result<Option<String>, ApiError> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        other => string(other, "description", MAX_DESCRIPTION).map(Some),
    }
}

fn status(value: Value) -> Result<bool, ApiError> {
    match value.as_str().map(str::to_ascii_uppercase).as_deref() {
        Some("ACTIVE") => Ok(true),
        Some("INACTIVE") => Ok(false),
        _ => Err(ApiError::field(
            ENUM,
            "status",
            "status must be ACTIVE or INACTIVE.",
        )),
    }
}

fn event_type_names(value: Value) -> Result<Vec<String>, ApiError> {
    const FIELD: &str = "eventTypeNames";
    let Value::Array(items) = value else {
        return Err(ApiError::field(
            FORMAT,
            FIELD,
            "eventTypeNames must be an array of event type names.",
        ));
    };
    if items.is_empty() {
        return Err(ApiError::field(
            FORMAT,
            FIELD,
            "eventTypeNames must name at least one event type.",
        ));
    }
    if items.len() > MAX_EVENT_TYPES {
        return Err(ApiError::field(
            FORMAT,
            FIELD,
            format!("eventTypeNames has more than {MAX_EVENT_TYPES} entries."),
        ));
    }
    let mut names: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        let Value::String(name) = item else {
            return Err(ApiError::field(
                FORMAT,
                FIELD,
                "every entry of eventTypeNames must be a string.",
            ));
        };
        if !is_subscribable(&name) {
            return Err(ApiError::field(
                ENUM,
                FIELD,
                format!(
                    "`{}` is neither an event type in the catalog nor a `domain.*` wildcard \
                     matching one (GET /v1/webhooks/event-types lists them).",
                    crate::common::truncate(&name, 100)
                ),
            ));
        }
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

/// An exact catalog name, or `prefix.*` where some catalog name starts with
/// `prefix.`.
fn is_subscribable(name: &str) -> bool {
    match name.strip_suffix(".*") {
        Some(prefix) if !prefix.is_empty() && !prefix.contains('*') => CATALOG.iter().any(|e| {
            e.name
                .strip_prefix(prefix)
                .is_some_and(|r| r.starts_with('.'))
        }),
        Some(_) => false,
        None => EVENT_TYPES.contains(&name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(err: ApiError) -> (u16, &'static str, String) {
        (err.status, err.code, err.param.unwrap_or_default())
    }

    #[test]
    fn a_complete_webhook_is_read() {
        let w = new_webhook(
            br#"{"name":"n","url":"https://x.test/h","eventTypeNames":["order.*","order.filled","order.*"],"description":null}"#,
        )
        .unwrap();
        assert_eq!(w.event_type_names, ["order.*", "order.filled"]);
        assert_eq!(w.description, None);
        assert_eq!(w.name.as_deref(), Some("n"));
    }

    #[test]
    fn the_guides_request_has_no_name_and_is_accepted() {
        let w = new_webhook(
            br#"{"url": "https://your-app.com/webhooks/bluum",
                 "eventTypeNames": ["order.filled", "transfer.deposit.completed", "kyc.verification.approved"]}"#,
        )
        .unwrap();
        assert_eq!(w.name, None);
        assert_eq!(w.event_type_names.len(), 3);
        let w =
            new_webhook(br#"{"name":null,"url":"https://x.test","eventTypeNames":["order.*"]}"#)
                .unwrap();
        assert_eq!(w.name, None);
    }

    #[test]
    fn raw_uuids_are_refused_and_prefixed_ids_pass() {
        for raw in [
            "3c90c3cc-0d44-4b50-8888-8dd25736052a",
            "3C90C3CC-0D44-4B50-8888-8DD25736052A",
            "{3c90c3cc-0d44-4b50-8888-8dd25736052a}",
            "urn:uuid:3c90c3cc-0d44-4b50-8888-8dd25736052a",
            "3c90c3cc0d444b5088888dd25736052a",
        ] {
            let err = resource_id(raw, "wh_").unwrap_err();
            assert_eq!(param(err), (400, FORMAT, "id".into()), "{raw}");
        }
        for fine in [
            "wh_5e6f7g8h9i0j1k2l",
            "wh_3c90c3cc-0d44-4b50-8888-8dd25736052a",
            "3c90c3cc-0d44-4b50-8888-8dd2573605",
            "3c90c3cc_0d44_4b50_8888_8dd25736052a",
            "zc90c3cc-0d44-4b50-8888-8dd25736052a",
            "",
        ] {
            assert!(resource_id(fine, "wh_").is_ok(), "{fine}");
        }
    }

    #[test]
    fn events_is_refused_pointing_at_event_type_names() {
        let err = new_webhook(br#"{"name":"n","url":"https://x.test","events":["order.filled"]}"#)
            .unwrap_err();
        assert!(err.message.contains("eventTypeNames"), "{}", err.message);
        assert_eq!(param(err), (400, "BLUM-400-001", "events".into()));
    }

    #[test]
    fn each_refusal_names_its_field() {
        let cases: &[(&str, &str, &str)] = &[
            (
                r#"{"name":"n","eventTypeNames":["order.filled"]}"#,
                MISSING,
                "url",
            ),
            (
                r#"{"name":"n","url":"https://x.test"}"#,
                MISSING,
                "eventTypeNames",
            ),
            (
                r#"{"name":"","url":"https://x.test","eventTypeNames":["order.filled"]}"#,
                FORMAT,
                "name",
            ),
            (
                r#"{"name":"n","url":"ftp://x.test","eventTypeNames":["order.filled"]}"#,
                FORMAT,
                "url",
            ),
            (
                r#"{"name":"n","url":"https://","eventTypeNames":["order.filled"]}"#,
                FORMAT,
                "url",
            ),
            (
                r#"{"name":"n","url":"https://x.test","eventTypeNames":[]}"#,
                FORMAT,
                "eventTypeNames",
            ),
            (
                r#"{"name":"n","url":"https://x.test","eventTypeNames":"order.filled"}"#,
                FORMAT,
                "eventTypeNames",
            ),
            (
                r#"{"name":"n","url":"https://x.test","eventTypeNames":["order.fill"]}"#,
                ENUM,
                "eventTypeNames",
            ),
            (
                r#"{"name":"n","url":"https://x.test","eventTypeNames":["nope.*"]}"#,
                ENUM,
                "eventTypeNames",
            ),
            (
                r#"{"name":"n","url":"https://x.test","eventTypeNames":["*"]}"#,
                ENUM,
                "eventTypeNames",
            ),
            (
                r#"{"name":"n","url":"https://x.test","eventTypeNames":["ord.*"]}"#,
                ENUM,
                "eventTypeNames",
            ),
            (
                r#"{"name":"n","url":"https://x.test","eventTypeNames":["order.filled"],"description":5}"#,
                FORMAT,
                "description",
            ),
        ];
        for (body, code, field) in cases {
            let err = new_webhook(body.as_bytes()).unwrap_err();
            assert_eq!(param(err), (400, *code, (*field).to_owned()), "{body}");
        }
        assert_eq!(new_webhook(b"[1]").unwrap_err().code, "BLUM-400-001");
        assert_eq!(new_webhook(b"{").unwrap_err().code, "BLUM-400-001");
    }

    #[test]
    fn wildcards_match_domains_and_subdomains() {
        for ok in [
            "order.*",
            "transfer.*",
            "transfer.deposit.*",
            "kyc.*",
            "kyc.verification.*",
        ] {
            assert!(is_subscribable(ok), "{ok}");
        }
        for bad in [
            "*",
            ".*",
            "order*",
            "order.**",
            "transfer.dep.*",
            "order.filled.*",
        ] {
            assert!(!is_subscribable(bad), "{bad}");
        }
    }

    #[test]
    fn changes_read_only_what_is_sent() {
        let c = changes(br#"{"status":"inactive","description":null}"#).unwrap();
        assert_eq!(c.active, Some(false));
        assert_eq!(c.description, Some(None));
        assert_eq!(c.name, None);
        assert_eq!(
            param(changes(b"{}").unwrap_err()),
            (400, MISSING, String::new())
        );
        assert_eq!(
            param(changes(br#"{"status":"PAUSED"}"#).unwrap_err()).2,
            "status"
        );
        assert_eq!(param(changes(br#"{"name":null}"#).unwrap_err()).2, "name");
    }

    #[test]
    fn an_event_keeps_its_data_text() {
        let e = new_event(br#"{"type":"order.filled","data":{"qty":"1.50","n":1e400}}"#);
        // 1e400 does not fit a float: serde_json refuses it, so does the emulator.
        assert!(e.is_err());
        let e = new_event(
            br#"{"type":"order.filled","data":{"qty":"1.50", "n":12345678901234567890123}}"#,
        )
        .unwrap();
        assert_eq!(
            e.data.get(),
            r#"{"qty":"1.50", "n":12345678901234567890123}"#
        );
        assert_eq!(
            param(new_event(br#"{"type":"order.fill","data":{}}"#).unwrap_err()).2,
            "type"
        );
        assert_eq!(
            param(new_event(br#"{"type":"order.filled","data":[]}"#).unwrap_err()).2,
            "data"
        );
        assert_eq!(
            param(new_event(br#"{"type":"order.filled"}"#).unwrap_err()).2,
            "data"
        );
    }
}
