//! Integration tests of the `webhookd` binary: the real program on a temporary data directory
//! and a free loopback port, driven over HTTP and with signals; and several of them on one
//! PostgreSQL database (`cluster`).

#![expect(
    clippy::unwrap_used,
    reason = "tests: a panic with a message is how a test fails"
)]

mod agent;
mod bootstrap;
mod cluster;
mod crash;
mod daemon;
mod dispatch;
mod ingest;

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::daemon::{Daemon, run};

/// How long [`eventually`] waits.
const DEADLINE: Duration = Duration::from_secs(20);

/// Polls `check` every 20 ms until it yields a value; fails the test after [`DEADLINE`].
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = std::time::Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(started.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A first start with `args` on a new data directory: the directory (removed when dropped), the
/// daemon and the admin key it printed.
async fn first_start(args: &[&str]) -> (tempfile::TempDir, Daemon, String) {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), args).await;
    let key = daemon
        .admin_key()
        .expect("the first start prints an admin key");
    (dir, daemon, key)
}

/// Creates a target and a webhook with a generated secret; returns (ingest URL, secret).
async fn webhook(daemon: &Daemon, key: &str) -> (String, String) {
    webhook_with_rate(daemon, key, 100).await
}

async fn webhook_with_rate(daemon: &Daemon, key: &str, rate: u32) -> (String, String) {
    let agent = json!({"kind": "agent", "name": "build agent"});
    let target = created(daemon, key, "/api/v1/targets", agent).await;
    let webhook = created(
        daemon,
        key,
        "/api/v1/webhooks",
        json!({
            "name": "CI",
            "target_id": target["id"],
            "generate_secret": true,
            "rate_limit_per_minute": rate,
        }),
    )
    .await;
    (
        webhook["url"].as_str().unwrap().to_owned(),
        webhook["secret"].as_str().unwrap().to_owned(),
    )
}

/// `POST path` of `body` as `key`, which must answer 201: the JSON body.
async fn created(daemon: &Daemon, key: &str, path: &str, body: Value) -> Value {
    let (status, body) = daemon.api("POST", path, key, Some(body)).await;
    assert_eq!(status, 201, "POST {path}: {body}");
    body
}

/// The daemon's `/metrics` text.
async fn metrics(daemon: &Daemon) -> String {
    let response = reqwest::get(format!("{}/metrics", daemon.base)).await;
    response.unwrap().text().await.unwrap()
}

