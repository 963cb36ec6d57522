//! What the stores' bench programs share: reading their arguments, writing a log through a store
//! with several writers at once, timing one write, and the percentiles of what they timed.

#![expect(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "indexes far below 2^52"
)]

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use webhook_domain::model::{Invocation, Task};
use webhook_domain::ports::{InvocationLog, Store};

/// The program's argument at `position` (1 is the first) as a `T`, or `default` where there is
/// none or it is not one.
pub fn arg<T: FromStr>(position: usize, default: T) -> T {
    std::env::args()
        .nth(position)
        .and_then(|text| text.parse().ok())
        .unwrap_or(default)
}

/// The `p` quantile (0 to 1) of `sorted` durations, in ms; 0 when there are none.
pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len().max(1) - 1) as f64 * p).round() as usize;
    sorted.get(index).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// Records `invocation` with its `task` through `store`; returns how long that took.
pub async fn time_record<S: InvocationLog>(
    store: &S,
    invocation: &Invocation,
    task: &Task,
) -> Duration {
    let started = Instant::now();
    store
        .record_invocation(invocation, Some(task))
        .await
        .expect("record");
    started.elapsed()
}

/// Logs `count` invocations through `store` with `writers` writing at once: each writer takes
/// the next number `n` in turn and records what its `entry` (made by `writer_entries` from the
/// writer's number) gives for it, an invocation and the task it makes if any. Returns how long
/// it took.
pub(crate) async fn log_concurrently<S, E>(
    store: &S,
    writers: u64,
    count: u64,
    writer_entries: impl Fn(u64) -> E,
) -> Duration
where
    S: Store + Clone + 'static,
    E: FnMut(u64) -> (Invocation, Option<Task>) + Send + 'static,
{
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for writer in 0..writers {
        let (store, next) = (store.clone(), next.clone());
        let mut entry = writer_entries(writer);
        tasks.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= count {
                    return;
                }
                let (invocation, task) = entry(n);
                store
                    .record_invocation(&invocation, task.as_ref())
                    .await
                    .expect("record");
            }
        });
    }
    tasks.join_all().await;
    started.elapsed()
}
