//! `cargo xtask`: the project's developer and CI tasks, written in Rust so they run the same
//! everywhere. `test` is the one gate (formatting, lints, dependency policy, the test suite
//! against PostgreSQL, domain purity among its tests); `ci` is exactly `test`; `db` hands out a
//! PostgreSQL database.
#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "xtask is a command-line tool: printing progress and results is its job"
)]

mod bench;
mod browser;
mod checks;
mod cmd;
mod deny;
mod metadata;
mod openapi;
mod pipeline;
mod postgres;
#[cfg(test)]
mod purity;
mod suite;

use std::process::ExitCode;

use anyhow::{Result, bail};

const HELP: &str = "\
cargo xtask — webhookd's developer and CI tasks

USAGE:
    cargo xtask <COMMAND>

COMMANDS:
    test       Run every check, in order, stopping at the first failure:
                 fmt       cargo fmt --all -- --check
                 clippy    cargo clippy --workspace --all-targets -- -D warnings
                 deny      cargo deny check (installs cargo-deny when missing; advisories only
                           when the RustSec database can be fetched or is already present)
                 postgres  provide a PostgreSQL database (see `db`)
                 tests     cargo nextest run --workspace (+ doctests), else cargo test --workspace;
                           among them xtask's purity test: webhook-domain depends on no I/O
                           crate (cargo tree), and the cluster tests: several real webhookd
                           processes on one throwaway PostgreSQL database
                           (crates/webhookd/tests/it/cluster/)
                 openapi   the OpenAPI document: openapi-spec-validator, then schemathesis
                           (every check, fixed seed, bounded examples) against the real binary
                           on SQLite in a temp dir; both from a venv under target/schemathesis/
                           (python3 -m venv + pip, pinned, made once); without python3: fails
                           when CI=true, else skipped
                 browser   the web console in headless Chromium against the real binary
                           (console-tests/: npm ci when needed, then node run.mjs); without
                           chromium or node: fails when CI=true, else skipped
               then print a summary with each step's wall-clock time.
    ci         Exactly what CI runs: print tool versions, then `test` (ignores XTASK_SKIP).
    bench store
               Durable record_invocation operations per second (p50/p99) at 1, 8 and 64
               concurrent writers on SQLite and PostgreSQL, beside a plain batched insert
               measured in the same run; writes target/bench/store.json.
    bench dispatch
               Tasks delivered per second to a loopback target answering 200, at 1, 16 and 64
               deliveries in flight, on the memory store, SQLite and PostgreSQL; writes
               target/bench/dispatch.json.
    bench ingest
               Accepted events per second (p50/p99/p999) over loopback from webhook-loadgen at
               32 connections against a bare actix-web handler answering 202 (the ceiling) and
               webhookd on SQLite and on PostgreSQL (a fresh database, dropped after), 10
               organizations x 20 webhooks with their limits raised; then each at half of its
               maximum rate. Server and generator are pinned to CPUs 0 and 1 with taskset when
               available. Prints the ratio to the ceiling; writes target/bench/ingest.json.
    bench pipeline
               Ingest and delivery together: webhookd with dispatch on, on SQLite and on
               PostgreSQL, delivering to a loopback agent (webhook-loadgen agent) that answers
               200 at once. After the ingest-only maximum, a fixed rate of 80 % of it: offered,
               accepted and delivered per second over one window, the queued tasks at its start
               and end, server and PostgreSQL CPU µs per delivered event; then ingest -> agent
               latency (p50/p99/p999) at half of the accepted rate, and the closed-loop maximum
               with dispatch on. Prints whether the targets are met; writes
               target/bench/pipeline.json.
    bench search
               Searches of the invocation log by words of the payload (q) on 1,000,000 invocations
               of ~1 KiB (XTASK_SEARCH_INVOCATIONS to change it) written through the store, on
               SQLite and on PostgreSQL: p50/p95 of 100 first pages (a common word, a rare one,
               two words, a common word with an outcome filter); writes target/bench/search.json.
    db         Provide PostgreSQL and print its URL on stdout, leaving a throwaway cluster running:
                 export DATABASE_URL=$(cargo xtask db)
    db stop    Stop the throwaway cluster started by `db`.
    help       Print this message.

POSTGRESQL (steps `postgres` and `db`), first that works:
    1. DATABASE_URL, when set.
    2. A server on 127.0.0.1:5432 that accepts user postgres without a password.
    3. A throwaway cluster under target/xtask-pg/ (initdb + pg_ctl, trust auth, user postgres,
       port 54329 or the next free one), reused when already running. `test` stops it at the
       end when it started it. As root, the cluster runs as the `postgres` user.

ENVIRONMENT:
    DATABASE_URL    Use this database; exported to the tests either way.
    XTASK_SKIP      Comma-separated steps of `test` to skip for local iteration, e.g.
                    XTASK_SKIP=fmt,clippy,deny. CI never sets it.
    XTASK_PG_PORT   Port probed for a running local server instead of 5432; point it at an
                    unused port to force the throwaway cluster (for testing xtask itself).
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("\nxtask: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[&str]) -> Result<()> {
    match args {
        ["test"] => pipeline::test(&pipeline::Skips::from_env()?),
        ["ci"] => ci(),
        ["bench", "store"] => bench::store(),
        ["bench", "ingest"] => bench::ingest(),
        ["bench", "dispatch"] => bench::dispatch(),
        ["bench", "pipeline"] => bench::pipeline(),
        ["bench", "search"] => bench::search(),
        ["db"] => postgres::db(),
        ["db", "stop"] => postgres::db_stop(),
        [] | ["help" | "--help" | "-h"] => {
            print!("{HELP}");
            Ok(())
        }
        other => bail!(
            "unknown command `{}`; run `cargo xtask --help`",
            other.join(" ")
        ),
    }
}

/// What CI runs: the tool versions, for the log, then the whole `test` pipeline.
fn ci() -> Result<()> {
    if std::env::var_os(pipeline::SKIP_ENV).is_some() {
        eprintln!(
            "xtask: ignoring {} in `ci`: CI runs every step",
            pipeline::SKIP_ENV
        );
    }
    eprintln!("==> tool versions");
    for (tool, args) in [
        ("rustc", &["--version"][..]),
        ("cargo", &["--version"]),
        ("cargo", &["clippy", "--version"]),
        ("cargo", &["fmt", "--version"]),
        ("cargo", &["nextest", "--version"]),
        ("cargo", &["deny", "--version"]),
        ("psql", &["--version"]),
    ] {
        let version = cmd::version(tool, args);
        eprintln!("{:<24} {version}", format!("{tool} {}", args.join(" ")));
    }
    eprintln!("{:<24} {}", "pg_ctl --version", postgres::tools_version());
    pipeline::test(&pipeline::Skips::none())
}
