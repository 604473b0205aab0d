//! `webhook-inbox bluum …`: manage webhooks through Bluum's API (or a local
//! emulator's) with the typed client, `webhook_inbox::bluum::client`.
//!
//! The API key and secret come from the environment only (`BLUUM_API_KEY`,
//! `BLUUM_API_SECRET`), never from the command line, where `ps` and shell
//! history would see them; the secret is never printed.

use std::fmt::Write as _;
use std::io::Write as _;

use serde_json::json;
use webhook_inbox::bluum::client::{
    Client, ClientError, EventType, NewWebhook, SANDBOX, Webhook, WebhookStatus, WebhookUpdate,
};

use crate::common::{self, Failure};
use crate::table::{Align, Table};

/// The environment variable holding the API key.
pub const KEY_ENV: &str = "BLUUM_API_KEY";
/// The environment variable holding the API secret.
pub const SECRET_ENV: &str = "BLUUM_API_SECRET";
/// The environment variable read when `--base-url` is not given.
pub const BASE_URL_ENV: &str = "BLUUM_BASE_URL";

/// The subcommands of `webhook-inbox bluum`.
#[derive(Debug, clap::Subcommand)]
#[command(after_help = "\
Credentials come from the environment only: BLUUM_API_KEY and BLUUM_API_SECRET
(a tenant-wide key: webhook management is a tenant-level operation). The API is
--base-url, else $BLUUM_BASE_URL, else Bluum's sandbox.")]
pub enum Command {
    /// List the event types a webhook can subscribe to.
    EventTypes(EventTypesArgs),
    /// Create, list, show, change and delete webhooks.
    #[command(subcommand)]
    Webhooks(Webhooks),
}

/// `webhook-inbox bluum webhooks …`.
#[derive(Debug, clap::Subcommand)]
pub enum Webhooks {
    /// Create a webhook and print it with its signing secret (shown this once only).
    Create(CreateArgs),
    /// List every webhook (without secrets).
    List(ListArgs),
    /// Show one webhook (exit 1 if there is none with that id).
    Get(GetArgs),
    /// Change a webhook's name, URL, event types, description (or clear it) or status.
    Update(UpdateArgs),
    /// Delete a webhook (exit 1 if there is none with that id).
    Delete(DeleteArgs),
}

/// Where the API is; shared by every `bluum` subcommand.
#[derive(Debug, clap::Args)]
pub struct Api {
    /// The API's base URL, `/v1` included, such as an emulator's
    /// `http://127.0.0.1:PORT/v1` [env: BLUUM_BASE_URL] [default: Bluum's sandbox].
    #[arg(long, value_name = "URL")]
    base_url: Option<String>,
}

/// Flags of `bluum event-types`.
#[derive(Debug, clap::Args)]
pub struct EventTypesArgs {
    #[command(flatten)]
    api: Api,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    json: bool,
}

/// Flags of `bluum webhooks create`.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    #[command(flatten)]
    api: Api,
    /// The webhook's name (optional: Bluum's webhooks guide registers
    /// webhooks without one, though its API reference lists it as required).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Where deliveries are POSTed (`https://…`, or `http://…`).
    #[arg(long, value_name = "URL")]
    url: String,
    /// An event name (`order.filled`) or wildcard (`order.*`); repeat for more.
    #[arg(long = "event-type", value_name = "TYPE", required = true)]
    event_types: Vec<String>,
    /// A free-text description.
    #[arg(long, value_name = "TEXT")]
    description: Option<String>,
    /// Print a JSON object (with `secret`) instead of text.
    #[arg(long)]
    json: bool,
}

/// Flags of `bluum webhooks list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    api: Api,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    json: bool,
}

/// Flags of `bluum webhooks get`.
#[derive(Debug, clap::Args)]
pub struct GetArgs {
    #[command(flatten)]
    api: Api,
    /// The webhook's id, `wh_…`.
    #[arg(value_name = "ID")]
    id: String,
    /// Print a JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// A status `update --status` can set.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Status {
    /// Receives new events.
    Active,
    /// Receives no new events.
    Inactive,
}

