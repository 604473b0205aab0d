//! The typed client (`webhook_inbox::bluum::client`) and the `webhook-inbox
//! bluum` commands against the real emulator (`webhook-inbox emulate`) over
//! HTTP on 127.0.0.1: the contract of docs/BLUUM_API.md, end to end.
#![cfg(feature = "cli")]

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::TempDir;
use common::emulator::{self, Emulator, INVESTOR_KEY, INVESTOR_SECRET, TENANT_KEY, TENANT_SECRET};
use serde_json::Value;
use webhook_inbox::bluum::{self, client::*};

const RECEIVER: &str = "http://127.0.0.1:9/webhooks/bluum";

/// A running emulator and the store directory it uses (removed after it stops).
struct Running {
    emulator: Emulator,
    _store: TempDir,
}

impl Running {
    fn start(name: &str) -> Self {
        let store = TempDir::new(name);
        let emulator = Emulator::start(store.path(), &[]);
        Self {
            emulator,
            _store: store,
        }
    }

    fn url(&self) -> String {
        self.emulator.url()
    }

    fn tenant(&self) -> Client {
        Client::new(self.url(), TENANT_KEY, TENANT_SECRET).timeout(Duration::from_secs(20))
    }
}

fn names(hooks: &[Webhook]) -> Vec<&str> {
    hooks
        .iter()
        .map(|h| h.name.as_deref().unwrap_or(""))
        .collect()
}

#[test]
fn event_types_are_the_catalog() {
    let bluum = Running::start("client-event-types");
    let types = bluum.tenant().event_types().unwrap();
    assert_eq!(types.len(), 16);
    let listed: Vec<&str> = types.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(listed, bluum::EVENT_TYPES);
    let filled = types.iter().find(|t| t.name == "order.filled").unwrap();
    assert_eq!(filled.category, "order");
    assert_eq!(filled.display_name, "Order filled");
    assert!(!filled.description.is_empty());
    let deposit = types
        .iter()
        .find(|t| t.name == "transfer.deposit.completed")
        .unwrap();
    assert_eq!(deposit.category, "transfer");
}

#[test]
fn create_answers_with_the_secret_once() {
    let bluum = Running::start("client-create");
    let client = bluum.tenant();
    let new = NewWebhook::new("Money", RECEIVER, ["order.filled", "transfer.*"])
        .description("ledger sync");
    let hook = client.create_webhook(&new).unwrap();
    assert!(hook.id.starts_with("wh_"), "{}", hook.id);
    assert_eq!(hook.name.as_deref(), Some("Money"));
    assert_eq!(hook.url, RECEIVER);
    assert_eq!(hook.description.as_deref(), Some("ledger sync"));
    assert_eq!(hook.event_type_names, ["order.filled", "transfer.*"]);
    assert_eq!(hook.status, WebhookStatus::Active);
    assert!(!hook.created_at.is_empty());
    let secret = hook
        .secret
        .as_ref()
        .expect("create answers with the secret");
    assert!(secret.expose().starts_with("whsec_"));
    assert!(!format!("{hook:?}").contains(secret.expose()));

    // Never again: not on get, not in the list.
    let read = client.get_webhook(&hook.id).unwrap();
    assert_eq!(read.secret, None);
    assert_eq!(
        (read.id.as_str(), read.event_type_names.clone()),
        (hook.id.as_str(), hook.event_type_names.clone())
    );
    assert!(
        client
            .list_webhooks()
            .unwrap()
            .iter()
            .all(|h| h.secret.is_none())
    );

    // A wildcard alone, and a deeper one.
    let deep = client
        .create_webhook(&NewWebhook::new(
            "Deposits",
            RECEIVER,
            ["transfer.deposit.*"],
        ))
        .unwrap();
    assert_eq!(deep.event_type_names, ["transfer.deposit.*"]);
    assert_eq!(deep.description, None);
    assert_ne!(
        deep.secret.as_ref().map(webhook_inbox::Secret::expose),
        Some(secret.expose()),
        "every webhook has its own secret"
    );
}

