//! The whole record of a request over real HTTP: a refused request's redacted headers and the
//! problem it was answered, an accepted one's delivery attempts to an agent on loopback, and
//! replays followed to the invocations they make.

#![expect(clippy::unwrap_used, reason = "tests: a panic is how a test fails")]
#![expect(
    clippy::too_many_lines,
    reason = "each case follows one request from its sending to its record"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

use crate::api::ApiApp;
use crate::helpers::{Backend, Options, problem};

const SECRET: &str = "whsec_record-secret-0123456789";

/// An agent on a loopback port that answers its first task 503 `busy`, and every later one 200.
fn flaky_agent() -> (String, actix_web::dev::ServerHandle) {
    let calls = Arc::new(AtomicUsize::new(0));
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || {
        let calls = Arc::clone(&calls);
        App::new().default_service(web::to(move || {
            let first = calls.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                if first {
                    HttpResponse::ServiceUnavailable().body("busy")
                } else {
                    HttpResponse::Ok().json(json!({"ok": true}))
                }
            }
        }))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    // A host name: the management API's guard refuses loopback literals, delivery resolves it.
    (format!("http://localhost:{port}/tasks"), handle)
}

/// A webhook with [`SECRET`], subscribed to `deploy.*`, whose target pushes to `endpoint`.
async fn webhook<S: Backend>(app: &ApiApp<S>, key: &str, endpoint: Option<&str>) -> Value {
    let target = app
        .expect(
            201,
            "post",
            "/api/v1/targets",
            key,
            Some(json!({"kind": "agent", "name": "Agent", "endpoint_url": endpoint})),
        )
        .await;
    app.expect(
        201,
        "post",
        "/api/v1/webhooks",
        key,
        Some(json!({
            "name": "CI",
            "target_id": target["id"],
            "secret": SECRET,
            "event_types": ["deploy.*"],
        })),
    )
    .await
}

/// A POST of `body` to `webhook`'s URL with `headers`.
async fn send<S: Backend>(
    app: &ApiApp<S>,
    webhook: &Value,
    headers: &[(&str, &str)],
    body: &str,
) -> reqwest::Response {
    let path = format!("/api/webhooks/{}", webhook["id"].as_str().unwrap());
    let mut request = app.request("post", &path, None).body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap()
}

/// The newest logged invocation of `webhook` with `outcome`.
async fn newest<S: Backend>(app: &ApiApp<S>, key: &str, webhook: &Value, outcome: &str) -> Value {
    let path = format!(
        "/api/v1/webhooks/{}/invocations?outcome={outcome}",
        text(&webhook["id"])
    );
    let listed = app.expect(200, "get", &path, key, None).await;
    listed["items"][0].clone()
}

/// The record of invocation `id`, with the answer's text, which must not hold any of `secrets`.
async fn record<S: Backend>(app: &ApiApp<S>, key: &str, id: &Value, secrets: &[&str]) -> Value {
    let response = app
        .call(
            "get",
            &format!("/api/v1/invocations/{}", text(id)),
            Some(key),
            None,
        )
        .await;
    assert_eq!(response.status(), 200);
    let answer = response.text().await.unwrap();
    for secret in secrets {
        assert!(!answer.contains(secret), "{secret} in {answer}");
    }
    serde_json::from_str(&answer).unwrap()
}

/// The value of header `name` in a record's request.
fn header<'a>(record: &'a Value, name: &str) -> Option<&'a str> {
    record["request"]["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == name)
        .map(|h| text(&h["value"]))
}

