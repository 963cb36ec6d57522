//! The senders' dialects over real HTTP: each source's own requests are accepted, wrong,
//! missing and stale signatures refused, a rotated secret verifies within its overlap only,
//! handshakes answered without a task, forms accepted, and repeats of a delivery id answered
//! as duplicates. Signatures are made with the providers' published vectors where they exist
//! and with `ring` otherwise.

#![expect(clippy::unwrap_used, reason = "tests: a panic is how a test fails")]

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use webhook_domain::model::{
    CidrList, FieldRef, InstructionTemplate, InvocationOutcome, MacAlgorithm, Secret, Source,
    SourceSettings, Task, TaskId, Timestamp, Verification, Webhook,
};
use webhook_domain::ports::{SecretSealer as _, SignatureMac as _};
use webhook_system::RingMac;

use crate::helpers::{Backend, TestApp, at};

const SECRET: &str = "whsec_source-test-secret-42";

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    })
}

fn hmac(algorithm: MacAlgorithm, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    RingMac.sign(algorithm, key, parts)
}

fn sha256_hex(parts: &[&[u8]]) -> String {
    hex(&hmac(MacAlgorithm::Sha256, SECRET.as_bytes(), parts))
}

fn unix(at: Timestamp) -> i64 {
    at.unix_micros() / 1_000_000
}

/// What an answer said, and the task it made, if any.
struct Answer {
    status: u16,
    body: Value,
    text: String,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or_default()
    }
}

/// The content type of a JSON request.
const JSON: &str = "application/json";

/// The content type of a form, which GitHub and Slack may post.
const FORM: &str = "application/x-www-form-urlencoded";

/// Posts `body` to `webhook`'s ingest URL as `content_type`, with `headers`.
async fn send<S: Backend>(
    app: &TestApp<S>,
    webhook: &Webhook,
    content_type: &str,
    headers: &[(&str, String)],
    body: &str,
) -> Answer {
    let mut request = app
        .client
        .post(app.ingest_url(webhook))
        .header("content-type", content_type)
        .body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer { status, body, text }
}

/// Posts `body` as JSON with `headers` and checks that ingest refuses it with `expected`: its
/// status and problem `code`.
async fn assert_refused<S: Backend>(
    app: &TestApp<S>,
    webhook: &Webhook,
    headers: &[(&str, String)],
    body: &str,
    expected: (u16, &str),
) {
    let answer = send(app, webhook, JSON, headers, body).await;
    assert_eq!((answer.status, answer.code()), expected, "{}", answer.text);
}

/// Posts `body` as JSON with `headers` and checks that ingest accepts it: the task it made.
async fn assert_accepted<S: Backend>(
    app: &TestApp<S>,
    webhook: &Webhook,
    headers: &[(&str, String)],
    body: &str,
) -> Task {
    let answer = send(app, webhook, JSON, headers, body).await;
    task_of(app, webhook, &answer).await
}

/// The task an accepted `answer` made.
async fn task_of<S: Backend>(app: &TestApp<S>, webhook: &Webhook, answer: &Answer) -> Task {
    assert_eq!(answer.status, 202, "{}", answer.text);
    let id: TaskId = answer.body["task_id"].as_str().unwrap().parse().unwrap();
    app.store.task(webhook.organization_id, id).await.unwrap()
}