/// `GET path` as `key`, which must answer 200: the JSON body.
async fn get(daemon: &Daemon, key: &str, path: &str) -> Value {
    let (status, body) = daemon.api("GET", path, key, None).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

async fn send_event(url: &str, secret: &str) -> (u16, Value) {
    let (status, _, body) = send_event_with_headers(url, secret).await;
    (status, body)
}

async fn send_event_with_headers(
    url: &str,
    secret: &str,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("x-webhook-secret", secret)
        .body(r#"{"message":"Deploy api","event_type":"deploy.finished"}"#)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_prints_the_key_once_and_a_restart_keeps_what_was_acknowledged() {
    let (dir, daemon, key) = first_start(&[]).await;
    let (url, secret) = webhook(&daemon, &key).await;
    assert!(url.starts_with(&daemon.base), "{url}");
    let (status, accepted) = send_event(&url, &secret).await;
    assert_eq!(status, 202, "{accepted}");
    for probe in ["/healthz", "/readyz"] {
        let answer = reqwest::get(format!("{}{probe}", daemon.base))
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{probe}");
    }
    let metrics = metrics(&daemon).await;
    assert!(
        metrics.contains(r#"webhookd_ingest_requests_total{outcome="accepted"} 1"#),
        "{metrics}"
    );
    assert!(daemon.stop().await.success());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join("master.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // The same directory again: no new key, and everything acknowledged is there.
    let daemon = Daemon::start(dir.path(), &[]).await;
    assert_eq!(daemon.admin_key(), None, "stdout: {}", daemon.stdout());
    let webhook_id = url.rsplit('/').next().unwrap();
    let page = get(
        &daemon,
        &key,
        &format!("/api/v1/webhooks/{webhook_id}/invocations"),
    )
    .await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{page}");
    assert_eq!(items[0]["id"], accepted["invocation_id"]);
    let task_id = accepted["task_id"].as_str().unwrap();
    get(&daemon, &key, &format!("/api/v1/tasks/{task_id}")).await;
    // Secrets were sealed with the key in the data directory and still open. (The port is a
    // new one.)
    let url = format!("{}/api/webhooks/{webhook_id}", daemon.base);
    assert_eq!(send_event(&url, &secret).await.0, 202);
    assert!(daemon.stop().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn org_and_api_key_commands_print_json() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let created = run(&["org", "create", "--name", "Acme", "--data-dir", data_dir]).await;
    let created: Value = serde_json::from_str(created.trim()).unwrap();
    assert_eq!(created["organization"]["name"], "Acme");
    assert_eq!(created["organization"]["rate_limit_per_minute"], 1000);
    let organization_id = created["organization"]["id"].as_str().unwrap();
    let admin_key = created["api_key"].as_str().unwrap();
    assert!(admin_key.starts_with("whk_"), "{created}");

    let viewer = run(&[
        "api-key",
        "create",
        "--organization",
        organization_id,
        "--name",
        "dashboard",
        "--role",
        "viewer",
        "--data-dir",
        data_dir,
    ])
    .await;
    let viewer: Value = serde_json::from_str(viewer.trim()).unwrap();
    assert_eq!(viewer["role"], "viewer");
    assert_eq!(viewer["organization_id"], organization_id);
    let viewer_key = viewer["api_key"].as_str().unwrap();

    // The store is not empty, so serving creates no default organization; both keys work.
    let daemon = Daemon::start(dir.path(), &["--log-format", "json"]).await;
    assert_eq!(daemon.admin_key(), None);
    for line in daemon.stderr().lines() {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
    let organization = get(&daemon, viewer_key, "/api/v1/organization").await;
    assert_eq!(organization["name"], "Acme");
    let team = json!({"kind": "team", "name": "ops"});
    for (key, expected) in [(viewer_key, 403), (admin_key, 201)] {
        let (status, _) = daemon
            .api("POST", "/api/v1/targets", key, Some(team.clone()))
            .await;
        assert_eq!(status, expected);
    }
    assert!(daemon.stop().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_request_in_flight_then_exits_cleanly() {
    let (_dir, daemon, key) = first_start(&[]).await;
    let (url, secret) = webhook(&daemon, &key).await;
    let path = url.strip_prefix(&daemon.base).unwrap().to_owned();

    // A request whose body is only half sent when the signal arrives.
    let mut stream = tokio::net::TcpStream::connect(daemon.address())
        .await
        .unwrap();
    let body = r#"{"message":"slow","event_type":"deploy.finished"}"#;
    let (first, rest) = body.split_at(10);
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         X-Webhook-Secret: {secret}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{first}",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.flush().await.unwrap();
    // The server has begun the slow request once its in-flight gauge shows it.
    let started = std::time::Instant::now();
    while !metrics(&daemon)
        .await
        .lines()
        .any(|line| line == "webhookd_ingest_requests_in_flight 1")
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the slow request never began"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    daemon.terminate();
    daemon
        .wait_for_log("shutting down", Duration::from_secs(20))
        .await;
    stream.write_all(rest.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_string(&mut answer))
        .await
        .expect("an answer in time")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    let status = daemon.wait().await;
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_lists_every_setting_and_migrate_runs() {
    let help = run(&["--help"]).await;
    for flag in [
        "--listen",
        "--public-url",
        "--data-dir",
        "--database-url",
        "--body-limit",
        "--trusted-proxy",
        "--allow-private-targets",
        "--config",
        "--log-format",
        "--master-key",
        "--retention-days",
        "--no-dispatch",
        "--dispatch-concurrency",
        "--dispatch-per-target",
        "--delivery-timeout",
        "--max-attempts",
        "--dispatch-lease",
        "WEBHOOKD_DISPATCH_LEASE",
        "--rate-limiter",
        "WEBHOOKD_RATE_LIMITER",
        "--body-timeout",
        "--max-connections",
        "WEBHOOKD_BODY_TIMEOUT",
        "WEBHOOKD_MAX_CONNECTIONS",
        "WEBHOOKD_LISTEN",
        "DATABASE_URL",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help:\n{help}");
    }
    let dir = tempfile::tempdir().unwrap();
    run(&["migrate", "--data-dir", dir.path().to_str().unwrap()]).await;
    assert!(dir.path().join("webhookd.db").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_on_postgres() {
    let database = webhook_store_pg::test_db::create_empty_database().await;
    let url = webhook_store_pg::test_db::database_url(&database);
    let (dir, daemon, key) = first_start(&["--database-url", &url]).await;
    let (webhook_url, secret) = webhook(&daemon, &key).await;
    let (status, accepted) = send_event(&webhook_url, &secret).await;
    assert_eq!(status, 202, "{accepted}");
    assert!(daemon.stop().await.success());
    // Restarted on the same database: the event is there and no new key is made.
    let daemon = Daemon::start(dir.path(), &["--database-url", &url]).await;
    assert_eq!(daemon.admin_key(), None);
    let task_id = accepted["task_id"].as_str().unwrap();
    get(&daemon, &key, &format!("/api/v1/tasks/{task_id}")).await;
    assert!(daemon.stop().await.success());
    webhook_store_pg::test_db::drop_database(&database).await;
}