#[test]
fn list_get_update_delete() {
    let bluum = Running::start("client-lifecycle");
    let client = bluum.tenant();
    assert!(client.list_webhooks().unwrap().is_empty());
    let first = client
        .create_webhook(&NewWebhook::new("First", RECEIVER, ["order.*"]))
        .unwrap();
    let second = client
        .create_webhook(&NewWebhook::new(
            "Second",
            RECEIVER,
            ["kyc.verification.approved"],
        ))
        .unwrap();

    let listed = client.list_webhooks().unwrap();
    assert_eq!(names(&listed), ["First", "Second"], "creation order");
    assert_eq!(listed[0].id, first.id);

    let got = client.get_webhook(&second.id).unwrap();
    assert_eq!(got.name.as_deref(), Some("Second"));
    assert_eq!(got.status, WebhookStatus::Active);

    let updated = client
        .update_webhook(
            &first.id,
            &WebhookUpdate::new()
                .status(WebhookStatus::Inactive)
                .event_type_names(["order.filled", "transfer.withdrawal.*"]),
        )
        .unwrap();
    assert_eq!(updated.id, first.id);
    assert_eq!(updated.status, WebhookStatus::Inactive);
    assert_eq!(
        updated.event_type_names,
        ["order.filled", "transfer.withdrawal.*"]
    );
    assert_eq!(
        updated.name.as_deref(),
        Some("First"),
        "fields not sent are kept"
    );
    assert_eq!(updated.secret, None);
    let reread = client.get_webhook(&first.id).unwrap();
    assert_eq!(reread.status, WebhookStatus::Inactive);
    assert_eq!(reread.event_type_names, updated.event_type_names);

    let renamed = client
        .update_webhook(
            &first.id,
            &WebhookUpdate::new()
                .name("First, renamed")
                .description("paused")
                .status(WebhookStatus::Active),
        )
        .unwrap();
    assert_eq!(renamed.name.as_deref(), Some("First, renamed"));
    assert_eq!(renamed.description.as_deref(), Some("paused"));
    assert_eq!(renamed.status, WebhookStatus::Active);
    assert_eq!(renamed.event_type_names, updated.event_type_names);

    client.delete_webhook(&first.id).unwrap();
    let gone = client.get_webhook(&first.id).unwrap_err();
    assert!(matches!(gone, ClientError::NotFound { .. }), "{gone:?}");
    assert!(gone.to_string().contains("BLUM-404-001"), "{gone}");
    let again = client.delete_webhook(&first.id).unwrap_err();
    assert!(matches!(again, ClientError::NotFound { .. }), "{again:?}");
    let patch = client
        .update_webhook(&first.id, &WebhookUpdate::new().name("x"))
        .unwrap_err();
    assert!(matches!(patch, ClientError::NotFound { .. }), "{patch:?}");
    assert_eq!(names(&client.list_webhooks().unwrap()), ["Second"]);
}

#[test]
fn a_description_can_be_cleared_and_set_again() {
    let bluum = Running::start("client-description");
    let client = bluum.tenant();
    let hook = client
        .create_webhook(
            &NewWebhook::new("Orders", RECEIVER, ["order.*"]).description("to be removed"),
        )
        .unwrap();
    assert_eq!(hook.description.as_deref(), Some("to be removed"));

    let cleared = client
        .update_webhook(&hook.id, &WebhookUpdate::new().clear_description())
        .unwrap();
    assert_eq!(cleared.description, None);
    assert_eq!(
        (cleared.name.as_deref(), cleared.status),
        (Some("Orders"), WebhookStatus::Active),
        "fields not sent are kept"
    );
    assert_eq!(client.get_webhook(&hook.id).unwrap().description, None);
    let listed = client.list_webhooks().unwrap();
    assert_eq!(listed[0].description, None);

    let set = client
        .update_webhook(
            &hook.id,
            &WebhookUpdate::new().clear_description().description("back"),
        )
        .unwrap();
    assert_eq!(
        set.description.as_deref(),
        Some("back"),
        "the last call wins"
    );

    // Clearing with another change, and clearing what is already clear.
    let both = client
        .update_webhook(
            &hook.id,
            &WebhookUpdate::new()
                .name("Orders, plain")
                .clear_description(),
        )
        .unwrap();
    assert_eq!(both.name.as_deref(), Some("Orders, plain"));
    assert_eq!(both.description, None);
    let again = client
        .update_webhook(&hook.id, &WebhookUpdate::new().clear_description())
        .unwrap();
    assert_eq!(again.description, None);
}

