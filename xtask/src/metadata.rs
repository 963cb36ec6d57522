//! What the workspace contains, read from `cargo metadata`, so steps can adapt to a workspace
//! that is still growing (no library with doctests yet).

use anyhow::{Context, Result};
use serde_json::Value;

use crate::cmd;

#[derive(Debug)]
pub(crate) struct Workspace {
    metadata: Value,
}

impl Workspace {
    pub(crate) fn load() -> Result<Self> {
        let json = cmd::read(&mut cmd::cargo([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
        ]))?;
        let metadata = serde_json::from_str(&json).context("parsing `cargo metadata` output")?;
        Ok(Self { metadata })
    }

    fn packages(&self) -> impl Iterator<Item = &Value> {
        self.metadata["packages"].as_array().into_iter().flatten()
    }

    /// Where cargo builds (`target/` unless configured otherwise).
    pub(crate) fn target_directory(&self) -> Option<&str> {
        self.metadata["target_directory"].as_str()
    }

    /// Whether any member has a target whose doctests `cargo test --doc` would run
    /// (it refuses to run at all when there is none).
    pub(crate) fn has_doctests(&self) -> bool {
        self.packages()
            .flat_map(|package| package["targets"].as_array().into_iter().flatten())
            .any(|target| target["doctest"] == true)
    }
}
