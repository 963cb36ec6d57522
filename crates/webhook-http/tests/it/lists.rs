//! List answers stay small whatever was sent: invocation lists summarize payloads, the task
//! board carries contexts only when asked, at most 50 a page, streamed.

#![expect(
    clippy::unwrap_used,
    reason = "test harness: a panic with a message is how a test fails"
)]

use serde_json::Value;
use webhook_domain::model::{Invocation, Payload, Task, Timestamp, Webhook, WebhookId};
use webhook_domain::ports::{InvocationLog as _, WebhookStore as _};
use webhook_store_contract::fixtures;

use crate::api::ApiApp;
use crate::helpers::{Backend, problem};

const MIB: usize = 1 << 20;

/// An accepted invocation of about 1 MiB to `webhook` and its task, received `second` seconds
/// in.
fn big_event(webhook: &Webhook, second: i64) -> (Invocation, Task) {
    let received_at = Timestamp::from_unix_micros(1_767_225_600_000_000 + second * 1_000_000);
    let text = format!(
        r#"{{"message":"{}","n":{second},"pad":"{}"}}"#,
        "é".repeat(300),
        "x".repeat(MIB)
    );
    let payload = Payload::from_stored(text);
    let (mut invocation, mut task) = fixtures::accepted(webhook, received_at);
    invocation.event_type = None;
    invocation.payload = Some(payload.clone());
    task.event_type = None;
    task.instruction = Some("é".repeat(300));
    task.context = payload;
    (invocation, task)
}

/// A GET that must answer 200 with JSON; returns the body's size and the body.
async fn read<S: Backend>(app: &ApiApp<S>, key: &str, path: &str) -> (usize, Value) {
    let response = app.call("get", path, Some(key), None).await;
    assert_eq!(response.status().as_u16(), 200, "{path}");
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/json",
        "{path}"
    );
    let bytes = response.bytes().await.unwrap();
    (bytes.len(), serde_json::from_slice(&bytes).unwrap())
}