#[test]
fn an_empty_update_is_refused_without_a_request() {
    let bluum = Running::start("client-empty-update");
    let client = bluum.tenant();
    let hook = client
        .create_webhook(&NewWebhook::new("Orders", RECEIVER, ["order.*"]).description("kept"))
        .unwrap();
    let err = client
        .update_webhook(&hook.id, &WebhookUpdate::new())
        .unwrap_err();
    match &err {
        ClientError::Invalid {
            param: None, code, ..
        } => assert_eq!(code, "", "refused locally, not by the server"),
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string()
            .starts_with("invalid request: nothing to update"),
        "{err}"
    );
    assert_eq!(client.get_webhook(&hook.id).unwrap(), {
        let mut unchanged = hook.clone();
        unchanged.secret = None;
        unchanged
    });

    // Not even a connection: against a port nothing listens on it is still
    // the local refusal, not a transport error.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let closed = Client::new(
        format!("http://127.0.0.1:{port}/v1"),
        TENANT_KEY,
        TENANT_SECRET,
    );
    let err = closed
        .update_webhook(&hook.id, &WebhookUpdate::new())
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Invalid { param: None, .. }),
        "{err:?}"
    );
}

#[test]
fn list_follows_has_more_past_a_page() {
    let bluum = Running::start("client-pages");
    let client = bluum.tenant();
    let total = 205;
    for n in 0..total {
        client
            .create_webhook(&NewWebhook::new(format!("hook {n}"), RECEIVER, ["order.*"]))
            .unwrap();
    }
    let listed = client.list_webhooks().unwrap();
    assert_eq!(listed.len(), total);
    for (n, hook) in listed.iter().enumerate() {
        assert_eq!(hook.name.as_deref(), Some(format!("hook {n}").as_str()));
    }
}

#[test]
fn an_investor_scoped_key_is_told_to_use_a_tenant_wide_key() {
    let bluum = Running::start("client-investor");
    let investor = Client::new(bluum.url(), INVESTOR_KEY, INVESTOR_SECRET);
    let err = investor
        .create_webhook(&NewWebhook::new("Orders", RECEIVER, ["order.*"]))
        .unwrap_err();
    let ClientError::InvestorScopedKey { code, message } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(code, "BLUM-403-001");
    assert!(!message.is_empty());
    let text = err.to_string();
    assert!(
        text.starts_with("this API key is not allowed to manage webhooks (BLUM-403-001): "),
        "{text}"
    );
    assert!(text.contains("tenant-wide"), "{text}");
    assert!(text.contains("tenant-level"), "{text}");
    // Bluum's own words follow.
    assert!(
        text.ends_with(&format!("(Bluum said: {message})")),
        "{text}"
    );
    let err = investor.list_webhooks().unwrap_err();
    assert!(
        matches!(err, ClientError::InvestorScopedKey { .. }),
        "{err:?}"
    );
    // Nothing was created.
    assert!(bluum.tenant().list_webhooks().unwrap().is_empty());
}

#[test]
fn a_wrong_secret_or_key_is_unauthorized() {
    let bluum = Running::start("client-unauthorized");
    for client in [
        Client::new(bluum.url(), TENANT_KEY, "not-the-secret"),
        Client::new(bluum.url(), "bk_unknown", TENANT_SECRET),
    ] {
        let err = client.list_webhooks().unwrap_err();
        match &err {
            ClientError::Unauthorized { code, .. } => assert_eq!(code, "BLUM-401-003"),
            other => panic!("{other:?}"),
        }
        assert!(!err.to_string().contains(TENANT_SECRET));
        assert!(!format!("{client:?}").contains(TENANT_SECRET));
    }
}

