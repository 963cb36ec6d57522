//! The ingest table, row by row, over real HTTP; each case runs on every backend.

#![expect(clippy::unwrap_used, reason = "tests: a panic is how a test fails")]

use std::net::IpAddr;
use std::time::Duration;

use uuid::Uuid;

use webhook_domain::model::{InvocationOutcome, TaskStatus, Webhook, WebhookId, WebhookStatus};

use crate::helpers::{Backend, Options, SECRET, TestApp, loopback, problem};

/// Generates one test per case for a backend; `$new_store` yields a future of a fresh store.
macro_rules! backend_cases {
    ($new_store:expr) => {
        $crate::cases::backend_cases!(@cases $new_store;
            cases::accepts_and_commits_before_answering,
            cases::unknown_ids_are_404,
            cases::deleted_webhooks_are_410,
            cases::disabled_webhooks_are_403_and_counted,
            cases::webhook_rate_limit_is_429_with_headers,
            cases::organization_rate_limit_is_429_with_scope,
            cases::missing_or_wrong_secret_is_401_and_logged,
            cases::wrong_secrets_consume_no_quota,
            cases::webhooks_without_secret_accept_any_sender,
            cases::bodies_over_the_limit_are_413,
            cases::non_json_media_types_are_415,
            cases::malformed_or_non_object_bodies_are_400,
            cases::bodies_nested_deeper_than_128_are_400,
            cases::unsubscribed_event_types_are_ignored,
            cases::store_down_at_commit_is_503_without_ack,
            cases::other_methods_are_405,
            head::request_heads_over_32_kib_are_431,
            cases::trusted_proxy_forwarded_for,
            cases::untrusted_forwarded_for_is_ignored,
            cases::metrics_count_outcomes,
            streaming::chunked_fifty_mib_is_refused_while_still_sending,
            streaming::declared_length_over_the_limit_is_refused_before_the_body,
            streaming::a_body_in_many_chunks_is_joined,
            streaming::a_body_broken_mid_stream_is_400_and_logged,
            conformance::answers_match_the_openapi_document,
            lists::list_answers_stay_small_whatever_was_sent,
            sources::github_requests_are_verified_and_make_tasks,
            sources::github_vector_pings_and_forms,
            sources::stripe_signatures_have_a_timestamp_and_any_v1,
            sources::slack_vector_handshake_and_events,
            sources::pagerduty_and_shopify,
            sources::standard_webhooks_vector_and_its_delivery_id,
            sources::header_schemes_are_checked_on_the_head,
            sources::a_runaway_template_falls_back_and_is_noted,
            sources::a_rotated_secret_verifies_within_its_overlap_only,
            sources::requests_from_outside_the_allowlist_are_403,
            sources::concurrent_duplicates_make_one_task,
            records::a_request_record_shows_headers_problem_and_attempts,
            records::replays_go_through_the_pipeline_again,
            health::deleted_webhooks_are_listed_with_their_logs,
            health::webhooks_carry_their_health_over_the_last_day,
        );
    };
    ($new_store:expr, with_readiness) => {
        $crate::cases::backend_cases!($new_store);
        $crate::cases::backend_cases!(@cases $new_store; cases::readiness_follows_the_store);
    };
    (@cases $new_store:expr; $($module:ident :: $case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let store = $new_store.await;
                $crate::$module::$case(::std::clone::Clone::clone(&store)).await;
                $crate::helpers::Backend::teardown(store).await;
            }
        )*
    };
}
pub(crate) use backend_cases;

