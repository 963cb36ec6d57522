//! webhookd's pure core: entities and value types, status rules, the rate-limit policy, the ports
//! every adapter implements, and the use cases written over those ports.
//!
//! Architecture invariant: nothing in this crate performs I/O. Time, identifiers and randomness
//! arrive through the [`ports::Clock`] and [`ports::Entropy`] ports, so every rule can be tested
//! without a runtime, a database or a network.

pub mod model;
pub mod ports;
pub mod rules;
pub mod service;