#[test]
fn refusals_name_the_field() {
    let bluum = Running::start("client-invalid");
    let client = bluum.tenant();
    let err = client
        .create_webhook(&NewWebhook::new("Orders", RECEIVER, ["order.exploded"]))
        .unwrap_err();
    match &err {
        ClientError::Invalid { param, code, .. } => {
            assert_eq!(param.as_deref(), Some("eventTypeNames"));
            assert_eq!(code, "BLUM-400-004");
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("eventTypeNames"), "{err}");

    let none: [&str; 0] = [];
    let err = client
        .create_webhook(&NewWebhook::new("Orders", RECEIVER, none))
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::Invalid { param: Some(p), .. } if p == "eventTypeNames"),
        "{err:?}"
    );
    let err = client
        .create_webhook(&NewWebhook::new(
            "Orders",
            "ftp://example.com/",
            ["order.*"],
        ))
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::Invalid { param: Some(p), .. } if p == "url"),
        "{err:?}"
    );

    let hook = client
        .create_webhook(&NewWebhook::new("Orders", RECEIVER, ["order.*"]))
        .unwrap();
    let err = client
        .update_webhook(&hook.id, &WebhookUpdate::new().event_type_names(["nope.*"]))
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::Invalid { param: Some(p), .. } if p == "eventTypeNames"),
        "{err:?}"
    );
    assert!(client.list_webhooks().unwrap().len() == 1);
}

#[test]
fn ids_cannot_reach_another_route() {
    let bluum = Running::start("client-ids");
    let client = bluum.tenant();
    client
        .create_webhook(&NewWebhook::new("Orders", RECEIVER, ["order.*"]))
        .unwrap();
    for id in [
        "event-types/../..",
        "../_emulator/deliveries",
        "x?limit=1",
        "a b",
        "",
    ] {
        let err = client.delete_webhook(id).unwrap_err();
        assert!(
            matches!(&err, ClientError::Invalid { param: Some(p), .. } if p == "id"),
            "{id:?}: {err:?}"
        );
    }
    assert_eq!(client.list_webhooks().unwrap().len(), 1);
    // A well-formed id that does not exist.
    let err = client.get_webhook("wh_0000000000000000").unwrap_err();
    assert!(matches!(err, ClientError::NotFound { .. }), "{err:?}");
}

#[test]
fn an_unreachable_api_is_a_transport_error_naming_the_url() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/v1");
    let err = Client::new(&url, TENANT_KEY, TENANT_SECRET)
        .timeout(Duration::from_secs(5))
        .list_webhooks()
        .unwrap_err();
    assert!(matches!(err, ClientError::Transport(_)), "{err:?}");
    assert!(err.to_string().contains(&url), "{err}");
}

#[test]
fn a_wrong_base_url_is_not_found_not_a_crash() {
    let bluum = Running::start("client-base-url");
    // Missing `/v1`: the emulator has no such route.
    let base = bluum.emulator.base().to_owned();
    let err = Client::new(base, TENANT_KEY, TENANT_SECRET)
        .list_webhooks()
        .unwrap_err();
    assert!(
        matches!(err, ClientError::NotFound { .. } | ClientError::Api { .. }),
        "{err:?}"
    );
}

// --- the `webhook-inbox bluum` commands -----------------------------------

