//! PostgreSQL for the tests, first that works: `DATABASE_URL`; a server already accepting the
//! `postgres` user on 127.0.0.1:5432; a throwaway cluster under `target/xtask-pg/` that xtask
//! creates (`initdb`), starts and stops (`pg_ctl`) — as the `postgres` user when running as root,
//! since PostgreSQL refuses to run as root.

use std::{
    env,
    ffi::OsStr,
    fs,
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    ops::RangeInclusive,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context, Result, anyhow, bail};

use crate::{cmd, pipeline::Outcome};

/// Port of a local server to use when one runs there.
const LOCAL_PORT: u16 = 5432;
/// Overrides [`LOCAL_PORT`]; an unused port forces the throwaway cluster.
const LOCAL_PORT_ENV: &str = "XTASK_PG_PORT";
/// Ports tried, in order, for the throwaway cluster.
const CLUSTER_PORTS: RangeInclusive<u16> = 54329..=54348;
/// The superuser the tests connect as, and the OS user the cluster runs as under root.
const USER: &str = "postgres";
/// Where PostgreSQL packages put their binaries when they are not on `PATH` (Debian, Ubuntu).
const PACKAGED_BIN_DIRS: &str = "/usr/lib/postgresql";

/// A database for the tests; a throwaway cluster started for it stops when it is dropped.
#[derive(Debug)]
pub(crate) struct Database {
    url: String,
    origin: String,
    cluster: Option<Cluster>,
}

impl Database {
    pub(crate) fn url(&self) -> &str {
        &self.url
    }
}

/// A database for benchmarks: the same search as for the tests.
pub(crate) fn for_bench() -> Result<Database> {
    let database = prepare()?;
    eprintln!("PostgreSQL: {}", database.origin);
    Ok(database)
}

/// The `postgres` step of `cargo xtask test`.
pub(crate) fn for_tests() -> Result<Outcome<Database>> {
    let database = prepare()?;
    let note = database.origin.clone();
    Ok(Outcome::value(database).with_note(note))
}

/// `cargo xtask db`: the URL on stdout, everything else on stderr, the cluster left running.
pub(crate) fn db() -> Result<()> {
    let mut database = prepare()?;
    eprintln!("PostgreSQL: {}", database.origin);
    if let Some(cluster) = &mut database.cluster {
        cluster.stop_on_drop = false;
        eprintln!("stop it with `cargo xtask db stop`");
    }
    eprintln!("use it with: export DATABASE_URL=$(cargo xtask db)");
    println!("{}", database.url);
    Ok(())
}

/// `cargo xtask db stop`.
pub(crate) fn db_stop() -> Result<()> {
    if !cluster_dir().join("data").join("PG_VERSION").exists() {
        eprintln!("no throwaway cluster in {}", cluster_dir().display());
        return Ok(());
    }
    let server = Server::find()?;
    if server.running_port().is_none() {
        eprintln!("the throwaway cluster is not running");
        return Ok(());
    }
    server.stop()?;
    eprintln!("stopped the throwaway cluster");
    Ok(())
}

/// `pg_ctl --version` of the tools a throwaway cluster would use, for the CI log.
pub(crate) fn tools_version() -> String {
    Tools::find()
        .and_then(|tools| cmd::read(Command::new(&tools.pg_ctl).arg("--version")))
        .map_or_else(
            |_| "(not available)".to_owned(),
            |out| out.trim().to_owned(),
        )
}

