//! Configuration: command-line flags, then `WEBHOOKD_*` environment variables (clap reads both),
//! then an optional TOML file (`--config FILE`), then defaults.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use clap::{Args, Parser, Subcommand, ValueEnum};
use ipnet::IpNet;
use serde::Deserialize;
use webhook_domain::model::PublicUrl;

/// webhookd: a self-hosted inbound webhook service. External systems POST JSON events to
/// webhook URLs; each accepted event becomes a task on the board of an agent or a team.
///
/// Without a subcommand, `serve` runs. Settings come from flags, then `WEBHOOKD_*` environment
/// variables, then the TOML file given with `--config`, then defaults.
#[derive(Debug, Parser)]
#[command(name = "webhookd", version, about, long_about)]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the ingest endpoint and the management API (the default).
    Serve,
    /// Apply pending database migrations, then exit.
    Migrate,
    /// Manage organizations.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Manage API keys.
    #[command(subcommand, name = "api-key")]
    ApiKey(ApiKeyCommand),
}

/// `webhookd org …`
#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create an organization and its first admin API key; prints
    /// `{"organization":{…},"api_key":"…"}` on stdout.
    Create {
        /// The organization's name.
        #[arg(long)]
        name: String,
    },
    /// List every organization, oldest first: one JSON object per line on stdout.
    List,
}

/// `webhookd api-key …`
#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create an API key in an organization; prints the key (shown only this once) as JSON on
    /// stdout.
    Create {
        /// The organization's id.
        #[arg(long)]
        organization: String,
        /// The key's name.
        #[arg(long)]
        name: String,
        /// What the key may do.
        #[arg(long, value_enum, default_value_t = KeyRole::Admin)]
        role: KeyRole,
    },
}

/// An API key's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyRole {
    /// Reads and manages everything of its organization.
    Admin,
    /// Reads everything, changes nothing.
    Viewer,
}

impl KeyRole {
    /// The role's name in the management API.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Viewer => "viewer",
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// Where a node keeps its rate-limit windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RateLimiterKind {
    /// In the PostgreSQL database, shared by every node on it: quotas hold across the cluster.
    Shared,
    /// In this node's memory: each node counts alone.
    Memory,
}