/// Runs `webhook-inbox bluum ARGS` with `env` as the only BLUUM_ variables.
fn cli(args: &[&str], env: &[(&str, &str)]) -> Output {
    for arg in args {
        assert!(
            !arg.contains(TENANT_SECRET) && !arg.contains(INVESTOR_SECRET),
            "the secret must never be on the command line"
        );
    }
    let mut command = Command::new(emulator::binary());
    command
        .arg("bluum")
        .args(args)
        .env_remove("BLUUM_API_KEY")
        .env_remove("BLUUM_API_SECRET")
        .env_remove("BLUUM_BASE_URL");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

fn tenant_env(bluum: &Running) -> Vec<(&'static str, String)> {
    vec![
        ("BLUUM_API_KEY", TENANT_KEY.to_owned()),
        ("BLUUM_API_SECRET", TENANT_SECRET.to_owned()),
        ("BLUUM_BASE_URL", bluum.url()),
    ]
}

fn run_ok(args: &[&str], env: &[(&'static str, String)]) -> String {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = cli(args, &env);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {:?}\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    assert!(!stdout.contains(TENANT_SECRET) && !stderr.contains(TENANT_SECRET));
    stdout
}

fn run_fails(args: &[&str], env: &[(&str, &str)], code: i32) -> String {
    let out = cli(args, env);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        out.status.code(),
        Some(code),
        "{args:?}\nstdout: {stdout}\nstderr: {stderr}"
    );
    for secret in [TENANT_SECRET, INVESTOR_SECRET] {
        assert!(!stdout.contains(secret) && !stderr.contains(secret));
    }
    stderr
}

#[test]
fn cli_manages_webhooks_with_credentials_from_the_environment() {
    let bluum = Running::start("cli-lifecycle");
    let env = tenant_env(&bluum);

    let text = run_ok(
        &[
            "webhooks",
            "create",
            "--name",
            "Orders",
            "--url",
            RECEIVER,
            "--event-type",
            "order.filled",
            "--event-type",
            "transfer.*",
            "--description",
            "from the CLI",
        ],
        &env,
    );
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no `{name}:` line in {text}"))
            .to_owned()
    };
    let id = field("id");
    let secret = field("secret");
    assert!(id.starts_with("wh_"), "{text}");
    assert!(secret.starts_with("whsec_"), "{text}");
    assert!(text.contains("not shown again"), "{text}");
    assert_eq!(field("event types"), "order.filled, transfer.*");

    // The library agrees, and never shows the secret again.
    let hook = bluum.tenant().get_webhook(&id).unwrap();
    assert_eq!(hook.name.as_deref(), Some("Orders"));
    assert_eq!(hook.secret, None);

    let list: Value = serde_json::from_str(&run_ok(&["webhooks", "list", "--json"], &env)).unwrap();
    let list = list.as_array().expect("a JSON array");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["status"], "active");
    assert_eq!(list[0]["event_type_names"][1], "transfer.*");
    assert!(list[0].get("secret").is_none());

    let table = run_ok(&["webhooks", "list"], &env);
    assert!(table.contains(&id) && table.contains("Orders"), "{table}");
    assert!(!table.contains(&secret));

    let got: Value =
        serde_json::from_str(&run_ok(&["webhooks", "get", &id, "--json"], &env)).unwrap();
    assert_eq!(got["name"], "Orders");
    assert_eq!(got["description"], "from the CLI");

    let updated: Value = serde_json::from_str(&run_ok(
        &[
            "webhooks",
            "update",
            &id,
            "--status",
            "inactive",
            "--event-type",
            "kyc.*",
            "--json",
        ],
        &env,
    ))
    .unwrap();
    assert_eq!(updated["status"], "inactive");
    assert_eq!(updated["event_type_names"], serde_json::json!(["kyc.*"]));
    assert_eq!(
        bluum.tenant().get_webhook(&id).unwrap().status,
        WebhookStatus::Inactive
    );
    assert_eq!(updated["description"], "from the CLI");

    let cleared: Value = serde_json::from_str(&run_ok(
        &["webhooks", "update", &id, "--clear-description", "--json"],
        &env,
    ))
    .unwrap();
    assert_eq!(cleared["description"], Value::Null);
    assert_eq!(cleared["status"], "inactive", "fields not sent are kept");
    assert_eq!(bluum.tenant().get_webhook(&id).unwrap().description, None);
    let text = run_ok(&["webhooks", "get", &id], &env);
    assert!(!text.contains("description:"), "{text}");

    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let stderr = run_fails(
        &[
            "webhooks",
            "update",
            &id,
            "--clear-description",
            "--description",
            "both",
        ],
        &env_refs,
        2,
    );
    assert!(stderr.contains("--clear-description"), "{stderr}");
    assert_eq!(bluum.tenant().get_webhook(&id).unwrap().description, None);

    let deleted = run_ok(&["webhooks", "delete", &id], &env);
    assert!(deleted.contains(&id), "{deleted}");
    let stderr = run_fails(&["webhooks", "get", &id], &env_refs, 1);
    assert!(stderr.contains("not found"), "{stderr}");
    assert!(bluum.tenant().list_webhooks().unwrap().is_empty());
}

