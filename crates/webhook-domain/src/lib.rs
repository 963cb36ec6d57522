//! webhookd's pure core: entities and value types, status rules, the rate-limit policy, the ports
//! every adapter implements, and the use cases written over those ports.
//!
//! Architecture invariant: nothing in this crate performs I/O. Time, identifiers and randomness
//! arrive through the [`ports::Clock`] and [`ports::Entropy`] ports, so every rule can be tested
//! without a runtime, a database or a network.
//!
//! # Embedding the domain
//!
//! A Rust service embeds the domain by choosing one adapter per port in an [`ports::Adapters`]
//! bundle and building the use cases of [`service`] over it. The example below (it is
//! `examples/embed.rs`, and runs as this crate's doctest) builds [`service::Ingest`] and
//! [`service::manage::Management`] on the in-memory store (`webhook-store-mem`) and the
//! runtime and system adapters (`webhook-runtime`, `webhook-system`), with two small adapters
//! of its own for the endpoint guard and delivery; it accepts one event through
//! [`service::Ingest::begin`] and [`service::Ingest::finish`] and reads the task back from the
//! store.
//!
//! ```
#![doc = include_str!("../examples/embed.rs")]
//! ```

pub mod model;
pub mod ports;
pub mod rules;
pub mod service;
