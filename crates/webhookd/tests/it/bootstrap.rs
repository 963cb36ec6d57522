//! The first start and the organization commands: one organization per empty database however
//! many nodes start on it, and `org list`.

use serde_json::Value;
use webhook_store_pg::test_db;
use webhook_store_pg::{PgStore, PgStoreOptions};
use webhook_system::MasterKey;
use webhookd::config::Config;
use webhookd::{Node, NodeParts};

use crate::daemon::run;

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
    let (a, b, c, d) = tokio::join!(
        bootstraps[0].run_once(),
        bootstraps[1].run_once(),
        bootstraps[2].run_once(),
        bootstraps[3].run_once(),
    );
    let created = [a, b, c, d].into_iter().filter_map(|r| r.unwrap()).count();
    assert_eq!(created, 1, "nodes that created an organization");
    let organizations = bootstraps[0].organizations().await.unwrap();
    assert_eq!(organizations.len(), 1, "{organizations:?}");
    drop(bootstraps);
    drop(nodes);
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
