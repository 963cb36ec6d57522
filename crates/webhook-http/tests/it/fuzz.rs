//! The ingest endpoint under arbitrary requests: heads and bodies made by proptest from a fixed
//! seed, sent over raw TCP to the real app. Whatever arrives, the server never panics, never
//! answers a 5xx other than 503, and every error answer with a body is problem+json (the few
//! malformed requests the HTTP library answers itself, with an empty body, are documented in
//! docs/API.md).

#![expect(clippy::unwrap_used, reason = "tests: a panic is how a test fails")]

use std::net::SocketAddr;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use webhook_domain::model::WebhookId;
use webhook_store_mem::MemoryStore;

use crate::helpers::{SECRET, TestApp};

/// Requests sent per run: bounded, so the test takes seconds.
const CASES: u32 = 2000;

/// One generated request.
#[derive(Debug, Clone)]
struct Request {
    path: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    chunked: bool,
}

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"application/json".to_vec()),
        Just(b"application/json; charset=utf-8".to_vec()),
        Just(b"text/plain".to_vec()),
        Just(SECRET.as_bytes().to_vec()),
        Just(b"deploy.finished".to_vec()),
        // Any bytes a header may carry (no CR, LF or NUL, which would end it).
        proptest::collection::vec(
            any::<u8>().prop_filter("a header byte", |b| !matches!(b, b'\r' | b'\n' | 0)),
            0..80
        ),
    ]
}

fn header() -> impl Strategy<Value = (String, Vec<u8>)> {
    let name = prop_oneof![
        Just("content-type".to_owned()),
        Just("x-webhook-secret".to_owned()),
        Just("x-event-type".to_owned()),
        Just("x-forwarded-for".to_owned()),
        Just("idempotency-key".to_owned()),
        "x-[a-z0-9-]{1,20}",
    ];
    (name, header_value())
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(br#"{"message":"deploy","event_type":"deploy.finished"}"#.to_vec()),
        Just(b"[]".to_vec()),
        Just(b"null".to_vec()),
        // Deep nesting, around the limit and far past it.
        (100usize..400).prop_map(|depth| {
            let mut text = "[".repeat(depth);
            text.push_str(&"]".repeat(depth));
            text.into_bytes()
        }),
        "\\PC{0,200}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..2048),
    ]
}

fn request(webhook: WebhookId) -> impl Strategy<Value = Request> {
    let id = webhook.to_string();
    let path = prop_oneof![
        Just(format!("/api/webhooks/{id}")),
        Just(format!("/api/webhooks/{}", id.to_uppercase())),
        Just(format!("/api/webhooks/{}", id.replace('-', ""))),
        "/api/webhooks/[a-zA-Z0-9%._~-]{0,60}",
    ];
    (
        path,
        proptest::collection::vec(header(), 0..6),
        body(),
        any::<bool>(),
    )
        .prop_map(|(path, headers, body, chunked)| Request {
            path,
            headers,
            body,
            chunked,
        })
}

/// Sends `request` and reads the answer until the server closes the connection.
async fn send(address: SocketAddr, request: &Request) -> Vec<u8> {
    let mut head = format!(
        "POST {} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n",
        request.path
    )
    .into_bytes();
    for (name, value) in &request.headers {
        head.extend_from_slice(name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value);
        head.extend_from_slice(b"\r\n");
    }
    let mut message = head;
    if request.chunked {
        message.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
        for chunk in request.body.chunks(100) {
            message.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            message.extend_from_slice(chunk);
            message.extend_from_slice(b"\r\n");
        }
        message.extend_from_slice(b"0\r\n\r\n");
    } else {
        message.extend_from_slice(
            format!("Content-Length: {}\r\n\r\n", request.body.len()).as_bytes(),
        );
        message.extend_from_slice(&request.body);
    }
    let mut stream = TcpStream::connect(address).await.unwrap();
    // The server may answer and close before it has read everything; that is its right.
    let _ = stream.write_all(&message).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    answer
}

/// Checks one answer; `Err` says what is wrong with it.
fn check(answer: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(answer);
    if text.is_empty() {
        return Err("no answer".to_owned());
    }
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status: u16 = head
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {head:?}"))?;
    if status >= 500 && status != 503 {
        return Err(format!("answered {status}: {text}"));
    }
    let problem_json = head
        .lines()
        .any(|line| line.eq_ignore_ascii_case("content-type: application/problem+json"));
    if status >= 400 && !body.is_empty() && !problem_json {
        return Err(format!("an error that is not problem+json: {text}"));
    }
    Ok(())
}

#[test]
fn arbitrary_ingest_requests_get_a_sound_answer() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (app, webhook) = runtime.block_on(async {
        let app = TestApp::start(MemoryStore::new());
        let webhook = app.webhook_for_all().await;
        (app, webhook)
    });
    let config = Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    };
    // A fixed seed: every run sends the same requests, and a failure is reproducible.
    let rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let address = app.address;
    let result = runner.run(&request(webhook.id), |request| {
        let answer = runtime.block_on(send(address, &request));
        check(&answer).map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    drop(app);
}

#[test]
fn the_checks_refuse_what_they_must() {
    assert!(check(b"").is_err());
    assert!(check(b"HTTP/1.1 500 Internal Server Error\r\n\r\n").is_err());
    assert!(check(b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\n\r\noops").is_err());
    assert!(check(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n").is_ok());
    assert!(
        check(
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n\r\n{}"
        )
        .is_ok()
    );
}
