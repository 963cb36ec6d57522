//! Each kind of answer becomes the right verdict, and every attempt is recorded.

use std::time::Duration;

use uuid::Uuid;
use webhook_dispatch::{DeliveryConfig, OutboundGuard, OutboundPolicy};
use webhook_domain::model::QueueStats;
use webhook_domain::model::{ApiKeyId, DeliveryAttempt, PublicUrl, Role, Task, TaskStatus};
use webhook_domain::ports::{Clock as _, InvocationLog as _, TaskQueue as _};
use webhook_domain::rules::RetryPolicy;
use webhook_domain::service::manage::Caller;
use webhook_store_mem::MemoryStore;
use webhook_system::{ManualClock, MasterKey};
use webhookd::config::Config;
use webhookd::{Node, NodeParts};

use crate::support::{
    Reply, TargetServer, TestDispatcher, World, clock, closed_port, delivery_config,
    dispatch_config, dispatcher, generated_secret, metrics_text, one_task, queued, stored,
};

#[tokio::test]
async fn a_2xx_delivers_the_task_with_the_documented_body() {
    let server = TargetServer::start(|_, _| Reply::status(202).body("queued it".into())).await;
    let (store, clock, world, tasks) = queued(&server.url("/hooks?team=1"), 1, 1).await;
    let task = &tasks[0];
    let dispatcher = dispatcher(store.clone(), &clock, delivery_config(), dispatch_config());
    let waiting = dispatcher.refresh_queue_stats().await.unwrap();
    assert_eq!((waiting.queued, waiting.due), (1, 1));

    let outcome = dispatcher.run_once().await.unwrap();
    assert_eq!(outcome.claimed, 1);

    let received = server.received();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(request.path, "/hooks");
    assert_eq!(request.header("content-type"), "application/json");
    assert_eq!(request.header("webhook-id"), task.id.to_string());
    assert!(request.header("webhook-signature").starts_with("v1,"));
    let body = request.json();
    assert_eq!(body["task_id"], task.id.to_string());
    assert_eq!(body["webhook_id"], world.webhook.id.to_string());
    assert_eq!(body["target_id"], world.target.id.to_string());
    assert_eq!(body["instruction"], "Deploy api");
    assert!(body["context"].is_object(), "context is the payload object");
    assert_eq!(body["context"]["message"], "Deploy api");
    assert_eq!(body["event_type"], "deploy.finished");
    assert_eq!(body["test"], false);
    assert_eq!(body["created_at"], task.created_at.to_rfc3339());
    assert_eq!(body["source"]["verified"], true);
    assert_eq!(body["source"]["source_ip"], "203.0.113.7");
    assert_eq!(
        body["source"]["received_at"],
        task.source.received_at.to_rfc3339()
    );

    let after = stored(&store, task).await;
    assert_eq!(after.status, TaskStatus::Delivered);
    assert_eq!(after.attempts, 1);
    assert_eq!(after.last_error, None);
    let attempts = attempts(&store, task).await;
    assert_eq!(attempts.len(), 1);
    let response = &attempts[0].response;
    assert_eq!(response.status_code, Some(202));
    assert_eq!(response.body_excerpt.as_deref(), Some("queued it"));
    assert!(response.succeeded);
    assert_eq!(response.error, None);
    let invocation = store
        .invocation(task.organization_id, task.invocation_id)
        .await
        .unwrap();
    assert_eq!(invocation.target_response.as_ref(), Some(response));

    assert_eq!(
        dispatcher.run_once().await.unwrap().claimed,
        0,
        "nothing left"
    );
    assert_eq!(
        dispatcher.refresh_queue_stats().await.unwrap(),
        QueueStats::default()
    );
    let metrics = metrics_text(&dispatcher);
    assert!(metrics.contains(r#"webhookd_dispatch_attempts_total{result="delivered"} 1"#));
    assert!(
        metrics.contains("webhookd_dispatch_queued_tasks 0\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_500_is_retried_later_and_then_delivered() {
    let server = TargetServer::start(|index, _| {
        if index == 0 {
            Reply::status(500).body("database down".into())
        } else {
            Reply::status(200)
        }
    })
    .await;
    let (store, clock, task, dispatcher) = dispatching(&server.url("/"), 2).await;

    dispatcher.run_once().await.unwrap();
    let after = stored(&store, &task).await;
    assert_eq!(after.attempts, 1);
    assert_outcome(&after, TaskStatus::Queued, "the target answered HTTP 500");
    // Full jitter under a 10 s ceiling for the first retry.
    assert!(after.next_attempt_at >= clock.now());
    assert!(after.next_attempt_at <= clock.now().plus(Duration::from_secs(10)));
    let invocation = store
        .invocation(task.organization_id, task.invocation_id)
        .await
        .unwrap();
    let shown = invocation.target_response.unwrap();
    assert_eq!(shown.status_code, Some(500));
    assert_eq!(shown.body_excerpt.as_deref(), Some("database down"));
    assert!(!shown.succeeded);

    // Not due yet, unless the retry drew a zero delay.
    if after.next_attempt_at > clock.now() {
        assert_eq!(dispatcher.run_once().await.unwrap().claimed, 0);
    }
    clock.advance(Duration::from_secs(11));
    dispatcher.run_once().await.unwrap();
    let after = stored(&store, &task).await;
    assert_eq!(after.status, TaskStatus::Delivered);
    assert_eq!(after.attempts, 2);
    let attempts = attempts(&store, &task).await;
    let numbers: Vec<u32> = attempts.iter().map(|a| a.number).collect();
    assert_eq!(numbers, [1, 2]);
    assert_eq!(server.count(), 2);
}

#[tokio::test]
async fn a_400_fails_the_task_at_once() {
    let server = TargetServer::start(|_, _| Reply::status(400).body("bad task".into())).await;
    let (store, clock, task, dispatcher) = dispatching(&server.url("/"), 3).await;

    dispatcher.run_once().await.unwrap();
    let after = stored(&store, &task).await;
    assert_eq!(after.attempts, 1);
    assert_outcome(&after, TaskStatus::Failed, "the target answered HTTP 400");
    clock.advance(Duration::from_secs(3600));
    assert_eq!(dispatcher.run_once().await.unwrap().claimed, 0);
    assert_eq!(server.count(), 1);
}

#[tokio::test]
async fn a_timeout_is_recorded_and_retried() {
    let server =
        TargetServer::start(|_, _| Reply::status(200).after(Duration::from_secs(30))).await;
    let (store, clock, _, task) = one_task(&server.url("/slow"), 4).await;
    let config = DeliveryConfig {
        timeout: Duration::from_millis(300),
        ..delivery_config()
    };
    let dispatcher = dispatcher(store.clone(), &clock, config, dispatch_config());

    dispatcher.run_once().await.unwrap();
    let after = stored(&store, &task).await;
    assert_outcome(&after, TaskStatus::Queued, "no answer before the timeout");
    let attempts = attempts(&store, &task).await;
    let response = &attempts[0].response;
    assert_eq!(response.status_code, None);
    assert!(response.latency_ms >= 300, "{}", response.latency_ms);
    assert!(response.latency_ms < 5_000, "{}", response.latency_ms);
}

#[tokio::test]
async fn a_refused_connection_is_recorded_and_retried() {
    let store = MemoryStore::new();
    let clock = clock();
    let port = closed_port().await;
    let world = World::seed(
        &store,
        &format!("http://127.0.0.1:{port}/"),
        &generated_secret(5),
    )
    .await;
    let task = world.enqueue(&store, 1, clock.now()).await.remove(0);
    let dispatcher = dispatcher(store.clone(), &clock, delivery_config(), dispatch_config());

    dispatcher.run_once().await.unwrap();
    let after = stored(&store, &task).await;
    assert_eq!(after.status, TaskStatus::Queued);
    let error = after.last_error.unwrap();
    assert!(error.starts_with("connection failed: "), "{error}");
    assert!(
        !error.contains(&format!("{port}/")),
        "no URL in the error: {error}"
    );
}

#[tokio::test]
async fn exhausted_retries_fail_the_task() {
    let server = TargetServer::start(|_, _| Reply::status(503)).await;
    let (store, clock, task, dispatcher) = dispatching(&server.url("/"), 6).await;

    for attempt in 1..=3 {
        dispatcher.run_once().await.unwrap();
        let after = stored(&store, &task).await;
        assert_eq!(after.attempts, attempt);
        let expected = if attempt < 3 {
            TaskStatus::Queued
        } else {
            TaskStatus::Failed
        };
        assert_eq!(after.status, expected, "after attempt {attempt}");
        clock.advance(Duration::from_secs(61));
    }
    assert_eq!(dispatcher.run_once().await.unwrap().claimed, 0);
    assert_eq!(server.count(), 3);
}

/// A task whose retries ran out and that an operator retries by hand gets the whole schedule
/// again (as many attempts, backing off from the first delay), while its attempts go on being
/// numbered after the earlier ones.
#[tokio::test]
async fn a_retry_by_hand_grants_the_whole_schedule_again() {
    let server = TargetServer::start(|_, _| Reply::status(503)).await;
    let (store, clock, world, task) = one_task(&server.url("/"), 12).await;
    let config = dispatch_config();
    let dispatcher = dispatcher(store.clone(), &clock, delivery_config(), config);
    let node = Node::build(
        &Config::default(),
        NodeParts {
            store: store.clone(),
            clock: clock.clone(),
            endpoints: OutboundGuard(OutboundPolicy::default()),
            master_key: MasterKey::from_bytes([3; 32]),
            public_url: PublicUrl::parse("https://hooks.example.com").unwrap(),
        },
    )
    .unwrap();
    let board = &node.manage.management;
    let operator = Caller {
        organization_id: world.organization.id,
        role: Role::Admin,
        key_id: ApiKeyId::from_uuid(Uuid::new_v4()),
    };
    let max = config.retry.max_attempts;
    assert_eq!(max, 3);

    for round in 0..3 {
        if round > 0 {
            let retried = board
                .retry_task(&operator, &task.id.to_string())
                .await
                .unwrap();
            assert_eq!(retried.status, TaskStatus::Queued);
            assert_eq!(retried.attempts, round * max);
            assert_eq!(retried.attempts_before_round, round * max);
            assert_eq!(retried.next_attempt_at, clock.now(), "due at once");
            assert_eq!(retried.last_error, None);
        }
        for in_round in 1..=max {
            assert_eq!(
                dispatcher.run_once().await.unwrap().claimed,
                1,
                "round {round}, attempt {in_round}"
            );
            let after = stored(&store, &task).await;
            assert_eq!(after.attempts, round * max + in_round);
            if in_round < max {
                assert_eq!(after.status, TaskStatus::Queued, "round {round}");
                // Backing off as in the first round: a ceiling of 10 s, then 20 s.
                let ceiling = config.retry.base * 2_u32.pow(in_round - 1);
                assert!(
                    after.next_attempt_at <= clock.now().plus(ceiling),
                    "round {round}, attempt {in_round}: due {:?} after {:?}",
                    after.next_attempt_at,
                    clock.now()
                );
            } else {
                assert_eq!(after.status, TaskStatus::Failed, "round {round}");
            }
            clock.advance(config.retry.max_delay + Duration::from_secs(1));
        }
        assert_eq!(dispatcher.run_once().await.unwrap().claimed, 0);
    }

    let numbers: Vec<u32> = store
        .delivery_attempts(task.organization_id, task.id)
        .await
        .unwrap()
        .iter()
        .map(|a| a.number)
        .collect();
    assert_eq!(numbers, (1..=3 * max).collect::<Vec<_>>());
    assert_eq!(server.count(), 9);
}

#[tokio::test]
async fn retry_after_is_honoured_up_to_the_longest_delay() {
    let server = TargetServer::start(|index, _| {
        Reply::status(429).header("retry-after", if index == 0 { "30" } else { "7200" })
    })
    .await;
    let (store, clock, _, task) = one_task(&server.url("/"), 7).await;
    let mut config = dispatch_config();
    config.retry = RetryPolicy {
        max_attempts: 5,
        base: Duration::from_secs(1),
        max_delay: Duration::from_secs(60),
    };
    let dispatcher = dispatcher(store.clone(), &clock, delivery_config(), config);

    // (seconds waited before the attempt, the wait the answer sets, why)
    for (waited, expected, why) in [
        (0, 30, "as the first answer asks"),
        (30, 60, "clamped to max_delay"),
    ] {
        clock.advance(Duration::from_secs(waited));
        dispatcher.run_once().await.unwrap();
        let after = stored(&store, &task).await;
        let wait = after.next_attempt_at.since(clock.now());
        assert!(
            wait >= Duration::from_secs(expected - 1) && wait <= Duration::from_secs(expected),
            "{why}: {wait:?}"
        );
    }
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let server = TargetServer::start(|_, request| {
        if request.path == "/old" {
            Reply::status(307).header("location", "/new")
        } else {
            Reply::status(200)
        }
    })
    .await;
    let (store, _, task, dispatcher) = dispatching(&server.url("/old"), 8).await;

    dispatcher.run_once().await.unwrap();
    assert_eq!(server.count(), 1);
    let after = stored(&store, &task).await;
    assert_outcome(&after, TaskStatus::Queued, "the target answered HTTP 307");
}

#[tokio::test]
async fn only_the_start_of_a_long_answer_is_kept() {
    let server = TargetServer::start(|_, _| Reply::status(200).body("x".repeat(100_000))).await;
    let (store, _, task, dispatcher) = dispatching(&server.url("/"), 9).await;

    dispatcher.run_once().await.unwrap();
    let attempts = attempts(&store, &task).await;
    let excerpt = attempts[0].response.body_excerpt.as_deref().unwrap();
    assert_eq!(excerpt.len(), DeliveryAttempt::EXCERPT_MAX);
    assert_eq!(stored(&store, &task).await.status, TaskStatus::Delivered);
}

/// Asserts the status a task was left in and the error its last attempt recorded.
fn assert_outcome(task: &Task, status: TaskStatus, error: &str) {
    assert_eq!(task.status, status);
    assert_eq!(task.last_error.as_deref(), Some(error));
}

/// The task's delivery attempts, oldest first.
async fn attempts(store: &MemoryStore, task: &Task) -> Vec<DeliveryAttempt> {
    store
        .delivery_attempts(task.organization_id, task.id)
        .await
        .expect("read the attempts")
}

/// A task for `endpoint` and a dispatcher with the default settings.
async fn dispatching(
    endpoint: &str,
    secret: u8,
) -> (MemoryStore, ManualClock, Task, TestDispatcher<MemoryStore>) {
    let (store, clock, _, task) = one_task(endpoint, secret).await;
    let dispatcher = dispatcher(store.clone(), &clock, delivery_config(), dispatch_config());
    (store, clock, task, dispatcher)
}
