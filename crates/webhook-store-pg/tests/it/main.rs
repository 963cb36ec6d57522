//! Integration tests of the PostgreSQL store: the store contract suite, and what only a shared
//! server shows (concurrent claimers, group commit, a database that goes away, migrations), and
//! a server of the test's own stopped under load; and the shared rate limiter.

mod batch;
mod changes;
mod claims;
mod cluster;
mod concurrency;
mod contract;
mod failures;
mod limiter;
mod migrate;
mod outage;
mod queue;
mod support;