impl From<Status> for WebhookStatus {
    fn from(status: Status) -> Self {
        match status {
            Status::Active => Self::Active,
            Status::Inactive => Self::Inactive,
        }
    }
}

/// Flags of `bluum webhooks update`.
#[derive(Debug, clap::Args)]
#[command(group(
    clap::ArgGroup::new("change")
        .required(true)
        .multiple(true)
        .args(["name", "url", "event_types", "description", "clear_description", "status"])
))]
pub struct UpdateArgs {
    #[command(flatten)]
    api: Api,
    /// The webhook's id, `wh_…`.
    #[arg(value_name = "ID")]
    id: String,
    /// A new name.
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// A new URL for deliveries.
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Replaces the event types: an event name or wildcard; repeat for more.
    #[arg(long = "event-type", value_name = "TYPE")]
    event_types: Vec<String>,
    /// A new description.
    #[arg(long, value_name = "TEXT")]
    description: Option<String>,
    /// Remove the description (sends `"description": null`).
    #[arg(long, conflicts_with = "description")]
    clear_description: bool,
    /// Turn deliveries on or off.
    #[arg(long, value_enum)]
    status: Option<Status>,
    /// Print a JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Flags of `bluum webhooks delete`.
#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    api: Api,
    /// The webhook's id, `wh_…`.
    #[arg(value_name = "ID")]
    id: String,
}

/// Runs a `bluum` subcommand: exit 1 when the API refuses (4xx), exit 2 when
/// the credentials are missing or the API cannot be reached.
pub fn run(command: Command) -> Result<(), Failure> {
    run_with(command, &env)
}

/// [`run`], reading the environment through `env` (for tests).
fn run_with(command: Command, env: &dyn Fn(&str) -> Option<String>) -> Result<(), Failure> {
    match command {
        Command::EventTypes(args) => {
            let types = client(&args.api, env)?.event_types().map_err(failure)?;
            if args.json {
                common::print_json(&json!(
                    types.iter().map(event_type_json).collect::<Vec<_>>()
                ))
            } else {
                common::print(&event_types_table(&types))
            }
        }
        Command::Webhooks(Webhooks::Create(args)) => {
            let mut new = match args.name {
                Some(name) => NewWebhook::new(name, args.url, args.event_types),
                None => NewWebhook::without_name(args.url, args.event_types),
            };
            if let Some(description) = args.description {
                new = new.description(description);
            }
            let hook = client(&args.api, env)?
                .create_webhook(&new)
                .map_err(failure)?;
            if args.json {
                common::print_json(&webhook_json(&hook))?;
                // On stderr, so stdout stays one JSON document.
                let _ = writeln!(std::io::stderr().lock(), "{STORE_SECRET_NOW}");
                Ok(())
            } else {
                common::print(&format!("{}\n{STORE_SECRET_NOW}\n", webhook_text(&hook)))
            }
        }
        Command::Webhooks(Webhooks::List(args)) => {
            let hooks = client(&args.api, env)?.list_webhooks().map_err(failure)?;
            if args.json {
                common::print_json(&json!(hooks.iter().map(webhook_json).collect::<Vec<_>>()))
            } else {
                common::print(&webhooks_table(&hooks))
            }
        }
        Command::Webhooks(Webhooks::Get(args)) => {
            let hook = client(&args.api, env)?
                .get_webhook(&args.id)
                .map_err(failure)?;
            print_webhook(&hook, args.json)
        }
        Command::Webhooks(Webhooks::Update(args)) => {
            let mut update = WebhookUpdate::new();
            if let Some(name) = args.name {
                update = update.name(name);
            }
            if let Some(url) = args.url {
                update = update.url(url);
            }
            if !args.event_types.is_empty() {
                update = update.event_type_names(args.event_types);
            }
            if let Some(description) = args.description {
                update = update.description(description);
            }
            if args.clear_description {
                update = update.clear_description();
            }
            if let Some(status) = args.status {
                update = update.status(status.into());
            }
            let hook = client(&args.api, env)?
                .update_webhook(&args.id, &update)
                .map_err(failure)?;
            print_webhook(&hook, args.json)
        }
        Command::Webhooks(Webhooks::Delete(args)) => {
            client(&args.api, env)?
                .delete_webhook(&args.id)
                .map_err(failure)?;
            common::print(&format!("deleted {}\n", common::clean(&args.id)))
        }
    }
}

