//! The `openapi` step: the `OpenAPI` document against tools that know nothing of webhookd.
//! openapi-spec-validator checks that it is valid `OpenAPI` 3.1, then schemathesis generates
//! requests from it (every phase, every check, a fixed seed and a bounded number of examples)
//! against the real `webhookd` binary on SQLite in a temporary directory, and must find no
//! failure. Both run from a Python venv under `target/schemathesis/`, made with `python3 -m
//! venv` and pip on the first run and whenever the pinned versions change. Without python3
//! the step fails in CI (`CI=true`) and is skipped elsewhere.

use std::{
    fs,
    io::{Read as _, Write as _},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::{browser, cmd, pipeline::Outcome};

/// What the venv holds, pinned: schemathesis's CLI changed across major versions.
const REQUIREMENTS: [&str; 2] = ["schemathesis==4.32.5", "openapi-spec-validator==0.9.0"];
/// The settings of the run: the statuses some operations may also answer to valid data, each
/// with its reason.
const CONFIG: &str = "xtask/schemathesis.toml";
/// Fixed, so a failure reproduces; change it to explore other cases.
const SEED: &str = "20261206";
/// Test cases per operation and phase: the whole step stays within about a minute on two
/// cores.
const MAX_EXAMPLES: &str = "50";
/// Longest venv set-up.
const INSTALL_LIMIT: Duration = Duration::from_secs(300);
/// Longest schemathesis run.
const RUN_LIMIT: Duration = Duration::from_secs(240);
/// Longest wait for `webhookd` to answer `/healthz`.
const START_LIMIT: Duration = Duration::from_secs(30);

/// Validates the document and runs schemathesis against a running `webhookd`.
pub(crate) fn run() -> Result<Outcome> {
    let Some(python) = cmd::find_in_path("python3") else {
        let missing = "missing python3 (`apt-get install python3 python3-venv`)";
        if browser::in_ci() {
            bail!("{missing}; CI must check the OpenAPI document");
        }
        return Ok(Outcome::skipped(format!(
            "{missing}, so the OpenAPI document was not checked"
        )));
    };
    let venv = venv(&python)?;
    let webhookd = browser::build_webhookd()?;
    let dir = TempDir::new()?;
    let server = Server::start(&webhookd, dir.path())?;

    let document = dir.path().join("openapi.json");
    fs::write(&document, server.get("/api/v1/openapi.json")?)?;
    let mut validate = Command::new(venv.join("bin/openapi-spec-validator"));
    validate.arg(&document);
    cmd::run(&mut validate)?;

    let mut schemathesis = Command::new(venv.join("bin/st"));
    schemathesis
        .arg("--no-color")
        .arg("--config-file")
        .arg(cmd::root().join(CONFIG))
        .arg("run")
        .arg(&document)
        .args(["--url", &server.base])
        // The key is an admin key. `DELETE /api/v1/api-keys/{id}` stays in the run: the server
        // refuses a key's deletion of itself (409 `own_key`), so the run cannot lock itself out.
        .args([
            "--header",
            &format!("Authorization: Bearer {}", server.api_key),
        ])
        // Every check, none excluded.
        .args(["--checks", "all"])
        .args(["--seed", SEED, "--max-examples", MAX_EXAMPLES])
        // One worker: hypothesis names its filters by parsing their source, and CPython 3.11's
        // parser is not safe to run on two threads at once ("AST constructor recursion depth
        // mismatch" ends the run with an error that says nothing of the API).
        .args(["--workers", "1"])
        .args(["--request-timeout", "10"])
        // schemathesis keeps a cache in its working directory.
        .current_dir(dir.path())
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let result = browser::run_bounded(&mut schemathesis, RUN_LIMIT);
    let log = server.stop();
    if let Err(error) = result {
        eprintln!("--- webhookd's log, last lines ---\n{}", tail(&log, 40));
        return Err(error);
    }
    Ok(Outcome::passed().with_note(format!(
        "openapi-spec-validator and schemathesis ({}) found no failure",
        REQUIREMENTS[0]
    )))
}

/// The venv with [`REQUIREMENTS`], made or remade when what it holds differs.
fn venv(python: &Path) -> Result<PathBuf> {
    let venv = cmd::root().join("target").join("schemathesis").join("venv");
    let stamp = venv.join("xtask-requirements.txt");
    let wanted = REQUIREMENTS.join("\n");
    if fs::read_to_string(&stamp).is_ok_and(|held| held == wanted)
        && cmd::executable(&venv.join("bin/st")).is_some()
    {
        eprintln!("{} holds {}", venv.display(), REQUIREMENTS.join(", "));
        return Ok(venv);
    }
    fs::create_dir_all(&venv)?;
    let mut create = Command::new(python);
    create.args(["-m", "venv", "--clear"]).arg(&venv);
    cmd::run(&mut create)?;
    let mut install = Command::new(venv.join("bin/pip"));
    install
        .args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-input",
        ])
        .args(REQUIREMENTS)
        .env("PIP_ROOT_USER_ACTION", "ignore");
    browser::run_bounded(&mut install, INSTALL_LIMIT)?;
    fs::write(&stamp, wanted)?;
    Ok(venv)
}