/// The header a generic webhook's sender presents `secret` in.
fn generic_secret(secret: &str) -> [(&'static str, String); 1] {
    [("x-webhook-secret", secret.to_owned())]
}

fn settings(source: Source) -> SourceSettings {
    SourceSettings::of(source)
}

// ---------------------------------------------------------------------------------------------
// GitHub

fn github_headers(
    event: &str,
    delivery: &str,
    body: &str,
    secret: &[u8],
) -> Vec<(&'static str, String)> {
    let tag = hex(&hmac(MacAlgorithm::Sha256, secret, &[body.as_bytes()]));
    vec![
        ("x-github-event", event.to_owned()),
        ("x-github-delivery", delivery.to_owned()),
        ("x-hub-signature-256", format!("sha256={tag}")),
    ]
}

pub(crate) async fn github_requests_are_verified_and_make_tasks<S: Backend>(store: S) {
    let app = TestApp::start(store);
    let webhook = app.webhook_of(settings(Source::Github), SECRET).await;
    let body = json!({
        "action": "opened",
        "repository": {"full_name": "acme/api"},
        "pull_request": {"title": "Fix the login race", "number": 7},
    })
    .to_string();
    let headers = github_headers("pull_request", "d1", &body, SECRET.as_bytes());
    let task = assert_accepted(&app, &webhook, &headers, &body).await;
    assert_eq!(task.event_type.as_deref(), Some("pull_request.opened"));
    let instruction = task.instruction.unwrap();
    assert!(instruction.contains("acme/api"), "{instruction}");
    assert!(instruction.contains("Fix the login race"), "{instruction}");
    assert_eq!(task.source.provider, Source::Github);
    assert!(task.source.verified);

    // A wrong signature, a missing one, and a body changed after signing are all refused.
    let mut wrong = github_headers("pull_request", "d2", &body, b"another secret entirely");
    assert_refused(&app, &webhook, &wrong, &body, (401, "invalid_signature")).await;
    wrong.retain(|(name, _)| *name != "x-hub-signature-256");
    assert_refused(&app, &webhook, &wrong, &body, (401, "invalid_signature")).await;
    let changed = body.replace("login", "logout");
    assert_refused(
        &app,
        &webhook,
        &headers,
        &changed,
        (401, "invalid_signature"),
    )
    .await;
    // The generic header does not open a GitHub webhook.
    let generic = [("x-webhook-secret", SECRET.to_owned())];
    assert_refused(&app, &webhook, &generic, &body, (401, "invalid_signature")).await;
}

pub(crate) async fn github_vector_pings_and_forms<S: Backend>(store: S) {
    let app = TestApp::start(store);
    // GitHub's documented vector: "It's a Secret to Everybody" over "Hello, World!". The body
    // is not a JSON object, so once verified it is refused as a payload, not as a signature.
    let webhook = app
        .webhook_of(settings(Source::Github), "It's a Secret to Everybody")
        .await;
    let vector = [
        ("x-github-event", "push".to_owned()),
        (
            "x-hub-signature-256",
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17".to_owned(),
        ),
    ];
    assert_refused(
        &app,
        &webhook,
        &vector,
        "Hello, World!",
        (400, "invalid_payload"),
    )
    .await;
    assert_refused(
        &app,
        &webhook,
        &vector,
        "Hello, World?",
        (401, "invalid_signature"),
    )
    .await;

    // A ping is answered 200 and makes no task.
    let webhook = app.webhook_of(settings(Source::Github), SECRET).await;
    let ping = json!({"zen": "Keep it logically awesome.", "hook_id": 1}).to_string();
    let headers = github_headers("ping", "p1", &ping, SECRET.as_bytes());
    let answer = send(&app, &webhook, JSON, &headers, &ping).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["status"], "handshake");
    let logged = app.invocations(&webhook).await;
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].task_id, None);
    assert_eq!(logged[0].event_type.as_deref(), Some("ping"));

    // The form content type carries the JSON in `payload=`; the signature is over the form.
    let json = json!({"ref": "refs/heads/main", "repository": {"full_name": "acme/api"},
        "head_commit": {"message": "Bump the version"}})
    .to_string();
    let form: String = url_form(&[("payload", &json)]);
    let headers = github_headers("push", "f1", &form, SECRET.as_bytes());
    let answer = send(&app, &webhook, FORM, &headers, &form).await;
    let task = task_of(&app, &webhook, &answer).await;
    assert_eq!(task.event_type.as_deref(), Some("push"));
    assert_eq!(
        serde_json::from_str::<Value>(task.context.as_str()).unwrap(),
        serde_json::from_str::<Value>(&json).unwrap(),
        "the form is stored as the JSON it carries"
    );
    // A generic webhook takes no forms.
    let generic = app.webhook_of(settings(Source::Generic), SECRET).await;
    let answer = send(&app, &generic, FORM, &generic_secret(SECRET), &form).await;
    assert_eq!(
        (answer.status, answer.code()),
        (415, "unsupported_media_type")
    );
}

