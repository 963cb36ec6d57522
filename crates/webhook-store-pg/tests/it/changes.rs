//! Route changes across nodes: committed writes to webhooks and organizations are announced,
//! failed ones are not, and the listener comes back after its connection is cut or goes
//! silent, saying so.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;
use webhook_domain::model::{OrganizationId, Stale, WebhookStatus};
use webhook_domain::ports::{OrganizationStore as _, StoreError, WebhookStore as _};
use webhook_store_contract::fixtures::{World, at, rate, webhook};
use webhook_store_pg::test_db::{
    admin_url, allow_connections, cut_change_listeners, database_url, drop_database, fresh_store,
};
use webhook_store_pg::{APPLICATION_NAME, ChangeEvent, ChangeListener, ListenerOptions, PgStore};

use crate::support::{admin, backends};

/// A store on a fresh database, the database's name, and a world stored in it.
async fn seeded() -> (PgStore, String, World) {
    let store = fresh_store().await;
    let database = store.test_database().expect("a test database");
    let world = World::seed(&store).await;
    (store, database, world)
}

/// A listener running on its own task, its events on a channel; stopped when dropped.
struct Listening {
    events: mpsc::UnboundedReceiver<ChangeEvent>,
    _stop: oneshot::Sender<()>,
}

/// Short waits, so outages end quickly.
fn quick() -> ListenerOptions {
    ListenerOptions {
        first_retry: Duration::from_millis(20),
        max_retry: Duration::from_millis(200),
        ..ListenerOptions::default()
    }
}

impl Listening {
    /// Listens on `database` and waits until it listens.
    async fn start(database: &str) -> Self {
        Self::start_at(&database_url(database), quick()).await
    }

