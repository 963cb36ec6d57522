//! Changes reach every node within a second: a webhook disabled, given a new secret or
//! deleted through one node is refused as such by the others, whose cached routes the
//! change's announcement drops (the cache's own expiry, five seconds, is far behind).

use std::time::{Duration, Instant};

use serde_json::json;

use super::Cluster;
use crate::{created, eventually, send_event};

/// How soon every node must refuse what a change forbids.
const WITHIN: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_rotate_and_delete_reach_every_node_within_a_second() {
    let cluster = Cluster::start(3, &[]).await;
    let key = cluster.admin_key().to_owned();
    let admin = cluster.node(0);
    let agent = json!({"kind": "agent", "name": "build agent"});
    let target = created(admin, &key, "/api/v1/targets", agent).await;
    let hook = json!({
        "name": "CI",
        "target_id": target["id"],
        "generate_secret": true,
        "rate_limit_per_minute": 10_000,
    });
    let webhook = created(admin, &key, "/api/v1/webhooks", hook).await;
    let id = webhook["id"].as_str().unwrap().to_owned();
    let url = webhook["url"].as_str().unwrap().to_owned();
    let mut secret = webhook["secret"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/webhooks/{id}");
    let mut delays = Vec::new();

    // Disabled through node 0: the others answer 403 at once; enabled again, 202.
    for (status, expected) in [("disabled", 403), ("active", 202)] {
        warm(
            &cluster,
            &url,
            &secret,
            if expected == 403 { 202 } else { 403 },
        )
        .await;
        let changed = Instant::now();
        let (answer, body) = admin
            .api("PATCH", &path, &key, Some(json!({"status": status})))
            .await;
        assert_eq!(answer, 200, "{body}");
        delays.extend(refused_everywhere(&cluster, &url, &secret, expected, changed).await);
    }

    // A new secret without an overlap: the old one is refused everywhere, the new one taken.
    warm(&cluster, &url, &secret, 202).await;
    let changed = Instant::now();
    let (answer, rotated) = admin
        .api(
            "POST",
            &format!("{path}/rotate-secret"),
            &key,
            Some(json!({})),
        )
        .await;
    assert_eq!(answer, 200, "{rotated}");
    delays.extend(refused_everywhere(&cluster, &url, &secret, 401, changed).await);
    secret = rotated["secret"].as_str().unwrap().to_owned();
    for (index, _) in cluster.live() {
        let (status, body) = send_event(&cluster.ingest_url(index, &url), &secret).await;
        assert_eq!(status, 202, "node {index} with the new secret: {body}");
    }

    // Deleted: gone on every node.
    warm(&cluster, &url, &secret, 202).await;
    let changed = Instant::now();
    let (answer, body) = admin.api("DELETE", &path, &key, None).await;
    assert_eq!(answer, 204, "{body}");
    delays.extend(refused_everywhere(&cluster, &url, &secret, 410, changed).await);

    delays.sort();
    println!(
        "a change reached another node after (p50/max over {}): {:?} / {:?}",
        delays.len(),
        delays[delays.len() / 2],
        delays[delays.len() - 1]
    );
    cluster.stop().await;
}

/// Every node answers `url` with `status`, so each holds the webhook's route in its cache.
async fn warm(cluster: &Cluster, url: &str, secret: &str, status: u16) {
    for (index, _) in cluster.live() {
        let url = cluster.ingest_url(index, url);
        eventually("every node to hold the webhook's route", || async {
            (send_event(&url, secret).await.0 == status).then_some(())
        })
        .await;
    }
}

/// How long after `changed` each node other than node 0 first answered `status`, each within
/// [`WITHIN`].
async fn refused_everywhere(
    cluster: &Cluster,
    url: &str,
    secret: &str,
    status: u16,
    changed: Instant,
) -> Vec<Duration> {
    let mut delays = Vec::new();
    for (index, _) in cluster.live().filter(|(index, _)| *index != 0) {
        let url = cluster.ingest_url(index, url);
        loop {
            let (answer, body) = send_event(&url, secret).await;
            let waited = changed.elapsed();
            if answer == status {
                delays.push(waited);
                break;
            }
            assert!(
                waited < WITHIN,
                "node {index} still answered {answer} {waited:?} after the change: {body}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    delays
}
