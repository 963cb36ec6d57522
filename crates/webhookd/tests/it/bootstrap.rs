//! The first start and the organization commands: one organization per empty database however
//! many nodes start on it, a database that is not there yet, and `org list`.

use std::time::{Duration, Instant};

use futures::future::join_all;
use serde_json::Value;
use webhook_domain::service::{Bootstrap, KeyCheck, KeyCheckError};
use webhook_store_pg::test_db;
use webhook_store_pg::{PgStore, PgStoreOptions};
use webhook_system::MasterKey;
use webhookd::config::Config;
use webhookd::{Node, NodeParts};

use crate::daemon::{Daemon, refused, run};

/// Nodes starting together on one empty PostgreSQL database: one of them creates the default
/// organization, the others find it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_starts_on_postgres_create_one_organization() {
    let database = test_db::create_database().await;
    let url = test_db::database_url(&database);
    let dir = tempfile::tempdir().unwrap();
    let master_key_path = dir.path().join("master.key");
    let config = Config::default();
    let public_url = config.public_url_for(config.listen).unwrap();
    let mut nodes = Vec::new();
    for _ in 0..4 {
        // Each node has its own pool, as separate processes would.
        let store = PgStore::open(&url, PgStoreOptions::default()).unwrap();
        let key = MasterKey::load_or_create(&master_key_path).unwrap();
        let parts = NodeParts::production(&config, store, key, public_url.clone());
        nodes.push(Node::build(&config, parts).unwrap());
    }
    let bootstraps: Vec<_> = nodes.iter().map(Node::bootstrap).collect();
    let runs = join_all(bootstraps.iter().map(Bootstrap::run_once)).await;
    let created = runs.into_iter().filter_map(|r| r.unwrap()).count();
    assert_eq!(created, 1, "nodes that created an organization");
    let organizations = bootstraps[0].organizations().await.unwrap();
    assert_eq!(organizations.len(), 1, "{organizations:?}");
    drop(bootstraps);
    drop(nodes);
    test_db::drop_database(&database).await;
}

/// Nodes with one key starting together on one empty database: one keeps the check, the others
/// match it; a node with another key does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_starts_keep_one_master_key_check() {
    let database = test_db::create_database().await;
    let url = test_db::database_url(&database);
    let config = Config::default();
    let public_url = config.public_url_for(config.listen).unwrap();
    let node = |key: MasterKey| {
        let store = PgStore::open(&url, PgStoreOptions::default()).unwrap();
        let parts = NodeParts::production(&config, store, key, public_url.clone());
        Node::build(&config, parts).unwrap()
    };
    let key = MasterKey::from_bytes([9; 32]);
    let nodes: Vec<_> = (0..4).map(|_| node(key.clone())).collect();
    let bootstraps: Vec<_> = nodes.iter().map(Node::bootstrap).collect();
    let checks: Vec<KeyCheck> = join_all(bootstraps.iter().map(Bootstrap::check_master_key))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let kept = checks.iter().filter(|c| **c == KeyCheck::Kept).count();
    assert_eq!(kept, 1, "{checks:?}");
    let other = node(MasterKey::from_bytes([10; 32]));
    assert!(matches!(
        other.bootstrap().check_master_key().await,
        Err(KeyCheckError::Mismatch)
    ));
    assert_eq!(
        bootstraps[0].check_master_key().await.unwrap(),
        KeyCheck::Matched
    );
    drop(bootstraps);
    drop((nodes, other));
    test_db::drop_database(&database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn org_list_prints_one_organization_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    assert_eq!(run(&["org", "list", "--data-dir", data_dir]).await, "");
    let mut ids = Vec::new();
    for name in ["Acme", "Globex"] {
        let created = run(&["org", "create", "--name", name, "--data-dir", data_dir]).await;
        let created: Value = serde_json::from_str(created.trim()).unwrap();
        ids.push(created["organization"]["id"].clone());
    }
    let listed = run(&["org", "list", "--data-dir", data_dir]).await;
    let lines: Vec<Value> = listed
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert_eq!(lines.len(), 2, "{listed}");
    assert_eq!(lines[0]["name"], "Acme");
    assert_eq!(lines[1]["name"], "Globex");
    let listed_ids: Vec<Value> = lines.iter().map(|o| o["id"].clone()).collect();
    assert_eq!(listed_ids, ids);
    assert_eq!(lines[0]["rate_limit_per_minute"], 1000);
    assert!(lines[0].get("api_key").is_none(), "{listed}");
}

