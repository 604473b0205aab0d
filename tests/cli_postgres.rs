//! The `webhook-inbox` binary against a real PostgreSQL store, as a real
//! process, while an `Inbox` in this test process (the running service)
//! stays connected to the same schema.
//!
//! The database is `WEBHOOK_INBOX_TEST_POSTGRES`; without it these tests say
//! why and pass, except under `CI=true`, where its absence fails them. Each
//! test uses a schema of its own, dropped at its end.
#![cfg(feature = "cli")]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use common::postgres::Schema;
use common::{bluum_body, bluum_headers};
use serde_json::Value;
use webhook_inbox::{
    Backoff, Event, EventState, HandlerError, Inbox, Ingested, Ingestor, OpenError, Router, Scheme,
    Verifier, Worker, WorkerConfig,
};

const BIN: &str = env!("CARGO_BIN_EXE_webhook-inbox");
const STORE_ENV: &str = "WEBHOOK_INBOX_STORE";

// -- The test database: `common::postgres`, and what these tests ask of it --

/// Whether PostgreSQL has a schema named like `schema` at all.
fn exists(schema: &Schema) -> bool {
    let row = common::postgres::client(schema.url())
        .query_one(
            "SELECT count(*) FROM pg_namespace WHERE nspname = $1",
            &[&schema.name()],
        )
        .expect("query");
    row.get::<_, i64>(0) == 1
}

/// The service: an inbox connected (and migrated) as a replica would.
fn connect(schema: &Schema) -> Inbox {
    schema
        .inbox()
        .pool_size(2)
        .connect()
        .expect("connect the service's inbox")
}

/// The password of `url` (none: an empty string).
fn password_of(url: &str) -> String {
    let config: postgres::Config = url.parse().expect("the test URL parses");
    config
        .get_password()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_default()
}

/// `url` with its user info replaced by `user:password`, the user kept (a
/// role that does not exist when the URL names none, so login fails whatever
/// the server's authentication method).
fn with_password(url: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (user, host) = match rest.split_once('@') {
        Some((userinfo, host)) => (userinfo.split(':').next().unwrap_or(""), host),
        None => ("webhook_inbox_no_such_role", rest),
    };
    format!("{scheme}://{user}:{password}@{host}")
}

// -- Running the binary --