#[test]
fn cli_create_json_carries_the_secret_and_the_base_url_flag_wins() {
    let bluum = Running::start("cli-create-json");
    let env = [
        ("BLUUM_API_KEY", TENANT_KEY.to_owned()),
        ("BLUUM_API_SECRET", TENANT_SECRET.to_owned()),
        // Nothing listens here: --base-url must be the one used.
        ("BLUUM_BASE_URL", "http://127.0.0.1:9/v1".to_owned()),
    ];
    let url = bluum.url();
    let out = run_ok(
        &[
            "webhooks",
            "create",
            "--base-url",
            &url,
            "--name",
            "J",
            "--url",
            RECEIVER,
            "--event-type",
            "order.*",
            "--json",
        ],
        &env,
    );
    let hook: Value = serde_json::from_str(&out).unwrap();
    assert!(hook["id"].as_str().unwrap().starts_with("wh_"));
    assert!(hook["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(hook["description"], Value::Null);
}

#[test]
fn cli_event_types() {
    let bluum = Running::start("cli-event-types");
    let env = tenant_env(&bluum);
    let table = run_ok(&["event-types"], &env);
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("NAME") && header.contains("CATEGORY"),
        "{table}"
    );
    let filled = table
        .lines()
        .find(|l| l.starts_with("order.filled "))
        .unwrap();
    assert!(
        filled.contains("order") && filled.contains("Order filled"),
        "{filled}"
    );
    assert_eq!(table.lines().count(), 17, "{table}");

    let json: Value = serde_json::from_str(&run_ok(&["event-types", "--json"], &env)).unwrap();
    let json = json.as_array().unwrap();
    assert_eq!(json.len(), 16);
    assert!(
        json.iter()
            .any(|t| t["name"] == "order.filled" && t["category"] == "order")
    );
}

#[test]
fn cli_without_credentials_exits_2_naming_the_variable() {
    let bluum = Running::start("cli-credentials");
    let url = bluum.url();
    let stderr = run_fails(
        &["webhooks", "list"],
        &[("BLUUM_API_KEY", TENANT_KEY), ("BLUUM_BASE_URL", &url)],
        2,
    );
    assert!(stderr.contains("BLUUM_API_SECRET"), "{stderr}");
    let stderr = run_fails(
        &["event-types"],
        &[
            ("BLUUM_API_SECRET", TENANT_SECRET),
            ("BLUUM_BASE_URL", &url),
        ],
        2,
    );
    assert!(stderr.contains("BLUUM_API_KEY"), "{stderr}");
}

#[test]
fn cli_refusals_exit_1_and_outages_exit_2() {
    let bluum = Running::start("cli-refusals");
    let url = bluum.url();

    let investor = [
        ("BLUUM_API_KEY", INVESTOR_KEY),
        ("BLUUM_API_SECRET", INVESTOR_SECRET),
        ("BLUUM_BASE_URL", url.as_str()),
    ];
    let stderr = run_fails(&["webhooks", "list"], &investor, 1);
    assert!(
        stderr.contains("not allowed to manage webhooks (BLUM-403-001)"),
        "{stderr}"
    );
    assert!(stderr.contains("tenant-wide"), "{stderr}");

    let wrong = [
        ("BLUUM_API_KEY", TENANT_KEY),
        ("BLUUM_API_SECRET", "wrong"),
        ("BLUUM_BASE_URL", url.as_str()),
    ];
    let stderr = run_fails(&["webhooks", "list"], &wrong, 1);
    assert!(stderr.contains("BLUM-401-003"), "{stderr}");

    let tenant = [
        ("BLUUM_API_KEY", TENANT_KEY),
        ("BLUUM_API_SECRET", TENANT_SECRET),
        ("BLUUM_BASE_URL", url.as_str()),
    ];
    let stderr = run_fails(
        &[
            "webhooks",
            "create",
            "--name",
            "x",
            "--url",
            RECEIVER,
            "--event-type",
            "order.nope",
        ],
        &tenant,
        1,
    );
    assert!(stderr.contains("eventTypeNames"), "{stderr}");

    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let closed = format!("http://127.0.0.1:{port}/v1");
    let stderr = run_fails(&["webhooks", "list", "--base-url", &closed], &tenant, 2);
    assert!(stderr.contains(&closed), "{stderr}");
}