/// A directory under the system's temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<Self> {
        let path = std::env::temp_dir().join(format!("xtask-openapi-{}", std::process::id()));
        if path.exists() {
            fs::remove_dir_all(&path)?;
        }
        fs::create_dir_all(&path)?;
        Ok(Self(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// `webhookd serve` on SQLite in `dir`, on a free loopback port, with an organization whose
/// admin key the run uses.
struct Server {
    child: Child,
    base: String,
    address: String,
    api_key: String,
    log: PathBuf,
}

impl Server {
    fn start(webhookd: &Path, dir: &Path) -> Result<Self> {
        let data = dir.join("data");
        let mut create = Command::new(webhookd);
        create
            .args(["org", "create", "--name", "schemathesis", "--data-dir"])
            .arg(&data);
        let printed: Value = serde_json::from_str(&cmd::read(&mut create)?)
            .context("`webhookd org create` printed no JSON")?;
        let api_key = printed["api_key"]
            .as_str()
            .context("`webhookd org create` printed no api_key")?
            .to_owned();
        let address = free_address()?;
        let log = dir.join("webhookd.log");
        let output = fs::File::create(&log)?;
        let mut serve = Command::new(webhookd);
        serve
            .args(["serve", "--listen", &address, "--data-dir"])
            .arg(&data)
            .stdin(Stdio::null())
            .stdout(output.try_clone()?)
            .stderr(output);
        eprintln!("$ {}", cmd::display(&serve));
        let child = serve.spawn().context("could not start webhookd")?;
        let mut server = Self {
            child,
            base: format!("http://{address}"),
            address,
            api_key,
            log,
        };
        let started = Instant::now();
        while server.get("/healthz").is_err() {
            if let Some(status) = server.child.try_wait()? {
                bail!(
                    "webhookd exited ({status}) before it answered:\n{}",
                    tail(&fs::read_to_string(&server.log).unwrap_or_default(), 40)
                );
            }
            if started.elapsed() > START_LIMIT {
                let log = server.stop();
                bail!(
                    "webhookd did not answer /healthz within {} s:\n{}",
                    START_LIMIT.as_secs(),
                    tail(&log, 40)
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
        Ok(server)
    }

    /// The body of a `GET path` answered 200.
    fn get(&self, path: &str) -> Result<String> {
        let mut stream = TcpStream::connect(&self.address)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.address
        )?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        let (head, body) = answer
            .split_once("\r\n\r\n")
            .context("an answer without a head")?;
        if !head.starts_with("HTTP/1.1 200") {
            bail!(
                "GET {path} answered {}",
                head.lines().next().unwrap_or_default()
            );
        }
        Ok(body.to_owned())
    }

    /// Stops the server (SIGKILL: its data is thrown away) and returns its log.
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A loopback address no one listens on, as the system hands out.
fn free_address() -> Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.to_string())
}

/// The last `lines` lines of `text`.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_keep_the_last_lines() {
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
        assert_eq!(tail("", 5), "");
    }

    #[test]
    fn the_config_names_only_documented_operations() {
        let config = fs::read_to_string(cmd::root().join(CONFIG)).unwrap();
        let ids: Vec<&str> = config
            .lines()
            .filter_map(|line| line.strip_prefix("include-operation-id = "))
            .flat_map(|list| list.split('"').skip(1).step_by(2))
            .collect();
        assert!(!ids.is_empty(), "{config}");
        let sources: String = [
            "api/targets.rs",
            "api/webhooks.rs",
            "api/board.rs",
            "api/account.rs",
            "ingest.rs",
            "ops.rs",
        ]
        .iter()
        .map(|file| {
            fs::read_to_string(cmd::root().join("crates/webhook-http/src").join(file)).unwrap()
        })
        .collect();
        for id in ids {
            assert!(
                sources.contains(&format!("operation_id = \"{id}\"")),
                "{id} is not an operation id"
            );
        }
    }
}