pub(crate) async fn accepts_and_commits_before_answering<S: Backend>(store: S) {
    let app = TestApp::start(store);
    let webhook = app.webhook().await;
    let response = app
        .post(
            &webhook,
            r#"{"message":"Deploy api","event_type":"deploy.finished"}"#,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    assert_eq!(response.headers()["ratelimit-limit"], "100");
    assert_eq!(response.headers()["ratelimit-remaining"], "99");
    assert!(response.headers().contains_key("ratelimit-reset"));
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "accepted");
    let task_id = body["task_id"].as_str().unwrap().parse().unwrap();

    // Everything acknowledged is already in the store.
    let invocations = app.invocations(&webhook).await;
    assert_eq!(invocations.len(), 1);
    let invocation = &invocations[0];
    assert_eq!(invocation.id.to_string(), body["invocation_id"]);
    assert_eq!(invocation.outcome, InvocationOutcome::Accepted);
    assert_eq!(invocation.http_status, 202);
    assert_eq!(invocation.source_ip, Some(loopback()));
    assert_eq!(invocation.event_type.as_deref(), Some("deploy.finished"));
    assert_eq!(invocation.task_id, Some(task_id));
    let task = app
        .store
        .task(webhook.organization_id, task_id)
        .await
        .unwrap();
    assert_eq!(task.status, TaskStatus::Queued);
    assert_eq!(task.instruction.as_deref(), Some("Deploy api"));
    assert!(task.source.verified);
}

pub(crate) async fn unknown_ids_are_404<S: Backend>(store: S) {
    let app = TestApp::start(store);
    let unknown = WebhookId::from_uuid(uuid::Uuid::new_v4());
    for path in [
        format!("/api/webhooks/{unknown}"),
        "/api/webhooks/not-a-uuid".to_owned(),
    ] {
        let response = post_json(&app, app.url(&path), "{}").send().await.unwrap();
        let answer = problem(response).await;
        assert_eq!((answer.status, answer.code()), (404, "webhook_not_found"));
        assert_eq!(answer.header("ratelimit-limit"), None);
    }
    // Paths no route serves are problem+json too.
    let response = app.client.get(app.url("/nowhere")).send().await.unwrap();
    assert_eq!(problem(response).await.code(), "not_found");
}

pub(crate) async fn deleted_webhooks_are_410<S: Backend>(store: S) {
    let app = TestApp::start(store);
    let mut webhook = app.webhook().await;
    app.set_status(&mut webhook, WebhookStatus::Deleted).await;
    for _ in 0..2 {
        let answer = problem(app.post(&webhook, "{}").send().await.unwrap()).await;
        assert_eq!((answer.status, answer.code()), (410, "webhook_deleted"));
    }
    // Logged, as a count: a sender that keeps posting to a deleted URL costs no write each.
    app.rejections().flush_into(&app.store).await.unwrap();
    let logged = app.invocations(&webhook).await;
    assert_eq!(logged.len(), 1);
    assert_eq!(
        (
            logged[0].http_status,
            logged[0].error_code.as_deref(),
            logged[0].repeat_count
        ),
        (410, Some("webhook_deleted"), 2)
    );
}

pub(crate) async fn disabled_webhooks_are_403_and_counted<S: Backend>(store: S) {
    let app = TestApp::start(store);
    let mut webhook = app.webhook().await;
    // Served once, so the route is cached; disabling must take effect at once all the same.
    assert_eq!(app.post(&webhook, "{}").send().await.unwrap().status(), 200);
    app.set_status(&mut webhook, WebhookStatus::Disabled).await;
    for _ in 0..3 {
        let answer = problem(app.post(&webhook, "{}").send().await.unwrap()).await;
        assert_eq!((answer.status, answer.code()), (403, "webhook_disabled"));
    }
    let coalesced = app.rejections().drain();
    assert_eq!(coalesced.len(), 1);
    assert_eq!(coalesced[0].repeat_count, 3);
    assert_eq!(coalesced[0].error_code.as_deref(), Some("webhook_disabled"));
}

