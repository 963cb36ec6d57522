//! Static checks of `cargo xtask test`: formatting, clippy, and the domain's purity (the
//! architecture invariant that `webhook-domain` does no I/O, checked on its dependency tree).

use anyhow::{Result, bail};

use crate::{cmd, metadata::Workspace, pipeline::Outcome};

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

pub(crate) fn fmt() -> Result<Outcome> {
    cmd::run(&mut cmd::cargo(["fmt", "--all", "--", "--check"]))?;
    Ok(Outcome::passed())
}

pub(crate) fn clippy() -> Result<Outcome> {
    cmd::run(&mut cmd::cargo([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    Ok(Outcome::passed())
}

pub(crate) fn domain_purity() -> Result<Outcome> {
    if !Workspace::load()?.has_package(DOMAIN) {
        return Ok(Outcome::skipped(format!(
            "no package `{DOMAIN}` in the workspace yet, nothing to check"
        )));
    }
    let mut tree = cmd::cargo(["tree", "-p", DOMAIN, "-e", "normal", "--prefix", "none"]);
    eprintln!("$ {}", cmd::display(&tree));
    let offenders = io_crates_in(&cmd::read(&mut tree)?);
    if offenders.is_empty() {
        return Ok(Outcome::passed());
    }
    let first = offenders[0].split_whitespace().next().unwrap_or_default();
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn a_pure_tree_has_no_io_crates() {
        let tree = "webhook-domain v0.1.0 (/w)\nthiserror v2.0.12\ntime v0.3.41\nuuid v1.17.0\n";
        assert!(io_crates_in(tree).is_empty());
    }
}
