//! The `browser` step: the web console's tests in `console-tests/`, which start the real
//! `webhookd` binary and drive it in headless Chromium (Debian's package) through
//! playwright-core. Without Chromium or Node the step fails in CI (`CI=true`) and is skipped
//! elsewhere, saying what to install.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::{cmd, pipeline::Outcome};

/// The folder of the console tests, from the workspace root.
const TESTS_DIR: &str = "console-tests";
/// Longest `npm ci`.
const INSTALL_LIMIT: Duration = Duration::from_secs(300);
/// Longest test run; the tests bound each wait far below it.
const RUN_LIMIT: Duration = Duration::from_secs(360);

/// Runs the console's browser tests.
pub(crate) fn run() -> Result<Outcome> {
    let (chromium, node, npm) = match tools() {
        Ok(tools) => tools,
        Err(missing) if in_ci() => bail!("{missing}; CI must run the console's browser tests"),
        Err(missing) => {
            return Ok(Outcome::skipped(format!(
                "{missing}, so the console's browser tests did not run"
            )));
        }
    };
    let dir = cmd::root().join(TESTS_DIR);
    if needs_install(&dir) {
        let mut install = Command::new(&npm);
        install
            .args(["ci", "--no-audit", "--no-fund", "--prefix"])
            .arg(&dir)
            .current_dir(cmd::root());
        run_bounded(&mut install, INSTALL_LIMIT)?;
    } else {
        eprintln!("{TESTS_DIR}/node_modules is up to date with its package-lock.json");
    }
    let webhookd = build_webhookd()?;
    let mut tests = Command::new(&node);
    tests
        .arg(dir.join("run.mjs"))
        .env("WEBHOOKD_BIN", &webhookd)
        .env("CHROMIUM", &chromium)
        .current_dir(cmd::root());
    run_bounded(&mut tests, RUN_LIMIT)?;
    // "Chromium 156.0.8078.108 built on Debian GNU/Linux 12 (bookworm)": name and version.
    let version = cmd::version(&chromium.to_string_lossy(), &["--version"]);
    let version: Vec<&str> = version.split_whitespace().take(2).collect();
    Ok(Outcome::passed().with_note(format!("headless {}", version.join(" "))))
}

pub(crate) fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true")
}

/// Chromium, node and npm, or a sentence naming what is missing and how to get it.
fn tools() -> Result<(PathBuf, PathBuf, PathBuf), String> {
    let chromium =
        cmd::executable(Path::new("/usr/bin/chromium")).or_else(|| cmd::find_in_path("chromium"));
    let node = cmd::find_in_path("node");
    let npm = cmd::find_in_path("npm");
    let mut missing = Vec::new();
    if chromium.is_none() {
        missing.push("Chromium (/usr/bin/chromium: `apt-get install chromium`)");
    }
    if node.is_none() || npm.is_none() {
        missing.push("Node.js with npm (`apt-get install nodejs npm`)");
    }
    match (chromium, node, npm) {
        (Some(chromium), Some(node), Some(npm)) => Ok((chromium, node, npm)),
        _ => Err(format!("missing {}", missing.join(" and "))),
    }
}

/// Whether `node_modules` is missing or older than the lock file it was installed from.
fn needs_install(dir: &Path) -> bool {
    let modified = |path: &Path| path.metadata().and_then(|m| m.modified()).ok();
    // npm writes node_modules/.package-lock.json on every install.
    let installed = modified(&dir.join("node_modules/.package-lock.json"));
    let wanted = modified(&dir.join("package-lock.json")).unwrap_or(SystemTime::UNIX_EPOCH);
    installed.is_none_or(|installed| installed < wanted)
}

/// The `webhookd` binary as the test step built it: `cargo test --workspace --no-run` selects
/// the same targets and features as that step, so it only names what is already built (a
/// `cargo build -p webhookd` would unify features differently and rebuild half the tree).
pub(crate) fn build_webhookd() -> Result<PathBuf> {
    let mut build = cmd::cargo([
        "test",
        "--workspace",
        "--no-run",
        "--message-format=json-render-diagnostics",
    ]);
    eprintln!("$ {}", cmd::display(&build));
    let output = build
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("could not start `cargo test --workspace --no-run`")?;
    if !output.status.success() {
        bail!(
            "`cargo test --workspace --no-run` failed ({})",
            output.status
        );
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|message| {
            message["reason"] == "compiler-artifact"
                && message["target"]["name"] == "webhookd"
                && message["target"]["kind"][0] == "bin"
                && message["profile"]["test"] == false
        })
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .context("`cargo test --workspace --no-run` named no webhookd executable")
}

/// Runs `command` with inherited output; fails when it fails or outlives `limit` (then it is
/// killed).
pub(crate) fn run_bounded(command: &mut Command, limit: Duration) -> Result<()> {
    let line = cmd::display(command);
    eprintln!("$ {line}");
    let mut child = command
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("could not start `{line}`"))?;
    let status = wait_bounded(&mut child, limit)
        .with_context(|| format!("waiting for `{line}`"))?
        .with_context(|| {
            format!(
                "`{line}` still ran after {} s and was stopped",
                limit.as_secs()
            )
        })?;
    if !status.success() {
        bail!("`{line}` failed ({status})");
    }
    Ok(())
}

/// The exit status of `child`, or `None` when it ran past `limit` and was killed.
fn wait_bounded(child: &mut Child, limit: Duration) -> Result<Option<ExitStatus>> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if started.elapsed() > limit {
            child.kill()?;
            child.wait()?;
            return Ok(None);
        }
        thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_past_its_limit_is_stopped() {
        let mut quick = Command::new("true").spawn().unwrap();
        let status = wait_bounded(&mut quick, Duration::from_secs(30)).unwrap();
        assert!(status.unwrap().success());
        let mut slow = Command::new("sleep").arg("30").spawn().unwrap();
        let started = Instant::now();
        assert!(
            wait_bounded(&mut slow, Duration::from_millis(200))
                .unwrap()
                .is_none()
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn node_modules_older_than_the_lock_file_is_stale() {
        let dir = std::env::temp_dir().join(format!("xtask-browser-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("node_modules")).unwrap();
        assert!(needs_install(&dir), "nothing installed");
        std::fs::write(dir.join("node_modules/.package-lock.json"), "{}").unwrap();
        assert!(!needs_install(&dir), "installed, no lock file");
        let lock = dir.join("package-lock.json");
        std::fs::write(&lock, "{}").unwrap();
        let later = SystemTime::now() + Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(&lock)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert!(needs_install(&dir), "lock file changed since");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
