//! Runs the real `webhookd` binary: a server on a free loopback port, or a one-shot command.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

const BINARY: &str = env!("CARGO_BIN_EXE_webhookd");
const STARTUP: Duration = Duration::from_secs(60);

fn command(args: &[&str]) -> Command {
    let mut command = Command::new(BINARY);
    command
        .args(args)
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Runs a command to completion; returns its stdout, failing the test when it fails.
pub(crate) async fn run(args: &[&str]) -> String {
    let output = command(args).output().await.unwrap();
    assert!(
        output.status.success(),
        "webhookd {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The arguments that serve from `data_dir` on a free port, then `args`.
fn serve_args<'a>(data_dir: &'a Path, args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec![
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data_dir.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    all
}

/// Serves from `data_dir` with `args`, which must fail before it listens; returns stderr.
pub(crate) async fn refused(data_dir: &Path, args: &[&str]) -> String {
    let all = serve_args(data_dir, args);
    let output = tokio::time::timeout(STARTUP, command(&all).output())
        .await
        .expect("webhookd exits in time")
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        !output.status.success(),
        "webhookd {args:?} served: {stderr}"
    );
    assert!(!stderr.contains("listening on"), "{stderr}");
    stderr
}

/// A running server; killed if the test ends without stopping it.
pub(crate) struct Daemon {
    child: Child,
    pub(crate) base: String,
    address: SocketAddr,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    client: reqwest::Client,
}

fn collect(stream: impl tokio::io::AsyncRead + Unpin + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&text);
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut text = sink.lock().unwrap();
            text.push_str(&line);
            text.push('\n');
        }
    });
    text
}

impl Daemon {
    /// Serves from `data_dir` on a free port; returns once it listens.
    pub(crate) async fn start(data_dir: &Path, args: &[&str]) -> Self {
        let all = serve_args(data_dir, args);
        let mut child = command(&all).spawn().unwrap();
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        let started = Instant::now();
        let address = loop {
            let found = stderr
                .lock()
                .unwrap()
                .split("listening on http://")
                .nth(1)
                .map(|rest| {
                    rest.split(|c: char| c.is_whitespace() || c == '"')
                        .next()
                        .unwrap()
                        .parse::<SocketAddr>()
                        .unwrap()
                });
            if let Some(address) = found {
                break address;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("webhookd exited with {status}: {}", stderr.lock().unwrap());
            }
            assert!(
                started.elapsed() < STARTUP,
                "webhookd did not start: {}",
                stderr.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        Self {
            child,
            base: format!("http://{address}"),
            address,
            stdout,
            stderr,
            client: reqwest::Client::new(),
        }
    }

    pub(crate) fn address(&self) -> SocketAddr {
        self.address
    }

    pub(crate) fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The admin key printed on stdout, if any.
    pub(crate) fn admin_key(&self) -> Option<String> {
        let stdout = self.stdout();
        let keys: Vec<_> = stdout
            .split_whitespace()
            .filter(|word| word.starts_with("whk_"))
            .map(str::to_owned)
            .collect();
        assert!(keys.len() <= 1, "more than one key printed: {stdout}");
        keys.into_iter().next()
    }

    /// A management API call with `key`; returns the status and the JSON body (or null).
    pub(crate) async fn api(
        &self,
        method: &str,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .client
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Sends SIGTERM.
    pub(crate) fn terminate(&self) {
        let pid = self.child.id().expect("still running").to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits until stderr contains `needle`.
    pub(crate) async fn wait_for_log(&self, needle: &str, within: Duration) {
        let started = Instant::now();
        while !self.stderr().contains(needle) {
            assert!(
                started.elapsed() < within,
                "no {needle:?} in the log: {}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the process to exit.
    pub(crate) async fn wait(mut self) -> ExitStatus {
        tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .expect("webhookd exits in time")
            .unwrap()
    }

    /// SIGKILL, as a crash would end the process, then waits for the exit.
    pub(crate) async fn kill(mut self) {
        self.child.kill().await.expect("webhookd is killed");
    }

    /// SIGTERM, then waits for the exit.
    pub(crate) async fn stop(self) -> ExitStatus {
        self.terminate();
        self.wait().await
    }
}
