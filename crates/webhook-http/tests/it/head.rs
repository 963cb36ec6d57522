//! Request heads over real loopback TCP: the 32 KiB bound answered 431 problem+json, and the
//! malformed requests actix-http answers itself, bare, before any of our code runs.

#![expect(clippy::unwrap_used, reason = "tests: a panic is how a test fails")]
#![expect(
    clippy::format_collect,
    reason = "test requests are built once, readably"
)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use webhook_domain::model::Webhook;
use webhook_http::head::MAX_REQUEST_HEAD_BYTES;

use crate::helpers::{Backend, SECRET, TestApp};

/// What came back on a raw connection.
#[derive(Debug)]
struct RawAnswer {
    status: u16,
    head: String,
    body: String,
}

impl RawAnswer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Sends `request` as is and reads until the server closes the connection.
async fn raw(address: SocketAddr, request: &[u8]) -> RawAnswer {
    let mut stream = TcpStream::connect(address).await.unwrap();
    // The server may answer and close before it has read everything.
    let _ = stream.write_all(request).await;
    let mut bytes = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut bytes)).await;
    assert!(read.is_ok(), "no answer within 10 s");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    RawAnswer {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

fn ingest_request(webhook: &Webhook, extra_headers: &str, body: &str) -> String {
    format!(
        "POST /api/webhooks/{} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         X-Webhook-Secret: {SECRET}\r\n{extra_headers}Content-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        webhook.id,
        body.len()
    )
}

fn assert_431_problem(answer: &RawAnswer, what: &str) {
    assert_eq!(answer.status, 431, "{what}: {}", answer.head);
    assert_eq!(
        answer.header("content-type"),
        Some("application/problem+json"),
        "{what}"
    );
    let body: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(body["code"], "request_header_too_large", "{what}");
    assert_eq!(body["status"], 431, "{what}");
}

pub(crate) async fn request_heads_over_32_kib_are_431<S: Backend>(store: S) {
    let app = TestApp::start(store);
    let webhook = app.webhook_for_all().await;
    let body = r#"{"message":"hi"}"#;

    // A 100 KB event type, under actix's own 128 KiB buffer: ours to refuse.
    let event_type = format!("X-Event-Type: deploy.{}\r\n", "a".repeat(100_000));
    let answer = raw(
        app.address,
        ingest_request(&webhook, &event_type, body).as_bytes(),
    )
    .await;
    assert_431_problem(&answer, "100 KB X-Event-Type");
    assert!(app.invocations(&webhook).await.is_empty(), "nothing logged");

    // Just over the bound, in many headers.
    let many = (0..40)
        .map(|i| format!("X-Pad-{i}: {}\r\n", "b".repeat(MAX_REQUEST_HEAD_BYTES / 40)))
        .collect::<String>();
    let answer = raw(
        app.address,
        ingest_request(&webhook, &many, body).as_bytes(),
    )
    .await;
    assert_431_problem(&answer, "many headers over 32 KiB");

    // A 50 KB target, on the management API and anywhere else (over 64 KiB the URI parser
    // refuses it first: see below).
    for path in [
        format!("/api/v1/webhooks?q={}", "p".repeat(50_000)),
        format!("/nowhere/{}", "p".repeat(50_000)),
        format!("/healthz?{}", "p".repeat(50_000)),
        format!("/?{}", "p".repeat(50_000)),
    ] {
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        let answer = raw(app.address, request.as_bytes()).await;
        assert_431_problem(&answer, &path[..20]);
    }

    // Within the bound, a large head is served.
    let under = format!(
        "X-Event-Type: deploy.{}\r\n",
        "a".repeat(MAX_REQUEST_HEAD_BYTES - 1024)
    );
    let answer = raw(
        app.address,
        ingest_request(&webhook, &under, body).as_bytes(),
    )
    .await;
    assert_eq!(answer.status, 202, "{}", answer.head);
}

/// What actix-http answers itself: a bare status with an empty body, before any handler or
/// middleware of ours runs, so nothing of ours can make it problem+json. docs/API.md lists
/// these.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_heads_actix_answers_bare() {
    let app = TestApp::start(webhook_store_mem::MemoryStore::new());
    let webhook = app.webhook_for_all().await;
    let path = format!("/api/webhooks/{}", webhook.id);
    let head = |lines: &str| {
        format!("POST {path} HTTP/1.1\r\nHost: localhost\r\n{lines}Connection: close\r\n\r\n")
    };
    let too_many_headers = (0..100)
        .map(|i| format!("X-H{i}: v\r\n"))
        .collect::<String>();
    let cases = [
        ("bad Content-Length", head("Content-Length: abc\r\n"), 400),
        (
            "two different Content-Lengths",
            head("Content-Length: 2\r\nContent-Length: 3\r\n"),
            400,
        ),
        (
            "Transfer-Encoding with Content-Length",
            head("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"),
            400,
        ),
        (
            "unknown Transfer-Encoding",
            head("Transfer-Encoding: gzip\r\n"),
            400,
        ),
        ("more than 96 headers", head(&too_many_headers), 431),
        (
            "a 100 KB path (a URI over 64 KiB)",
            format!(
                "GET /{} HTTP/1.1\r\nHost: localhost\r\n\r\n",
                "p".repeat(100_000)
            ),
            400,
        ),
        (
            "a 200 KB path (over actix's 128 KiB head buffer)",
            format!(
                "GET /{} HTTP/1.1\r\nHost: localhost\r\n\r\n",
                "p".repeat(200_000)
            ),
            431,
        ),
        ("a malformed request line", "GET\r\n\r\n".to_owned(), 400),
    ];
    for (what, request, status) in cases {
        let answer = raw(app.address, request.as_bytes()).await;
        assert_eq!(answer.status, status, "{what}: {}", answer.head);
        assert!(answer.body.is_empty(), "{what}: {:?}", answer.body);
        assert_eq!(answer.header("content-type"), None, "{what}");
    }
    assert!(app.invocations(&webhook).await.is_empty(), "nothing logged");
}
