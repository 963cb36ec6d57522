//! Delivery end to end: an event sent to the real binary reaches a loopback agent, signed so a
//! stock Standard Webhooks verifier accepts it, and its answer shows in the invocation log.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit as _, Mac as _};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::agent::{Agent, Delivery, REPLY};
use crate::daemon::Daemon;
use crate::{created, eventually, first_start, get, metrics, send_event};

/// Verifies a delivery as the Standard Webhooks reference libraries do: the secret is
/// `whsec_` + strict, padded standard base64 of the key.
fn verify(secret: &str, delivery: &Delivery) -> bool {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").expect("a whsec_ secret"))
        .expect("the secret is standard base64");
    let signed = format!(
        "{}.{}.",
        delivery.header("webhook-id"),
        delivery.header("webhook-timestamp")
    );
    delivery
        .header("webhook-signature")
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|encoded| STANDARD.decode(encoded).ok())
        .any(|signature| {
            let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key");
            mac.update(signed.as_bytes());
            mac.update(&delivery.body);
            mac.verify_slice(&signature).is_ok()
        })
}

/// Creates a target pushed to `endpoint` and a webhook on it; returns (signing secret, ingest
/// URL, webhook secret, webhook id).
pub(crate) async fn pushed_webhook(
    daemon: &Daemon,
    key: &str,
    endpoint: &str,
) -> (String, String, String, String) {
    let agent = json!({"kind": "agent", "name": "build agent", "endpoint_url": endpoint});
    let target = created(daemon, key, "/api/v1/targets", agent).await;
    let hook = json!({"name": "CI", "target_id": target["id"], "generate_secret": true});
    let webhook = created(daemon, key, "/api/v1/webhooks", hook).await;
    let text = |value: &Value| value.as_str().unwrap().to_owned();
    (
        text(&target["signing_secret"]),
        text(&webhook["url"]),
        text(&webhook["secret"]),
        text(&webhook["id"]),
    )
}

pub(crate) async fn task_status(daemon: &Daemon, key: &str, task_id: &str) -> String {
    let task = get(daemon, key, &format!("/api/v1/tasks/{task_id}")).await;
    task["status"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_is_delivered_signed_to_its_agent_and_the_answer_is_logged() {
    let agent = Agent::start().await;
    let (_dir, daemon, key) = first_start(&["--allow-private-targets"]).await;
    let (signing_secret, url, secret, webhook_id) =
        pushed_webhook(&daemon, &key, &agent.url("/tasks")).await;

    let (status, accepted) = send_event(&url, &secret).await;
    assert_eq!(status, 202, "{accepted}");
    let task_id = accepted["task_id"].as_str().unwrap().to_owned();

    let delivery = eventually("the agent to receive the task", || async {
        agent.received().into_iter().next()
    })
    .await;
    assert_eq!(delivery.header("webhook-id"), task_id);
    assert!(
        verify(&signing_secret, &delivery),
        "the signature does not verify with the secret shown at creation"
    );
    let body: Value = serde_json::from_slice(&delivery.body).unwrap();
    assert_eq!(body["task_id"], task_id.as_str());
    assert_eq!(body["webhook_id"], webhook_id.as_str());
    assert_eq!(body["instruction"], "Deploy api");
    assert_eq!(body["event_type"], "deploy.finished");
    assert_eq!(body["source"]["verified"], true);

    eventually("the task to be delivered", || async {
        (task_status(&daemon, &key, &task_id).await == "delivered").then_some(())
    })
    .await;
    let page = get(
        &daemon,
        &key,
        &format!("/api/v1/webhooks/{webhook_id}/invocations"),
    )
    .await;
    let response = &page["items"][0]["target_response"];
    assert_eq!(response["status_code"], 200, "{page}");
    assert_eq!(response["body_excerpt"], REPLY, "{page}");
    assert_eq!(agent.received().len(), 1, "delivered once");

    let metrics = metrics(&daemon).await;
    for line in [
        r#"webhookd_ingest_requests_total{outcome="accepted"} 1"#,
        r#"webhookd_dispatch_attempts_total{result="delivered"} 1"#,
        "webhookd_dispatch_attempt_duration_seconds_count 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} missing: {metrics}"
        );
    }
    assert!(metrics.ends_with("# EOF\n"), "{metrics}");
    assert!(daemon.stop().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingest_only_node_leaves_tasks_queued_for_the_others() {
    let agent = Agent::start().await;
    let (dir, daemon, key) = first_start(&["--allow-private-targets", "--no-dispatch"]).await;
    let (_, url, secret, _) = pushed_webhook(&daemon, &key, &agent.url("/")).await;
    let (status, accepted) = send_event(&url, &secret).await;
    assert_eq!(status, 202, "{accepted}");
    let task_id = accepted["task_id"].as_str().unwrap().to_owned();
    assert_eq!(task_status(&daemon, &key, &task_id).await, "queued");
    // A graceful stop finishes every delivery in progress: none was.
    assert!(daemon.stop().await.success());
    assert!(agent.received().is_empty());

    // A node that dispatches, on the same store, delivers the waiting task.
    let daemon = Daemon::start(dir.path(), &["--allow-private-targets"]).await;
    eventually("the task to be delivered", || async {
        (task_status(&daemon, &key, &task_id).await == "delivered").then_some(())
    })
    .await;
    assert_eq!(agent.received().len(), 1);
    assert!(daemon.stop().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loopback_endpoint_is_refused_unless_private_targets_are_allowed() {
    let (_dir, daemon, key) = first_start(&[]).await;
    let local = json!({"kind": "agent", "name": "local", "endpoint_url": "http://127.0.0.1:9/"});
    let (status, problem) = daemon
        .api("POST", "/api/v1/targets", &key, Some(local))
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["code"], "validation_failed", "{problem}");
    assert_eq!(problem["field"], "endpoint_url", "{problem}");
    assert!(daemon.stop().await.success());
}
