//! An in-memory [`MemoryStore`]: a complete adapter of the store ports, for tests and for
//! services that embed the domain. Nothing here survives a restart; everything else is the
//! real behaviour the ports promise (the contract suite holds it to that).

mod store;

pub use store::{MemoryStore, StoreSetUnavailable};
