//! Static checks of `cargo xtask test`: formatting and clippy. The domain's purity is a test of
//! its own (`purity.rs`), run with the rest of the suite.

use anyhow::Result;

use crate::{cmd, pipeline::Outcome};

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
