//! The single writer: one thread owns the write connection and commits everything queued
//! since its last commit in one transaction (group commit).
//!
//! A batch first runs as one plain `BEGIN IMMEDIATE` transaction: the common case, where every
//! operation succeeds, pays for no savepoints (each savepoint makes SQLite copy every page it
//! first touches into a sub-journal). When an operation fails (a duplicate id, a lost lease),
//! that attempt is rolled back and the batch runs again with each operation inside its own
//! savepoint, so the failing one rolls back alone and its caller alone gets the error. When
//! the batch itself fails — `BEGIN`, an engine error such as busy, or the `COMMIT` — nothing of
//! it was written, and each operation is run again in a transaction of its own, so every caller
//! still gets its own answer. When the failure is the database file's (an I/O error, a full
//! disk, a read-only file), every operation would fail alike: each caller gets `Unavailable` at
//! once, and the warning is logged at most once per [`FAILURE_LOG_INTERVAL`] with a count.
//!
//! This store never answers `StoreError::OutcomeUnknown`: a commit's outcome cannot be lost on
//! the way back, because there is no way back to lose. SQLite runs inside this process, and
//! `COMMIT` is a function call on the writer thread that returns only once the transaction is
//! committed or rolled back; when it reports an error (busy, I/O, a full disk), the transaction
//! is not in the database the connection sees (in WAL mode a commit becomes visible when its
//! last frame is in the WAL index, which a failed commit never updates), so reading back could
//! only confirm what the error already says. The one uncertain case is a failing disk: when the
//! `fsync` after the commit's frames fails, a later start's WAL recovery may find those frames;
//! no read-back on the running store could settle that either. A crash of the process ends the
//! callers too, so no answer is sent for a commit whose outcome the writer did not see.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use diesel::connection::Connection as _;
use diesel::sqlite::SqliteConnection;
use tokio::sync::{mpsc, oneshot};
use webhook_domain::ports::StoreError;

use crate::checkpoint::Checkpointer;
use crate::error::{Failure, WriterClosed};

/// One queued write with its answer channel.
pub(crate) trait Job: Send {
    /// Runs the operation; may be called again after a failed batch.
    fn run(&mut self, conn: &mut SqliteConnection) -> Result<(), Failure>;
    /// Answers the caller with the operation's outcome once it is final.
    fn complete(self: Box<Self>, outcome: Result<(), Failure>);
}

struct TypedJob<T, F> {
    op: F,
    output: Option<T>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for TypedJob<T, F>
where
    T: Send,
    F: FnMut(&mut SqliteConnection) -> Result<T, Failure> + Send,
{
    fn run(&mut self, conn: &mut SqliteConnection) -> Result<(), Failure> {
        self.output = Some((self.op)(conn)?);
        Ok(())
    }

    fn complete(self: Box<Self>, outcome: Result<(), Failure>) {
        let answer = match (outcome, self.output) {
            (Ok(()), Some(output)) => Ok(output),
            (Ok(()), None) => Err(Failure::corrupt("write result").into_store()),
            (Err(failure), _) => Err(failure.into_store()),
        };
        // The caller may have gone away (cancelled request); the write stands either way.
        let _ = self.reply.send(answer);
    }
}

/// The sending side: cheap to clone, one per store handle.
#[derive(Debug, Clone)]
pub(crate) struct WriterHandle {
    sender: mpsc::Sender<Box<dyn Job>>,
}

impl WriterHandle {
    /// Queues `op` for the writer and waits for its commit.
    pub(crate) async fn write<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&mut SqliteConnection) -> Result<T, Failure> + Send + 'static,
    {
        let (job, answer) = job(op);
        self.sender
            .send(job)
            .await
            .map_err(|_| StoreError::Unavailable(Box::new(WriterClosed)))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable(Box::new(WriterClosed)))?
    }
}

/// Starts the writer thread on `conn`. It stops when every [`WriterHandle`] is dropped, after
/// committing what was queued, and then `checkpointer` stops too.
pub(crate) fn spawn(
    conn: SqliteConnection,
    checkpointer: Checkpointer,
    queue: usize,
    max_batch: usize,
) -> std::io::Result<(WriterHandle, JoinHandle<()>)> {
    let (sender, receiver) = mpsc::channel(queue.max(1));
    let thread = std::thread::Builder::new()
        .name("webhookd-sqlite-writer".to_owned())
        .spawn(move || run(conn, &checkpointer, receiver, max_batch.max(1)))?;
    Ok((WriterHandle { sender }, thread))
}

/// How often a failing group commit is logged at most, after its first failure.
const FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Bounds the warnings of failed batches: the first at once, then one per
/// [`FAILURE_LOG_INTERVAL`] saying how many were left out.
#[derive(Debug, Default)]
struct FailureLog {
    logged_at: Option<Instant>,
    left_out: u64,
}

impl FailureLog {
    fn warn(&mut self, size: usize, failure: &Failure, action: &str) {
        let now = Instant::now();
        if self
            .logged_at
            .is_some_and(|at| now.saturating_duration_since(at) < FAILURE_LOG_INTERVAL)
        {
            self.left_out += 1;
            return;
        }
        tracing::warn!(
            batch.size = size,
            error = ?failure,
            left_out = self.left_out,
            "group commit failed; {action}"
        );
        self.logged_at = Some(now);
        self.left_out = 0;
    }
}

fn run(
    mut conn: SqliteConnection,
    checkpointer: &Checkpointer,
    mut receiver: mpsc::Receiver<Box<dyn Job>>,
    max_batch: usize,
) {
    let mut failures = FailureLog::default();
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(max_batch);
    while let Some(first) = receiver.blocking_recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit_batch(&mut conn, &mut batch, &mut failures);
        checkpointer.committed();
    }
}