/// A refused request shows its headers with credentials redacted, its body and the problem
/// its sender read; one refused before its body was read says so; an accepted one shows each
/// delivery attempt to the agent, also on the task's own list; an ignored one what it was
/// matched against.
pub(crate) async fn a_request_record_shows_headers_problem_and_attempts<S: Backend>(store: S) {
    let app = ApiApp::start_on_with(
        store,
        Options {
            allow_private_targets: true,
            ..Options::default()
        },
    );
    let org = app.org().await;
    let key = org.admin.as_str();
    let (agent, agent_handle) = flaky_agent();
    let hook = webhook(&app, key, Some(&agent)).await;
    let credentials = [
        ("x-webhook-secret", SECRET),
        ("authorization", "Bearer hunter2-token"),
        ("cookie", "session=cookie-value"),
        ("proxy-authorization", "Basic cHJveHk6cGFzcw=="),
    ];
    let secrets = ["record-secret", "hunter2", "cookie-value", "cHJveHk6cGFzcw"];

    // A body that is not JSON: 400, logged with its body and the parse error.
    let sent = r#"{"message": nope}"#;
    let mut headers = credentials.to_vec();
    headers.extend([
        ("content-type", "application/json"),
        ("x-request-id", "r-1"),
    ]);
    let answer = problem(send(&app, &hook, &headers, sent).await).await;
    assert_eq!((answer.status, answer.code()), (400, "invalid_payload"));
    let refused = newest(&app, key, &hook, "rejected").await;
    let shown = record(&app, key, &refused["id"], &secrets).await;
    for (name, _) in credentials {
        assert_eq!(header(&shown, name), Some("[redacted]"), "{name}");
    }
    assert_eq!(header(&shown, "x-request-id"), Some("r-1"));
    assert_eq!(header(&shown, "content-type"), Some("application/json"));
    assert_eq!(shown["request"]["body_kept"], "whole");
    assert_eq!(shown["request"]["body"], sent);
    assert_eq!(shown["request"]["headers_omitted"], 0);
    assert_eq!(
        shown["problem"],
        json!({
            "status": 400,
            "code": "invalid_payload",
            "title": answer.body["title"],
            "detail": answer.body["detail"],
        })
    );
    assert!(text(&shown["problem"]["detail"]).starts_with("the body is not valid JSON"));
    assert_eq!(
        (&shown["task"], &shown["attempts"], &shown["replay_of"]),
        (&Value::Null, &json!([]), &Value::Null)
    );

    // A wrong secret: 401 before the body is read, counted into one entry that keeps the
    // first request's record; its body was not read, so it cannot be replayed.
    app.clock.advance(Duration::from_secs(1));
    let wrong = [("x-webhook-secret", "whsec_wrong-wrong-wrong-0")];
    for _ in 0..3 {
        let response = send(&app, &hook, &wrong, r#"{"message":"Deploy"}"#).await;
        assert_eq!(response.status(), 401);
    }
    app.flush_rejections().await;
    let counted = newest(&app, key, &hook, "rejected").await;
    assert_eq!(counted["error_code"], "invalid_secret");
    assert_eq!(counted["repeat_count"], 3);
    let shown = record(&app, key, &counted["id"], &["wrong-wrong"]).await;
    assert_eq!(shown["request"]["body_kept"], "not_read");
    assert_eq!(shown["request"]["body"], Value::Null);
    assert_eq!(shown["payload"], Value::Null);
    assert_eq!(header(&shown, "x-webhook-secret"), Some("[redacted]"));
    assert_eq!(
        (&shown["problem"]["status"], &shown["problem"]["code"]),
        (&json!(401), &json!("invalid_secret"))
    );
    let path = format!("/api/v1/invocations/{}/replay", text(&counted["id"]));
    let refused = problem(app.call("post", &path, Some(key), None).await).await;
    assert_eq!((refused.status, refused.code()), (409, "not_replayable"));

    // Accepted: the agent answers 503, then 200 on the retry; each attempt is in the record.
    let mut headers = credentials.to_vec();
    headers.push(("content-type", "application/json"));
    let response = send(
        &app,
        &hook,
        &headers,
        r#"{"message":"Deploy api","event_type":"deploy.finished"}"#,
    )
    .await;
    assert_eq!(response.status(), 202);
    let accepted: Value = response.json().await.unwrap();
    app.node.dispatcher.run_once().await.unwrap();
    app.clock.advance(Duration::from_secs(3600));
    app.node.dispatcher.run_once().await.unwrap();
    let shown = record(&app, key, &accepted["invocation_id"], &secrets).await;
    assert_eq!(shown["request"]["body_kept"], "whole");
    assert_eq!(
        shown["request"]["body"],
        Value::Null,
        "the body is the payload"
    );
    assert_eq!(shown["payload"]["message"], "Deploy api");
    assert_eq!(shown["problem"], Value::Null);
    assert_eq!(shown["task"]["id"], accepted["task_id"]);
    assert_eq!(shown["task"]["status"], "delivered");
    let attempts = shown["attempts"].as_array().unwrap();
    let summary: Vec<(u64, u64, &str, bool)> = attempts
        .iter()
        .map(|a| {
            (
                a["number"].as_u64().unwrap(),
                a["status_code"].as_u64().unwrap(),
                a["body_excerpt"].as_str().unwrap(),
                a["succeeded"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [(1, 503, "busy", false), (2, 200, r#"{"ok":true}"#, true)]
    );
    assert!(
        attempts
            .iter()
            .all(|a| a["latency_ms"].is_u64() && a["at"].is_string())
    );
    // The task's own list, which a viewer may read too.
    let path = format!("/api/v1/tasks/{}/attempts", text(&accepted["task_id"]));
    let listed = app.expect(200, "get", &path, &org.viewer, None).await;
    assert_eq!(listed["items"], shown["attempts"]);
    let outsider = app.org().await;
    let hidden = problem(app.call("get", &path, Some(&outsider.admin), None).await).await;
    assert_eq!((hidden.status, hidden.code()), (404, "not_found"));

    // Ignored: what it was matched against.
    let headers = [
        ("x-webhook-secret", SECRET),
        ("content-type", "application/json"),
    ];
    let response = send(&app, &hook, &headers, r#"{"event_type":"push"}"#).await;
    assert_eq!(response.status(), 200);
    let ignored: Value = response.json().await.unwrap();
    let shown = record(&app, key, &ignored["invocation_id"], &secrets).await;
    assert_eq!(shown["subscriptions"], json!(["deploy.*"]));
    assert_eq!(shown["task"], Value::Null);
    agent_handle.stop(false).await;
}

/// A replay goes through the pipeline again as an authenticated sender: it claims no delivery
/// id (two replays make two tasks), names the original, keeps the original's test flag, meets
/// the event-type filter and a disabled webhook's refusal; a viewer may not replay, another
/// organization's invocation is not found, a deleted webhook's is gone.
pub(crate) async fn replays_go_through_the_pipeline_again<S: Backend>(store: S) {
    let app = ApiApp::start_on(store);
    let org = app.org().await;
    let key = org.admin.as_str();
    let hook = webhook(&app, key, None).await;
    let headers = [
        ("x-webhook-secret", SECRET),
        ("content-type", "application/json"),
        ("x-event-type", "deploy.started"),
        ("idempotency-key", "delivery-1"),
    ];
    let response = send(&app, &hook, &headers, r#"{"message":"Deploy"}"#).await;
    assert_eq!(response.status(), 202);
    let original: Value = response.json().await.unwrap();
    let replay_path = format!(
        "/api/v1/invocations/{}/replay",
        text(&original["invocation_id"])
    );

    let viewer = problem(
        app.call("post", &replay_path, Some(&org.viewer), None)
            .await,
    )
    .await;
    assert_eq!((viewer.status, viewer.code()), (403, "forbidden"));
    let outsider = app.org().await;
    let hidden = problem(
        app.call("post", &replay_path, Some(&outsider.admin), None)
            .await,
    )
    .await;
    assert_eq!((hidden.status, hidden.code()), (404, "not_found"));

    let mut replays = Vec::new();
    for _ in 0..2 {
        let replayed = app.expect(200, "post", &replay_path, key, None).await;
        assert_eq!(
            (&replayed["status"], &replayed["http_status"]),
            (&json!("accepted"), &json!(202)),
            "{replayed}"
        );
        replays.push(replayed);
    }
    let ids: std::collections::BTreeSet<&str> = replays
        .iter()
        .flat_map(|r| [text(&r["invocation_id"]), text(&r["task_id"])])
        .chain([text(&original["invocation_id"]), text(&original["task_id"])])
        .collect();
    assert_eq!(
        ids.len(),
        6,
        "each replay is a new invocation with a new task"
    );
    let shown = record(&app, key, &replays[1]["invocation_id"], &["record-secret"]).await;
    assert_eq!(shown["replay_of"], original["invocation_id"]);
    assert_eq!(shown["test"], false);
    assert_eq!(
        shown["event_type"], "deploy.started",
        "the headers were sent again"
    );
    assert_eq!(shown["payload"], json!({"message": "Deploy"}));
    assert_eq!(header(&shown, "idempotency-key"), Some("delivery-1"));
    assert_eq!(
        header(&shown, "x-webhook-secret"),
        None,
        "a redacted value is not sent"
    );
    assert_eq!(shown["task"]["id"], replays[1]["task_id"]);
    // The sender's own retry is still a duplicate of the original: replays claimed nothing.
    let response = send(&app, &hook, &headers, r#"{"message":"Deploy"}"#).await;
    let repeated: Value = response.json().await.unwrap();
    assert_eq!(
        (&repeated["status"], &repeated["invocation_id"]),
        (&json!("duplicate"), &original["invocation_id"])
    );

    // A test event's replay is a test too.
    let webhook_path = format!("/api/v1/webhooks/{}", text(&hook["id"]));
    let tested = app
        .expect(
            200,
            "post",
            &format!("{webhook_path}/test"),
            key,
            Some(json!({"payload": {"event_type": "deploy.test"}})),
        )
        .await;
    let path = format!(
        "/api/v1/invocations/{}/replay",
        text(&tested["invocation_id"])
    );
    let replayed = app.expect(200, "post", &path, key, None).await;
    let shown = record(&app, key, &replayed["invocation_id"], &[]).await;
    assert_eq!(
        (&shown["test"], &shown["replay_of"]),
        (&json!(true), &tested["invocation_id"])
    );

    // The event-type filter applies: unsubscribed, the replay is ignored.
    let subscribe = json!({"event_types": ["build.*"]});
    app.expect(200, "patch", &webhook_path, key, Some(subscribe))
        .await;
    let replayed = app.expect(200, "post", &replay_path, key, None).await;
    assert_eq!(replayed["status"], "ignored", "{replayed}");
    let shown = record(&app, key, &replayed["invocation_id"], &[]).await;
    assert_eq!(shown["subscriptions"], json!(["build.*"]));

    // A disabled webhook refuses as it refuses a sender; a deleted one is gone.
    let disable = json!({"status": "disabled"});
    app.expect(200, "patch", &webhook_path, key, Some(disable))
        .await;
    let replayed = app.expect(200, "post", &replay_path, key, None).await;
    assert_eq!(
        (
            &replayed["status"],
            &replayed["http_status"],
            &replayed["code"]
        ),
        (&json!("rejected"), &json!(403), &json!("webhook_disabled"))
    );
    app.expect(204, "delete", &webhook_path, key, None).await;
    let gone = problem(app.call("post", &replay_path, Some(key), None).await).await;
    assert_eq!((gone.status, gone.code()), (410, "webhook_deleted"));
    // The record stays readable.
    let shown = record(&app, key, &original["invocation_id"], &["record-secret"]).await;
    assert_eq!(shown["outcome"], "accepted");
}
