//! webhookd's HTTP adapter, the only library crate that knows actix-web: the ingest endpoint
//! `POST /api/webhooks/{webhook_id}`, the operations endpoints (`/healthz`, `/readyz`,
//! `/metrics`) and problem+json errors.
//!
//! Register the routes on an actix [`App`](actix_web::App) with [`configure`]:
//!
//! ```ignore
//! let state = web::Data::new(AppState { ingest, store, client_ip, metrics });
//! App::new().configure(|cfg| webhook_http::configure(cfg, &state))
//! ```

pub mod api;
pub mod client_ip;
pub mod console;
pub mod head;
pub mod ingest;
pub mod ops;
pub mod problem;

use actix_web::middleware::from_fn;
use actix_web::web::{self, ServiceConfig};
use webhook_domain::ports::OrganizationStore;

pub use client_ip::ClientIpPolicy;
pub use ingest::IngestPipeline;
pub use ops::Metrics;
pub use problem::Problem;

/// What the ingest and operations endpoints share.
#[derive(Debug)]
pub struct AppState<P, S> {
    /// The ingest use case, usually [`webhook_domain::service::Ingest`] over the node's adapters.
    pub ingest: P,
    /// The store `/readyz` checks.
    pub store: S,
    /// How the client address is found.
    pub client_ip: ClientIpPolicy,
    /// Where request outcomes and latencies are counted.
    pub metrics: Metrics,
}

/// Registers the ingest and operations routes, and problem+json answers for unknown paths.
/// Every route refuses a request head over [`head::MAX_REQUEST_HEAD_BYTES`] with 431.
pub fn configure<P, S>(cfg: &mut ServiceConfig, state: &web::Data<AppState<P, S>>)
where
    P: IngestPipeline,
    S: OrganizationStore + 'static,
{
    cfg.app_data(state.clone())
        .service(
            web::resource("/api/webhooks/{webhook_id}")
                .route(web::post().to(ingest::handle::<P, S>))
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
                .route(web::get().to(ops::readyz::<P, S>))
                .wrap(from_fn(head::limit_request_head)),
        )
        .service(
            get_only("/metrics")
                .route(web::get().to(ops::metrics::<P, S>))
                .wrap(from_fn(head::limit_request_head)),
        )
        .configure(console::configure)
        .default_service(web::to(not_found));
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
