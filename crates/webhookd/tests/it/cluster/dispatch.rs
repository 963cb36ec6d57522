//! The queue across nodes: a node killed mid-delivery leaves its lease, another node delivers
//! the task once the lease has ended, and nothing acknowledged is lost.

use std::time::Duration;

use super::{Cluster, metric};
use crate::agent::Agent;
use crate::dispatch::{pushed_webhook, task_status};
use crate::{eventually, get, send_event};

/// The lease the nodes take on a claimed task (`--dispatch-lease`); the delivery timeout, one
/// second, fits in nine tenths of it.
const LEASE: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_delivery_leaves_its_lease_to_another_node() {
    let agent = Agent::holding(1).await;
    let lease = LEASE.as_secs().to_string();
    let mut cluster = Cluster::start(
        2,
        &[
            "--allow-private-targets",
            "--delivery-timeout",
            "1",
            "--dispatch-lease",
            &lease,
        ],
    )
    .await;
    let key = cluster.admin_key().to_owned();
    let (_, url, secret, _) = pushed_webhook(cluster.node(0), &key, &agent.url("/tasks")).await;

    // Whichever node claims the first event holds it: the agent never answers.
    let held_task = accepted(&cluster.ingest_url(0, &url), &secret).await;
    let held = eventually("the agent to hold the first delivery", || async {
        agent.received().into_iter().find(|delivery| delivery.held)
    })
    .await;
    assert_eq!(held.header("webhook-id"), held_task);
    let holder = eventually("the node delivering it", || async {
        for (index, daemon) in cluster.live() {
            if metric(daemon, "webhookd_dispatch_in_flight").await == Some(1.0) {
                return Some(index);
            }
        }
        None
    })
    .await;
    // The dying node acknowledges one more event, then dies in the middle of its delivery of
    // the first (the attempt would time out after a second).
    let last_words = accepted(&cluster.ingest_url(holder, &url), &secret).await;
    cluster.kill(holder).await;
    let survivor = cluster.round_robin(0);
    assert_ne!(survivor, holder);

    for task_id in [&held_task, &last_words] {
        eventually("every acknowledged task to be delivered", || async {
            let status = task_status(cluster.node(survivor), &key, task_id).await;
            (status == "delivered").then_some(())
        })
        .await;
    }
    let arrivals: Vec<_> = agent
        .received()
        .into_iter()
        .filter(|delivery| delivery.header("webhook-id") == held_task)
        .collect();
    assert_eq!(arrivals.len(), 2, "held by the killed node, then delivered");
    let waited = arrivals[1].at - arrivals[0].at;
    // The survivor took the task only once the lease had ended: its clock started at the
    // claim, a moment before the held delivery arrived.
    assert!(
        waited >= LEASE * 3 / 4,
        "delivered again {waited:?} after the killed node's attempt: before its lease ended"
    );
    let task = get(
        cluster.node(survivor),
        &key,
        &format!("/api/v1/tasks/{held_task}"),
    )
    .await;
    assert_eq!(
        task["attempts"], 1,
        "the killed node's attempt was never recorded: {task}"
    );

    // The cluster goes on with one node.
    let next = accepted(&cluster.ingest_url(cluster.round_robin(1), &url), &secret).await;
    eventually("a new event to be delivered", || async {
        let status = task_status(cluster.node(survivor), &key, &next).await;
        (status == "delivered").then_some(())
    })
    .await;
    cluster.stop().await;
}

/// Sends an event to `url`, which must answer 202; returns its task's id.
async fn accepted(url: &str, secret: &str) -> String {
    let (status, body) = send_event(url, secret).await;
    assert_eq!(status, 202, "{body}");
    body["task_id"].as_str().unwrap().to_owned()
}
