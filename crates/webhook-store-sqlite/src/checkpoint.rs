//! The checkpointer: a thread of its own that copies committed pages from the WAL back into
//! the database file, so that the writer seldom has to stop committing to do it.
//!
//! The writer tells the checkpointer after each commit. Commits gather for [`INTERVAL`]; then
//! a `PASSIVE` checkpoint copies what it can without waiting for anyone (each page once,
//! however often it was rewritten meanwhile). The writer keeps SQLite's automatic checkpoint
//! (see `WAL_CHECKPOINT_PAGES`): a passive checkpoint running beside a writer that never pauses
//! never finds the WAL wholly copied, which is what lets the next transaction start the WAL
//! from its beginning, so when the WAL reaches that size the writer checkpoints it itself —
//! finding little left to copy — and the WAL starts over. When the writer is gone, a last
//! `TRUNCATE` checkpoint leaves an empty WAL behind.
//!
//! A checkpoint never decides whether a commit is durable: a commit is durable once its WAL
//! frames are synced, before the writer answers.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection as _;
use diesel::sqlite::SqliteConnection;

/// How long commits gather before a checkpoint.
const INTERVAL: Duration = Duration::from_millis(250);

/// The writer's side: tells the checkpointer that a commit happened. Dropping it stops the
/// thread, after its last checkpoint.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    commits: SyncSender<()>,
}

impl Checkpointer {
    /// Starts the checkpointer thread on `conn`, a read-write connection of its own.
    pub(crate) fn spawn(conn: SqliteConnection) -> std::io::Result<(Self, JoinHandle<()>)> {
        let (commits, receiver) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("webhookd-sqlite-checkpoint".to_owned())
            .spawn(move || run(conn, &receiver))?;
        Ok((Self { commits }, thread))
    }

    /// A commit happened. Never blocks: one pending notice stands for any number of commits.
    pub(crate) fn committed(&self) {
        let _ = self.commits.try_send(());
    }
}

fn checkpoint(conn: &mut SqliteConnection, mode: &str) {
    if let Err(error) = conn.batch_execute(&format!("PRAGMA wal_checkpoint({mode});")) {
        tracing::warn!(mode, error = %error, "checkpointing the SQLite WAL failed");
    }
}

fn run(mut conn: SqliteConnection, commits: &Receiver<()>) {
    'commits: while commits.recv().is_ok() {
        let due = Instant::now() + INTERVAL;
        loop {
            match commits.recv_timeout(due.saturating_duration_since(Instant::now())) {
                Ok(()) => {}
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => break 'commits,
            }
        }
        checkpoint(&mut conn, "PASSIVE");
    }
    checkpoint(&mut conn, "TRUNCATE");
}