/// A node whose PostgreSQL database cannot be reached at start waits for it: live, not ready,
/// then ready once the database exists, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_waits_for_its_database_and_becomes_ready() {
    let database = test_db::new_database_name();
    let url = test_db::database_url(&database);
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &["--database-url", &url]).await;
    let status = |path: &'static str| {
        let url = format!("{}{path}", daemon.base);
        async move { reqwest::get(url).await.unwrap().status().as_u16() }
    };
    assert_eq!(status("/healthz").await, 200);
    assert_eq!(status("/readyz").await, 503);
    daemon
        .wait_for_log("trying again", Duration::from_secs(20))
        .await;
    assert_eq!(status("/readyz").await, 503, "{}", daemon.stderr());

    test_db::create_empty_database_named(&database).await;
    // Once the store opens the node hands its listener from the starting server to the full
    // one, and a probe caught in between may see its connection reset: not ready yet.
    let ready = || async {
        let url = format!("{}/readyz", daemon.base);
        reqwest::get(url)
            .await
            .is_ok_and(|answer| answer.status().as_u16() == 200)
    };
    let started = Instant::now();
    while !ready().await {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never ready: {}",
            daemon.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(daemon.admin_key().is_some(), "{}", daemon.stdout());
    assert!(daemon.stop().await.success());
    test_db::drop_database(&database).await;
}

/// A signal while the node waits for its database stops it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_waiting_for_its_database_stops_on_sigterm() {
    let url = test_db::database_url(&test_db::new_database_name());
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &["--database-url", &url]).await;
    daemon
        .wait_for_log("trying again", Duration::from_secs(20))
        .await;
    let started = Instant::now();
    assert!(daemon.stop().await.success());
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// One master key per database: the first node keeps a check of its key in PostgreSQL; a node
/// with another key refuses to start, saying why and what to do, while the first serves on;
/// a node given the first key (copied from its data directory) starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_another_master_key_refuses_to_start_on_postgres() {
    let database = test_db::create_database().await;
    let url = test_db::database_url(&database);
    let (dir_a, dir_b, dir_c) = (tempdir(), tempdir(), tempdir());
    let a = Daemon::start(dir_a.path(), &["--database-url", &url]).await;
    a.wait_for_log("check of this node's master key", Duration::from_secs(10))
        .await;

    let stderr = refused(dir_b.path(), &["--database-url", &url]).await;
    let key_b = dir_b.path().join("master.key");
    for needle in [
        "refusing to start",
        "master key",
        &key_b.display().to_string(),
        "not the key this database's secrets are sealed with",
        "copy master.key",
        "WEBHOOKD_MASTER_KEY",
    ] {
        assert!(stderr.contains(needle), "{needle:?} missing: {stderr}");
    }

    let key_a = std::fs::read_to_string(dir_a.path().join("master.key")).unwrap();
    let c = Daemon::start(
        dir_c.path(),
        &["--database-url", &url, "--master-key", key_a.trim()],
    )
    .await;
    assert!(!c.stderr().contains("check of this node's master key"));
    assert!(c.stop().await.success());
    assert!(a.stop().await.success());
    // Key B is still refused after both stopped: the check stays with the database.
    refused(dir_b.path(), &["--database-url", &url]).await;
    test_db::drop_database(&database).await;
}

/// On SQLite, a `--master-key` (or `WEBHOOKD_MASTER_KEY`) other than the key the database was
/// first started with is refused, and the data directory's key starts again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_another_master_key_refuses_to_start_on_sqlite() {
    let dir = tempdir();
    let first = Daemon::start(dir.path(), &[]).await;
    assert!(first.stop().await.success());
    let other = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";
    let stderr = refused(dir.path(), &["--master-key", other]).await;
    for needle in [
        "refusing to start",
        "the key set with --master-key or WEBHOOKD_MASTER_KEY",
        "the key this database was first started with",
    ] {
        assert!(stderr.contains(needle), "{needle:?} missing: {stderr}");
    }
    let again = Daemon::start(dir.path(), &[]).await;
    assert!(again.stop().await.success());
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}