fn prepare() -> Result<Database> {
    if let Some(url) = env::var("DATABASE_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
    {
        return Ok(Database {
            url,
            origin: "DATABASE_URL from the environment".to_owned(),
            cluster: None,
        });
    }
    let port = local_port()?;
    match probe(port) {
        Ok(url) => {
            return Ok(Database {
                origin: format!("{url} (server already running)"),
                url,
                cluster: None,
            });
        }
        Err(why) => {
            eprintln!("no usable server on 127.0.0.1:{port}: {why}; using a throwaway cluster");
        }
    }
    let cluster = Cluster::start_or_reuse().context(
        "could not provide a throwaway PostgreSQL cluster; either install PostgreSQL's server \
         programs (initdb, pg_ctl) or point the tests at a running server with \
         DATABASE_URL=postgres://USER[:PASSWORD]@HOST:PORT/DATABASE",
    )?;
    let url = url(cluster.port);
    let state = if cluster.stop_on_drop {
        "started"
    } else {
        "already running"
    };
    Ok(Database {
        origin: format!(
            "{url} (throwaway cluster {state} in {})",
            cluster_dir().display()
        ),
        url,
        cluster: Some(cluster),
    })
}

fn url(port: u16) -> String {
    format!("postgres://{USER}@127.0.0.1:{port}/postgres")
}

fn local_port() -> Result<u16> {
    match env::var(LOCAL_PORT_ENV) {
        Ok(port) => port
            .trim()
            .parse()
            .with_context(|| format!("{LOCAL_PORT_ENV}={port} is not a port number")),
        Err(_) => Ok(LOCAL_PORT),
    }
}

/// The URL of a PostgreSQL server on 127.0.0.1:`port` that lets [`USER`] in without a password,
/// or why not. With `psql` it is checked by logging in, with only `pg_isready` by asking it, and
/// with neither by a TCP connection alone.
fn probe(port: u16) -> Result<String, String> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&address, Duration::from_secs(2))
        .map_err(|error| format!("nothing accepts connections ({error})"))?;
    let url = url(port);
    if let Some(psql) = cmd::find_in_path("psql") {
        let mut login = Command::new(psql);
        login
            .args(["-X", "-w", "-q", "-A", "-t", "-c", "select 1", "-d", &url])
            .env("PGCONNECT_TIMEOUT", "5");
        cmd::read(&mut login)
            .map_err(|error| format!("cannot log in as {USER} without a password: {error:#}"))?;
    } else if let Some(pg_isready) = cmd::find_in_path("pg_isready") {
        let mut ready = Command::new(pg_isready);
        ready.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", "5"]);
        if !cmd::succeeds(&mut ready) {
            return Err(
                "pg_isready says it is not a PostgreSQL server ready for connections".into(),
            );
        }
    }
    Ok(url)
}

fn cluster_dir() -> PathBuf {
    cmd::root().join("target").join("xtask-pg")
}

/// A throwaway cluster, running.
#[derive(Debug)]
struct Cluster {
    server: Server,
    port: u16,
    /// True when this process started it, so it is stopped when done.
    stop_on_drop: bool,
}

impl Cluster {
    fn start_or_reuse() -> Result<Self> {
        let server = Server::find()?;
        if let Some(port) = server.running_port() {
            eprintln!("reusing the throwaway cluster running on port {port}");
            return Ok(Self {
                server,
                port,
                stop_on_drop: false,
            });
        }
        server.prepare_dirs()?;
        server.init()?;
        let port = CLUSTER_PORTS
            .clone()
            .find(|&port| TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok())
            .ok_or_else(|| {
                anyhow!(
                    "no free port for it in {}..={}",
                    CLUSTER_PORTS.start(),
                    CLUSTER_PORTS.end()
                )
            })?;
        server.start(port)?;
        Ok(Self {
            server,
            port,
            stop_on_drop: true,
        })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !self.stop_on_drop {
            return;
        }
        match self.server.stop() {
            Ok(()) => eprintln!("stopped the throwaway PostgreSQL cluster"),
            Err(error) => eprintln!("warning: could not stop the throwaway cluster: {error:#}"),
        }
    }
}

/// The server programs and who runs them, for the cluster in [`cluster_dir`].
#[derive(Debug)]
struct Server {
    tools: Tools,
    run_as: RunAs,
    dir: PathBuf,
}

