//! Webhooks over real HTTP on every backend: deleted webhooks listed under a filter with their
//! logs, and every webhook's health over the last day, read from its log.

#![expect(clippy::unwrap_used, reason = "tests: a panic is how a test fails")]
#![expect(
    clippy::too_many_lines,
    reason = "each case follows webhooks from their making to their reading"
)]

use std::time::Duration;

use serde_json::{Value, json};

use crate::api::ApiApp;
use crate::helpers::{Backend, problem};

fn text(value: &Value) -> &str {
    value.as_str().unwrap()
}

/// The ids of a list answer's items.
fn ids(page: &Value) -> Vec<&str> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| text(&item["id"]))
        .collect()
}

/// `GET path` as `key`, which must answer 200.
async fn get<S: Backend>(app: &ApiApp<S>, key: &str, path: &str) -> Value {
    app.expect(200, "get", path, key, None).await
}

/// Deleted webhooks are listed with `status=deleted` only, newest first and a page at a time;
/// `active` and `disabled` filter the others, which are listed without a filter; another value
/// is refused, naming `status`. A tombstone reads back with its health, its log and each
/// entry's record stay readable, its URL answers 410, and every write on it answers as before:
/// 409 `webhook_deleted` for a change, a rotation or a second delete, a test event `rejected`
/// with the sender's 410, a replay 410.
pub(crate) async fn deleted_webhooks_are_listed_with_their_logs<S: Backend>(store: S) {
    let app = ApiApp::start_on(store);
    let org = app.org().await;
    let key = org.admin.as_str();
    let target = app.target(key).await;
    let mut made = Vec::new();
    for _ in 0..4 {
        made.push(app.webhook(key, &target).await);
        app.clock.advance(Duration::from_secs(1));
    }
    let [active, disabled, deleted, deleted_first] = <[Value; 4]>::try_from(made).unwrap();
    let path = |hook: &Value| format!("/api/v1/webhooks/{}", text(&hook["id"]));
    let secret = text(&deleted["secret"]).to_owned();

    let accepted = app
        .send(&deleted, Some(&secret), r#"{"message":"one"}"#)
        .await;
    assert_eq!(accepted.status(), 202);
    let accepted: Value = accepted.json().await.unwrap();
    app.clock.advance(Duration::from_secs(1));
    let refused = problem(app.send(&deleted, Some("wrong"), "{}").await).await;
    assert_eq!(refused.status, 401);
    app.flush_rejections().await;

    app.expect(
        200,
        "patch",
        &path(&disabled),
        key,
        Some(json!({"status": "disabled"})),
    )
    .await;
    for hook in [&deleted_first, &deleted] {
        app.expect(204, "delete", &path(hook), key, None).await;
    }

    let listed = |query: &'static str| {
        let app = &app;
        async move { get(app, key, &format!("/api/v1/webhooks{query}")).await }
    };
    let id = |hook: &Value| text(&hook["id"]).to_owned();
    assert_eq!(
        ids(&listed("").await),
        [id(&disabled), id(&active)],
        "without a filter, the webhooks that are not deleted"
    );
    assert_eq!(ids(&listed("?status=active").await), [id(&active)]);
    assert_eq!(ids(&listed("?status=disabled").await), [id(&disabled)]);
    let tombstones = listed("?status=deleted").await;
    assert_eq!(ids(&tombstones), [id(&deleted_first), id(&deleted)]);
    let first = listed("?status=deleted&limit=1").await;
    assert_eq!(ids(&first), [id(&deleted_first)]);
    let rest = get(
        &app,
        key,
        &format!(
            "/api/v1/webhooks?status=deleted&limit=1&cursor={}",
            text(&first["next_cursor"])
        ),
    )
    .await;
    assert_eq!(ids(&rest), [id(&deleted)]);
    assert_eq!(rest["next_cursor"], Value::Null);

    let tombstone = &tombstones["items"][1];
    assert_eq!(tombstone["status"], "deleted");
    assert_eq!(tombstone["target"]["id"], target["id"]);
    let log = get(&app, key, &format!("{}/invocations", path(&deleted))).await;
    let entries = log["items"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{log}");
    let failure = &entries[0];
    assert_eq!(failure["http_status"], 401);
    assert_eq!(
        tombstone["health"],
        json!({"accepted_24h": 1, "failed_24h": 1, "last_failure_at": failure["received_at"]})
    );
    assert_eq!(get(&app, key, &path(&deleted)).await, *tombstone);
    let failed = get(
        &app,
        key,
        &format!("{}/invocations?outcome=failed", path(&deleted)),
    )
    .await;
    assert_eq!(ids(&failed), [text(&failure["id"])]);
    let record = get(
        &app,
        key,
        &format!("/api/v1/invocations/{}", text(&accepted["invocation_id"])),
    )
    .await;
    assert_eq!(record["outcome"], "accepted");
    assert_eq!(record["task"]["id"], accepted["task_id"]);

    for query in ["?status=live", "?status=", "?status=Deleted"] {
        let refused = problem(
            app.call("get", &format!("/api/v1/webhooks{query}"), Some(key), None)
                .await,
        )
        .await;
        assert_eq!(
            (refused.status, refused.code(), &refused.body["field"]),
            (422, "validation_failed", &json!("status")),
            "{query}"
        );
    }

    // Deleted is terminal: every write answers as it did before tombstones were listed.
    let gone = problem(app.send(&deleted, Some(&secret), "{}").await).await;
    assert_eq!((gone.status, gone.code()), (410, "webhook_deleted"));
    let writes = [
        ("patch", path(&deleted), Some(json!({"name": "Revived"}))),
        ("post", format!("{}/rotate-secret", path(&deleted)), None),
        ("delete", path(&deleted), None),
    ];
    for (method, write_path, body) in writes {
        let refused = problem(
            app.call(method, &write_path, Some(key), body.as_ref())
                .await,
        )
        .await;
        assert_eq!(
            (refused.status, refused.code()),
            (409, "webhook_deleted"),
            "{method} {write_path}"
        );
    }
    let tested = app
        .expect(200, "post", &format!("{}/test", path(&deleted)), key, None)
        .await;
    assert_eq!(
        (&tested["status"], &tested["http_status"], &tested["code"]),
        (&json!("rejected"), &json!(410), &json!("webhook_deleted"))
    );
    let replay = format!(
        "/api/v1/invocations/{}/replay",
        text(&accepted["invocation_id"])
    );
    let refused = problem(app.call("post", &replay, Some(key), None).await).await;
    assert_eq!((refused.status, refused.code()), (410, "webhook_deleted"));
    assert_eq!(
        get(&app, key, &path(&deleted)).await["name"],
        deleted["name"],
        "nothing changed"
    );
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
