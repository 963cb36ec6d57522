//! Integration tests of the in-memory adapters: the store contract suite and the ingest table.

mod contract;
mod ingest;