pub(crate) async fn list_answers_stay_small_whatever_was_sent<S: Backend>(store: S) {
    let app = ApiApp::start_on(store);
    let org = app.org().await;
    let target = app.target(&org.admin).await;
    let webhook = app.webhook(&org.admin, &target).await;
    let webhook_id = WebhookId::from_uuid(webhook["id"].as_str().unwrap().parse().unwrap());
    let stored = app.store.webhook(webhook_id).await.unwrap();
    let mut sent = Vec::new();
    for second in 0..50 {
        let (invocation, task) = big_event(&stored, second);
        app.store
            .record_invocation(&invocation, Some(&task))
            .await
            .unwrap();
        sent.push(invocation);
    }
    let hook = format!("/api/v1/webhooks/{}", webhook["id"].as_str().unwrap());

    // 50 invocations of 1 MiB: one answer well under 1 MiB, of summaries.
    let (size, log) = read(&app, &org.viewer, &format!("{hook}/invocations?limit=500")).await;
    assert!(size < MIB, "the invocation list took {size} bytes");
    let items = log["items"].as_array().unwrap();
    assert_eq!(items.len(), 50);
    for item in items {
        assert!(item.get("payload").is_none(), "no whole payload in a list");
        let preview = item["message_preview"].as_str().unwrap();
        assert_eq!(preview, "é".repeat(200));
        let excerpt = item["payload_excerpt"].as_str().unwrap();
        assert!(excerpt.len() <= 1024, "{} bytes", excerpt.len());
        assert!(excerpt.starts_with(r#"{"message":"éé"#), "{excerpt:.40}");
        assert_eq!(item["delivery_status"], "queued");
    }
    assert_eq!(
        items[0]["id"],
        sent[49].id.as_uuid().to_string(),
        "newest first"
    );

    // The single read still has the whole payload.
    let (size, whole) = read(
        &app,
        &org.viewer,
        &format!("/api/v1/invocations/{}", sent[0].id.as_uuid()),
    )
    .await;
    assert!(size > MIB);
    assert_eq!(whole["payload"]["n"], 0);

    // The board without contexts: small too.
    let (size, board) = read(&app, &org.viewer, "/api/v1/tasks?limit=500").await;
    assert!(size < MIB, "the task list took {size} bytes");
    let tasks = board["items"].as_array().unwrap();
    assert_eq!(tasks.len(), 50);
    assert!(tasks.iter().all(|t| t.get("context").is_none()));

    // With contexts: at most 50 a page.
    for (path, field) in [
        ("/api/v1/tasks?include=context&limit=51", "limit"),
        ("/api/v1/tasks?include=context&limit=500", "limit"),
        ("/api/v1/tasks?include=everything", "include"),
    ] {
        let refused = problem(app.call("get", path, Some(&org.viewer), None).await).await;
        assert_eq!(
            (
                refused.status,
                refused.code(),
                refused.body["field"].as_str()
            ),
            (422, "validation_failed", Some(field)),
            "{path}"
        );
    }
    // And the pages, followed by their cursors, carry every task with its whole context.
    let mut seen = Vec::new();
    let mut path = "/api/v1/tasks?include=context&limit=20".to_owned();
    loop {
        let (size, page) = read(&app, &org.viewer, &path).await;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 20);
        assert!(size > items.len() * MIB, "whole contexts");
        for item in items {
            assert_eq!(item["context"]["message"], "é".repeat(300));
            assert_eq!(item["status"], "queued");
            seen.push(item["context"]["n"].as_i64().unwrap());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => {
                path = format!("/api/v1/tasks?include=context&limit=20&cursor={cursor}");
            }
            None => break,
        }
    }
    assert_eq!(seen, (0..50).rev().collect::<Vec<_>>());

    // An empty page is still a list.
    let (_, empty) = read(
        &app,
        &org.admin,
        "/api/v1/tasks?include=context&status=failed",
    )
    .await;
    assert_eq!(empty, serde_json::json!({"items": [], "next_cursor": null}));
}

/// 500 invocations of 1 MiB whose summaries grow most in JSON (quotes and control characters
/// in the message, so the preview and the excerpt are escaped to two and six times their
/// size): a page of 500 would pass 1 MiB, so each answer ends early, under 1 MiB, and its
/// cursor goes on where it stopped until every entry has been listed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_500_summaries_stays_under_1_mib_however_they_escape() {
    let app = ApiApp::start_on(webhook_store_mem::MemoryStore::new());
    let org = app.org().await;
    let target = app.target(&org.admin).await;
    let webhook = app.webhook(&org.admin, &target).await;
    let webhook_id = WebhookId::from_uuid(webhook["id"].as_str().unwrap().parse().unwrap());
    let stored = app.store.webhook(webhook_id).await.unwrap();
    let message = format!("{}{}", r#"\""#.repeat(100), r"\u0001".repeat(100));
    // One payload, shared by every entry (it is reference-counted), so the test holds 1 MiB.
    let payload = Payload::from_stored(format!(
        r#"{{"message":"{message}","pad":"{}"}}"#,
        "x".repeat(MIB)
    ));
    for second in 0..500 {
        let received_at = Timestamp::from_unix_micros(1_767_225_600_000_000 + second * 1_000_000);
        let (mut invocation, _) = fixtures::accepted(&stored, received_at);
        invocation.payload = Some(payload.clone());
        invocation.task_id = None;
        app.store
            .record_invocation(&invocation, None)
            .await
            .unwrap();
    }

    let hook = format!(
        "/api/v1/webhooks/{}/invocations?limit=500",
        webhook["id"].as_str().unwrap()
    );
    let mut path = hook.clone();
    let mut pages = 0;
    let mut seen = Vec::new();
    loop {
        let (size, page) = read(&app, &org.viewer, &path).await;
        assert!(size < MIB, "page {pages} took {size} bytes");
        let items = page["items"].as_array().unwrap();
        assert!(!items.is_empty());
        for item in items {
            assert_eq!(
                item["message_preview"].as_str().unwrap().chars().count(),
                200
            );
            seen.push(item["received_at"].as_str().unwrap().to_owned());
        }
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("{hook}&cursor={cursor}"),
            None => break,
        }
    }
    assert!(pages > 1, "500 such summaries do not fit one answer");
    assert_eq!(seen.len(), 500, "every entry once");
    let mut sorted = seen.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    sorted.dedup();
    assert_eq!(sorted, seen, "newest first, none repeated");
}
