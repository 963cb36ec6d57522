//! The framework ceiling for `cargo xtask bench ingest`: an actix-web server whose
//! `POST /api/webhooks/{webhook_id}` reads the body and answers `202 Accepted` with a fixed JSON
//! body, doing nothing else. The same worker count and connection handling as webhookd.
//!
//! `cargo run --release -p webhook-http --example bare_accept -- 127.0.0.1:8090`

use actix_web::{App, HttpResponse, HttpServer, web};

const ACCEPTED: &str = r#"{"status":"accepted","invocation_id":"00000000-0000-0000-0000-000000000000","task_id":"00000000-0000-0000-0000-000000000000"}"#;

async fn accept(_body: web::Bytes) -> HttpResponse {
    HttpResponse::Accepted()
        .content_type(mime::APPLICATION_JSON)
        .body(ACCEPTED)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8090".to_owned());
    HttpServer::new(|| App::new().route("/api/webhooks/{webhook_id}", web::post().to(accept)))
        .bind(listen)?
        .run()
        .await
}
