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
pub mod ingest;
pub mod ops;
pub mod problem;

use std::sync::Arc;

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

/// Registers the ingest and operations routes, and problem+json answers for unknown paths.
pub fn configure<A: Adapters>(cfg: &mut ServiceConfig, state: &web::Data<AppState<A>>) {
    cfg.app_data(state.clone())
        .service(
            web::resource("/api/webhooks/{webhook_id}")
                .route(web::post().to(ingest::handle::<A>))
                .default_service(web::to(ingest::method_not_allowed)),
        )
        .route("/healthz", web::get().to(ops::healthz))
        .route("/readyz", web::get().to(ops::readyz::<A>))
        .route("/metrics", web::get().to(ops::metrics::<A>))
        .configure(console::configure)
        .default_service(web::to(not_found));
}

async fn not_found() -> Problem {
    Problem::not_found()
}
