//! Several real `webhookd` nodes on one throwaway PostgreSQL database, as operators run them
//! behind a balancer (docs/OPERATIONS.md, "Several nodes"): one database, one master key, one
//! public URL, each node with its own data directory and port.
//!
//! A case starts a [`Cluster`], spreads its requests over the nodes ([`Cluster::ingest_url`]
//! gives a webhook's URL on any node), kills or stops nodes, and ends with [`Cluster::stop`],
//! which stops the nodes still running and drops the database. Each property of a cluster is
//! one `#[tokio::test]` function in a module of its own beside [`changes`], [`dispatch`] and
//! [`limits`]; a module's doc says which property its cases prove.

mod changes;
mod dispatch;
mod limits;

use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tokio::task::JoinSet;
use uuid::Uuid;
use webhook_store_pg::test_db;

use crate::daemon::Daemon;
use crate::{eventually, metrics};

/// The public URL every node of a cluster is given: webhook URLs are the same whichever node
/// made them, as behind a balancer.
pub(crate) const PUBLIC_URL: &str = "https://hooks.cluster.test";

/// Nodes of one cluster, numbered from 0 in the order they were asked for.
pub(crate) struct Cluster {
    database: String,
    database_url: String,
    master_key: String,
    nodes: Vec<Member>,
    admin_key: String,
}

struct Member {
    _dir: tempfile::TempDir,
    /// `None` once killed or stopped.
    daemon: Option<Daemon>,
}

impl Cluster {
    /// `count` nodes started together on a new, migrated database, each with the cluster's
    /// settings (database URL, master key, public URL) and `args`. One of them creates the
    /// default organization; its admin key is [`Cluster::admin_key`].
    pub(crate) async fn start(count: usize, args: &[&str]) -> Self {
        let database = test_db::create_database().await;
        let database_url = test_db::database_url(&database);
        let random = [Uuid::new_v4().into_bytes(), Uuid::new_v4().into_bytes()].concat();
        let mut cluster = Self {
            database,
            database_url,
            master_key: STANDARD.encode(random),
            nodes: Vec::new(),
            admin_key: String::new(),
        };
        let mut starting = JoinSet::new();
        for index in 0..count {
            let dir = tempfile::tempdir().unwrap();
            let (path, args) = (dir.path().to_owned(), cluster.node_args(args));
            starting.spawn(async move { (index, start(path, args).await) });
            cluster.nodes.push(Member {
                _dir: dir,
                daemon: None,
            });
        }
        for (index, daemon) in starting.join_all().await {
            cluster.nodes[index].daemon = Some(daemon);
        }
        cluster.admin_key = eventually("the first start's admin key", || async {
            let keys: Vec<String> = cluster.live().filter_map(|(_, d)| d.admin_key()).collect();
            assert!(
                keys.len() <= 1,
                "more than one node created an organization"
            );
            keys.into_iter().next()
        })
        .await;
        cluster
    }

    /// What every node of this cluster is started with, then `args`.
    fn node_args(&self, args: &[&str]) -> Vec<String> {
        let own = [
            "--database-url",
            &self.database_url,
            "--master-key",
            &self.master_key,
            "--public-url",
            PUBLIC_URL,
        ];
        own.iter().chain(args).map(|&arg| arg.to_owned()).collect()
    }

    /// The admin API key of the default organization.
    pub(crate) fn admin_key(&self) -> &str {
        &self.admin_key
    }

    /// Node `index`, which must be running.
    pub(crate) fn node(&self, index: usize) -> &Daemon {
        self.nodes[index]
            .daemon
            .as_ref()
            .unwrap_or_else(|| panic!("node {index} is not running"))
    }

    /// The running nodes and their numbers.
    pub(crate) fn live(&self) -> impl Iterator<Item = (usize, &Daemon)> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(index, member)| member.daemon.as_ref().map(|daemon| (index, daemon)))
    }

    /// The URL `webhook_url` (as handed out, on [`PUBLIC_URL`]) has on node `index`, as the
    /// balancer would send it there.
    pub(crate) fn ingest_url(&self, index: usize, webhook_url: &str) -> String {
        let path = webhook_url
            .strip_prefix(PUBLIC_URL)
            .unwrap_or_else(|| panic!("{webhook_url} is not on {PUBLIC_URL}"));
        format!("{}{path}", self.node(index).base)
    }

    /// The node the `n`th request goes to, taking the running nodes in turn.
    pub(crate) fn round_robin(&self, n: usize) -> usize {
        let live: Vec<usize> = self.live().map(|(index, _)| index).collect();
        live[n % live.len()]
    }

    /// Kills node `index` with SIGKILL, as a crash would: nothing of it runs afterwards.
    pub(crate) async fn kill(&mut self, index: usize) {
        let daemon = self.nodes[index].daemon.take().expect("a running node");
        daemon.kill().await;
    }

    /// Stops every running node with SIGTERM (each must exit cleanly) and drops the database.
    pub(crate) async fn stop(mut self) {
        for (index, member) in self.nodes.iter_mut().enumerate() {
            if let Some(daemon) = member.daemon.take() {
                let status = daemon.stop().await;
                assert!(status.success(), "node {index} exited with {status}");
            }
        }
        test_db::drop_database(&self.database).await;
    }
}

/// A node serving from `data_dir` with `args`.
async fn start(data_dir: PathBuf, args: Vec<String>) -> Daemon {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Daemon::start(&data_dir, &args).await
}

/// The value of the metric line `name` (with its labels, if any) on `daemon`.
pub(crate) async fn metric(daemon: &Daemon, name: &str) -> Option<f64> {
    metrics(daemon).await.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(' ')?;
        value.parse().ok()
    })
}
