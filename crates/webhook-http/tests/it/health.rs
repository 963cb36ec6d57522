//! Webhooks over real HTTP on every backend: every webhook's health over the last day, read
//! from its log.

#![expect(clippy::unwrap_used, reason = "tests: a panic is how a test fails")]

use std::time::Duration;

use serde_json::{Value, json};

use crate::api::ApiApp;
use crate::helpers::Backend;

fn text(value: &Value) -> &str {
    value.as_str().unwrap()
}

/// `GET path` as `key`, which must answer 200.
async fn get<S: Backend>(app: &ApiApp<S>, key: &str, path: &str) -> Value {
    app.expect(200, "get", path, key, None).await
}

/// Every webhook answer carries `health`: over the last 24 hours, the invocations accepted and
/// the requests the log's `outcome=failed` filter selects (a coalesced entry counts each
/// request it stands for; an accepted one counts once its task failed), with the newest
/// failure's time. A new webhook has nothing; the list, a read, a change and a rotation show
/// the same; what is older than a day is not counted.
pub(crate) async fn webhooks_carry_their_health_over_the_last_day<S: Backend>(store: S) {
    let app = ApiApp::start_on(store);
    let org = app.org().await;
    let key = org.admin.as_str();
    let target = app.target(key).await;
    let hook = app.webhook(key, &target).await;
    app.clock.advance(Duration::from_secs(1));
    let quiet = app.webhook(key, &target).await;
    let nothing = json!({"accepted_24h": 0, "failed_24h": 0, "last_failure_at": null});
    assert_eq!(hook["health"], nothing, "created: {hook}");
    let path = format!("/api/v1/webhooks/{}", text(&hook["id"]));
    let secret = text(&hook["secret"]).to_owned();

    // A day and more ago: out of the window.
    assert_eq!(app.send(&hook, Some(&secret), "{}").await.status(), 202);
    assert_eq!(app.send(&hook, None, "{}").await.status(), 401);
    app.flush_rejections().await;
    app.clock.advance(Duration::from_secs(24 * 60 * 60 + 1));

    let mut tasks = Vec::new();
    for _ in 0..3 {
        let answer = app.send(&hook, Some(&secret), "{}").await;
        assert_eq!(answer.status(), 202);
        let answer: Value = answer.json().await.unwrap();
        tasks.push(text(&answer["task_id"]).to_owned());
    }
    app.clock.advance(Duration::from_secs(1));
    for _ in 0..3 {
        assert_eq!(app.send(&hook, Some("wrong"), "{}").await.status(), 401);
    }
    app.flush_rejections().await;
    app.clock.advance(Duration::from_secs(1));
    // The agent gives up on the newest task: its invocation is a failure too.
    app.expect(
        200,
        "patch",
        &format!("/api/v1/tasks/{}", tasks[2]),
        key,
        Some(json!({"status": "failed"})),
    )
    .await;

    let log = get(&app, key, &format!("{path}/invocations?outcome=failed")).await;
    let failures = log["items"].as_array().unwrap();
    let requests: Vec<_> = failures.iter().map(|f| f["repeat_count"].clone()).collect();
    assert_eq!(requests, [json!(3), json!(1), json!(1)], "{log}");
    let health = json!({
        "accepted_24h": 3,
        "failed_24h": 4,
        "last_failure_at": failures[0]["received_at"],
    });
    let read = get(&app, key, &path).await;
    assert_eq!(read["health"], health, "{read}");
    let listed = get(&app, key, "/api/v1/webhooks").await;
    let healths: Vec<(&str, &Value)> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (text(&w["id"]), &w["health"]))
        .collect();
    assert_eq!(
        healths,
        [(text(&quiet["id"]), &nothing), (text(&hook["id"]), &health)]
    );
    let patched = app
        .expect(200, "patch", &path, key, Some(json!({"name": "Renamed"})))
        .await;
    assert_eq!(patched["health"], health);
    let rotated = app
        .expect(200, "post", &format!("{path}/rotate-secret"), key, None)
        .await;
    assert_eq!(rotated["health"], health);

    // A day later, all of it has left the window.
    app.clock.advance(Duration::from_secs(24 * 60 * 60));
    assert_eq!(get(&app, key, &path).await["health"], nothing);
}
