//! Dispatchers sharing one PostgreSQL queue: each task is delivered once while leases hold,
//! and a dispatcher that dies loses nothing.

use std::collections::HashMap;
use std::time::Duration;

use webhook_dispatch::DispatchConfig;
use webhook_domain::model::{Task, TaskStatus};
use webhook_domain::ports::Clock as _;
use webhook_store_pg::test_db::{database_url, drop_database, fresh_store};
use webhook_store_pg::{PgStore, PgStoreOptions};

use crate::support::{
    Reply, Running, TargetServer, World, clock, delivery_config, dispatcher, eventually,
    generated_secret, limited, stored, task_ids,
};

/// Two stores on one fresh database, as two nodes would have, and the database's name.
async fn two_nodes() -> (PgStore, PgStore, String) {
    let first = fresh_store().await;
    let name = first.test_database().expect("a test database");
    let second =
        PgStore::open(&database_url(&name), PgStoreOptions::default()).expect("the pool builds");
    (first, second, name)
}

async fn count_status(store: &PgStore, tasks: &[Task], status: TaskStatus) -> usize {
    let mut count = 0;
    for task in tasks {
        if stored(store, task).await.status == status {
            count += 1;
        }
    }
    count
}

#[tokio::test(flavor = "multi_thread")]
async fn two_dispatchers_deliver_every_task_exactly_once() {
    let server = TargetServer::ok().await;
    let (first, second, name) = two_nodes().await;
    let clock = clock();
    let world = World::seed(&first, &server.url("/"), &generated_secret(1)).await;
    let tasks = world.enqueue(&first, 60, clock.now()).await;
    let config = limited(5, 8, 8);
    let running: Vec<Running> = [first.clone(), second.clone()]
        .into_iter()
        .map(|store| Running::start(dispatcher(store, &clock, delivery_config(), config)))
        .collect();
    eventually(Duration::from_secs(30), "every task delivered", || async {
        count_status(&first, &tasks, TaskStatus::Delivered).await == tasks.len()
    })
    .await;
    for run in running {
        run.stop().await;
    }

    let mut seen: HashMap<String, usize> = HashMap::new();
    for request in server.received() {
        *seen.entry(request.task_id()).or_default() += 1;
    }
    for id in task_ids(&tasks) {
        assert_eq!(seen.get(&id), Some(&1), "task {id}");
    }
    assert_eq!(server.count(), tasks.len());
    for task in &tasks {
        assert_eq!(stored(&first, task).await.attempts, 1);
    }
    drop((first, second));
    drop_database(&name).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_dispatcher_loses_nothing() {
    // The first four requests hang, as if the node died mid-delivery; later ones succeed.
    let server = TargetServer::start(|index, _| {
        if index < 4 {
            Reply::status(200).after(Duration::from_secs(120))
        } else {
            Reply::status(200)
        }
    })
    .await;
    let (first, second, name) = two_nodes().await;
    let clock = clock();
    let world = World::seed(&first, &server.url("/"), &generated_secret(2)).await;
    let tasks = world.enqueue(&first, 10, clock.now()).await;
    let config = DispatchConfig {
        lease_for: Duration::from_secs(30),
        ..limited(4, 4, 4)
    };

    let doomed = dispatcher(first.clone(), &clock, delivery_config(), config);
    let killed = tokio::spawn(async move { doomed.run(std::future::pending()).await });
    eventually(
        Duration::from_secs(10),
        "four deliveries in progress",
        || async { server.count() == 4 },
    )
    .await;
    killed.abort();
    assert!(killed.await.unwrap_err().is_cancelled());

    // The survivor delivers everything not leased by the dead node...
    let survivor = dispatcher(second.clone(), &clock, delivery_config(), config);
    while survivor.run_once().await.unwrap().claimed > 0 {}
    assert_eq!(
        count_status(&second, &tasks, TaskStatus::Delivered).await,
        6
    );
    assert_eq!(count_status(&second, &tasks, TaskStatus::Queued).await, 4);

    // ...and the rest once those leases expire.
    clock.advance(Duration::from_secs(31));
    while survivor.run_once().await.unwrap().claimed > 0 {}
    assert_eq!(
        count_status(&second, &tasks, TaskStatus::Delivered).await,
        tasks.len()
    );
    assert_eq!(server.count(), 14);
    drop((first, second));
    drop_database(&name).await;
}
