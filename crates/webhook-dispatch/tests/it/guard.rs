//! The SSRF guard refuses private and special addresses, literal or resolved, without sending
//! anything.

use std::time::Duration;

use webhook_dispatch::{DeliveryConfig, HttpDelivery, OutboundPolicy};
use webhook_domain::model::{DeliveryFailure, DeliveryReport};
use webhook_domain::model::{EndpointUrl, Task, TaskStatus};
use webhook_domain::ports::{Clock as _, TargetDelivery as _};
use webhook_system::ManualClock;

use crate::support::{
    TargetServer, delivery_config, dispatch_config, dispatcher, generated_secret, one_task, stored,
};

fn strict() -> DeliveryConfig {
    DeliveryConfig {
        policy: OutboundPolicy::default(),
        timeout: Duration::from_secs(2),
        ..delivery_config()
    }
}

/// A target on loopback, a task for it, and a delivery under the strict outbound policy, which
/// refuses loopback: nothing may reach the target.
async fn refusing(secret: u8) -> (TargetServer, ManualClock, Task, HttpDelivery) {
    let server = TargetServer::ok().await;
    let (_, clock, _, task) = one_task(&server.url("/"), secret).await;
    (
        server,
        clock,
        task,
        HttpDelivery::new(strict()).expect("HTTP client"),
    )
}

#[tokio::test]
async fn refuses_private_addresses_without_sending_anything() {
    let (server, clock, task, delivery) = refusing(1).await;
    let port = server.addr.port();
    let secret = generated_secret(1);
    for url in [
        format!("http://127.0.0.1:{port}/"),
        format!("http://localhost:{port}/"),
        format!("http://[::1]:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        format!("http://2130706433:{port}/"),
        "http://10.1.2.3/".to_owned(),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://[fe80::1]/".to_owned(),
        "http://[fd00::1]/".to_owned(),
        "http://100.64.0.1/".to_owned(),
    ] {
        let endpoint = EndpointUrl::parse(&url).unwrap();
        let report = delivery
            .deliver(&endpoint, &secret, &task, clock.now())
            .await;
        assert!(
            matches!(
                report,
                DeliveryReport::Failed {
                    failure: DeliveryFailure::Blocked(_),
                    ..
                }
            ),
            "{url}: {report:?}"
        );
    }
    assert_eq!(server.count(), 0, "nothing reached the target");
}

#[tokio::test]
async fn a_refused_endpoint_fails_its_task_at_once() {
    let server = TargetServer::ok().await;
    let (store, clock, _, task) = one_task(&server.url("/"), 2).await;
    let dispatcher = dispatcher(store.clone(), &clock, strict(), dispatch_config());

    dispatcher.run_once().await.unwrap();
    let after = stored(&store, &task).await;
    assert_eq!(after.status, TaskStatus::Failed);
    let error = after.last_error.unwrap();
    assert!(
        error.starts_with("refused by the outbound address policy: 127.0.0.1"),
        "{error}"
    );
    assert_eq!(server.count(), 0);
}

#[tokio::test]
async fn a_refused_host_name_does_not_reveal_its_addresses() {
    let (server, clock, task, delivery) = refusing(3).await;
    let port = server.addr.port();
    let endpoint = EndpointUrl::parse(&format!("http://localhost:{port}/")).unwrap();
    let report = delivery
        .deliver(&endpoint, &generated_secret(3), &task, clock.now())
        .await;
    let DeliveryReport::Failed {
        failure: DeliveryFailure::Blocked(detail),
        ..
    } = report
    else {
        panic!("not refused: {report:?}");
    };
    assert_eq!(detail, "localhost resolves only to refused addresses");
    assert!(
        !detail.contains("127.0.0.1") && !detail.contains("::1"),
        "{detail}"
    );
    assert_eq!(server.count(), 0);
}
