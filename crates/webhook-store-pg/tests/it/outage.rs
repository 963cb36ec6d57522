//! PostgreSQL stopped under load (`pg_ctl -m immediate`) and started again, on a cluster of
//! the test's own: writes answer only `Ok` or the 503 kinds while it is down, the store recovers
//! without being rebuilt, every `Ok` is durable, and no write answered `Unavailable` is stored.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use uuid::Uuid;
use webhook_domain::model::{InvocationId, TaskId, Webhook};
use webhook_domain::ports::{InvocationLog as _, StoreError, TaskQueue as _};
use webhook_store_contract::fixtures::{World, accepted, at};
use webhook_store_pg::{PgStore, PgStoreOptions};

use crate::cluster::Cluster;

/// Concurrent senders: enough that group commits are in flight when the server dies.
const SENDERS: usize = 16;
/// Outages in one run.
const OUTAGES: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Ok,
    Unavailable,
    OutcomeUnknown,
}

struct Write {
    invocation: InvocationId,
    task: TaskId,
    answer: Answer,
    /// When the write was sent, from the start of the run.
    sent: Duration,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_immediate_shutdown_under_load_loses_nothing_acknowledged_and_hides_nothing_stored() {
    let Some(cluster) = tokio::task::spawn_blocking(Cluster::start).await.unwrap() else {
        eprintln!(
            "SKIPPED: PostgreSQL's server programs (initdb, pg_ctl) are not installed, so no \
             throwaway cluster can be stopped"
        );
        return;
    };
    let cluster = Arc::new(cluster);
    let options = PgStoreOptions {
        acquire_timeout: Duration::from_secs(2),
        outcome_timeout: Duration::from_secs(20),
        ..PgStoreOptions::default()
    };
    let store = PgStore::connect(&cluster.url(), options)
        .await
        .expect("the throwaway cluster is up");
    let world = World::seed(&store).await;

    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let senders: Vec<_> = (0..SENDERS)
        .map(|_| {
            let (store, webhook) = (store.clone(), world.webhook.clone());
            let (stop, acknowledged) = (Arc::clone(&stop), Arc::clone(&acknowledged));
            tokio::spawn(send(store, webhook, start, stop, acknowledged))
        })
        .collect();

    let mut restarts = Vec::new();
    wait_for_acknowledgements(&acknowledged, 100, "before the first outage").await;
    for _ in 0..OUTAGES {
        let down = Arc::clone(&cluster);
        tokio::task::spawn_blocking(move || down.stop_immediately())
            .await
            .unwrap();
        // The outage itself: the senders keep sending meanwhile.
        tokio::time::sleep(Duration::from_millis(700)).await;
        let up = Arc::clone(&cluster);
        tokio::task::spawn_blocking(move || up.restart())
            .await
            .unwrap();
        restarts.push(start.elapsed());
        let target = acknowledged.load(Ordering::SeqCst) + 100;
        wait_for_acknowledgements(&acknowledged, target, "after a restart").await;
    }
    stop.store(true, Ordering::SeqCst);
    let mut writes = Vec::new();
    for sender in senders {
        writes.extend(sender.await.unwrap());
    }

    // Every write sent after the last restart that was answered: the store recovered on its
    // own, with the pool it had.
    let last_restart = *restarts.last().unwrap();
    assert!(
        writes
            .iter()
            .any(|w| w.sent > last_restart && w.answer == Answer::Ok),
        "no write succeeded after the last restart"
    );

    let org = world.organization.id;
    let mut lost = Vec::new();
    let mut hidden = Vec::new();
    for write in &writes {
        let invocation = store.invocation(org, write.invocation).await;
        let task = store.task(org, write.task).await;
        match write.answer {
            Answer::Ok if invocation.is_err() || task.is_err() => lost.push(write.invocation),
            Answer::Unavailable
                if !matches!(invocation, Err(StoreError::NotFound))
                    || !matches!(task, Err(StoreError::NotFound)) =>
            {
                hidden.push(write.invocation);
            }
            _ => {}
        }
    }
    let count = |answer| writes.iter().filter(|w| w.answer == answer).count();
    eprintln!(
        "{} writes: {} Ok, {} Unavailable, {} OutcomeUnknown over {OUTAGES} outages",
        writes.len(),
        count(Answer::Ok),
        count(Answer::Unavailable),
        count(Answer::OutcomeUnknown)
    );
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
    assert!(
        hidden.is_empty(),
        "answered Unavailable but stored: {:?}",
        hidden.iter().map(|id| *id.as_uuid()).collect::<Vec<Uuid>>()
    );
    drop(store);
}

/// Sends events through `store` until `stop`, counting each `Ok` into `acknowledged`.
async fn send(
    store: PgStore,
    webhook: Webhook,
    start: Instant,
    stop: Arc<AtomicBool>,
    acknowledged: Arc<AtomicUsize>,
) -> Vec<Write> {
    let mut writes = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let (invocation, task) = accepted(&webhook, at(1));
        let sent = start.elapsed();
        let answer = match store.record_invocation(&invocation, Some(&task)).await {
            Ok(()) => Answer::Ok,
            Err(StoreError::Unavailable(_)) => Answer::Unavailable,
            Err(StoreError::OutcomeUnknown(_)) => Answer::OutcomeUnknown,
            Err(error) => panic!("answered neither Ok nor a 503 kind: {error:?}"),
        };
        if answer == Answer::Ok {
            acknowledged.fetch_add(1, Ordering::SeqCst);
        } else {
            // A sender backing off, as a real one would.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        writes.push(Write {
            invocation: invocation.id,
            task: task.id,
            answer,
            sent,
        });
    }
    writes
}

/// Polls until `acknowledged` reaches `target`, for at most 30 seconds.
async fn wait_for_acknowledgements(acknowledged: &AtomicUsize, target: usize, when: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while acknowledged.load(Ordering::SeqCst) < target {
        assert!(
            Instant::now() < deadline,
            "the store did not acknowledge writes {when} ({} of {target})",
            acknowledged.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
