//! The processes of a measurement: a server started and stopped around it, pinned to a CPU when
//! possible, its CPU time read from `/proc`, and a scratch directory for its files.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::cmd;
use crate::metadata::Workspace;

/// How long a server may take to listen, and to stop after SIGTERM.
const SERVER_DEADLINE: Duration = Duration::from_secs(60);

/// Server on one core, generator on another, when `taskset` and two cores are there.
pub(super) struct Pinning {
    pub(super) cores: Option<(usize, usize)>,
    taskset: Option<PathBuf>,
}

impl Pinning {
    pub(super) fn detect() -> Self {
        let taskset = cmd::find_in_path("taskset");
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self {
            cores: (taskset.is_some() && cores >= 2).then_some((0, 1)),
            taskset,
        }
    }

    pub(super) fn describe(&self) -> String {
        match (self.cores, &self.taskset) {
            (Some((server, generator)), _) => format!(
                "server pinned to CPU {server}, load generator to CPU {generator} (taskset); \
                 PostgreSQL itself is not pinned"
            ),
            (None, None) => "not pinned: no taskset".to_owned(),
            (None, Some(_)) => "not pinned: fewer than two CPUs".to_owned(),
        }
    }

    pub(super) fn server(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        self.on(self.cores.map(|(server, _)| server), program)
    }

    pub(super) fn generator(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        self.on(self.cores.map(|(_, generator)| generator), program)
    }

    fn on(&self, core: Option<usize>, program: impl AsRef<std::ffi::OsStr>) -> Command {
        match (core, &self.taskset) {
            (Some(core), Some(taskset)) => {
                let mut command = Command::new(taskset);
                command.arg("-c").arg(core.to_string()).arg(program);
                command
            }
            _ => Command::new(program),
        }
    }
}

/// CPU time (user and system, every thread) that processes have used, read from `/proc`.
pub(super) struct CpuTime {
    ticks_per_second: f64,
}

impl CpuTime {
    pub(super) fn detect() -> Self {
        let ticks = cmd::read(Command::new("getconf").arg("CLK_TCK"))
            .ok()
            .and_then(|out| out.trim().parse::<f64>().ok())
            .filter(|ticks| *ticks > 0.0);
        Self {
            ticks_per_second: ticks.unwrap_or(100.0),
        }
    }

    /// The process's CPU time so far.
    pub(super) fn of_process(&self, pid: u32) -> Result<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .with_context(|| format!("reading /proc/{pid}/stat"))?;
        self.of_stat(&stat)
            .map(|(_, time)| time)
            .with_context(|| format!("reading /proc/{pid}/stat: {stat}"))
    }

    /// The CPU time so far of every process whose command name is `name`.
    pub(super) fn of_named(&self, name: &str) -> Duration {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Duration::ZERO;
        };
        entries
            .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path().join("stat")).ok())
            .filter_map(|stat| self.of_stat(&stat))
            .filter(|(comm, _)| comm == name)
            .map(|(_, time)| time)
            .sum()
    }

    /// The command name and `utime + stime` of a `/proc/<pid>/stat` line (`pid (comm) state …`;
    /// the name may hold spaces and parentheses, so the fields are counted after the last `)`).
    fn of_stat(&self, stat: &str) -> Option<(String, Duration)> {
        let open = stat.find('(')?;
        let close = stat.rfind(')')?;
        let comm = stat.get(open + 1..close)?.to_owned();
        let mut fields = stat.get(close + 1..)?.split_whitespace();
        // After the name: state is field 3, utime field 14 and stime field 15.
        let utime: f64 = fields.nth(11)?.parse().ok()?;
        let stime: f64 = fields.next()?.parse().ok()?;
        Some((
            comm,
            Duration::from_secs_f64((utime + stime) / self.ticks_per_second),
        ))
    }
}

/// A server process started for one measurement; killed if dropped before [`Server::stop`].
pub(super) struct Server {
    name: &'static str,
    pub(super) child: Child,
    log: PathBuf,
}