fn url_form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(name, value)| format!("{}={}", encode(name), encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Stripe, Slack, PagerDuty, Shopify, Standard Webhooks

pub(crate) async fn stripe_signatures_have_a_timestamp_and_any_v1<S: Backend>(store: S) {
    let app = TestApp::start(store);
    let webhook = app.webhook_of(settings(Source::Stripe), SECRET).await;
    let body = json!({"id": "evt_1", "type": "invoice.payment_failed",
        "data": {"object": {"id": "in_42", "object": "invoice"}}})
    .to_string();
    let sign = |t: i64| sha256_hex(&[format!("{t}.").as_bytes(), body.as_bytes()]);
    let now = unix(at(0));
    let header = |t: i64, v1: &[String]| {
        let mut value = format!("t={t}");
        for tag in v1 {
            value = format!("{value},v1={tag}");
        }
        vec![("stripe-signature", value)]
    };
    // Any v1 may match: Stripe lists one per secret while a secret is being rolled.
    let good = header(now, &["0".repeat(64), sign(now)]);
    let task = assert_accepted(&app, &webhook, &good, &body).await;
    assert_eq!(task.event_type.as_deref(), Some("invoice.payment_failed"));
    assert!(task.instruction.unwrap().contains("in_42"));

    let stale = now - 301;
    assert_refused(
        &app,
        &webhook,
        &header(stale, &[sign(stale)]),
        &body,
        (401, "signature_expired"),
    )
    .await;
    assert_refused(
        &app,
        &webhook,
        &header(now, &["ab".repeat(32)]),
        &body,
        (401, "invalid_signature"),
    )
    .await;
    assert_refused(&app, &webhook, &[], &body, (401, "invalid_signature")).await;

    // Stripe retries with the same event id: one task.
    let again = header(now, &[sign(now)]);
    let answer = send(&app, &webhook, JSON, &again, &body).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["status"], "duplicate");
    assert_eq!(answer.body["task_id"], task.id.to_string());
}

pub(crate) async fn slack_vector_handshake_and_events<S: Backend>(store: S) {
    let app = TestApp::start(store);
    // Slack's documented example: a slash command signed at 1531420618.
    let secret = "8f742231b10e8888abcd99yyyzzz85a5";
    let webhook = app.webhook_of(settings(Source::Slack), secret).await;
    app.clock
        .set(Timestamp::from_unix_micros(1_531_420_618_000_000));
    let body = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    let vector = [
        (
            "x-slack-signature",
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503".to_owned(),
        ),
        ("x-slack-request-timestamp", "1531420618".to_owned()),
    ];
    let answer = send(&app, &webhook, FORM, &vector, body).await;
    let task = task_of(&app, &webhook, &answer).await;
    assert_eq!(task.event_type.as_deref(), Some("/webhook-collect"));

    // Five minutes and a second later the same request is stale.
    app.advance(Duration::from_secs(301));
    let answer = send(&app, &webhook, FORM, &vector, body).await;
    assert_eq!((answer.status, answer.code()), (401, "signature_expired"));

    // The Events API: the url_verification handshake is answered with its challenge.
    let webhook = app.webhook_of(settings(Source::Slack), SECRET).await;
    let now = unix(app_now(&app));
    let slack = |body: &str| {
        let tag = sha256_hex(&[format!("v0:{now}:").as_bytes(), body.as_bytes()]);
        vec![
            ("x-slack-signature", format!("v0={tag}")),
            ("x-slack-request-timestamp", now.to_string()),
        ]
    };
    let challenge = json!({"token": "t", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "type": "url_verification"}).to_string();
    let answer = send(&app, &webhook, JSON, &slack(&challenge), &challenge).await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.text,
        "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    );
    let event = json!({"type": "event_callback", "event_id": "Ev1",
        "event": {"type": "app_mention", "text": "<@U1> restart the staging deploy"}})
    .to_string();
    let task = assert_accepted(&app, &webhook, &slack(&event), &event).await;
    assert_eq!(task.event_type.as_deref(), Some("app_mention"));
    assert_eq!(
        task.instruction.as_deref(),
        Some("<@U1> restart the staging deploy")
    );
}

fn app_now<S: Backend>(app: &TestApp<S>) -> Timestamp {
    use webhook_domain::ports::Clock as _;
    app.clock.now()
}