/// The settings, as flags and environment variables. Every one may also be set in the file.
#[derive(Debug, Default, Args)]
pub struct Settings {
    /// TOML configuration file; flags and environment variables override it.
    #[arg(long, global = true, env = "WEBHOOKD_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, global = true, env = "WEBHOOKD_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Externally reachable base URL; webhook URLs are built on it [default: http://<listen>].
    #[arg(long, global = true, env = "WEBHOOKD_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// Directory of the embedded SQLite database and the master key [default: ./webhookd-data].
    #[arg(long, global = true, env = "WEBHOOKD_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL URL (postgres://…); without it the embedded SQLite database is used.
    #[arg(
        long,
        global = true,
        env = "DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// Largest accepted event body, in bytes or with a unit (512KiB, 1MiB) [default: 1MiB].
    #[arg(long, global = true, env = "WEBHOOKD_BODY_LIMIT", value_name = "SIZE", value_parser = parse_size)]
    pub body_limit: Option<usize>,
    /// A proxy network (CIDR) whose X-Forwarded-For is believed; repeat for several.
    #[arg(
        long,
        global = true,
        env = "WEBHOOKD_TRUSTED_PROXY",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    pub trusted_proxy: Vec<IpNet>,
    /// Allow delivery to private, loopback and link-local addresses [default: false].
    #[arg(
        long,
        global = true,
        env = "WEBHOOKD_ALLOW_PRIVATE_TARGETS",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub allow_private_targets: Option<bool>,
    /// Master key sealing secrets at rest, 32 bytes in base64 [default: <data-dir>/master.key,
    /// created on first start].
    #[arg(
        long,
        global = true,
        env = "WEBHOOKD_MASTER_KEY",
        value_name = "BASE64",
        hide_env_values = true
    )]
    pub master_key: Option<String>,
    /// Log format [default: human].
    #[arg(long, global = true, env = "WEBHOOKD_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Days invocation logs are kept before they are purged [default: 30].
    #[arg(
        long,
        global = true,
        env = "WEBHOOKD_RETENTION_DAYS",
        value_name = "DAYS"
    )]
    pub retention_days: Option<u32>,
    /// Longest the whole body of a request (ingest and management API) may take to arrive
    /// after its head, in seconds; a slower one is answered 408 and its connection closed
    /// [default: 30].
    #[arg(
        long,
        global = true,
        env = "WEBHOOKD_BODY_TIMEOUT",
        value_name = "SECONDS"
    )]
    pub body_timeout: Option<u64>,
    /// How long a sender's delivery id, once accepted on a webhook, makes repeats of it
    /// duplicates (answered 200 `duplicate`, no task), in seconds [default: 86400, a day].
    #[arg(
        long,
        global = true,
        env = "WEBHOOKD_DEDUP_WINDOW",
        value_name = "SECONDS"
    )]
    pub dedup_window: Option<u64>,
    /// Most open connections per HTTP worker; the node holds at most this times --workers, and
    /// further connections wait in the kernel's accept queue until one closes [default: 25000].
    #[arg(
        long,
        global = true,
        env = "WEBHOOKD_MAX_CONNECTIONS",
        value_name = "N"
    )]
    pub max_connections: Option<usize>,
    /// HTTP worker threads [default: number of CPU cores].
    #[arg(long, global = true, env = "WEBHOOKD_WORKERS", value_name = "N")]
    pub workers: Option<usize>,
    /// Do not deliver tasks from this node: ingest and the API only [default: false].
    #[arg(
        long,
        global = true,
        env = "WEBHOOKD_NO_DISPATCH",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub no_dispatch: Option<bool>,
    /// Most deliveries in progress at once on this node [default: 64].
    #[arg(
        long,
        global = true,
        env = "WEBHOOKD_DISPATCH_CONCURRENCY",
        value_name = "N"
    )]
    pub dispatch_concurrency: Option<usize>,
    /// Most deliveries in progress at once to one target, per node [default: 4].
    #[arg(
        long,
        global = true,
        env = "WEBHOOKD_DISPATCH_PER_TARGET",
        value_name = "N"
    )]
    pub dispatch_per_target: Option<usize>,
    /// Longest a delivery attempt may take, in seconds, connecting included [default: 15].
    #[arg(
        long,
        global = true,
        env = "WEBHOOKD_DELIVERY_TIMEOUT",
        value_name = "SECONDS"
    )]
    pub delivery_timeout: Option<u64>,
    /// Delivery attempts per task, the first included, before it fails; a manual retry grants
    /// as many again [default: 8].
    #[arg(long, global = true, env = "WEBHOOKD_MAX_ATTEMPTS", value_name = "N")]
    pub max_attempts: Option<u32>,
    /// How long a task claimed for delivery stays leased to this node, in seconds; a node that
    /// dies leaves its leases, and another node delivers the task once the lease ends. Must
    /// outlast an attempt: an attempt is cut short at nine tenths of the lease [default: twice
    /// the delivery timeout, at least 60].
    #[arg(
        long,
        global = true,
        env = "WEBHOOKD_DISPATCH_LEASE",
        value_name = "SECONDS"
    )]
    pub dispatch_lease: Option<u64>,
    /// Where the rate-limit windows are kept: `shared` in the PostgreSQL database, so that
    /// quotas hold across every node on it, or `memory` on this node alone (each node then
    /// admits a whole quota); `shared` needs --database-url [default: shared with PostgreSQL,
    /// memory with SQLite].
    #[arg(
        long,
        global = true,
        env = "WEBHOOKD_RATE_LIMITER",
        value_name = "WHERE",
        value_enum
    )]
    pub rate_limiter: Option<RateLimiterKind>,
}

