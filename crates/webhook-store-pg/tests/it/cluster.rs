//! A throwaway PostgreSQL cluster of the test's own, in a temporary directory on a free port,
//! for tests that stop the server (the shared one on 5432 must keep running). Under root it runs
//! as the `postgres` user, since PostgreSQL refuses to run as root.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The superuser the tests connect as, and the OS user the cluster runs as under root.
const USER: &str = "postgres";

/// A running cluster; stopped (immediately) and removed when dropped.
pub(crate) struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    /// `(uid, gid)` of [`USER`] when this process runs as root.
    run_as: Option<(u32, u32)>,
}

impl Cluster {
    /// Creates and starts a cluster, or `None` when PostgreSQL's server programs (`initdb`,
    /// `pg_ctl`) are not installed.
    ///
    /// # Panics
    /// When they are installed but the cluster cannot be made or started.
    pub(crate) fn start() -> Option<Self> {
        let bin = server_bin()?;
        let run_as = (output("id", &["-u"]) == "0").then(|| {
            let id = |flag| {
                output("id", &[flag, USER])
                    .parse::<u32>()
                    .expect("running as root needs a `postgres` user to run the cluster as")
            };
            (id("-u"), id("-g"))
        });
        let dir = tempfile::Builder::new()
            .prefix("webhookd-pg-")
            .tempdir()
            .expect("a temporary directory");
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown to postgres");
        }
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let cluster = Self {
            dir,
            bin,
            port,
            run_as,
        };
        let data = cluster.data();
        cluster.run(
            "initdb",
            &[
                "-D",
                &data,
                "--username",
                USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ],
        );
        cluster.restart();
        Some(cluster)
    }

    /// The URL of the cluster's `postgres` database.
    pub(crate) fn url(&self) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the stopped server and waits until it accepts connections (crash recovery
    /// included).
    pub(crate) fn restart(&self) {
        // Commits are synchronous and flushed, as in production: a commit is answered only
        // once its WAL is on disk, and the flush is the window in which a killed server has
        // committed without answering.
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c full_page_writes=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("postgres.log");
        let data = self.data();
        self.run(
            "pg_ctl",
            &[
                "start",
                "-D",
                &data,
                "-l",
                &log.display().to_string(),
                "-w",
                "-t",
                "60",
                "-o",
                &options,
            ],
        );
    }

    /// Stops the server as a crash would: `pg_ctl -m immediate` ends every backend at once,
    /// whatever it is doing, and the next start runs crash recovery.
    pub(crate) fn stop_immediately(&self) {
        let data = self.data();
        self.run("pg_ctl", &["stop", "-D", &data, "-m", "immediate", "-w"]);
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn command(&self, program: &str, args: &[&str]) -> Command {
        let program = self.bin.join(program);
        if self.run_as.is_some() {
            let mut command = Command::new("runuser");
            command.args(["-u", USER, "--"]).arg(program).args(args);
            command
        } else {
            let mut command = Command::new(program);
            command.args(args);
            command
        }
    }

    fn run(&self, program: &str, args: &[&str]) {
        let out = self
            .command(program, args)
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}{}\nserver log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Already stopped, or a test failed mid-way: either way the directory goes next.
        let data = self.data();
        let _ = self
            .command("pg_ctl", &["stop", "-D", &data, "-m", "immediate", "-w"])
            .output();
    }
}

/// The directory of `initdb` and `pg_ctl`: on `PATH`, else the newest of Debian's
/// `/usr/lib/postgresql/*/bin`.
fn server_bin() -> Option<PathBuf> {
    let has_tools = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    if let Some(dir) = on_path.into_iter().find(|dir| has_tools(dir)) {
        return Some(dir);
    }
    let mut packaged: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has_tools(dir))
        .collect();
    packaged.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
    packaged.into_iter().next().map(|(_, dir)| dir)
}

fn output(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
