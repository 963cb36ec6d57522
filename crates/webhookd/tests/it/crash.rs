//! `webhookd` killed with SIGKILL under load, on each store, and started again on the same data:
//! every event answered 202 is there afterwards, its invocation and its task.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::daemon::Daemon;
use crate::{first_start, get, webhook_with_rate};

/// Concurrent senders: enough that commits are in flight when the process dies.
const SENDERS: usize = 8;
/// Kills in one run.
const KILLS: usize = 5;
/// Events acknowledged between one start and the kill that ends it.
const PER_ROUND: usize = 100;

/// An acknowledged event: its invocation and task ids, from the 202's body.
type Acknowledged = Arc<Mutex<Vec<(String, String)>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_nothing_acknowledged_on_sqlite() {
    crash_and_check(&["--no-dispatch"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_nothing_acknowledged_on_postgres() {
    let database = webhook_store_pg::test_db::create_empty_database().await;
    let url = webhook_store_pg::test_db::database_url(&database);
    crash_and_check(&["--no-dispatch", "--database-url", &url]).await;
    webhook_store_pg::test_db::drop_database(&database).await;
}

async fn crash_and_check(args: &[&str]) {
    let (dir, mut daemon, key) = first_start(args).await;
    let (status, body) = daemon
        .api(
            "PATCH",
            "/api/v1/organization",
            &key,
            Some(json!({"rate_limit_per_minute": 1_000_000})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (url, secret) = webhook_with_rate(&daemon, &key, 1_000_000).await;
    let webhook_id = url.rsplit('/').next().unwrap().to_owned();
    let acknowledged: Acknowledged = Arc::default();
    for _ in 0..KILLS {
        daemon = load_then_kill(
            daemon,
            dir.path(),
            args,
            &webhook_id,
            &secret,
            &acknowledged,
        )
        .await;
    }

    let acknowledged = acknowledged.lock().await;
    assert!(
        acknowledged.len() >= KILLS * PER_ROUND,
        "{}",
        acknowledged.len()
    );
    for (invocation_id, task_id) in acknowledged.iter() {
        let invocation = get(
            &daemon,
            &key,
            &format!("/api/v1/invocations/{invocation_id}"),
        )
        .await;
        assert_eq!(invocation["task_id"], task_id.as_str(), "{invocation}");
        get(&daemon, &key, &format!("/api/v1/tasks/{task_id}")).await;
    }
    assert!(daemon.stop().await.success());
}

/// Sends events to `daemon` from [`SENDERS`] senders until [`PER_ROUND`] more are acknowledged,
/// kills it with the senders still sending, and starts it again on the same data.
async fn load_then_kill(
    daemon: Daemon,
    data_dir: &Path,
    args: &[&str],
    webhook_id: &str,
    secret: &str,
    acknowledged: &Acknowledged,
) -> Daemon {
    let url = format!("{}/api/webhooks/{webhook_id}", daemon.base);
    let target = acknowledged.lock().await.len() + PER_ROUND;
    let stop = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..SENDERS)
        .map(|_| {
            let (url, secret) = (url.clone(), secret.to_owned());
            let (stop, acknowledged) = (Arc::clone(&stop), Arc::clone(acknowledged));
            tokio::spawn(send(url, secret, stop, acknowledged))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while acknowledged.lock().await.len() < target {
        assert!(Instant::now() < deadline, "too few events acknowledged");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    daemon.kill().await;
    stop.store(true, Ordering::SeqCst);
    for sender in senders {
        sender.await.unwrap();
    }
    Daemon::start(data_dir, args).await
}

/// Sends events to `url` until `stop`, recording every 202. Other answers (the connection cut
/// by the kill) are ignored: only an acknowledgement is a promise.
async fn send(url: String, secret: String, stop: Arc<AtomicBool>, acknowledged: Acknowledged) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    while !stop.load(Ordering::SeqCst) {
        let sent = client
            .post(&url)
            .header("content-type", "application/json")
            .header("x-webhook-secret", &secret)
            .body(r#"{"message":"Deploy api","event_type":"deploy.finished"}"#)
            .send()
            .await;
        let Ok(response) = sent else {
            // The process is gone; the round is ending.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        if response.status().as_u16() != 202 {
            continue;
        }
        let Ok(body) = response.json::<Value>().await else {
            continue;
        };
        let id = |field: &str| body[field].as_str().unwrap().to_owned();
        acknowledged
            .lock()
            .await
            .push((id("invocation_id"), id("task_id")));
    }
}