/// The TOML file: the same settings, snake case.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<SocketAddr>,
    public_url: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    body_limit: Option<SizeSetting>,
    #[serde(default)]
    trusted_proxies: Vec<IpNet>,
    allow_private_targets: Option<bool>,
    master_key: Option<String>,
    log_format: Option<LogFormat>,
    retention_days: Option<u32>,
    body_timeout: Option<u64>,
    dedup_window: Option<u64>,
    max_connections: Option<usize>,
    workers: Option<usize>,
    no_dispatch: Option<bool>,
    dispatch_concurrency: Option<usize>,
    dispatch_per_target: Option<usize>,
    delivery_timeout: Option<u64>,
    max_attempts: Option<u32>,
    dispatch_lease: Option<u64>,
    rate_limiter: Option<RateLimiterKind>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum SizeSetting {
    Bytes(usize),
    Text(String),
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// `None`: `http://` and the address listened on.
    pub public_url: Option<PublicUrl>,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub body_limit: usize,
    pub trusted_proxies: Vec<IpNet>,
    pub allow_private_targets: bool,
    pub master_key: Option<String>,
    pub log_format: LogFormat,
    pub retention_days: u32,
    /// Longest the whole body of a request may take to arrive.
    pub body_timeout: Duration,
    /// How long an accepted delivery id makes its repeats duplicates.
    pub dedup_window: Duration,
    /// Most open connections per HTTP worker.
    pub max_connections: usize,
    pub workers: usize,
    pub dispatch: DispatchSettings,
    /// Where the rate-limit windows are kept; `None`: see [`Config::rate_limiter`].
    pub rate_limiter: Option<RateLimiterKind>,
}

/// How this node delivers tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DispatchSettings {
    /// Whether this node delivers at all.
    pub enabled: bool,
    /// Most deliveries in progress at once on this node.
    pub concurrency: usize,
    /// Most deliveries in progress at once to one target on this node.
    pub per_target: usize,
    /// Longest one attempt may take.
    pub timeout: Duration,
    /// Attempts per task and delivery round, the first included.
    pub max_attempts: u32,
    /// How long a claimed task stays leased; `None`: derived from the timeout, see
    /// [`DispatchSettings::lease`].
    pub lease: Option<Duration>,
}

impl DispatchSettings {
    /// How long a claimed task stays leased: as configured, else twice the delivery timeout
    /// and at least [`DEFAULT_MIN_LEASE_SECS`].
    pub fn lease(&self) -> Duration {
        self.lease.unwrap_or_else(|| {
            Duration::from_secs(DEFAULT_MIN_LEASE_SECS).max(self.timeout.saturating_mul(2))
        })
    }
}

const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);
const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;
const DEFAULT_RETENTION_DAYS: u32 = 30;
const DEFAULT_BODY_TIMEOUT_SECS: u64 = 30;
const DEFAULT_DEDUP_WINDOW_SECS: u64 = 24 * 3600;
/// Longest dedup window accepted: thirty days.
const MAX_DEDUP_WINDOW_SECS: u64 = 30 * 24 * 3600;
/// actix-web's own default.
const DEFAULT_MAX_CONNECTIONS: usize = 25_000;
const DEFAULT_DISPATCH_CONCURRENCY: usize = 64;
const DEFAULT_DISPATCH_PER_TARGET: usize = 4;
const DEFAULT_DELIVERY_TIMEOUT_SECS: u64 = 15;
const DEFAULT_MAX_ATTEMPTS: u32 = 8;
/// Longest accepted delivery timeout: a lease must outlast an attempt.
const MAX_DELIVERY_TIMEOUT_SECS: u64 = 600;
/// The shortest lease a node derives when none is configured.
pub const DEFAULT_MIN_LEASE_SECS: u64 = 60;
/// Longest accepted dispatch lease: a day.
const MAX_DISPATCH_LEASE_SECS: u64 = 24 * 3600;