const STORE_SECRET_NOW: &str =
    "Store this signing secret now (in your receiver's configuration): it is not shown again.";

/// A client for `--base-url` (else `BLUUM_BASE_URL`, else the sandbox) with
/// the key and secret from the environment.
fn client(api: &Api, env: &dyn Fn(&str) -> Option<String>) -> Result<Client, Failure> {
    let set = |name: &str| env(name).filter(|v| !v.is_empty());
    let base_url = api
        .base_url
        .clone()
        .or_else(|| set(BASE_URL_ENV))
        .unwrap_or_else(|| SANDBOX.to_owned());
    let lower = base_url.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Err(Failure::Usage(format!(
            "the base URL must be an http:// or https:// URL such as {SANDBOX}, not `{}`",
            common::clean(&base_url)
        )));
    }
    let (key, secret) = credentials(env)?;
    Ok(Client::new(base_url, key, secret))
}

/// The API key and secret from `BLUUM_API_KEY` and `BLUUM_API_SECRET` (also
/// for `trigger`): never from the command line, where `ps` would show them.
pub fn credentials(env: &dyn Fn(&str) -> Option<String>) -> Result<(String, String), Failure> {
    let set = |name: &str| env(name).filter(|v| !v.is_empty());
    let missing = |name: &str, what: &str| {
        Failure::Usage(format!(
            "{name} is not set: export the {what} of a tenant-wide Bluum API key \
             (credentials are read from the environment only)"
        ))
    };
    let key = set(KEY_ENV).ok_or_else(|| missing(KEY_ENV, "key"))?;
    let secret = set(SECRET_ENV).ok_or_else(|| missing(SECRET_ENV, "secret"))?;
    Ok((key, secret))
}

/// Reads an environment variable as text (unset or not UTF-8: `None`).
pub fn env(name: &str) -> Option<String> {
    std::env::var_os(name).and_then(|v| v.into_string().ok())
}

/// Refusals (4xx) exit 1; an unreachable or misbehaving API exits 2, and so
/// does a 429 (try again later: the message says when).
fn failure(err: ClientError) -> Failure {
    let message = common::clean(&err.to_string()).into_owned();
    match err {
        ClientError::Unauthorized { .. } => Failure::Rejected(format!(
            "{message} (check {KEY_ENV} and {SECRET_ENV}, and that --base-url or \
             {BASE_URL_ENV} is the API they belong to)"
        )),
        ClientError::InvestorScopedKey { .. }
        | ClientError::Invalid { .. }
        | ClientError::NotFound { .. } => Failure::Rejected(message),
        ClientError::Api { status, .. } if (400..500).contains(&status) => {
            Failure::Rejected(message)
        }
        _ => Failure::Unavailable(message),
    }
}

fn print_webhook(hook: &Webhook, json: bool) -> Result<(), Failure> {
    if json {
        common::print_json(&webhook_json(hook))
    } else {
        common::print(&webhook_text(hook))
    }
}

fn event_type_json(t: &EventType) -> serde_json::Value {
    json!({
        "name": t.name,
        "category": t.category,
        "display_name": t.display_name,
        "description": t.description,
    })
}

fn event_types_table(types: &[EventType]) -> String {
    let mut table = Table::new(&[
        ("NAME", Align::Left),
        ("CATEGORY", Align::Left),
        ("DISPLAY NAME", Align::Left),
    ]);
    for t in types {
        table.push(vec![
            common::clean(&t.name).into_owned(),
            common::clean(&t.category).into_owned(),
            common::clean(&t.display_name).into_owned(),
        ]);
    }
    table.render()
}

/// The webhook as JSON; `secret` only when the API sent it (on create).
fn webhook_json(hook: &Webhook) -> serde_json::Value {
    let mut value = json!({
        "id": hook.id,
        "name": hook.name,
        "url": hook.url,
        "description": hook.description,
        "event_type_names": hook.event_type_names,
        "status": hook.status.to_string(),
        "created_at": hook.created_at,
        "updated_at": hook.updated_at,
    });
    if let Some(secret) = &hook.secret {
        value["secret"] = json!(secret.expose());
    }
    value
}