pub(crate) async fn webhook_rate_limit_is_429_with_headers<S: Backend>(store: S) {
    let app = TestApp::start(store);
    let webhook = app.webhook_with(2, 1000, true).await;
    let typed = || {
        app.post(&webhook, r#"{"event_type":"build.finished"}"#)
            .send()
    };
    for remaining in ["1", "0"] {
        let response = typed().await.unwrap();
        assert_eq!(response.status(), 202);
        assert_eq!(response.headers()["ratelimit-remaining"], remaining);
    }
    let answer = problem(app.post(&webhook, "{}").send().await.unwrap()).await;
    assert_eq!((answer.status, answer.code()), (429, "rate_limited"));
    assert_eq!(answer.body["scope"], "webhook");
    let retry_after: u64 = answer.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=61).contains(&retry_after), "{retry_after}");
    assert_eq!(answer.header("ratelimit-limit"), Some("2"));
    assert_eq!(answer.header("ratelimit-remaining"), Some("0"));
    let reset: u64 = answer.header("ratelimit-reset").unwrap().parse().unwrap();
    assert!((1..=61).contains(&reset), "{reset}");
    // Counted, not written one by one.
    assert_eq!(app.invocations(&webhook).await.len(), 2);
    let coalesced = app.rejections().drain();
    assert_eq!(coalesced.len(), 1);
    assert_eq!(coalesced[0].error_code.as_deref(), Some("rate_limited"));
    // Once the window has moved on, requests are admitted again.
    app.advance(Duration::from_secs(retry_after));
    assert_eq!(typed().await.unwrap().status(), 202);
}

pub(crate) async fn organization_rate_limit_is_429_with_scope<S: Backend>(store: S) {
    let app = TestApp::start(store);
    let webhook = app.webhook_with(100, 1, true).await;
    assert_eq!(app.post(&webhook, "{}").send().await.unwrap().status(), 200);
    let answer = problem(app.post(&webhook, "{}").send().await.unwrap()).await;
    assert_eq!((answer.status, answer.code()), (429, "rate_limited"));
    assert_eq!(answer.body["scope"], "organization");
    assert_eq!(answer.header("ratelimit-limit"), Some("1"));
    assert!(answer.header("retry-after").is_some());
}

pub(crate) async fn missing_or_wrong_secret_is_401_and_logged<S: Backend>(store: S) {
    let app = TestApp::start(store);
    let webhook = app.webhook().await;
    let without = post_json(&app, app.ingest_url(&webhook), "{}")
        .send()
        .await
        .unwrap();
    let wrong = post_json(&app, app.ingest_url(&webhook), "{}")
        .header("x-webhook-secret", format!("{SECRET}x"))
        .send()
        .await
        .unwrap();
    for response in [without, wrong] {
        let answer = problem(response).await;
        assert_eq!((answer.status, answer.code()), (401, "invalid_secret"));
    }
    // Counted, then written as one entry standing for both requests.
    assert!(
        app.invocations(&webhook).await.is_empty(),
        "no write per 401"
    );
    app.rejections().flush_into(&app.store).await.unwrap();
    let invocations = app.invocations(&webhook).await;
    assert_eq!(invocations.len(), 1);
    for invocation in invocations {
        assert_eq!(invocation.outcome, InvocationOutcome::Rejected);
        assert_eq!(invocation.http_status, 401);
        assert_eq!(invocation.error_code.as_deref(), Some("invalid_secret"));
        assert_eq!(invocation.payload, None);
        assert_eq!(invocation.repeat_count, 2);
    }
}

