//! The dependency policy step: `cargo deny` against `deny.toml`. Licenses, bans and sources need
//! only the local crate graph and always run; advisories need the RustSec database, cloned from
//! GitHub, so they run when it can be fetched or a local copy exists, and are skipped (with the
//! reason) otherwise rather than failing the build on a network it does not control.

use std::{
    env,
    fs::{self, File},
    path::PathBuf,
    process::Stdio,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};

use crate::{cmd, pipeline::Outcome};

/// Longest wait for the advisory database: a firewall that drops packets makes git hang.
const FETCH_TIMEOUT: Duration = Duration::from_secs(120);

pub(crate) fn check() -> Result<Outcome> {
    ensure_installed()?;
    // `wrappers` in deny.toml say who may depend on a banned crate, not who does yet: a listed
    // wrapper that does not (or does not exist yet) is no finding.
    cmd::run(&mut cmd::cargo([
        "deny",
        "check",
        "--allow",
        "unused-wrapper",
        "bans",
        "licenses",
        "sources",
    ]))?;
    let offline_advisories = || {
        cmd::run(&mut cmd::cargo([
            "deny",
            "--offline",
            "check",
            "advisories",
        ]))
    };
    match fetch_advisory_db()? {
        Ok(()) => {
            // Fresh database: `--offline` only stops cargo-deny fetching it a second time.
            offline_advisories()?;
            Ok(Outcome::passed())
        }
        Err(why) if local_advisory_db() => {
            eprintln!("could not update the advisory database ({why}); using the local copy");
            offline_advisories()?;
            Ok(Outcome::passed().with_note(format!(
                "advisories checked against a local, possibly stale database ({why})"
            )))
        }
        Err(why) => Ok(Outcome::passed().with_note(format!(
            "advisories SKIPPED: the RustSec database could not be fetched ({why}) \
             and there is no local copy in {}",
            advisory_dbs_dir().display()
        ))),
    }
}

fn ensure_installed() -> Result<()> {
    if cmd::succeeds(&mut cmd::cargo(["deny", "--version"])) {
        return Ok(());
    }
    eprintln!("cargo-deny is not installed; installing it (this compiles it, a few minutes)");
    cmd::run(&mut cmd::cargo(["install", "--locked", "cargo-deny"]))
        .context("installing cargo-deny")
}

/// `cargo deny fetch db`, bounded by [`FETCH_TIMEOUT`]; the inner result says why the database
/// could not be fetched, the outer one that cargo-deny itself could not be run.
fn fetch_advisory_db() -> Result<Result<(), String>> {
    let log_path = cmd::root().join("target/xtask-deny-fetch.log");
    fs::create_dir_all(cmd::root().join("target"))?;
    let log =
        File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    let mut fetch = cmd::cargo(["deny", "fetch", "db"]);
    eprintln!("$ {}", cmd::display(&fetch));
    let mut child = fetch
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("could not start `cargo deny fetch db`")?;
    let deadline = Instant::now() + FETCH_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            child.kill()?;
            child.wait()?;
            return Ok(Err(format!(
                "no answer within {}s",
                FETCH_TIMEOUT.as_secs()
            )));
        }
        thread::sleep(Duration::from_millis(200));
    };
    if status.success() {
        return Ok(Ok(()));
    }
    let log = fs::read_to_string(&log_path).unwrap_or_default();
    Ok(Err(failure_reason(&log)))
}

/// The line of cargo-deny's (or git's) output that says what went wrong.
fn failure_reason(log: &str) -> String {
    let lines = || log.lines().map(str::trim).filter(|line| !line.is_empty());
    lines()
        .find(|line| line.starts_with("fatal:"))
        .or_else(|| lines().next_back())
        .map_or_else(|| "cargo deny fetch db failed".to_owned(), str::to_owned)
}

/// Where cargo-deny keeps advisory databases by default (`deny.toml` keeps the default).
fn advisory_dbs_dir() -> PathBuf {
    env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .unwrap_or_default()
        .join("advisory-dbs")
}

/// Whether an earlier fetch left a database there (a failed clone leaves only a lock file).
fn local_advisory_db() -> bool {
    fs::read_dir(advisory_dbs_dir()).is_ok_and(|entries| {
        entries
            .filter_map(Result::ok)
            .any(|entry| entry.path().join(".git").exists())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reason_is_git_fatal_line_else_the_last_line() {
        let log = "\
[ERROR] failed to fetch database: failed to clone
Cloning into '/root/.cargo/advisory-dbs/advisory-db-3157b0e258782691'...
fatal: unable to access 'https://github.com/RustSec/advisory-db/': Could not resolve host: github.com

[ERROR] failed to get 'FETCH_HEAD' metadata
";
        assert_eq!(
            failure_reason(log),
            "fatal: unable to access 'https://github.com/RustSec/advisory-db/': \
             Could not resolve host: github.com"
        );
        assert_eq!(
            failure_reason("a\n[ERROR] timed out\n\n"),
            "[ERROR] timed out"
        );
        assert_eq!(failure_reason(""), "cargo deny fetch db failed");
    }
}
