//! The test suite: cargo-nextest when installed (then the doctests, which nextest does not run),
//! else `cargo test`; every failure reported (`--no-fail-fast`), with `DATABASE_URL` exported.

use std::process::Command;

use anyhow::{Result, bail};

use crate::{cmd, metadata::Workspace, pipeline::Outcome};

/// cargo-nextest's exit code when tests ran and some failed (as opposed to not running at all).
const NEXTEST_TESTS_FAILED: i32 = 100;

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