/// A flood of wrong secrets to one webhook charges no quota: the organization's other webhooks
/// keep accepting good requests.
pub(crate) async fn wrong_secrets_consume_no_quota<S: Backend>(store: S) {
    let app = TestApp::start(store);
    let flooded = app.webhook_with(100, 10, true).await;
    let mut other = flooded.clone();
    other.id = WebhookId::from_uuid(Uuid::new_v4());
    app.store.insert_webhook(&other).await.unwrap();
    for _ in 0..12 {
        let response = post_json(&app, app.ingest_url(&flooded), "{}")
            .header("x-webhook-secret", "not-the-secret-0123456789")
            .send()
            .await
            .unwrap();
        let answer = problem(response).await;
        assert_eq!((answer.status, answer.code()), (401, "invalid_secret"));
    }
    let response = app
        .post(
            &other,
            r#"{"message":"deploy","event_type":"deploy.finished"}"#,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        202,
        "the organization's quota is untouched"
    );
    app.rejections().flush_into(&app.store).await.unwrap();
    let flood = app.invocations(&flooded).await;
    assert_eq!(flood.len(), 1, "a flood of 401s is one log entry");
    assert_eq!((flood[0].http_status, flood[0].repeat_count), (401, 12));
}

pub(crate) async fn webhooks_without_secret_accept_any_sender<S: Backend>(store: S) {
    let app = TestApp::start(store);
    let webhook = app.webhook_with(100, 1000, false).await;
    let response = post_json(&app, app.ingest_url(&webhook), r#"{"message":"hi"}"#)
        .header("x-event-type", "deploy.started")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let body: serde_json::Value = response.json().await.unwrap();
    let task_id = body["task_id"].as_str().unwrap().parse().unwrap();
    let task = app
        .store
        .task(webhook.organization_id, task_id)
        .await
        .unwrap();
    assert!(!task.source.verified);
}

pub(crate) async fn bodies_over_the_limit_are_413<S: Backend>(store: S) {
    let app = TestApp::start_with(
        store,
        Options {
            body_limit: 1024,
            ..Options::default()
        },
    );
    let webhook = app.webhook_for_all().await;
    let padded = |len: usize| {
        let mut body = String::from(r#"{"pad":""#);
        body.push_str(&"x".repeat(len - body.len() - 2));
        body.push_str(r#""}"#);
        assert_eq!(body.len(), len);
        body
    };
    let at_limit = app.post(&webhook, &padded(1024)).send().await.unwrap();
    assert_eq!(at_limit.status(), 202);
    app.advance(Duration::from_millis(1));
    let over = app.post(&webhook, &padded(1025)).send().await.unwrap();
    let answer = problem(over).await;
    assert_eq!((answer.status, answer.code()), (413, "payload_too_large"));
    assert_eq!(answer.header("ratelimit-limit"), Some("100"));
    let logged = app.invocations(&webhook).await;
    assert_eq!(logged[0].http_status, 413);
    assert_eq!(logged[0].error_code.as_deref(), Some("payload_too_large"));
}

pub(crate) async fn non_json_media_types_are_415<S: Backend>(store: S) {
    let app = TestApp::start(store);
    let webhook = app.webhook_for_all().await;
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut request = app
            .client
            .post(app.ingest_url(&webhook))
            .header("x-webhook-secret", SECRET)
            .body("{}");
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let answer = problem(request.send().await.unwrap()).await;
        assert_eq!(
            (answer.status, answer.code()),
            (415, "unsupported_media_type"),
            "{content_type:?}"
        );
    }
    for content_type in [
        "application/json; charset=utf-8",
        "application/vnd.acme.event+json",
    ] {
        let response = app
            .client
            .post(app.ingest_url(&webhook))
            .header("x-webhook-secret", SECRET)
            .header("content-type", content_type)
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202, "{content_type}");
    }
}

pub(crate) async fn malformed_or_non_object_bodies_are_400<S: Backend>(store: S) {
    let app = TestApp::start(store);
    let webhook = app.webhook_for_all().await;
    for body in ["{", "[1,2]", "\"text\"", "", "{} {}"] {
        let answer = problem(app.post(&webhook, body).send().await.unwrap()).await;
        assert_eq!(
            (answer.status, answer.code()),
            (400, "invalid_payload"),
            "{body:?}"
        );
    }
}

pub(crate) async fn bodies_nested_deeper_than_128_are_400<S: Backend>(store: S) {
    let app = TestApp::start(store);
    let webhook = app.webhook_for_all().await;
    let nested = |depth: usize| {
        format!(
            r#"{{"message":"deep","n":{}{}}}"#,
            "[".repeat(depth - 1),
            "]".repeat(depth - 1)
        )
    };
    for depth in [129, 100_000] {
        let answer = problem(app.post(&webhook, &nested(depth)).send().await.unwrap()).await;
        assert_eq!(
            (answer.status, answer.code()),
            (400, "invalid_payload"),
            "depth {depth}"
        );
        assert!(
            answer.body["detail"].as_str().unwrap().contains("128"),
            "{}",
            answer.body
        );
    }
    let response = app.post(&webhook, &nested(128)).send().await.unwrap();
    assert_eq!(response.status(), 202, "depth 128 is allowed");
}

pub(crate) async fn unsubscribed_event_types_are_ignored<S: Backend>(store: S) {
    let app = TestApp::start(store);
    let webhook = app.webhook().await;
    let check = |header: Option<&'static str>, payload_type: &'static str, status: u16| {
        let mut request = app.post(&webhook, &format!(r#"{{"event_type":"{payload_type}"}}"#));
        if let Some(header) = header {
            request = request.header("x-event-type", header);
        }
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), status, "{header:?} {payload_type}");
            let body: serde_json::Value = response.json().await.unwrap();
            body
        }
    };
    let ignored = check(None, "push", 200).await;
    assert_eq!(ignored["status"], "ignored");
    assert!(ignored["invocation_id"].is_string());
    assert!(ignored.get("task_id").is_none());
    // The header wins over the payload, both ways.
    app.advance(Duration::from_millis(1));
    check(Some("deploy.started"), "push", 202).await;
    app.advance(Duration::from_millis(1));
    check(Some("push"), "deploy.started", 200).await;
    let outcomes: Vec<_> = app
        .invocations(&webhook)
        .await
        .iter()
        .map(|i| i.outcome)
        .collect();
    assert_eq!(
        outcomes,
        [
            InvocationOutcome::Ignored,
            InvocationOutcome::Accepted,
            InvocationOutcome::Ignored
        ]
    );
}

