//! Architecture Invariant, checked by an ordinary test: `webhook-domain` does no I/O, so none of
//! its normal dependencies, even indirect ones, is an I/O crate. Read from `cargo tree`, so the
//! test suite (`cargo test`, `cargo nextest run`, `cargo xtask test`) enforces it.

use anyhow::{Result, bail};

use crate::cmd;

/// The crate that must stay free of I/O.
const DOMAIN: &str = "webhook-domain";

/// Crates that do I/O (runtimes, web frameworks, database drivers, TLS, sockets), which the
/// domain must not depend on, even indirectly.
const IO_CRATES: [&str; 10] = [
    "tokio",
    "actix",
    "diesel",
    "ring",
    "reqwest",
    "hyper",
    "mio",
    "socket2",
    "libsqlite3-sys",
    "tokio-postgres",
];

/// The actix family is banned as a whole (`actix-web`, `actix-rt`, …), not only `actix`.
const IO_CRATE_PREFIXES: [&str; 1] = ["actix-"];

#[test]
fn domain_depends_on_no_io_crate() -> Result<()> {
    let mut tree = cmd::cargo(["tree", "-p", DOMAIN, "-e", "normal", "--prefix", "none"]);
    check(&cmd::read(&mut tree)?)
}

/// Fails, naming the offenders, when a `cargo tree -p webhook-domain --prefix none` listing holds
/// an I/O crate.
fn check(tree: &str) -> Result<()> {
    let offenders = io_crates_in(tree);
    let Some(first) = offenders.first() else {
        return Ok(());
    };
    let first = first.split_whitespace().next().unwrap_or_default();
    bail!(
        "{DOMAIN} must not depend on I/O crates, but its normal dependencies include: {}\n\
         (see why with `cargo tree -p {DOMAIN} -e normal -i {first}`)",
        offenders.join(", ")
    )
}

/// The `name version` of every I/O crate in a `cargo tree --prefix none` listing, once each.
fn io_crates_in(tree: &str) -> Vec<String> {
    let mut found: Vec<String> = tree
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let name = words.next()?;
            let is_io = IO_CRATES.contains(&name)
                || IO_CRATE_PREFIXES
                    .iter()
                    .any(|prefix| name.starts_with(prefix));
            is_io.then(|| format!("{name} {}", words.next().unwrap_or_default()))
        })
        .collect();
    found.sort();
    found.dedup();
    found
}

#[test]
fn a_domain_that_gains_an_io_crate_fails_the_check() {
    let tree = "\
webhook-domain v0.1.0 (/work/main/crates/webhook-domain)
serde v1.0.219
reqwest v0.12.23
hyper v1.7.0
tokio v1.47.1
hyper v1.7.0 (*)
";
    let error = check(tree).unwrap_err().to_string();
    assert!(
        error.contains("hyper v1.7.0, reqwest v0.12.23, tokio v1.47.1"),
        "{error}"
    );
    assert!(error.contains("-i hyper"), "{error}");
}

#[test]
fn a_pure_tree_passes_the_check() {
    let tree = "webhook-domain v0.1.0 (/w)\nthiserror v2.0.12\ntime v0.3.41\nuuid v1.17.0\n";
    assert!(io_crates_in(tree).is_empty());
    check(tree).unwrap();
}

#[test]
fn io_crates_are_found_by_exact_name_or_actix_family() {
    let tree = "\
webhook-domain v0.1.0 (/work/main/crates/webhook-domain)
serde v1.0.219
tokio-util v0.7.15
tokio v1.47.1
actix-rt v2.10.0
tokio v1.47.1 (*)
ringbuf v0.4.8
";
    assert_eq!(io_crates_in(tree), ["actix-rt v2.10.0", "tokio v1.47.1"]);
}