impl Default for Config {
    /// What a node runs with when nothing is configured (workers: one per core).
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN,
            public_url: None,
            data_dir: PathBuf::from("webhookd-data"),
            database_url: None,
            body_limit: DEFAULT_BODY_LIMIT,
            trusted_proxies: Vec::new(),
            allow_private_targets: false,
            master_key: None,
            log_format: LogFormat::default(),
            retention_days: DEFAULT_RETENTION_DAYS,
            body_timeout: Duration::from_secs(DEFAULT_BODY_TIMEOUT_SECS),
            dedup_window: Duration::from_secs(DEFAULT_DEDUP_WINDOW_SECS),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            workers: std::thread::available_parallelism().map_or(1, usize::from),
            dispatch: DispatchSettings {
                enabled: true,
                concurrency: DEFAULT_DISPATCH_CONCURRENCY,
                per_target: DEFAULT_DISPATCH_PER_TARGET,
                timeout: Duration::from_secs(DEFAULT_DELIVERY_TIMEOUT_SECS),
                max_attempts: DEFAULT_MAX_ATTEMPTS,
                lease: None,
            },
            rate_limiter: None,
        }
    }
}

impl Config {
    /// The configured public URL, or `http://{address}` (loopback for an unspecified address).
    pub fn public_url_for(&self, address: SocketAddr) -> anyhow::Result<PublicUrl> {
        if let Some(url) = &self.public_url {
            return Ok(url.clone());
        }
        let host = if address.ip().is_unspecified() {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), address.port())
        } else {
            address
        };
        PublicUrl::parse(&format!("http://{host}"))
            .context("the listen address does not make a public URL; set --public-url")
    }

    /// Where this node keeps its rate-limit windows: as configured, else shared in the
    /// PostgreSQL database when there is one, else in memory.
    pub fn rate_limiter(&self) -> RateLimiterKind {
        self.rate_limiter.unwrap_or(if self.database_url.is_some() {
            RateLimiterKind::Shared
        } else {
            RateLimiterKind::Memory
        })
    }

    /// Merges `settings` over the file they name (if any) over the defaults.
    pub fn load(settings: Settings) -> anyhow::Result<Self> {
        let file = match &settings.config {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        let defaults = Self::default();
        let dispatch = dispatch_settings(&settings, &file, &defaults)?;
        let listen = settings.listen.or(file.listen).unwrap_or(defaults.listen);
        let public_url = settings
            .public_url
            .or(file.public_url)
            .map(|text| {
                PublicUrl::parse(&text).with_context(|| format!("invalid public URL {text:?}"))
            })
            .transpose()?;
        let body_limit = match (settings.body_limit, file.body_limit) {
            (Some(limit), _) | (None, Some(SizeSetting::Bytes(limit))) => limit,
            (None, Some(SizeSetting::Text(text))) => {
                parse_size(&text).map_err(|e| anyhow::anyhow!("body_limit: {e}"))?
            }
            (None, None) => defaults.body_limit,
        };
        if body_limit == 0 {
            bail!("the body limit must be at least 1 byte");
        }
        let retention_days = settings
            .retention_days
            .or(file.retention_days)
            .unwrap_or(defaults.retention_days);
        ensure!(retention_days > 0, "the retention must be at least 1 day");
        let (body_timeout, max_connections) = connection_limits(
            settings.body_timeout.or(file.body_timeout),
            settings.max_connections.or(file.max_connections),
            &defaults,
        )?;
        let dedup_window = dedup_window(settings.dedup_window.or(file.dedup_window), &defaults)?;
        let workers = settings
            .workers
            .or(file.workers)
            .unwrap_or(defaults.workers)
            .max(1);
        let database_url = settings
            .database_url
            .or(file.database_url)
            .filter(|url| !url.is_empty());
        let rate_limiter = settings.rate_limiter.or(file.rate_limiter);
        ensure!(
            database_url.is_some() || rate_limiter != Some(RateLimiterKind::Shared),
            "--rate-limiter shared keeps the windows in PostgreSQL: it needs --database-url \
             (a SQLite node keeps them in memory)"
        );
        Ok(Self {
            listen,
            public_url,
            data_dir: settings
                .data_dir
                .or(file.data_dir)
                .unwrap_or(defaults.data_dir),
            database_url,
            body_limit,
            trusted_proxies: if settings.trusted_proxy.is_empty() {
                file.trusted_proxies
            } else {
                settings.trusted_proxy
            },
            allow_private_targets: settings
                .allow_private_targets
                .or(file.allow_private_targets)
                .unwrap_or(defaults.allow_private_targets),
            master_key: settings.master_key.or(file.master_key),
            log_format: settings.log_format.or(file.log_format).unwrap_or_default(),
            retention_days,
            body_timeout,
            dedup_window,
            max_connections,
            workers,
            dispatch,
            rate_limiter,
        })
    }
}

