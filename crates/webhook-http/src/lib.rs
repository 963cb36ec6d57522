//! webhookd's HTTP adapter, the only library crate that knows actix-web: the ingest endpoint
//! `POST /api/webhooks/{webhook_id}`, the operations endpoints (`/healthz`, `/readyz`,
//! `/metrics`) and problem+json errors.
//!
//! Register the routes on an actix [`App`](actix_web::App) with [`configure`]:
//!
//! ```ignore
//! let state = web::Data::new(AppState { ingest, client_ip, metrics });
//! App::new().configure(|cfg| webhook_http::configure(cfg, &state))
//! ```

pub mod api;
pub mod client_ip;
pub mod console;
pub mod head;
pub mod ingest;
pub mod log_limit;
pub mod ops;
pub mod problem;

use std::sync::Arc;

use actix_web::middleware::from_fn;
use actix_web::web::{self, ServiceConfig};
use webhook_domain::ports::Adapters;
use webhook_domain::service::Ingest;

pub use client_ip::ClientIpPolicy;
pub use ops::Metrics;
pub use problem::Problem;

/// What the ingest and operations endpoints share.
pub struct AppState<A: Adapters> {
    /// The ingest use case over the node's adapters; `/readyz` checks its store.
    pub ingest: Arc<Ingest<A>>,
    /// How the client address is found.
    pub client_ip: ClientIpPolicy,
    /// Where request outcomes and latencies are counted.
    pub metrics: Metrics,
}

impl<A: Adapters> std::fmt::Debug for AppState<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("client_ip", &self.client_ip)
            .finish_non_exhaustive()
    }
}

/// The ingest endpoint's path.
pub const INGEST_PATH: &str = "/api/webhooks/{webhook_id}";

/// The routes [`configure`] serves, as (lower-case method, path), all described in the
/// `OpenAPI` document beside the management API's [`api::ROUTES`]. The console's pages are not
/// part of the API.
pub const SERVICE_ROUTES: &[(&str, &str)] = &[
    ("post", INGEST_PATH),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
];

/// Registers the ingest and operations routes, and problem+json answers for unknown paths.
/// Every route refuses a request head over [`head::MAX_REQUEST_HEAD_BYTES`] with 431.
pub fn configure<A: Adapters>(cfg: &mut ServiceConfig, state: &web::Data<AppState<A>>) {
    cfg.app_data(state.clone())
        .service(
            web::resource(INGEST_PATH)
                .route(web::post().to(ingest::handle::<A>))
                .default_service(web::to(ingest::method_not_allowed))
                .wrap(from_fn(head::limit_request_head)),
        )
        .service(
            get_only("/healthz")
                .route(web::get().to(ops::healthz))
                .wrap(from_fn(head::limit_request_head)),
        )
        .service(
            get_only("/readyz")
                .route(web::get().to(ops::readyz::<A>))
                .wrap(from_fn(head::limit_request_head)),
        )
        .service(
            get_only("/metrics")
                .route(web::get().to(ops::metrics::<A>))
                .wrap(from_fn(head::limit_request_head)),
        )
        .configure(console::configure)
        .default_service(web::to(not_found));
}

/// The routes of a node that is still opening its store: `/healthz` answers 200 (the process
/// is up), `/readyz` and every other path 503 `store_unavailable` (nothing can be accepted
/// yet). The node's own routes ([`configure`]) replace these once the store is open.
pub fn configure_starting(cfg: &mut ServiceConfig) {
    cfg.service(
        get_only("/healthz")
            .route(web::get().to(ops::healthz))
            .wrap(from_fn(head::limit_request_head)),
    )
    .default_service(web::to(|| async { Problem::store_unavailable() }));
}

/// A resource serving only GET: other methods answer 405 with `Allow: GET`.
fn get_only(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(|| async { Problem::method_not_allowed("GET") }))
}

async fn not_found(request: actix_web::HttpRequest) -> Problem {
    let size = head::head_size(&request);
    if size > head::MAX_REQUEST_HEAD_BYTES {
        head::head_too_large(size)
    } else {
        Problem::not_found()
    }
}