pub(crate) async fn pagerduty_and_shopify<S: Backend>(store: S) {
    let app = TestApp::start(store);
    // PagerDuty: any of a comma-separated list; its ping makes no task.
    let webhook = app.webhook_of(settings(Source::Pagerduty), SECRET).await;
    let pagerduty = |signature: String| [("x-pagerduty-signature", signature)];
    let incident = json!({"event": {"id": "01DEN", "event_type": "incident.triggered",
        "data": {"title": "The API answers 500"}}})
    .to_string();
    let signature = format!(
        "v1={},v1={}",
        "0".repeat(64),
        sha256_hex(&[incident.as_bytes()])
    );
    let task = assert_accepted(&app, &webhook, &pagerduty(signature), &incident).await;
    assert_eq!(task.event_type.as_deref(), Some("incident.triggered"));
    assert!(task.instruction.unwrap().contains("The API answers 500"));
    let ping = json!({"event": {"id": "p", "event_type": "pagey.ping", "data": {}}}).to_string();
    let signature = format!("v1={}", sha256_hex(&[ping.as_bytes()]));
    let answer = send(&app, &webhook, JSON, &pagerduty(signature), &ping).await;
    assert_eq!(
        (answer.status, answer.body["status"].as_str()),
        (200, Some("handshake"))
    );

    // Shopify: base64 of the body's HMAC; the topic header is the event type.
    let webhook = app.webhook_of(settings(Source::Shopify), SECRET).await;
    let order = json!({"id": 820_982_911, "email": "jon@example.com"}).to_string();
    let tag = STANDARD.encode(hmac(
        MacAlgorithm::Sha256,
        SECRET.as_bytes(),
        &[order.as_bytes()],
    ));
    let shopify = |tag: String| {
        vec![
            ("x-shopify-hmac-sha256", tag),
            ("x-shopify-topic", "orders/create".to_owned()),
            (
                "x-shopify-webhook-id",
                "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043".to_owned(),
            ),
        ]
    };
    let task = assert_accepted(&app, &webhook, &shopify(tag), &order).await;
    assert_eq!(task.event_type.as_deref(), Some("orders/create"));
    assert_refused(
        &app,
        &webhook,
        &shopify("AAAA".to_owned()),
        &order,
        (401, "invalid_signature"),
    )
    .await;
}