impl Server {
    fn find() -> Result<Self> {
        Ok(Self {
            tools: Tools::find()?,
            run_as: RunAs::detect()?,
            dir: cluster_dir(),
        })
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// `pg_ctl action -D <data directory> args…`.
    fn pg_ctl(&self, action: &str, args: &[&OsStr]) -> Result<Command> {
        let data = self.data();
        let mut all: Vec<&OsStr> = vec![action.as_ref(), "-D".as_ref(), data.as_ref()];
        all.extend_from_slice(args);
        self.run_as.command(&self.tools.pg_ctl, &all)
    }

    /// The port of the cluster when it is running.
    fn running_port(&self) -> Option<u16> {
        let mut status = self.pg_ctl("status", &[]).ok()?;
        if !cmd::succeeds(&mut status) {
            return None;
        }
        // postmaster.pid: pid, data directory, start time, port, …
        let pid_file = fs::read_to_string(self.data().join("postmaster.pid")).ok()?;
        pid_file.lines().nth(3)?.trim().parse().ok()
    }

    /// Creates the cluster's directories, owned by whoever runs the server.
    fn prepare_dirs(&self) -> Result<()> {
        let sockets = self.dir.join("sock");
        fs::create_dir_all(&sockets).with_context(|| format!("creating {}", sockets.display()))?;
        self.run_as.give(&self.dir)?;
        self.run_as.give(&sockets)
    }

    /// Runs initdb unless a cluster of the tools' major version is already there.
    fn init(&self) -> Result<()> {
        let data = self.data();
        if data.exists() {
            let tools_version = self.tools.version()?;
            match fs::read_to_string(data.join("PG_VERSION")) {
                Ok(cluster) if same_major(&tools_version, cluster.trim()) => return Ok(()),
                Ok(cluster) => eprintln!(
                    "the throwaway cluster is from PostgreSQL {}, the tools are {tools_version}: \
                     recreating it",
                    cluster.trim()
                ),
                Err(_) => eprintln!(
                    "{} is not a complete cluster: recreating it",
                    data.display()
                ),
            }
            fs::remove_dir_all(&data).with_context(|| format!("removing {}", data.display()))?;
        }
        eprintln!("creating a throwaway cluster in {}", data.display());
        let args: [&OsStr; 8] = [
            "-D".as_ref(),
            data.as_ref(),
            "--username".as_ref(),
            USER.as_ref(),
            "--auth=trust".as_ref(),
            "--encoding=UTF8".as_ref(),
            "--no-locale".as_ref(),
            "--no-sync".as_ref(),
        ];
        cmd::read(&mut self.run_as.command(&self.tools.initdb, &args)?).context("initdb failed")?;
        Ok(())
    }

    fn start(&self, port: u16) -> Result<()> {
        let log = self.dir.join("postgres.log");
        // Durability is worthless for a throwaway cluster and costs the tests time.
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -k {} \
             -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            shell_quote(&self.socket_dir()?)
        );
        let args: [&OsStr; 7] = [
            "-l".as_ref(),
            log.as_ref(),
            "-w".as_ref(),
            "-t".as_ref(),
            "60".as_ref(),
            "-o".as_ref(),
            options.as_ref(),
        ];
        eprintln!("starting it on port {port} (log: {})", log.display());
        cmd::read(&mut self.pg_ctl("start", &args)?).map_err(|error| {
            let log = fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(10)..].join("\n");
            error.context(format!(
                "pg_ctl start failed; end of the server log:\n{tail}"
            ))
        })?;
        Ok(())
    }

    fn stop(&self) -> Result<()> {
        let args: [&OsStr; 3] = ["-m".as_ref(), "fast".as_ref(), "-w".as_ref()];
        cmd::read(&mut self.pg_ctl("stop", &args)?)?;
        Ok(())
    }

    /// Directory for the Unix socket (beside the cluster, not the system's), or `""` — TCP
    /// only — when its path would be too long for a socket address (107 bytes on Linux).
    fn socket_dir(&self) -> Result<String> {
        let dir = self.dir.join("sock");
        let dir = dir
            .to_str()
            .with_context(|| format!("{} is not UTF-8", dir.display()))?;
        Ok(if dir.len() + "/.s.PGSQL.54329".len() <= 107 {
            dir.to_owned()
        } else {
            String::new()
        })
    }
}

/// `initdb` and `pg_ctl`, from the same directory so their versions match.
#[derive(Debug)]
struct Tools {
    initdb: PathBuf,
    pg_ctl: PathBuf,
}

impl Tools {
    fn find() -> Result<Self> {
        let mut packaged: Vec<(u32, PathBuf)> = fs::read_dir(PACKAGED_BIN_DIRS)
            .into_iter()
            .flatten()
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let version = entry.file_name().to_str()?.parse().ok()?;
                Some((version, entry.path().join("bin")))
            })
            .collect();
        packaged.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
        env::split_paths(&env::var_os("PATH").unwrap_or_default())
            .chain(packaged.into_iter().map(|(_, dir)| dir))
            .find_map(|dir| {
                Some(Self {
                    initdb: cmd::executable(&dir.join("initdb"))?,
                    pg_ctl: cmd::executable(&dir.join("pg_ctl"))?,
                })
            })
            .ok_or_else(|| {
                anyhow!(
                    "initdb and pg_ctl are neither on PATH nor in {PACKAGED_BIN_DIRS}/*/bin \
                     (Debian: apt-get install postgresql)"
                )
            })
    }

    /// `15.14` from `pg_ctl (PostgreSQL) 15.14 (Debian 15.14-1.pgdg120+1)`.
    fn version(&self) -> Result<String> {
        let out = cmd::read(Command::new(&self.pg_ctl).arg("--version"))?;
        out.split_whitespace()
            .nth(2)
            .map(str::to_owned)
            .with_context(|| format!("unexpected `pg_ctl --version`: {out}"))
    }
}

