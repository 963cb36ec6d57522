//! Use cases, written over the ports.

mod ids;
mod ingest;
mod resolver;

pub mod manage;

pub use ids::{random_id, time_ordered_id};
pub use ingest::{
    Admission, BodyRead, Ingest, IngestConfig, IngestHead, IngestOutcome, IngestRejection, Sender,
};
pub use resolver::StoreResolver;