/// How this node delivers, from the flags, the file and the defaults, checked.
fn dispatch_settings(
    settings: &Settings,
    file: &FileSettings,
    defaults: &Config,
) -> anyhow::Result<DispatchSettings> {
    let dispatch = DispatchSettings {
        enabled: settings
            .no_dispatch
            .or(file.no_dispatch)
            .map_or(defaults.dispatch.enabled, |no| !no),
        concurrency: settings
            .dispatch_concurrency
            .or(file.dispatch_concurrency)
            .unwrap_or(defaults.dispatch.concurrency),
        per_target: settings
            .dispatch_per_target
            .or(file.dispatch_per_target)
            .unwrap_or(defaults.dispatch.per_target),
        timeout: settings
            .delivery_timeout
            .or(file.delivery_timeout)
            .map_or(defaults.dispatch.timeout, Duration::from_secs),
        max_attempts: settings
            .max_attempts
            .or(file.max_attempts)
            .unwrap_or(defaults.dispatch.max_attempts),
        lease: settings
            .dispatch_lease
            .or(file.dispatch_lease)
            .map(Duration::from_secs),
    };
    if dispatch.concurrency == 0 || dispatch.per_target == 0 {
        bail!("the dispatch concurrency and per-target limit must be at least 1");
    }
    if dispatch.timeout.is_zero()
        || dispatch.timeout > Duration::from_secs(MAX_DELIVERY_TIMEOUT_SECS)
    {
        bail!("the delivery timeout must be between 1 and {MAX_DELIVERY_TIMEOUT_SECS} seconds");
    }
    if dispatch.max_attempts == 0 {
        bail!("the delivery attempts must be at least 1");
    }
    if let Some(lease) = dispatch.lease {
        check_lease(lease.as_secs(), dispatch.timeout.as_secs())?;
    }
    Ok(dispatch)
}

/// A configured lease of `lease` seconds must outlast an attempt of up to `timeout` seconds:
/// an attempt is cut short at nine tenths of its lease, so that its result is recorded while
/// the lease still holds, hence at least ten ninths of the timeout.
fn check_lease(lease: u64, timeout: u64) -> anyhow::Result<()> {
    ensure!(
        lease <= MAX_DISPATCH_LEASE_SECS,
        "the dispatch lease must be at most {MAX_DISPATCH_LEASE_SECS} seconds (a day)"
    );
    let shortest = (timeout * 10).div_ceil(9);
    ensure!(
        lease >= shortest,
        "the dispatch lease ({lease} s) must outlast a delivery attempt: with a delivery timeout \
         of {timeout} s, set --dispatch-lease to at least {shortest} s (an attempt is cut short \
         at nine tenths of its lease, so that its result is recorded while the lease holds), \
         or shorten --delivery-timeout"
    );
    Ok(())
}

/// The dedup window (seconds), defaulted and checked.
fn dedup_window(seconds: Option<u64>, defaults: &Config) -> anyhow::Result<Duration> {
    let window = seconds.map_or(defaults.dedup_window, Duration::from_secs);
    ensure!(
        (1..=MAX_DEDUP_WINDOW_SECS).contains(&window.as_secs()),
        "the dedup window must be between 1 and {MAX_DEDUP_WINDOW_SECS} seconds (30 days)"
    );
    Ok(window)
}