fn commit_batch(
    conn: &mut SqliteConnection,
    batch: &mut Vec<Box<dyn Job>>,
    failures: &mut FailureLog,
) {
    if batch.len() > 1 {
        let together =
            conn.immediate_transaction(|conn| batch.iter_mut().try_for_each(|job| job.run(conn)));
        let failure = match together {
            Ok(()) => {
                for job in batch.drain(..) {
                    job.complete(Ok(()));
                }
                return;
            }
            Err(failure) => failure,
        };
        // An operation's own failure: isolate it. An engine failure would only recur there.
        let failure = if failure.keeps_transaction() {
            match commit_isolated(conn, batch) {
                Ok(()) => return,
                Err(failure) => failure,
            }
        } else {
            failure
        };
        if failure.is_engine_wide() {
            failures.warn(batch.len(), &failure, "the database cannot be written");
            for job in batch.drain(..) {
                job.complete(Err(Failure::batch_failed(&failure)));
            }
            return;
        }
        failures.warn(batch.len(), &failure, "writing its operations one by one");
    }
    for mut job in batch.drain(..) {
        let outcome = conn.immediate_transaction(|conn| job.run(conn));
        job.complete(outcome);
    }
}

/// Runs the batch again with each operation in a savepoint of its own, so that a failing one
/// rolls back alone, and answers every caller once it is committed. On an engine failure
/// nothing was written and nobody is answered yet.
fn commit_isolated(
    conn: &mut SqliteConnection,
    batch: &mut Vec<Box<dyn Job>>,
) -> Result<(), Failure> {
    let mut outcomes: Vec<Result<(), Failure>> = Vec::with_capacity(batch.len());
    conn.immediate_transaction(|conn| {
        for job in batch.iter_mut() {
            match conn.transaction(|conn| job.run(conn)) {
                Ok(()) => outcomes.push(Ok(())),
                Err(failure) if failure.keeps_transaction() => outcomes.push(Err(failure)),
                Err(failure) => return Err(failure),
            }
        }
        Ok::<_, Failure>(())
    })?;
    for (job, outcome) in batch.drain(..).zip(outcomes) {
        job.complete(outcome);
    }
    Ok(())
}

/// A job running `op` as [`WriterHandle::write`] queues it, and the receiver of its answer.
pub(crate) fn job<T, F>(op: F) -> (Box<dyn Job>, oneshot::Receiver<Result<T, StoreError>>)
where
    T: Send + 'static,
    F: FnMut(&mut SqliteConnection) -> Result<T, Failure> + Send + 'static,
{
    let (reply, answer) = oneshot::channel();
    let job = Box::new(TypedJob {
        op,
        output: None,
        reply,
    });
    (job, answer)
}

/// Commits `jobs` as the writer commits one batch: for tests of operations that are written
/// together.
#[cfg(test)]
pub(crate) fn commit_together(conn: &mut SqliteConnection, mut jobs: Vec<Box<dyn Job>>) {
    commit_batch(conn, &mut jobs, &mut FailureLog::default());
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use diesel::result::{DatabaseErrorKind, Error as DieselError};

    use super::*;

    /// A job that counts its runs; the failing one fails every run with `message`.
    struct Probe {
        fails_with: Option<&'static str>,
        runs: Arc<AtomicUsize>,
        outcomes: Arc<Mutex<Vec<Result<(), String>>>>,
    }

    impl Job for Probe {
        fn run(&mut self, _conn: &mut SqliteConnection) -> Result<(), Failure> {
            self.runs.fetch_add(1, Ordering::SeqCst);
            match self.fails_with {
                Some(message) => Err(Failure::Db(DieselError::DatabaseError(
                    DatabaseErrorKind::Unknown,
                    Box::new(message.to_owned()),
                ))),
                None => Ok(()),
            }
        }

        fn complete(self: Box<Self>, outcome: Result<(), Failure>) {
            let outcome = outcome.map_err(|f| match f.into_store() {
                StoreError::Unavailable(_) => "unavailable".to_owned(),
                other => format!("{other:?}"),
            });
            self.outcomes.lock().unwrap().push(outcome);
        }
    }

    /// Commits a batch of three jobs whose first fails with `message`: how many runs it took
    /// and what the callers got.
    fn batch_with_failure(message: &'static str) -> (usize, Vec<Result<(), String>>) {
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        let runs = Arc::new(AtomicUsize::new(0));
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let mut batch: Vec<Box<dyn Job>> = [Some(message), None, None]
            .into_iter()
            .map(|fails_with| {
                Box::new(Probe {
                    fails_with,
                    runs: Arc::clone(&runs),
                    outcomes: Arc::clone(&outcomes),
                }) as Box<dyn Job>
            })
            .collect();
        commit_batch(&mut conn, &mut batch, &mut FailureLog::default());
        let outcomes = outcomes.lock().unwrap().clone();
        (runs.load(Ordering::SeqCst), outcomes)
    }

    #[test]
    fn a_full_disk_fails_the_batch_at_once_without_a_retry_per_operation() {
        let (runs, outcomes) = batch_with_failure("database or disk is full");
        assert_eq!(runs, 1, "the batch ran once, not again one by one");
        assert_eq!(outcomes, vec![Err("unavailable".to_owned()); 3]);
    }

    #[test]
    fn an_operation_failure_is_isolated_one_by_one() {
        let (runs, outcomes) = batch_with_failure("some engine error of one statement");
        assert_eq!(runs, 4, "once together, then each alone");
        assert!(outcomes[0].is_err(), "{outcomes:?}");
        assert_eq!(outcomes[1..], [Ok(()), Ok(())]);
    }
}
