//! The test suite: cargo-nextest when installed (then the doctests, which nextest does not run),
//! else `cargo test`; every failure reported (`--no-fail-fast`), with `DATABASE_URL` exported.

use std::process::Command;

use anyhow::{Result, bail};

use crate::{cmd, metadata::Workspace, pipeline::Outcome};

/// cargo-nextest's exit code when tests ran and some failed (as opposed to not running at all).
const NEXTEST_TESTS_FAILED: i32 = 100;

/// Tests passed and failed in the last nextest run, from its `JUnit` report
/// (`.config/nextest.toml`), for the closing line of `cargo xtask test`.
pub(crate) fn last_counts() -> Option<(u64, u64)> {
    let report = std::fs::read_to_string(junit_report()?).ok()?;
    let root = &report[report.find("<testsuites")?..];
    let root = &root[..root.find('>')?];
    let attribute = |name: &str| -> Option<u64> {
        let start = root.find(&format!(" {name}=\""))? + name.len() + 3;
        let len = root[start..].find('"')?;
        root[start..start + len].parse().ok()
    };
    let tests = attribute("tests")?;
    let failed = attribute("failures")? + attribute("errors").unwrap_or(0);
    Some((tests.saturating_sub(failed), failed))
}

fn junit_report() -> Option<std::path::PathBuf> {
    let workspace = Workspace::load().ok()?;
    Some(
        std::path::Path::new(workspace.target_directory()?)
            .join("nextest")
            .join("default")
            .join("junit.xml"),
    )
}

pub(crate) fn run(database_url: Option<&str>) -> Result<Outcome> {
    let with_database = |mut command: Command| {
        if let Some(url) = database_url {
            command.env("DATABASE_URL", url);
        }
        command
    };
    if !cmd::succeeds(&mut cmd::cargo(["nextest", "--version"])) {
        cmd::run(&mut with_database(cmd::cargo([
            "test",
            "--workspace",
            "--no-fail-fast",
        ])))?;
        return Ok(Outcome::passed().with_note("cargo-nextest not installed: ran `cargo test`"));
    }
    let mut nextest = with_database(cmd::cargo([
        "nextest",
        "run",
        "--workspace",
        "--no-fail-fast",
    ]));
    // A workspace without tests yet is not a failure (nextest's default is to fail).
    nextest.env("NEXTEST_NO_TESTS", "warn");
    // A report left by an earlier run must not stand in for this one.
    if let Some(report) = junit_report() {
        let _ = std::fs::remove_file(report);
    }
    let status = cmd::status(&mut nextest)?;
    let tests_failed = match status.code() {
        Some(0) => false,
        // Some tests failed: run the doctests anyway, to report every failure at once.
        Some(NEXTEST_TESTS_FAILED) => true,
        // Nothing ran (build failure, bad setup): the doctests would not fare better.
        _ => bail!("`{}` failed ({status})", cmd::display(&nextest)),
    };
    let workspace = Workspace::load()?;
    let doctests = if workspace.has_doctests() {
        let mut doc = with_database(cmd::cargo([
            "test",
            "--workspace",
            "--doc",
            "--no-fail-fast",
        ]));
        Some(cmd::run(&mut doc))
    } else {
        None
    };
    match (tests_failed, doctests) {
        (false, None) => Ok(Outcome::passed().with_note("no library with doctests yet")),
        (false, Some(Ok(()))) => Ok(Outcome::passed()),
        (false, Some(Err(error))) => Err(error),
        (true, None | Some(Ok(()))) => bail!("some tests failed (see nextest's summary above)"),
        (true, Some(Err(_))) => bail!("some tests and some doctests failed (see above)"),
    }
}
