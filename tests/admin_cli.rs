//! The store commands over HTTP (`webhook-inbox --url`) against a running
//! `webhook-inbox admin`: the same output and exit status as on the local
//! store, the token from the environment or a file, and refusals.
#![cfg(feature = "cli")]

mod admin_support;
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use admin_support::{bluum, dead_count, deliver, envelope, wait_for, worker};
use common::TempDir;
use webhook_inbox::Inbox;

const TOKEN: &str = "cli-admin-token-0123456789";
const BIN: &str = env!("CARGO_BIN_EXE_webhook-inbox");

struct Admin(Child, String);

impl Admin {
    fn start(store: &std::path::Path, token: Option<&str>, extra: &[&str]) -> Self {
        let mut cmd = Command::new(BIN);
        cmd.args(["admin", "--listen", "127.0.0.1:0", "--store"])
            .arg(store)
            .args(extra);
        cmd.env_remove("WEBHOOK_INBOX_ADMIN_TOKEN");
        if let Some(t) = token {
            cmd.env("WEBHOOK_INBOX_ADMIN_TOKEN", t);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .trim_end_matches('/')
            .to_owned();
        Self(child, url)
    }
}

impl Drop for Admin {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cli(args: &[&str], token: Option<&str>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("WEBHOOK_INBOX_ADMIN_TOKEN")
        .env_remove("WEBHOOK_INBOX_STORE");
    if let Some(t) = token {
        cmd.env("WEBHOOK_INBOX_ADMIN_TOKEN", t);
    }
    cmd.output().unwrap()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn store_commands_over_http_print_what_they_print_locally() {
    let dir = TempDir::new("admin-cli");
    {
        let inbox = Inbox::open(dir.path()).unwrap();
        let w = worker(&inbox, Arc::new(AtomicBool::new(true)));
        let ingest = bluum(&inbox);
        for n in 0..3 {
            deliver(&ingest, &format!("evt_{n}"), &envelope("order.filled", n));
        }
        deliver(&ingest, "evt_t", &envelope("transfer.failed", 9));
        wait_for("four dead letters", || dead_count(&inbox) == 4);
        drop(w);
        drop(ingest);
        inbox.close().unwrap();
    }
    let store = dir.path().to_str().unwrap().to_owned();
    let reads: [&[&str]; 6] = [
        &["stats", "--json"],
        &["list"],
        &[
            "list", "--json", "--state", "dead", "--type", "order.*", "--limit", "2",
        ],
        &["show", "evt_t", "--json"],
        &["show", "evt_1", "--raw"],
        &["show", "evt_nope"],
    ];
    // Over HTTP, while `webhook-inbox admin` holds the store.
    let admin = Admin::start(dir.path(), Some(TOKEN), &[]);
    let url = admin.1.clone();
    let remote: Vec<Output> = reads
        .iter()
        .map(|args| cli(&[&["--url", &url], *args].concat(), Some(TOKEN)))
        .collect();
    // No token, a wrong one: refused (exit 2), nothing printed.
    let none = cli(&["--url", &url, "stats"], None);
    let wrong = cli(&["--url", &url, "stats"], Some("wrong-token-0123456789"));
    for o in [&none, &wrong] {
        assert_eq!(o.status.code(), Some(2));
        assert!(o.stdout.is_empty());
        assert!(String::from_utf8_lossy(&o.stderr).contains("WEBHOOK_INBOX_ADMIN_TOKEN"));
    }
    // The token from a file.
    let token_file = dir.path().with_extension("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let from_file = cli(
        &[
            "--url",
            &url,
            "--token-file",
            token_file.to_str().unwrap(),
            "stats",
            "--json",
        ],
        None,
    );
    assert_eq!(out(&from_file), out(&remote[0]));
    drop(admin);

    // The same commands on the local store.
    for (args, over_http) in reads.iter().zip(&remote) {
        let local = cli(&[*args, &["--store", &store]].concat(), None);
        assert_eq!(
            over_http.status.code(),
            local.status.code(),
            "{args:?}: {over_http:?}"
        );
        if args[0] == "stats" {
            // The bytes on disk differ while a process has the store open.
            let without_size = |o: &Output| {
                let mut v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
                v.as_object_mut().unwrap().remove("disk_bytes");
                v
            };
            assert_eq!(without_size(over_http), without_size(&local));
        } else {
            assert_eq!(out(over_http), out(&local), "{args:?}");
        }
    }
    assert_eq!(
        remote[5].status.code(),
        Some(1),
        "an unknown id is exit 1 either way"
    );
    assert!(out(&remote[1]).contains("evt_t") && out(&remote[1]).contains("dead"));

    // Changes over HTTP: replay one, an unknown id (exit 1), purge the rest.
    let admin = Admin::start(dir.path(), Some(TOKEN), &[]);
    let url = admin.1.clone();
    let replay = cli(&["--url", &url, "replay", "evt_0", "--json"], Some(TOKEN));
    assert_eq!(
        (replay.status.code(), out(&replay)),
        (Some(0), "{\n  \"replayed\": 1\n}\n".to_owned())
    );
    let unknown = cli(&["--url", &url, "replay", "evt_nope"], Some(TOKEN));
    assert_eq!(unknown.status.code(), Some(1));
    let purge = cli(&["--url", &url, "purge", "--dead"], Some(TOKEN));
    assert_eq!(purge.status.code(), Some(0), "{purge:?}");
    assert!(
        out(&purge).starts_with("purged 3 dead letters"),
        "{}",
        out(&purge)
    );
    drop(admin);

    // Read-only: changes refused (exit 2).
    let admin = Admin::start(dir.path(), Some(TOKEN), &["--read-only"]);
    let refused = cli(&["--url", &admin.1, "purge", "--dead"], Some(TOKEN));
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("read-only"));
    drop(admin);

    // Without a token it will not listen beyond loopback.
    let open = Command::new(BIN)
        .args(["admin", "--listen", "0.0.0.0:0", "--store", &store])
        .env_remove("WEBHOOK_INBOX_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert_eq!(open.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&open.stderr).contains("without credentials"));
    std::thread::sleep(Duration::from_millis(10));
}

/// `target/<profile>/examples/axum` (built by `cargo test --all-features`).
fn axum_example() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .and_then(std::path::Path::parent)
        .unwrap()
        .join("examples/axum");
    assert!(
        path.is_file(),
        "{} is missing: build the examples with `cargo test --all-features`",
        path.display()
    );
    path
}

#[test]
fn the_cli_reads_and_repairs_the_running_axum_example() {
    let dir = TempDir::new("admin-cli-example");
    let mut child = Command::new(axum_example())
        .args(["--port", "0", "--store"])
        .arg(dir.path())
        .env("WEBHOOK_SECRET", common::SECRET)
        .env("WEBHOOK_INBOX_ADMIN_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    // Keep reading: the example prints each handled event.
    std::thread::spawn(move || for _ in reader.lines().map_while(Result::ok) {});
    let _child = Kill(child);
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_owned();
    // A delivery, handled by the example's worker.
    let body = envelope("order.filled", 1);
    let mut request = ureq::post(format!("{base}/webhooks/bluum"));
    for (name, value) in common::bluum_headers("evt_example", &body) {
        request = request.header(name, value);
    }
    assert_eq!(request.send(&body[..]).unwrap().status(), 200);

    let url = format!("{base}/admin");
    let stats = || {
        let o = cli(&["--url", &url, "stats", "--json"], Some(TOKEN));
        assert_eq!(o.status.code(), Some(0), "{o:?}");
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    wait_for("the example to handle the delivery", || {
        stats()["pending"] == 0
    });
    let v = stats();
    assert_eq!(
        (v["dead"].as_u64(), v["dedup_markers"].as_u64()),
        (Some(0), Some(1)),
        "{v}"
    );
    let list = cli(&["--url", &url, "list"], Some(TOKEN));
    assert_eq!(
        (list.status.code(), out(&list)),
        (Some(0), "no stored events match\n".to_owned())
    );
    let show = cli(&["--url", &url, "show", "evt_example"], Some(TOKEN));
    assert_eq!(show.status.code(), Some(1), "handled events are not kept");
    assert_eq!(
        cli(
            &["--url", &url, "replay", "--all-dead", "--json"],
            Some(TOKEN)
        )
        .status
        .code(),
        Some(0)
    );
    assert_eq!(
        cli(&["--url", &url, "stats"], Some("not-the-token-0123456789"))
            .status
            .code(),
        Some(2)
    );
}