    /// Listens at `url` with `options` and waits until it listens.
    async fn start_at(url: &str, options: ListenerOptions) -> Self {
        let listener = ChangeListener::new(url, options).expect("a usable URL");
        let (send, events) = mpsc::unbounded_channel();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            listener
                .run(
                    move |event| {
                        let _ = send.send(event);
                    },
                    async move { drop(stopped.await) },
                )
                .await;
        });
        let mut listening = Self {
            events,
            _stop: stop,
        };
        listening.expect(ChangeEvent::Listening).await;
        listening
    }

    /// The next event, within five seconds.
    async fn next(&mut self) -> ChangeEvent {
        tokio::time::timeout(Duration::from_secs(5), self.events.recv())
            .await
            .expect("an event within 5 s")
            .expect("the listener runs")
    }

    async fn expect(&mut self, event: ChangeEvent) {
        assert_eq!(self.next().await, event);
    }

    /// Nothing comes within `wait`.
    async fn quiet_for(&mut self, wait: Duration) {
        if let Ok(event) = tokio::time::timeout(wait, self.events.recv()).await {
            panic!("nothing expected, got {event:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_changes_are_announced_and_failed_ones_are_not() {
    let (store, database, world) = seeded().await;
    let mut listening = Listening::start(&database).await;
    let changed_webhook = |id| ChangeEvent::Changed(Stale::Webhook(id));

    let mut disabled = world.webhook.clone();
    disabled.status = WebhookStatus::Disabled;
    store.update_webhook(&disabled).await.expect("stored");
    listening.expect(changed_webhook(disabled.id)).await;

    let mut limited = world.organization.clone();
    limited.rate_limit_per_minute = rate(7);
    store.update_organization(&limited).await.expect("stored");
    listening
        .expect(ChangeEvent::Changed(Stale::Organization(limited.id)))
        .await;

    let created = webhook(&world.target, at(1));
    store.insert_webhook(&created).await.expect("stored");
    listening.expect(changed_webhook(created.id)).await;

    // Refused writes change nothing and announce nothing.
    let mut deleted = created.clone();
    deleted.status = WebhookStatus::Deleted;
    store.update_webhook(&deleted).await.expect("stored");
    listening.expect(changed_webhook(created.id)).await;
    assert!(matches!(
        store.update_webhook(&created).await,
        Err(StoreError::Conflict(_))
    ));
    let mut unknown = limited.clone();
    unknown.id = OrganizationId::from_uuid(Uuid::new_v4());
    assert!(matches!(
        store.update_organization(&unknown).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.insert_webhook(&created).await,
        Err(StoreError::Conflict(_))
    ));
    listening.quiet_for(Duration::from_millis(300)).await;

    drop(listening);
    drop(store);
    drop_database(&database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_comes_back_after_its_connection_is_cut() {
    let (store, database, world) = seeded().await;
    let mut listening = Listening::start(&database).await;
    let mut admin = admin().await;
    let listener_backend = format!("application_name = '{APPLICATION_NAME}'");
    assert_eq!(backends(&mut admin, &database, &listener_backend).await, 1);

    // Cut: the listener says so and listens again.
    cut_change_listeners(&database).await;
    listening.expect(ChangeEvent::Lost).await;
    listening.expect(ChangeEvent::Listening).await;

    // Cut while new connections are refused: lost until they are allowed again; a change
    // committed meanwhile (on a connection the store already holds) goes unheard, which is
    // why listening again is reported.
    allow_connections(&database, false).await;
    cut_change_listeners(&database).await;
    listening.expect(ChangeEvent::Lost).await;
    let mut disabled = world.webhook.clone();
    disabled.status = WebhookStatus::Disabled;
    store.update_webhook(&disabled).await.expect("stored");
    listening.quiet_for(Duration::from_millis(500)).await;
    allow_connections(&database, true).await;
    listening.expect(ChangeEvent::Listening).await;

    // Heard again.
    disabled.status = WebhookStatus::Active;
    store.update_webhook(&disabled).await.expect("stored");
    listening
        .expect(ChangeEvent::Changed(Stale::Webhook(disabled.id)))
        .await;

    drop(listening);
    drop(store);
    drop_database(&database).await;
}

/// A TCP relay to the test server that can be frozen: while frozen it holds what either side
/// sends, as a network that drops packets without a word would.
struct Relay {
    address: std::net::SocketAddr,
    frozen: watch::Sender<bool>,
}

impl Relay {
    async fn start() -> Self {
        let server = url::Url::parse(&admin_url()).expect("DATABASE_URL is a URL");
        let upstream = format!(
            "{}:{}",
            server.host_str().expect("a host"),
            server.port().unwrap_or(5432)
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("an address");
        let (frozen, _) = watch::channel(false);
        let relay = Self { address, frozen };
        let frozen = relay.frozen.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pump(client_read, server_write, frozen.subscribe()));
                tokio::spawn(pump(server_read, client_write, frozen.subscribe()));
            }
        });
        relay
    }

    /// `url` through the relay.
    fn url(&self, url: &str) -> String {
        let mut url = url::Url::parse(url).expect("a URL");
        url.set_port(Some(self.address.port())).expect("a port");
        url.set_host(Some("127.0.0.1")).expect("a host");
        url.to_string()
    }

    fn freeze(&self, frozen: bool) {
        self.frozen.send_replace(frozen);
    }
}

/// Copies `from` to `to`, holding each chunk while `frozen`.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut frozen: watch::Receiver<bool>,
) {
    let mut buffer = vec![0; 16 * 1024];
    loop {
        let Ok(read) = from.read(&mut buffer).await else {
            return;
        };
        if read == 0 || frozen.wait_for(|frozen| !*frozen).await.is_err() {
            return;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_noticed_by_its_heartbeat() {
    let (store, database, world) = seeded().await;
    let relay = Relay::start().await;
    let options = ListenerOptions {
        heartbeat: Duration::from_millis(200),
        timeout: Duration::from_millis(300),
        ..quick()
    };
    let mut listening = Listening::start_at(&relay.url(&database_url(&database)), options).await;

    // The network goes silent: no error, no close, only no answer.
    relay.freeze(true);
    listening.expect(ChangeEvent::Lost).await;
    listening.quiet_for(Duration::from_millis(500)).await;
    relay.freeze(false);
    listening.expect(ChangeEvent::Listening).await;

    store.update_webhook(&world.webhook).await.expect("stored");
    listening
        .expect(ChangeEvent::Changed(Stale::Webhook(world.webhook.id)))
        .await;
    drop(listening);
    drop(store);
    drop_database(&database).await;
}