fn webhook_text(hook: &Webhook) -> String {
    let mut out = String::new();
    let mut field = |name: &str, value: &str| {
        let _ = writeln!(out, "{:<13}{value}", format!("{name}:"));
    };
    field("id", &common::clean(&hook.id));
    if let Some(name) = &hook.name {
        field("name", &common::clean(name));
    }
    field("url", &common::clean(&hook.url));
    field("status", &hook.status.to_string());
    field(
        "event types",
        &common::clean(&hook.event_type_names.join(", ")),
    );
    if let Some(description) = &hook.description {
        field("description", &common::clean(description));
    }
    field("created", &common::clean(&hook.created_at));
    if let Some(updated) = &hook.updated_at {
        field("updated", &common::clean(updated));
    }
    if let Some(secret) = &hook.secret {
        field("secret", &common::clean(secret.expose()));
    }
    out
}

fn webhooks_table(hooks: &[Webhook]) -> String {
    if hooks.is_empty() {
        return "no webhooks\n".to_owned();
    }
    let mut table = Table::new(&[
        ("ID", Align::Left),
        ("STATUS", Align::Left),
        ("NAME", Align::Left),
        ("URL", Align::Left),
        ("EVENT TYPES", Align::Left),
    ]);
    for hook in hooks {
        table.push(vec![
            common::clean(&hook.id).into_owned(),
            hook.status.to_string(),
            hook.name
                .as_deref()
                .map_or_else(|| "-".to_owned(), |n| common::truncate(n, 40)),
            common::truncate(&hook.url, 60),
            common::truncate(&hook.event_type_names.join(","), 60),
        ]);
    }
    let mut text = table.render();
    let _ = writeln!(
        text,
        "{}",
        common::plural(hooks.len(), "webhook", "webhooks")
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("bluum").chain(args.iter().copied())).map(|c| c.command)
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn missing_credentials_are_usage_errors_naming_the_variable() {
        let command = parse(&["webhooks", "list", "--base-url", "http://127.0.0.1:9/v1"]).unwrap();
        let err = run_with(command, &no_env).unwrap_err();
        assert!(
            matches!(&err, Failure::Usage(m) if m.contains(KEY_ENV)),
            "{err:?}"
        );

        let only_key = |name: &str| (name == KEY_ENV).then(|| "key_1".to_owned());
        let command = parse(&["event-types"]).unwrap();
        let err = run_with(command, &only_key).unwrap_err();
        assert!(
            matches!(&err, Failure::Usage(m) if m.contains(SECRET_ENV)),
            "{err:?}"
        );
    }

    #[test]
    fn base_url_comes_from_the_flag_then_the_environment_then_the_sandbox() {
        let env = |name: &str| match name {
            KEY_ENV => Some("k".to_owned()),
            SECRET_ENV => Some("s3cr3t".to_owned()),
            BASE_URL_ENV => Some("http://127.0.0.1:7/v1".to_owned()),
            _ => None,
        };
        let flag = Api {
            base_url: Some("http://localhost:1/v1/".into()),
        };
        let none = Api { base_url: None };
        assert_eq!(
            client(&flag, &env).unwrap().base_url(),
            "http://localhost:1/v1"
        );
        assert_eq!(
            client(&none, &env).unwrap().base_url(),
            "http://127.0.0.1:7/v1"
        );
        let creds_only = |name: &str| (name != BASE_URL_ENV).then(|| "x".to_owned());
        assert_eq!(client(&none, &creds_only).unwrap().base_url(), SANDBOX);
        let bad = Api {
            base_url: Some("ftp://x".into()),
        };
        assert!(matches!(client(&bad, &env), Err(Failure::Usage(_))));
        assert!(!format!("{:?}", client(&none, &env).unwrap()).contains("s3cr3t"));
    }

    #[test]
    fn refusals_exit_1_and_outages_exit_2() {
        let rejected = [
            ClientError::Unauthorized {
                code: "BLUM-401-003".into(),
                message: "m".into(),
            },
            ClientError::InvestorScopedKey {
                code: "BLUM-403-001".into(),
                message: "m".into(),
            },
            ClientError::Invalid {
                param: None,
                code: "BLUM-409-001".into(),
                message: "m".into(),
            },
            ClientError::NotFound {
                code: "c".into(),
                message: "m".into(),
            },
            ClientError::Api {
                status: 422,
                code: String::new(),
                message: "m".into(),
            },
        ];
        for err in rejected {
            assert!(matches!(failure(err), Failure::Rejected(_)));
        }
        let unavailable = [
            ClientError::Transport("refused".into()),
            ClientError::Decode("bad".into()),
            ClientError::Api {
                status: 503,
                code: String::new(),
                message: "m".into(),
            },
            ClientError::RateLimited {
                retry_after: Some(std::time::Duration::from_secs(3)),
                code: "BLUM-429-001".into(),
                message: "m".into(),
            },
        ];
        for err in unavailable {
            assert!(matches!(failure(err), Failure::Unavailable(_)));
        }
    }

    #[test]
    fn create_needs_an_event_type_and_update_needs_a_change() {
        assert!(parse(&["webhooks", "create", "--name", "n", "--url", "http://x/"]).is_err());
        // The name is optional, as in Bluum's webhooks guide.
        let command = parse(&[
            "webhooks",
            "create",
            "--url",
            "http://x/",
            "--event-type",
            "order.filled",
        ])
        .unwrap();
        let Command::Webhooks(Webhooks::Create(args)) = command else {
            panic!("{command:?}");
        };
        assert_eq!(args.name, None);
        assert!(parse(&["webhooks", "update", "wh_1"]).is_err());
        let command = parse(&[
            "webhooks",
            "update",
            "wh_1",
            "--status",
            "inactive",
            "--event-type",
            "order.*",
            "--event-type",
            "kyc.*",
        ])
        .unwrap();
        let Command::Webhooks(Webhooks::Update(args)) = command else {
            panic!("{command:?}");
        };
        assert_eq!(args.event_types, ["order.*", "kyc.*"]);
        assert!(matches!(args.status, Some(Status::Inactive)));
        assert!(!args.clear_description);
    }

    #[test]
    fn clear_description_is_a_change_and_conflicts_with_description() {
        let command = parse(&["webhooks", "update", "wh_1", "--clear-description"]).unwrap();
        let Command::Webhooks(Webhooks::Update(args)) = command else {
            panic!("{command:?}");
        };
        assert!(args.clear_description && args.description.is_none());
        let err = parse(&[
            "webhooks",
            "update",
            "wh_1",
            "--clear-description",
            "--description",
            "d",
        ])
        .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
    }

    #[test]
    fn webhooks_print_without_control_characters() {
        let hook: Webhook = serde_json::from_value(json!({
            "id": "wh_1", "name": "evil\x1b[2J", "url": "http://x/\n", "event_type_names": ["order.*"],
            "status": "ACTIVE", "created_at": "t", "secret": "whsec_abc"
        }))
        .unwrap();
        let text = webhook_text(&hook);
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'));
        assert!(text.contains("secret:      whsec_abc"));
        assert_eq!(webhook_json(&hook)["secret"], "whsec_abc");
        assert_eq!(webhook_json(&hook)["status"], "active");
        let table = webhooks_table(&[hook]);
        assert!(table.contains("wh_1") && !table.contains("whsec_abc"));
    }

    #[test]
    fn a_webhook_without_a_name_prints_without_one() {
        let hook: Webhook = serde_json::from_value(json!({
            "id": "wh_5e6f7g8h9i0j1k2l", "object": "webhook",
            "url": "https://your-app.com/webhooks/bluum",
            "event_type_names": ["order.filled"], "status": "active",
            "created_at": "2026-07-01T15:10:00Z"
        }))
        .unwrap();
        assert!(!webhook_text(&hook).contains("name:"));
        assert_eq!(webhook_json(&hook)["name"], serde_json::Value::Null);
        let table = webhooks_table(&[hook]);
        let row = table.lines().nth(1).unwrap();
        assert!(
            row.contains("wh_5e6f7g8h9i0j1k2l") && row.contains(" - "),
            "{table}"
        );
    }
}