pub(crate) async fn standard_webhooks_vector_and_its_delivery_id<S: Backend>(store: S) {
    let app = TestApp::start(store);
    // Standard Webhooks: the specification's vector, at its own time.
    let webhook = app
        .webhook_of(
            settings(Source::StandardWebhooks),
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        )
        .await;
    app.clock
        .set(Timestamp::from_unix_micros(1_614_265_330_000_000));
    let vector = [
        ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek".to_owned()),
        ("webhook-timestamp", "1614265330".to_owned()),
        (
            "webhook-signature",
            "v1,bm9wZQ== v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=".to_owned(),
        ),
    ];
    let task = assert_accepted(&app, &webhook, &vector, r#"{"test": 2432232314}"#).await;
    assert_eq!(task.source.provider, Source::StandardWebhooks);
    let answer = send(&app, &webhook, JSON, &vector, r#"{"test": 2432232314}"#).await;
    assert_eq!(
        answer.body["status"], "duplicate",
        "webhook-id deduplicates"
    );
    app.advance(Duration::from_secs(301));
    assert_refused(
        &app,
        &webhook,
        &vector,
        r#"{"test": 2432232314}"#,
        (401, "signature_expired"),
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Header schemes: GitLab, Alertmanager, Grafana, generic overrides

pub(crate) async fn header_schemes_are_checked_on_the_head<S: Backend>(store: S) {
    let app = TestApp::start(store);
    let gitlab = app.webhook_of(settings(Source::Gitlab), SECRET).await;
    let body = json!({"object_kind": "pipeline", "project": {"path_with_namespace": "acme/api"},
        "object_attributes": {"status": "failed"}})
    .to_string();
    let token = |token: &str| [("x-gitlab-token", token.to_owned())];
    let task = assert_accepted(&app, &gitlab, &token(SECRET), &body).await;
    assert_eq!(task.event_type.as_deref(), Some("pipeline"));
    assert_refused(
        &app,
        &gitlab,
        &token("nope"),
        &body,
        (401, "invalid_secret"),
    )
    .await;

    let alerts = app.webhook_of(settings(Source::Alertmanager), SECRET).await;
    let body = json!({"version": "4", "status": "firing", "groupKey": "g",
        "commonLabels": {"alertname": "HighLatency"},
        "commonAnnotations": {"summary": "p99 above 2 s"},
        "alerts": [{"status": "firing"}, {"status": "firing"}]})
    .to_string();
    let bearer = |secret: &str| [("authorization", format!("Bearer {secret}"))];
    let task = assert_accepted(&app, &alerts, &bearer(SECRET), &body).await;
    assert_eq!(task.event_type.as_deref(), Some("alertmanager.firing"));
    let instruction = task.instruction.unwrap();
    assert!(instruction.contains("HighLatency"), "{instruction}");
    let basic = [(
        "authorization",
        format!(
            "Basic {}",
            STANDARD.encode(format!("alertmanager:{SECRET}"))
        ),
    )];
    let answer = send(&app, &alerts, JSON, &basic, &body).await;
    assert_eq!(answer.status, 202, "Basic with the secret as password");
    // Alertmanager repeats on purpose: no deduplication.
    let answer = send(&app, &alerts, JSON, &bearer(SECRET), &body).await;
    assert_eq!(answer.status, 202);
    assert_refused(
        &app,
        &alerts,
        &bearer("nope"),
        &body,
        (401, "invalid_secret"),
    )
    .await;

    // A generic webhook with its own header, event type, delivery id and template.
    let custom = SourceSettings::new(
        Source::Generic,
        Some(Verification::Header {
            header: webhook_domain::model::HeaderName::parse("X-Ci-Token").unwrap(),
        }),
        Some(FieldRef::parse("/build/state").unwrap()),
        Some(FieldRef::parse("header:X-Build-Id").unwrap()),
        Some(
            InstructionTemplate::parse("Build {{ build.number }} of {{ repo }} {{ build.state }}")
                .unwrap(),
        ),
    )
    .unwrap();
    let generic = app.webhook_of(custom, SECRET).await;
    let body = json!({"repo": "acme/api", "build": {"number": 12, "state": "failed"}}).to_string();
    let headers = [
        ("x-ci-token", SECRET.to_owned()),
        ("x-build-id", "b-12".to_owned()),
    ];
    let task = assert_accepted(&app, &generic, &headers, &body).await;
    assert_eq!(task.event_type.as_deref(), Some("failed"));
    assert_eq!(
        task.instruction.as_deref(),
        Some("Build 12 of acme/api failed")
    );
    let answer = send(&app, &generic, JSON, &headers, &body).await;
    assert_eq!(answer.body["status"], "duplicate");
    assert_refused(
        &app,
        &generic,
        &generic_secret(SECRET),
        &body,
        (401, "invalid_secret"),
    )
    .await;
}

pub(crate) async fn a_runaway_template_falls_back_and_is_noted<S: Backend>(store: S) {
    let app = TestApp::start(store);
    let runaway = SourceSettings::new(
        Source::Generic,
        None,
        None,
        None,
        Some(
            InstructionTemplate::parse(
                "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            )
            .unwrap(),
        ),
    )
    .unwrap();
    let webhook = app.webhook_of(runaway, SECRET).await;
    let started = std::time::Instant::now();
    let task = assert_accepted(
        &app,
        &webhook,
        &generic_secret(SECRET),
        r#"{"message":"Deploy api"}"#,
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the render is bounded"
    );
    assert_eq!(
        task.instruction.as_deref(),
        Some("Deploy api"),
        "falls back to the message"
    );
    let logged = app.invocations(&webhook).await;
    let note = logged[0].instruction_fallback.as_deref().unwrap();
    assert!(!note.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Rotation overlap, allowlist, duplicates

pub(crate) async fn a_rotated_secret_verifies_within_its_overlap_only<S: Backend>(store: S) {
    let app = TestApp::start(store);
    let mut webhook = app.webhook_of(settings(Source::Github), SECRET).await;
    let new_secret = "whsec_the-new-secret-after-rotation";
    webhook.previous_secret = webhook.secret.take();
    webhook.previous_secret_expires_at = Some(at(60));
    webhook.secret = Some(app.sealer.seal(&Secret::parse(new_secret).unwrap()));
    app.save(&webhook).await;
    let body = json!({"zen": "x"}).to_string();
    let post = |secret: &'static str, delivery: &'static str| {
        let headers = github_headers("push", delivery, &body, secret.as_bytes());
        let app = &app;
        let webhook = &webhook;
        let body = body.clone();
        async move { send(app, webhook, JSON, &headers, &body).await.status }
    };
    assert_eq!(post(new_secret, "a").await, 202);
    assert_eq!(
        post(SECRET, "b").await,
        202,
        "the old secret within the overlap"
    );
    app.advance(Duration::from_secs(61));
    assert_eq!(post(new_secret, "c").await, 202);
    assert_eq!(
        post(SECRET, "d").await,
        401,
        "the old secret after the overlap"
    );
}

pub(crate) async fn requests_from_outside_the_allowlist_are_403<S: Backend>(store: S) {
    let app = TestApp::start(store);
    let mut webhook = app.webhook_of(settings(Source::Generic), SECRET).await;
    webhook.allowed_source_ips = CidrList::parse(&["192.0.2.0/24"]).unwrap();
    app.save(&webhook).await;
    let headers = generic_secret(SECRET);
    assert_refused(
        &app,
        &webhook,
        &headers,
        r#"{"message":"x"}"#,
        (403, "source_not_allowed"),
    )
    .await;
    webhook.allowed_source_ips = CidrList::parse(&["192.0.2.0/24", "127.0.0.0/8"]).unwrap();
    app.save(&webhook).await;
    let answer = send(&app, &webhook, JSON, &headers, r#"{"message":"x"}"#).await;
    assert_eq!(answer.status, 202);
}

pub(crate) async fn concurrent_duplicates_make_one_task<S: Backend>(store: S) {
    let app = TestApp::start(store);
    let webhook = app.webhook_of(settings(Source::Github), SECRET).await;
    let body = json!({"ref": "refs/heads/main"}).to_string();
    let headers = github_headers("push", "one-delivery", &body, SECRET.as_bytes());
    let answers =
        futures::future::join_all((0..64).map(|_| send(&app, &webhook, JSON, &headers, &body)))
            .await;
    let accepted: Vec<&Answer> = answers.iter().filter(|a| a.status == 202).collect();
    assert_eq!(accepted.len(), 1, "exactly one 202");
    let first_task = accepted[0].body["task_id"].clone();
    for answer in &answers {
        if answer.status != 202 {
            assert_eq!(answer.status, 200, "{}", answer.text);
            assert_eq!(answer.body["status"], "duplicate");
            assert_eq!(answer.body["task_id"], first_task);
        }
    }
    app.node.rejections.flush_into(&app.store).await.unwrap();
    let logged = app.invocations(&webhook).await;
    let duplicates: u32 = logged
        .iter()
        .filter(|i| i.outcome == InvocationOutcome::Duplicate)
        .map(|i| i.repeat_count)
        .sum();
    assert_eq!(duplicates, 63, "every duplicate is logged, coalesced");
    assert!(
        logged
            .iter()
            .filter(|i| i.outcome == InvocationOutcome::Duplicate)
            .all(|i| i.duplicate_of.map(|d| d.to_string())
                == accepted[0].body["invocation_id"]
                    .as_str()
                    .map(str::to_owned))
    );
    // A retry after a refusal is processed normally: only accepted requests claim the id.
    let fresh = github_headers("push", "after-refusal", &body, b"wrong");
    assert_eq!(send(&app, &webhook, JSON, &fresh, &body).await.status, 401);
    let fresh = github_headers("push", "after-refusal", &body, SECRET.as_bytes());
    assert_eq!(send(&app, &webhook, JSON, &fresh, &body).await.status, 202);
}

/// Two nodes on one PostgreSQL database, 64 requests with one delivery id spread over both at
/// once: exactly one task.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicates_across_two_nodes_on_postgres_make_one_task() {
    let first_store = webhook_store_pg::test_db::fresh_store().await;
    let name = first_store.test_database().unwrap();
    let second_store = webhook_store_pg::PgStore::open(
        &webhook_store_pg::test_db::database_url(&name),
        webhook_store_pg::PgStoreOptions::default(),
    )
    .unwrap();
    let first = TestApp::start(first_store.clone());
    let second = TestApp::start(second_store);
    let webhook = first.webhook_of(settings(Source::Github), SECRET).await;
    let body = json!({"ref": "refs/heads/main"}).to_string();
    let headers = github_headers("push", "across-nodes", &body, SECRET.as_bytes());
    let answers = futures::future::join_all((0..64).map(|n| {
        let node = if n % 2 == 0 { &first } else { &second };
        send(node, &webhook, JSON, &headers, &body)
    }))
    .await;
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 202).count(),
        1,
        "exactly one 202: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 202 || *s == 200),
        "{statuses:?}"
    );
    let tasks = webhook_domain::ports::TaskQueue::tasks(
        &first.store,
        webhook.organization_id,
        webhook_domain::model::TaskFilter::default(),
        webhook_domain::model::PageRequest::first(100).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(tasks.items.len(), 1, "one task");
    drop((first, second));
    webhook_store_pg::test_db::drop_database(&name).await;
}