pub(crate) async fn store_down_at_commit_is_503_without_ack<S: Backend>(store: S) {
    let app = TestApp::start(store);
    let webhook = app.webhook_for_all().await;
    let other = app.webhook_for_all().await;
    // The route is cached, so the request passes every check and fails only at the commit.
    assert_eq!(app.post(&webhook, "{}").send().await.unwrap().status(), 202);
    app.store.go_down().await;
    let answer = problem(app.post(&webhook, r#"{"n":2}"#).send().await.unwrap()).await;
    assert_eq!((answer.status, answer.code()), (503, "store_unavailable"));
    assert!(
        !answer.body["detail"]
            .as_str()
            .unwrap()
            .contains("unavailable:")
    );
    if S::READS_WHILE_DOWN {
        // A route not cached is still resolved, and its commit fails the same way.
        let answer = problem(app.post(&other, "{}").send().await.unwrap()).await;
        assert_eq!((answer.status, answer.code()), (503, "store_unavailable"));
        // Nothing of the refused requests was written: only the first one is there.
        let invocations = app.invocations(&webhook).await;
        assert_eq!(invocations.len(), 1);
        assert_eq!(invocations[0].outcome, InvocationOutcome::Accepted);
        assert!(app.invocations(&other).await.is_empty());
    } else {
        // A route not cached cannot be resolved either: 503 as well, not 404.
        let answer = problem(app.post(&other, "{}").send().await.unwrap()).await;
        assert_eq!((answer.status, answer.code()), (503, "store_unavailable"));
    }
    if S::COMES_BACK {
        app.store.come_back().await;
        let invocations = app.invocations(&webhook).await;
        assert_eq!(invocations.len(), 1);
        assert_eq!(invocations[0].outcome, InvocationOutcome::Accepted);
        assert!(app.invocations(&other).await.is_empty());
        assert_eq!(app.post(&webhook, "{}").send().await.unwrap().status(), 202);
    }
}

pub(crate) async fn other_methods_are_405<S: Backend>(store: S) {
    let app = TestApp::start(store);
    let webhook = app.webhook().await;
    for method in [
        reqwest::Method::GET,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
    ] {
        let response = app
            .client
            .request(method.clone(), app.ingest_url(&webhook))
            .send()
            .await
            .unwrap();
        let answer = problem(response).await;
        assert_eq!(
            (answer.status, answer.code()),
            (405, "method_not_allowed"),
            "{method}"
        );
        assert_eq!(answer.header("allow"), Some("POST"));
    }
}

pub(crate) async fn trusted_proxy_forwarded_for<S: Backend>(store: S) {
    let app = TestApp::start_with(
        store,
        Options {
            trusted_proxies: vec![
                "127.0.0.0/8".parse().unwrap(),
                "10.0.0.0/8".parse().unwrap(),
            ],
            ..Options::default()
        },
    );
    let webhook = app.webhook_for_all().await;
    let forwarded = "192.0.2.66, 198.51.100.7, 10.1.2.3";
    assert_eq!(
        source_ip(&app, &webhook, Some(forwarded)).await,
        Some("198.51.100.7".parse().unwrap())
    );
    // Without the header, the proxy itself.
    app.advance(Duration::from_millis(1));
    assert_eq!(source_ip(&app, &webhook, None).await, Some(loopback()));
}

pub(crate) async fn untrusted_forwarded_for_is_ignored<S: Backend>(store: S) {
    let app = TestApp::start(store);
    let webhook = app.webhook_for_all().await;
    let forwarded = Some("198.51.100.7");
    assert_eq!(source_ip(&app, &webhook, forwarded).await, Some(loopback()));
}

/// A JSON POST of `body` to `url`, without a secret.
fn post_json<S: Backend>(
    app: &TestApp<S>,
    url: String,
    body: &'static str,
) -> reqwest::RequestBuilder {
    app.client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
}

/// Posts `{}` to `webhook`, with `X-Forwarded-For: forwarded_for` when given, which must be
/// accepted: the source address recorded on the newest invocation.
async fn source_ip<S: Backend>(
    app: &TestApp<S>,
    webhook: &Webhook,
    forwarded_for: Option<&str>,
) -> Option<IpAddr> {
    let mut request = app.post(webhook, "{}");
    if let Some(forwarded_for) = forwarded_for {
        request = request.header("x-forwarded-for", forwarded_for);
    }
    assert_eq!(request.send().await.unwrap().status(), 202);
    app.invocations(webhook).await[0].source_ip
}

pub(crate) async fn readiness_follows_the_store<S: Backend>(store: S) {
    let app = TestApp::start(store);
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    app.store.go_down().await;
    let answer = problem(app.client.get(app.url("/readyz")).send().await.unwrap()).await;
    assert_eq!((answer.status, answer.code()), (503, "store_unavailable"));
    // Liveness does not depend on the store.
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    if S::COMES_BACK {
        app.store.come_back().await;
        let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), 200);
    }
}

pub(crate) async fn metrics_count_outcomes<S: Backend>(store: S) {
    let app = TestApp::start(store);
    let webhook = app.webhook_for_all().await;
    assert_eq!(app.post(&webhook, "{}").send().await.unwrap().status(), 202);
    assert_eq!(app.post(&webhook, "[]").send().await.unwrap().status(), 400);
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = response.text().await.unwrap();
    assert!(
        text.contains(r#"webhookd_ingest_requests_total{outcome="accepted"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"webhookd_ingest_requests_total{outcome="invalid_payload"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("webhookd_ingest_duration_seconds_count 2"),
        "{text}"
    );
}