/// Whether a cluster whose `PG_VERSION` says `cluster` (`15`, or `9.6` before 10) can be run
/// by server programs of version `tools` (`15.14`, `17beta1`, `9.6.24`).
fn same_major(tools: &str, cluster: &str) -> bool {
    !cluster.is_empty()
        && tools
            .strip_prefix(cluster)
            .is_some_and(|rest| !rest.starts_with(|c: char| c.is_ascii_digit()))
}

/// Who runs the server programs. PostgreSQL refuses to run as root, so root runs them as the
/// `postgres` user, through `runuser` or else `su`.
#[derive(Debug)]
enum RunAs {
    Me,
    Runuser { uid: u32, gid: u32 },
    Su { uid: u32, gid: u32 },
}

impl RunAs {
    fn detect() -> Result<Self> {
        let id = |args: &[&str]| -> Result<u32> {
            let out = cmd::read(Command::new("id").args(args))?;
            out.trim()
                .parse()
                .with_context(|| format!("unexpected `id {}`: {out}", args.join(" ")))
        };
        if id(&["-u"])? != 0 {
            return Ok(Self::Me);
        }
        let (Ok(uid), Ok(gid)) = (id(&["-u", USER]), id(&["-g", USER])) else {
            bail!(
                "running as root, which PostgreSQL refuses, and there is no `{USER}` user to run \
                 the cluster as (create one, or run as an ordinary user)"
            );
        };
        if cmd::find_in_path("runuser").is_some() {
            Ok(Self::Runuser { uid, gid })
        } else if cmd::find_in_path("su").is_some() {
            Ok(Self::Su { uid, gid })
        } else {
            bail!(
                "running as root, which PostgreSQL refuses, and neither runuser nor su is there \
                 to run it as `{USER}`"
            )
        }
    }

    fn command(&self, program: &Path, args: &[&OsStr]) -> Result<Command> {
        Ok(match self {
            Self::Me => {
                let mut command = Command::new(program);
                command.args(args);
                command
            }
            Self::Runuser { .. } => {
                let mut command = Command::new("runuser");
                command.args(["-u", USER, "--"]).arg(program).args(args);
                command
            }
            Self::Su { .. } => {
                let line = std::iter::once(program.as_os_str())
                    .chain(args.iter().copied())
                    .map(|arg| {
                        arg.to_str()
                            .map(shell_quote)
                            .with_context(|| format!("{} is not UTF-8", arg.to_string_lossy()))
                    })
                    .collect::<Result<Vec<_>>>()?
                    .join(" ");
                let mut command = Command::new("su");
                command.args(["-s", "/bin/sh", USER, "-c", &line]);
                command
            }
        })
    }

    /// Hands `dir` to the user running the server, and checks that user can reach it.
    fn give(&self, dir: &Path) -> Result<()> {
        let (Self::Runuser { uid, gid } | Self::Su { uid, gid }) = self else {
            return Ok(());
        };
        std::os::unix::fs::chown(dir, Some(*uid), Some(*gid))
            .with_context(|| format!("chown {USER} {}", dir.display()))?;
        let mut writable = self.command(Path::new("test"), &["-w".as_ref(), dir.as_ref()])?;
        if !cmd::succeeds(&mut writable) {
            bail!(
                "user `{USER}` cannot write to {} (is a parent directory closed to other users?)",
                dir.display()
            );
        }
        Ok(())
    }
}

/// `s` as one word for `/bin/sh`.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_is_reused_by_tools_of_its_major_version_only() {
        let check = |tools: &str, cluster: &str, expected: bool| {
            assert_eq!(same_major(tools, cluster), expected, "{tools} vs {cluster}");
        };
        check("15.14", "15", true);
        check("17beta1", "17", true);
        check("9.6.24", "9.6", true);
        check("16.2", "15", false);
        check("150.1", "15", false);
        check("15.14", "", false);
    }

    #[test]
    fn shell_quote_makes_one_word() {
        assert_eq!(shell_quote("/a b/c"), "'/a b/c'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
