//! Use cases, written over the ports.

mod bootstrap;
mod ids;
mod ingest;
mod resolver;
mod retention;

pub mod manage;

pub use bootstrap::{
    Bootstrap, DEFAULT_ORGANIZATION_NAME, KeyCheck, KeyCheckError, NewOrganization,
};
pub use ids::{random_id, time_ordered_id};
pub use ingest::{
    Admission, BodyRead, Ingest, IngestBody, IngestConfig, IngestHead, IngestOutcome,
    IngestRejection, Sender,
};
pub use resolver::StoreResolver;
pub use retention::Retention;