#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs the binary with `WEBHOOK_INBOX_STORE` set to `env_store` (removed
/// when `None`), and checks that no password given to it, in an argument or
/// in the environment, shows up in its output: neither as `:password@` nor,
/// for `secrets`, anywhere at all.
fn cli(args: &[&str], env_store: Option<&str>, secrets: &[&str]) -> Run {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_remove(STORE_ENV)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(store) = env_store {
        command.env(STORE_ENV, store);
    }
    let out = command.output().expect("run webhook-inbox");
    let run = Run {
        code: out.status.code().expect("exited, not killed"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    let urls = args.iter().copied().chain(env_store);
    for url in urls.filter(|a| a.starts_with("postgres")) {
        let password = password_of(url);
        if !password.is_empty() {
            let userinfo = format!(":{password}@");
            assert!(
                !run.stdout.contains(&userinfo) && !run.stderr.contains(&userinfo),
                "the password leaked: {run:?}"
            );
        }
        assert!(
            !run.stdout.contains(url) && !run.stderr.contains(url),
            "the URL was printed whole: {run:?}"
        );
    }
    for secret in secrets {
        assert!(
            !run.stdout.contains(secret) && !run.stderr.contains(secret),
            "{secret} leaked: {run:?}"
        );
    }
    run
}

/// `webhook-inbox <args> --store <url> --schema <schema>`.
fn on(schema: &Schema, args: &[&str]) -> Run {
    let mut all = args.to_vec();
    all.extend(["--store", schema.url(), "--schema", schema.name()]);
    cli(&all, None, &[])
}

fn json_of(r: &Run) -> Value {
    assert_eq!(r.code, 0, "{r:?}");
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {r:?}"))
}

/// Polls `done` every 10 ms, for up to 20 s.
fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

// -- A service's inbox with something in every state --

/// Handled by the worker: only its dedup marker stays.
const HANDLED_ID: &str = "evt_pg_order_1";
/// Fail once (retryable), then for good: dead letters with two errors each.
const DEAD_ID: &str = "evt_pg_kyc_1";
const DEAD2_ID: &str = "evt_pg_kyc_2";
const KYC_FIRST: &str = "kyc provider timed out";
const KYC_LAST_RECORDED: &str = "investor inv_42 is unknown (permanent)";
/// Fails with a retryable error; its next attempt is an hour away.
const RETRYING_ID: &str = "evt_pg_transfer_1";
/// Accepted after the worker stopped: pending, never attempted.
const FRESH_ID: &str = "evt_pg_order_2";

fn bluum(inbox: &Inbox) -> Ingestor {
    inbox
        .ingestor(Verifier::new(Scheme::bluum(), [common::SECRET]).expect("secret"))
        .build()
        .expect("ingestor")
}

fn accept(ingestor: &Ingestor, id: &str, event_type: &str, n: u64) {
    let body = bluum_body(event_type, n);
    let outcome = ingestor.ingest(&bluum_headers(id, &body), &body);
    assert!(
        matches!(outcome, Ok(Ingested::Accepted { .. })),
        "{outcome:?}"
    );
}

/// The service, connected and left running: two dead letters, one retrying
/// event, one pending, the marker of a handled one; its worker stopped, so
/// nothing changes behind the test's back.
fn seeded(schema: &Schema) -> Inbox {
    let inbox = connect(schema);
    let ingestor = bluum(&inbox);
    let router = Router::builder()
        .on("order.*", |_e: &Event| Ok(()))
        .on("kyc.*", |e: &Event| {
            Err(if e.attempt() == 1 {
                HandlerError::retry(KYC_FIRST)
            } else {
                HandlerError::permanent("investor inv_42 is unknown")
            })
        })
        .on("transfer.*", |_e: &Event| {
            Err(HandlerError::retry("ledger unavailable: 503"))
        })
        .build()
        .expect("router");
    let config = WorkerConfig::default()
        .backoff_for("kyc.*", Backoff::ladder([Duration::from_millis(1)]))
        .backoff_for("transfer.*", Backoff::ladder([Duration::from_secs(3600)]));
    let worker = Worker::start(&inbox, router, config).expect("worker");
    accept(&ingestor, HANDLED_ID, "order.filled", 1);
    accept(&ingestor, DEAD_ID, "kyc.document.rejected", 2);
    accept(&ingestor, DEAD2_ID, "kyc.address.rejected", 3);
    accept(&ingestor, RETRYING_ID, "transfer.deposit.completed", 4);
    wait_for("one handled, two dead, three retries", || {
        let s = worker.stats();
        (s.handled, s.dead_lettered, s.retried) == (1, 2, 3)
    });
    worker.shutdown().expect("shutdown");
    accept(&ingestor, FRESH_ID, "order.canceled", 5);
    inbox
}

// -- The tests --

#[test]
fn store_commands_work_while_the_service_stays_connected() {
    let Some(schema) = Schema::fresh("ops") else {
        return;
    };
    let service = seeded(&schema);

    let stats = json_of(&on(&schema, &["stats", "--json"]));
    assert_eq!(
        (&stats["pending"], &stats["retrying"], &stats["dead"]),
        (&2.into(), &1.into(), &2.into()),
        "{stats}"
    );
    assert_eq!(stats["dedup_markers"], 5, "{stats}");
    let label = stats["store"].as_str().expect("the store's name");
    assert!(
        label.ends_with(&format!("(schema {})", schema.name())),
        "{label}"
    );
    if !password_of(schema.url()).is_empty() {
        assert!(label.contains(":***@"), "{label}");
    }
    let text = on(&schema, &["stats"]);
    assert!(text.stdout.contains("dead letters     2"), "{text:?}");

    let list = json_of(&on(&schema, &["list", "--json"]));
    let mut ids: Vec<&str> = list["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["id"].as_str().expect("an id"))
        .collect();
    ids.sort_unstable();
    let mut expected = [DEAD_ID, DEAD2_ID, RETRYING_ID, FRESH_ID];
    expected.sort_unstable();
    assert_eq!(ids, expected);
    let dead = on(&schema, &["list", "--state", "dead"]);
    assert_eq!(dead.code, 0, "{dead:?}");
    assert!(
        dead.stdout.contains(DEAD_ID) && !dead.stdout.contains(FRESH_ID),
        "{dead:?}"
    );

    let shown = on(&schema, &["show", DEAD_ID]);
    assert_eq!(shown.code, 0, "{shown:?}");
    for expected in [
        KYC_FIRST,
        KYC_LAST_RECORDED,
        "kyc.document.rejected",
        "dead",
    ] {
        assert!(shown.stdout.contains(expected), "{expected}: {shown:?}");
    }
    let raw = Command::new(BIN)
        .args([
            "show",
            DEAD_ID,
            "--raw",
            "--store",
            schema.url(),
            "--schema",
            schema.name(),
        ])
        .env_remove(STORE_ENV)
        .output()
        .expect("run");
    assert_eq!(raw.stdout, bluum_body("kyc.document.rejected", 2));
    let unknown = on(&schema, &["show", "evt_nobody"]);
    assert_eq!(unknown.code, 1, "{unknown:?}");
    assert!(
        unknown.stderr.contains("not found") && unknown.stderr.contains(schema.name()),
        "{unknown:?}"
    );

    // Replay one dead letter by id: the service sees it back at work.
    let replayed = on(&schema, &["replay", DEAD_ID]);
    assert_eq!(replayed.code, 0, "{replayed:?}");
    assert!(
        replayed.stdout.starts_with("replayed 1 dead letter\n"),
        "{replayed:?}"
    );
    let event = service.event(DEAD_ID).expect("read").expect("still stored");
    assert_eq!(event.state, EventState::Retrying);
    assert_eq!((event.attempts, event.dead_at), (0, None));
    assert!(
        event.next_attempt.expect("due") <= SystemTime::now(),
        "{event:?}"
    );
    assert_eq!(event.errors.len(), 2, "history kept");
    let again = on(&schema, &["replay", DEAD_ID]);
    assert_eq!(again.code, 1, "no longer dead: {again:?}");

    // Purge the other one: the young-only purge leaves it, the full one removes it.
    let young = on(&schema, &["purge", "--dead", "--older-than", "1d"]);
    assert_eq!(
        young.stdout, "purged 0 dead letters dead for at least 1d\n",
        "{young:?}"
    );
    let purged = json_of(&on(&schema, &["purge", "--dead", "--json"]));
    assert_eq!(purged, serde_json::json!({ "purged": 1 }));
    assert!(service.event(DEAD2_ID).expect("read").is_none());
    let s = service.stats();
    assert_eq!((s.dead, s.pending, s.dedup_markers), (0, 3, 5));

    // The service's worker runs the replayed event (and the fresh one).
    let router = Router::builder()
        .on("*", |_e: &Event| Ok(()))
        .build()
        .expect("router");
    let worker = Worker::start(&service, router, WorkerConfig::default()).expect("worker");
    wait_for("the replayed and the fresh event handled", || {
        worker.stats().handled == 2
    });
    worker.shutdown().expect("shutdown");
    assert!(service.event(DEAD_ID).expect("read").is_none(), "handled");
    service.close().expect("close");
}

#[test]
fn the_environment_names_the_store_and_a_flag_beats_it() {
    let Some(schema) = Schema::fresh("env") else {
        return;
    };
    // `migrate` reads the store from the environment too.
    let migrated = cli(
        &["migrate", "--schema", schema.name()],
        Some(schema.url()),
        &[],
    );
    assert_eq!(migrated.code, 0, "{migrated:?}");
    assert!(migrated.stdout.contains("version 1"), "{migrated:?}");
    let service = connect(&schema);
    accept(&bluum(&service), FRESH_ID, "order.filled", 1);

    let from_env = cli(
        &["stats", "--json", "--schema", schema.name()],
        Some(schema.url()),
        &[],
    );
    assert_eq!(json_of(&from_env)["pending"], 1, "{from_env:?}");

    // --store beats the variable, whichever of them is the database.
    let missing =
        std::env::temp_dir().join(format!("webhook-inbox-no-store-{}", std::process::id()));
    let missing = missing.to_str().expect("UTF-8");
    let dir_flag = cli(&["stats", "--store", missing], Some(schema.url()), &[]);
    assert_eq!(dir_flag.code, 2, "{dir_flag:?}");
    assert!(
        dir_flag.stderr.contains("no store at") && dir_flag.stderr.contains(missing),
        "{dir_flag:?}"
    );
    let url_flag = cli(
        &[
            "stats",
            "--json",
            "--store",
            schema.url(),
            "--schema",
            schema.name(),
        ],
        Some(missing),
        &[],
    );
    assert_eq!(json_of(&url_flag)["pending"], 1, "{url_flag:?}");

    // --schema means nothing for a directory.
    let dir_schema = cli(&["list", "--schema", schema.name()], Some(missing), &[]);
    assert_eq!(dir_schema.code, 2, "{dir_schema:?}");
    assert!(dir_schema.stderr.contains("--schema"), "{dir_schema:?}");
    assert!(!std::path::Path::new(missing).exists(), "nothing created");
    service.close().expect("close");
}

#[test]
fn migrate_print_writes_the_librarys_script_and_refuses_bad_names() {
    let print = cli(&["migrate", "--print", "--schema", "hooks_eu"], None, &[]);
    assert_eq!(print.code, 0, "{print:?}");
    let expected = webhook_inbox::postgres::migration_sql("hooks_eu").expect("a valid name");
    assert_eq!(print.stdout, expected);
    let default = cli(&["migrate", "--print"], None, &[]);
    assert_eq!(
        default.stdout,
        webhook_inbox::postgres::migration_sql("webhook_inbox").expect("valid")
    );

    // A bad name is refused before anything connects (this URL leads nowhere).
    let nowhere = "postgres://nobody:Unus3d-Pa55@127.0.0.1:1/none";
    for bad in [
        "Hooks",
        "hooks;drop schema public",
        "1hooks",
        "",
        "hooks\"x",
    ] {
        for args in [
            &["migrate", "--print", "--schema", bad][..],
            &["migrate", "--store", nowhere, "--schema", bad],
            &["stats", "--store", nowhere, "--schema", bad],
        ] {
            let r = cli(args, None, &["Unus3d-Pa55"]);
            assert_eq!(r.code, 2, "{args:?}: {r:?}");
            assert!(r.stdout.is_empty(), "{args:?}: {r:?}");
            assert!(r.stderr.contains("invalid schema name"), "{args:?}: {r:?}");
        }
    }

    let neither = cli(&["migrate"], None, &[]);
    assert_eq!(neither.code, 2, "{neither:?}");
    assert!(
        neither.stderr.contains("--print") && neither.stderr.contains(STORE_ENV),
        "{neither:?}"
    );
    let both = cli(&["migrate", "--print", "--store", nowhere], None, &[]);
    assert_eq!(both.code, 2, "{both:?}");
    let dir = cli(&["migrate", "--store", "/var/lib/hooks"], None, &[]);
    assert_eq!(dir.code, 2, "{dir:?}");
    assert!(dir.stderr.contains("postgres://"), "{dir:?}");
}

#[test]
fn migrate_makes_a_schema_the_library_accepts_without_migrating() {
    let Some(printed) = Schema::fresh("print") else {
        return;
    };
    let strict = |schema: &Schema| {
        Inbox::postgres(schema.url())
            .schema(schema.name())
            .migrate(false)
            .pool_size(1)
            .connect()
    };
    // The printed script, applied by other means than the CLI or the library.
    let print = cli(
        &["migrate", "--print", "--schema", printed.name()],
        None,
        &[],
    );
    assert_eq!(print.code, 0, "{print:?}");
    let mut client = postgres::Client::connect(printed.url(), postgres::NoTls).expect("connect");
    client
        .batch_execute(&print.stdout)
        .expect("the script applies");
    client
        .batch_execute(&print.stdout)
        .expect("and applies twice");
    drop(client);
    strict(&printed)
        .expect("a printed schema is current")
        .close()
        .expect("close");
    let current = on(&printed, &["migrate"]);
    assert_eq!(current.code, 0, "{current:?}");
    assert!(
        current.stdout.contains("at version 1: already up to date"),
        "{current:?}"
    );

    let Some(applied) = Schema::fresh("apply") else {
        return;
    };
    assert!(matches!(
        strict(&applied).map(drop),
        Err(OpenError::SchemaMissing { found: 0, .. })
    ));
    let created = on(&applied, &["migrate"]);
    assert_eq!(created.code, 0, "{created:?}");
    assert!(
        created
            .stdout
            .contains(&format!("schema {} at ", applied.name()))
            && created.stdout.contains("created: now at version 1"),
        "{created:?}"
    );
    strict(&applied)
        .expect("a migrated schema is current")
        .close()
        .expect("close");
    let again = on(&applied, &["migrate"]);
    assert!(again.stdout.contains("already up to date"), "{again:?}");
}

#[test]
fn store_commands_refuse_an_unmigrated_schema_and_create_nothing() {
    let Some(schema) = Schema::fresh("bare") else {
        return;
    };
    for args in [
        &["stats"][..],
        &["list", "--state", "dead"],
        &["show", DEAD_ID],
        &["replay", "--all-dead"],
        &["purge", "--dead"],
    ] {
        let r = on(&schema, args);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(r.stdout.is_empty(), "{args:?}: {r:?}");
        for expected in [
            "no webhook-inbox tables",
            schema.name(),
            "nothing was created",
            "webhook-inbox migrate --store",
            "migrate --print",
        ] {
            assert!(r.stderr.contains(expected), "{expected}: {args:?}: {r:?}");
        }
    }
    assert!(!exists(&schema), "a store command created the schema");
}

#[test]
fn a_wrong_password_is_refused_and_never_printed() {
    let Some(schema) = Schema::fresh("auth") else {
        return;
    };
    // Percent-encoded in the user info (decoded: `Wr0ng@Pa55/9c1e`), and in the query.
    let in_userinfo = with_password(schema.url(), "Wr0ng%40Pa55%2F9c1e");
    let base = with_password(schema.url(), "x");
    let (without, _) = base.split_once(":x@").expect("user info");
    let host = base.split_once(":x@").map(|(_, host)| host).expect("host");
    let in_query = format!(
        "{without}@{host}{}password=Wr0ngQu3ry-77d2",
        if host.contains('?') { "&" } else { "?" }
    );
    let secrets = ["Wr0ng%40Pa55%2F9c1e", "Wr0ng@Pa55/9c1e", "Wr0ngQu3ry-77d2"];
    for url in [in_userinfo.as_str(), in_query.as_str()] {
        for args in [
            &["stats", "--store", url][..],
            &["replay", "--all-dead", "--store", url],
            &["migrate", "--store", url],
        ] {
            let r = cli(args, None, &secrets);
            assert_eq!(r.code, 2, "{args:?}: {r:?}");
            assert!(
                r.stderr.contains("***"),
                "the URL is named, redacted: {r:?}"
            );
            assert!(
                r.stderr.contains("password authentication failed")
                    || r.stderr.contains("does not exist"),
                "{r:?}"
            );
        }
        let from_env = cli(&["list"], Some(url), &secrets);
        assert_eq!(from_env.code, 2, "{from_env:?}");
    }
    assert!(!exists(&schema));
}
