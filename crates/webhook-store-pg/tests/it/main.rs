//! Integration tests of the PostgreSQL store: the store contract suite, and what only a shared
//! server shows (concurrent claimers, group commit, a database that goes away, migrations).

mod batch;
mod concurrency;
mod contract;
mod failures;
mod migrate;
mod support;