/// The body timeout (seconds) and the per-worker connection limit, defaulted and checked.
fn connection_limits(
    body_timeout: Option<u64>,
    max_connections: Option<usize>,
    defaults: &Config,
) -> anyhow::Result<(Duration, usize)> {
    let body_timeout = body_timeout.map_or(defaults.body_timeout, Duration::from_secs);
    ensure!(
        !body_timeout.is_zero(),
        "the body timeout must be at least 1 second"
    );
    let max_connections = max_connections.unwrap_or(defaults.max_connections);
    ensure!(
        max_connections > 0,
        "the connection limit must be at least 1"
    );
    Ok((body_timeout, max_connections))
}

fn read_file(path: &Path) -> anyhow::Result<FileSettings> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the configuration file {}", path.display()))?;
    toml::from_str(&text)
        .with_context(|| format!("parsing the configuration file {}", path.display()))
}

/// A size in bytes: a number, optionally followed by `B`, `KB`, `KiB`, `MB`, `MiB`, `GB`, `GiB`
/// (case-insensitive; `k`, `m`, `g` count in 1024s).
pub fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: usize = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size (e.g. 1048576, 512KiB, 1MiB)"))?;
    let factor: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "k" | "kib" => 1024,
        "mb" => 1000 * 1000,
        "m" | "mib" => 1024 * 1024,
        "gb" => 1000 * 1000 * 1000,
        "g" | "gib" => 1024 * 1024 * 1024,
        other => {
            return Err(format!(
                "unknown size unit {other:?} (use B, KiB, MiB, GiB)"
            ));
        }
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("{text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let check = |text: &str, expected: Option<usize>| {
            assert_eq!(parse_size(text).ok(), expected, "{text}");
        };
        check("1048576", Some(1_048_576));
        check("512KiB", Some(512 * 1024));
        check("1MiB", Some(1024 * 1024));
        check("1 mb", Some(1_000_000));
        check("2m", Some(2 * 1024 * 1024));
        check("10B", Some(10));
        check("", None);
        check("MiB", None);
        check("1.5MiB", None);
        check("1 parsec", None);
    }

    fn settings(args: &[&str]) -> Settings {
        Cli::try_parse_from(std::iter::once("webhookd").chain(args.iter().copied()))
            .expect("valid arguments")
            .settings
    }

    /// A configuration file holding `text`, and its path: the file lives as long as the
    /// directory returned with it.
    fn config_file(text: &str) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("webhookd.toml");
        std::fs::write(&file, text).unwrap();
        let path = file.to_str().unwrap().to_owned();
        (dir, path)
    }

    #[test]
    fn defaults() {
        let config = Config::load(Settings::default()).unwrap();
        assert_eq!(config.listen, DEFAULT_LISTEN);
        assert_eq!(
            config.public_url_for(config.listen).unwrap().as_str(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(config.data_dir, PathBuf::from("webhookd-data"));
        assert_eq!(config.database_url, None);
        assert_eq!(config.body_limit, 1024 * 1024);
        assert_eq!(config.body_timeout, Duration::from_secs(30));
        assert_eq!(config.max_connections, 25_000);
        assert!(config.trusted_proxies.is_empty());
        assert!(!config.allow_private_targets);
        assert_eq!(config.log_format, LogFormat::Human);
        assert_eq!(config.retention_days, 30);
        assert_eq!(
            config.dispatch,
            DispatchSettings {
                enabled: true,
                concurrency: 64,
                per_target: 4,
                timeout: Duration::from_secs(15),
                max_attempts: 8,
                lease: None,
            }
        );
        assert_eq!(config.dispatch.lease(), Duration::from_secs(60));
    }

    #[test]
    fn rate_limiter_follows_the_store_unless_set() {
        let sqlite = Config::load(Settings::default()).unwrap();
        assert_eq!(sqlite.rate_limiter(), RateLimiterKind::Memory);
        let postgres =
            Config::load(settings(&["--database-url", "postgres://db/webhookd"])).unwrap();
        assert_eq!(postgres.rate_limiter(), RateLimiterKind::Shared);
        let compared = Config::load(settings(&[
            "--database-url",
            "postgres://db/webhookd",
            "--rate-limiter",
            "memory",
        ]))
        .unwrap();
        assert_eq!(compared.rate_limiter(), RateLimiterKind::Memory);

        let (_dir, path) =
            config_file("database_url = \"postgres://db/webhookd\"\nrate_limiter = \"memory\"\n");
        let from_file = Config::load(settings(&["--config", &path])).unwrap();
        assert_eq!(from_file.rate_limiter(), RateLimiterKind::Memory);
        let flag_over_file =
            Config::load(settings(&["--config", &path, "--rate-limiter", "shared"])).unwrap();
        assert_eq!(flag_over_file.rate_limiter(), RateLimiterKind::Shared);

        // Not parsed from flags, which would read DATABASE_URL from the environment.
        let error = Config::load(Settings {
            rate_limiter: Some(RateLimiterKind::Shared),
            ..Settings::default()
        })
        .unwrap_err();
        assert!(
            error.to_string().contains("needs --database-url"),
            "{error}"
        );
        assert!(Cli::try_parse_from(["webhookd", "--rate-limiter", "redis"]).is_err());
    }

    #[test]
    fn dispatch_settings() {
        let (_dir, path) = config_file(
            "no_dispatch = true\ndispatch_concurrency = 8\ndelivery_timeout = 30\nmax_attempts = 3\n\
             dispatch_lease = 90\n",
        );
        let from_file = Config::load(settings(&["--config", &path]))
            .unwrap()
            .dispatch;
        assert_eq!(
            from_file,
            DispatchSettings {
                enabled: false,
                concurrency: 8,
                per_target: 4,
                timeout: Duration::from_secs(30),
                max_attempts: 3,
                lease: Some(Duration::from_secs(90)),
            }
        );
        let flags = Config::load(settings(&[
            "--config",
            &path,
            "--no-dispatch=false",
            "--dispatch-per-target",
            "2",
            "--delivery-timeout",
            "5",
        ]))
        .unwrap()
        .dispatch;
        assert!(flags.enabled);
        assert_eq!(flags.per_target, 2);
        assert_eq!(flags.timeout, Duration::from_secs(5));
        assert_eq!(flags.concurrency, 8);
        assert_eq!(flags.lease(), Duration::from_secs(90));
        assert!(
            !Config::load(settings(&["--no-dispatch"]))
                .unwrap()
                .dispatch
                .enabled
        );
        for bad in [
            &["--dispatch-concurrency", "0"][..],
            &["--dispatch-per-target", "0"],
            &["--delivery-timeout", "0"],
            &["--delivery-timeout", "601"],
            &["--max-attempts", "0"],
            &["--dispatch-lease", "0"],
            &["--dispatch-lease", "14"],
            &["--dispatch-lease", "16"],
            &["--delivery-timeout", "2", "--dispatch-lease", "2"],
            &["--dispatch-lease", "86401"],
        ] {
            assert!(Config::load(settings(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_lease_outlasts_an_attempt() {
        let lease = |args: &[&str]| Config::load(settings(args)).map(|c| c.dispatch.lease());
        let secs = Duration::from_secs;
        // Derived: twice the timeout, at least a minute.
        assert_eq!(lease(&[]).unwrap(), secs(60));
        assert_eq!(lease(&["--delivery-timeout", "45"]).unwrap(), secs(90));
        // Configured: as given, once it outlasts an attempt cut at nine tenths of it.
        assert_eq!(lease(&["--dispatch-lease", "17"]).unwrap(), secs(17));
        assert_eq!(
            lease(&["--delivery-timeout", "1", "--dispatch-lease", "2"]).unwrap(),
            secs(2)
        );
        assert_eq!(
            lease(&["--delivery-timeout", "9", "--dispatch-lease", "10"]).unwrap(),
            secs(10)
        );
        let refused = lease(&["--delivery-timeout", "10", "--dispatch-lease", "11"])
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("must outlast a delivery attempt")
                && refused.contains("at least 12 s"),
            "{refused}"
        );
    }

    #[test]
    fn flags_override_the_file() {
        let (_dir, path) = config_file(
            r#"
listen = "0.0.0.0:9000"
data_dir = "/var/lib/webhookd"
body_limit = "2MiB"
trusted_proxies = ["10.0.0.0/8"]
allow_private_targets = true
log_format = "json"
retention_days = 7
body_timeout = 12
max_connections = 500
"#,
        );
        let from_file = Config::load(settings(&["--config", &path])).unwrap();
        assert_eq!(from_file.listen, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(
            from_file.public_url_for(from_file.listen).unwrap().as_str(),
            "http://127.0.0.1:9000"
        );
        assert_eq!(from_file.data_dir, PathBuf::from("/var/lib/webhookd"));
        assert_eq!(from_file.body_limit, 2 * 1024 * 1024);
        assert_eq!(
            from_file.trusted_proxies,
            vec!["10.0.0.0/8".parse::<IpNet>().unwrap()]
        );
        assert!(from_file.allow_private_targets);
        assert_eq!(from_file.log_format, LogFormat::Json);
        assert_eq!(from_file.retention_days, 7);
        assert_eq!(from_file.body_timeout, Duration::from_secs(12));
        assert_eq!(from_file.max_connections, 500);

        let flags = Config::load(settings(&[
            "--config",
            &path,
            "--listen",
            "127.0.0.1:7000",
            "--public-url",
            "https://hooks.example.com/",
            "--body-limit",
            "4096",
            "--trusted-proxy",
            "192.168.0.0/16",
            "--trusted-proxy",
            "::1/128",
            "--allow-private-targets=false",
            "--log-format",
            "human",
            "--body-timeout",
            "3",
        ]))
        .unwrap();
        assert_eq!(flags.listen, "127.0.0.1:7000".parse().unwrap());
        assert_eq!(
            flags.public_url_for(flags.listen).unwrap().as_str(),
            "https://hooks.example.com"
        );
        assert_eq!(flags.body_limit, 4096);
        assert_eq!(flags.trusted_proxies.len(), 2);
        assert!(!flags.allow_private_targets);
        assert_eq!(flags.log_format, LogFormat::Human);
        assert_eq!(flags.body_timeout, Duration::from_secs(3));
        // Unset by flags: still from the file.
        assert_eq!(flags.retention_days, 7);
        assert_eq!(flags.max_connections, 500);
    }

    #[test]
    fn refuses_unknown_file_keys_and_bad_values() {
        let (_dir, path) = config_file("listen_on = \"127.0.0.1:1\"\n");
        assert!(Config::load(settings(&["--config", &path])).is_err());
        assert!(Config::load(settings(&["--public-url", "ftp://x"])).is_err());
        assert!(Config::load(settings(&["--retention-days", "0"])).is_err());
        assert!(Cli::try_parse_from(["webhookd", "--trusted-proxy", "not-a-cidr"]).is_err());
        assert!(Cli::try_parse_from(["webhookd", "--log-format", "xml"]).is_err());
    }

    #[test]
    fn subcommands_parse() {
        let cli = Cli::try_parse_from(["webhookd", "org", "create", "--name", "Acme"]).unwrap();
        assert!(
            matches!(cli.command, Some(Command::Org(OrgCommand::Create { name })) if name == "Acme")
        );
        let cli = Cli::try_parse_from([
            "webhookd",
            "api-key",
            "create",
            "--organization",
            "x",
            "--name",
            "ci",
            "--role",
            "viewer",
            "--data-dir",
            "/tmp/d",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::ApiKey(ApiKeyCommand::Create {
                role: KeyRole::Viewer,
                ..
            }))
        ));
        assert_eq!(cli.settings.data_dir, Some(PathBuf::from("/tmp/d")));
        assert!(Cli::try_parse_from(["webhookd", "serve"]).is_ok());
        assert!(Cli::try_parse_from(["webhookd", "migrate"]).is_ok());
    }
}