impl Server {
    /// Starts `command` with its output in a log file and waits until `port` accepts connections.
    pub(super) fn start(
        name: &'static str,
        mut command: Command,
        port: u16,
        dir: &Path,
    ) -> Result<Self> {
        let log = dir.join(format!("{name}-{port}.log"));
        let file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        command
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        eprintln!("$ {}", cmd::display(&command));
        let child = command
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let mut server = Self { name, child, log };
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + SERVER_DEADLINE;
        loop {
            if let Some(status) = server.child.try_wait()? {
                bail!(
                    "{name} exited ({status}) before listening: {}",
                    server.log_tail()
                );
            }
            if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
                return Ok(server);
            }
            if Instant::now() > deadline {
                bail!("{name} did not listen on {address} within {SERVER_DEADLINE:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then waits for the graceful shutdown.
    pub(super) fn stop(mut self) -> Result<()> {
        cmd::run(Command::new("kill").args(["-TERM", &self.child.id().to_string()]))?;
        let deadline = Instant::now() + SERVER_DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!("{} exited with {status}: {}", self.name, self.log_tail());
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not stop within {SERVER_DEADLINE:?} of SIGTERM",
                    self.name
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A port nothing listens on now (the server binds it right after).
pub(super) fn free_port() -> Result<u16> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free local port")?;
    Ok(listener.local_addr()?.port())
}

/// `target/bench/<name>-<pid>/`, removed when done.
pub(super) struct Scratch {
    pub(super) path: PathBuf,
}

impl Scratch {
    pub(super) fn create(bench_dir: &Path, name: &str) -> Result<Self> {
        let path = bench_dir.join(format!("{name}-{}", std::process::id()));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self { path })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// What a bench that runs webhookd as a process needs: the release programs, a scratch
/// directory of its own, how processes are pinned, and how their CPU time is read.
pub(super) struct Programs {
    pub(super) webhookd: PathBuf,
    pub(super) loadgen: PathBuf,
    /// The release build's directory.
    pub(super) release: PathBuf,
    pub(super) scratch: Scratch,
    pub(super) pinning: Pinning,
    pub(super) cpu: CpuTime,
}

impl Programs {
    /// Builds webhookd and webhook-loadgen in release mode, and makes the scratch directory
    /// `name` under `target/bench/`.
    pub(super) fn build(name: &str) -> Result<Self> {
        eprintln!("==> building webhookd and webhook-loadgen (release)");
        cmd::run(&mut cmd::cargo([
            "build",
            "--release",
            "-p",
            "webhookd",
            "-p",
            "webhook-loadgen",
        ]))?;
        let workspace = Workspace::load()?;
        let release = Path::new(
            workspace
                .target_directory()
                .context("no target directory")?,
        )
        .join("release");
        let programs = Self {
            webhookd: release.join("webhookd"),
            loadgen: release.join("webhook-loadgen"),
            scratch: Scratch::create(&release.join("..").join("bench"), name)?,
            pinning: Pinning::detect(),
            cpu: CpuTime::detect(),
            release,
        };
        eprintln!("{}", programs.pinning.describe());
        Ok(programs)
    }

    /// `webhookd <args> --data-dir <data_dir>`, pinned as the server, on `database_url` (else
    /// on SQLite in the data directory), logging warnings only.
    pub(super) fn webhookd(
        &self,
        data_dir: &Path,
        database_url: Option<&str>,
        args: &[&str],
    ) -> Command {
        let mut command = self.pinning.server(&self.webhookd);
        command
            .args(args)
            .arg("--data-dir")
            .arg(data_dir)
            .env("RUST_LOG", "warn")
            .env_remove("DATABASE_URL");
        if let Some(url) = database_url {
            command.env("DATABASE_URL", url);
        }
        command
    }

    /// Creates `count` organizations (`bench-0`, `bench-1`, …) with `webhookd org create`:
    /// their admin API keys.
    pub(super) fn organizations(
        &self,
        data_dir: &Path,
        database_url: Option<&str>,
        count: u32,
    ) -> Result<Vec<String>> {
        let mut keys = Vec::new();
        for n in 0..count {
            let name = format!("bench-{n}");
            let mut create =
                self.webhookd(data_dir, database_url, &["org", "create", "--name", &name]);
            let output = cmd::read(&mut create)?;
            let created: serde_json::Value = serde_json::from_str(output.trim())
                .with_context(|| format!("reading `webhookd org create` output: {output}"))?;
            let key = created["api_key"]
                .as_str()
                .context("`webhookd org create` printed no api_key")?;
            keys.push(key.to_owned());
        }
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_read_from_a_stat_line() {
        let cpu = CpuTime {
            ticks_per_second: 100.0,
        };
        let line = "4242 (web (hook) d) S 1 4242 4242 0 -1 4194560 1523 0 0 0 250 75 0 0 20 0 9 0";
        let (comm, time) = cpu.of_stat(line).unwrap();
        assert_eq!(comm, "web (hook) d");
        assert_eq!(time, Duration::from_millis(3_250));
        assert!(cpu.of_stat("garbage").is_none());
    }
}
