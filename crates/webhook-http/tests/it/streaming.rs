//! The body limit on raw HTTP/1.1 connections: a refused body is answered before it has been
//! sent, so the server cannot have buffered it.

#![expect(clippy::unwrap_used, reason = "tests: a panic is how a test fails")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use webhook_domain::model::Webhook;

use crate::helpers::{Options, SECRET, TestApp};

const FIFTY_MIB: usize = 50 * 1024 * 1024;
/// What the chunked sender sends of its 50 MiB before it stalls: four times the 1 MiB limit.
const PAST_THE_LIMIT: usize = 4 * 1024 * 1024;

fn request_head(webhook: &Webhook, framing: &str) -> String {
    format!(
        "POST /api/webhooks/{} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         X-Webhook-Secret: {SECRET}\r\n{framing}\r\n\r\n",
        webhook.id
    )
}

/// Reads until the end of the answer's head; returns its status and the whole head.
async fn read_head(reader: &mut (impl tokio::io::AsyncRead + Unpin)) -> (u16, String) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = reader.read(&mut byte).await.expect("read the answer");
        assert_eq!(
            n,
            1,
            "connection closed before an answer: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let status = head[9..12].parse().unwrap();
    (status, head)
}

/// A chunked body announced as 50 MiB is refused with 413 once it passes the limit, while the
/// sender is still sending: the server never waits for (or buffers) the whole body.
pub(crate) async fn chunked_fifty_mib_is_refused_while_still_sending<S: crate::helpers::Backend>(
    store: S,
) {
    let app = TestApp::start(store);
    let webhook = app.webhook_for_all().await;
    let stream = TcpStream::connect(app.address).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let sent = Arc::new(AtomicUsize::new(0));
    let sender = tokio::spawn({
        let sent = Arc::clone(&sent);
        let head = request_head(&webhook, "Transfer-Encoding: chunked");
        async move {
            writer.write_all(head.as_bytes()).await?;
            writer.write_all(b"10000\r\n{\"pad\":\"").await?;
            let chunk = vec![b'x'; 0x10000];
            // The first chunk's opening bytes are already out; finish it, then keep going.
            writer.write_all(&chunk[..0x10000 - 8]).await?;
            writer.write_all(b"\r\n").await?;
            sent.fetch_add(0x10000, Ordering::SeqCst);
            // A few MiB past the limit, then nothing more: the rest of the 50 MiB never comes, so
            // an answer proves the server decided without the whole body, whatever the timing.
            while sent.load(Ordering::SeqCst) < PAST_THE_LIMIT {
                writer.write_all(b"10000\r\n").await?;
                writer.write_all(&chunk).await?;
                writer.write_all(b"\r\n").await?;
                sent.fetch_add(0x10000, Ordering::SeqCst);
            }
            writer.flush().await?;
            std::future::pending::<()>().await;
            Ok::<_, std::io::Error>(())
        }
    });
    let (status, head) = tokio::time::timeout(Duration::from_secs(30), read_head(&mut reader))
        .await
        .expect("an answer in time");
    assert_eq!(status, 413, "{head}");
    assert!(sent.load(Ordering::SeqCst) <= PAST_THE_LIMIT);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/problem+json"),
        "{head}"
    );
    sender.abort();
    let logged = app.invocations(&webhook).await;
    assert_eq!(logged[0].error_code.as_deref(), Some("payload_too_large"));
}

pub(crate) async fn declared_length_over_the_limit_is_refused_before_the_body<
    S: crate::helpers::Backend,
>(
    store: S,
) {
    let app = TestApp::start(store);
    let webhook = app.webhook_for_all().await;
    let mut stream = TcpStream::connect(app.address).await.unwrap();
    let head = request_head(&webhook, &format!("Content-Length: {FIFTY_MIB}"));
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(b"{\"pad\":\"").await.unwrap();
    // Not one more byte is sent: the answer must come from the declared length alone.
    let (status, head) = tokio::time::timeout(Duration::from_secs(30), read_head(&mut stream))
        .await
        .expect("an answer without the body");
    assert_eq!(status, 413, "{head}");
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
}

pub(crate) async fn a_body_broken_mid_stream_is_400_and_logged<S: crate::helpers::Backend>(
    store: S,
) {
    let app = TestApp::start(store);
    let webhook = app.webhook_for_all().await;
    let mut stream = TcpStream::connect(app.address).await.unwrap();
    let head = request_head(&webhook, "Transfer-Encoding: chunked");
    stream.write_all(head.as_bytes()).await.unwrap();
    // A first chunk, then a chunk size that is not hexadecimal.
    stream.write_all(b"5\r\n{\"a\":\r\nzz\r\n").await.unwrap();
    // The HTTP library may close the connection before the answer reaches the sender; when an
    // answer comes, it is 400.
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );
    // Either way the request is in the log.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let logged = loop {
        let logged = app.invocations(&webhook).await;
        if !logged.is_empty() || std::time::Instant::now() > deadline {
            break logged;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(logged.len(), 1, "the broken request is in the log");
    assert_eq!(
        (logged[0].http_status, logged[0].error_code.as_deref()),
        (400, Some("invalid_payload"))
    );
    assert_eq!(logged[0].payload, None);
}

pub(crate) async fn a_body_in_many_chunks_is_joined<S: crate::helpers::Backend>(store: S) {
    let app = TestApp::start(store);
    let webhook = app.webhook_for_all().await;
    let mut stream = TcpStream::connect(app.address).await.unwrap();
    let head = request_head(&webhook, "Transfer-Encoding: chunked");
    stream.write_all(head.as_bytes()).await.unwrap();
    for part in [r#"{"message":"#, r#""split "#, r#"in three"}"#] {
        stream
            .write_all(format!("{:x}\r\n{part}\r\n", part.len()).as_bytes())
            .await
            .unwrap();
        stream.flush().await.unwrap();
        tokio::task::yield_now().await;
    }
    stream.write_all(b"0\r\n\r\n").await.unwrap();
    let (status, head) = tokio::time::timeout(Duration::from_secs(30), read_head(&mut stream))
        .await
        .expect("an answer");
    assert_eq!(status, 202, "{head}");
    let logged = app.invocations(&webhook).await;
    assert_eq!(
        logged[0]
            .payload
            .as_ref()
            .map(webhook_domain::model::Payload::as_str),
        Some(r#"{"message":"split in three"}"#)
    );
}

/// An ingest body that stops arriving (`Content-Length: 100`, one byte sent) is answered 408
/// `request_timeout` once the body timeout passes, and the connection is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfinished_body_is_answered_408_after_the_body_timeout() {
    let app = TestApp::start_with(
        webhook_store_mem::MemoryStore::new(),
        Options {
            body_timeout: Duration::from_millis(300),
            ..Options::default()
        },
    );
    let webhook = app.webhook_for_all().await;
    let mut stream = TcpStream::connect(app.address).await.unwrap();
    let head = request_head(&webhook, "Content-Length: 100");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(b"{").await.unwrap();
    crate::helpers::assert_timed_out(&mut stream).await;
}
