//! Changes that make cached ingest routes stale, heard by every node on the database.
//!
//! Each write that changes what a route holds (a webhook created or updated, an organization
//! updated) sends `NOTIFY webhookd_routes` inside its own transaction: PostgreSQL delivers it to
//! every listening session when, and only when, the transaction commits. [`ChangeListener`]
//! listens on a connection of its own and reports each announcement, and each time it starts
//! listening again after a loss (when announcements may have been missed).

use std::fmt;
use std::pin::pin;
use std::str::FromStr as _;
use std::time::{Duration, Instant};

use diesel::sql_types::Text;
use diesel_async::{AsyncPgConnection, RunQueryDsl as _};
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client, NoTls};
use uuid::Uuid;
use webhook_domain::model::{OrganizationId, Stale, WebhookId};
use webhook_domain::ports::ErrorChain;

/// The channel the announcements go on.
pub const CHANNEL: &str = "webhookd_routes";

/// The `application_name` of the listening connection, by which an operator finds it in
/// `pg_stat_activity`.
pub const APPLICATION_NAME: &str = "webhookd route listener";

const WEBHOOK: &str = "webhook:";
const ORGANIZATION: &str = "organization:";

/// The payload announcing `stale`: `webhook:<id>` or `organization:<id>`.
fn payload(stale: Stale) -> String {
    match stale {
        Stale::Webhook(id) => format!("{WEBHOOK}{}", id.as_uuid()),
        Stale::Organization(id) => format!("{ORGANIZATION}{}", id.as_uuid()),
    }
}

/// What a payload announces; `None` for one this version does not know.
fn parse_payload(payload: &str) -> Option<Stale> {
    if let Some(id) = payload.strip_prefix(WEBHOOK) {
        return Uuid::parse_str(id)
            .ok()
            .map(|id| Stale::Webhook(WebhookId::from_uuid(id)));
    }
    let id = payload.strip_prefix(ORGANIZATION)?;
    Uuid::parse_str(id)
        .ok()
        .map(|id| Stale::Organization(OrganizationId::from_uuid(id)))
}

/// Announces `stale` to every listening node once the transaction on `conn` commits.
pub(crate) async fn announce(
    conn: &mut AsyncPgConnection,
    stale: Stale,
) -> Result<(), diesel::result::Error> {
    diesel::sql_query("SELECT pg_notify($1, $2)")
        .bind::<Text, _>(CHANNEL)
        .bind::<Text, _>(payload(stale))
        .execute(conn)
        .await
        .map(drop)
}

/// What a [`ChangeListener`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeEvent {
    /// Listening, first or again after [`ChangeEvent::Lost`]: changes committed before now
    /// may have gone unheard, so any cached route may be stale.
    Listening,
    /// A committed change made these routes stale.
    Changed(Stale),
    /// The listening connection is lost: changes go unheard until the next
    /// [`ChangeEvent::Listening`].
    Lost,
}

/// How a [`ChangeListener`] keeps its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerOptions {
    /// The wait before the first try to connect again; it doubles with each failed try.
    pub first_retry: Duration,
    /// The longest wait between two tries.
    pub max_retry: Duration,
    /// How often the connection is checked with a query: a connection cut without a word
    /// (a dead peer, a dropped route) is noticed within this plus `timeout`.
    pub heartbeat: Duration,
    /// How long connecting, starting to listen and a check may take.
    pub timeout: Duration,
}

impl Default for ListenerOptions {
    fn default() -> Self {
        Self {
            first_retry: Duration::from_millis(100),
            max_retry: Duration::from_secs(5),
            heartbeat: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
        }
    }
}

/// The database URL cannot be used for listening.
#[derive(Debug, thiserror::Error)]
#[error("the database URL cannot be read")]
pub struct UrlError(#[source] tokio_postgres::Error);

/// Hears the changes every node commits, on a connection of its own; see the module's
/// documentation.
pub struct ChangeListener {
    config: tokio_postgres::Config,
    options: ListenerOptions,
}

impl fmt::Debug for ChangeListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The configuration holds the password.
        f.debug_struct("ChangeListener")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// Why a listening connection ended or could not be had.
#[derive(Debug, thiserror::Error)]
enum Lost {
    #[error("the database did not answer within {0:?}")]
    Unresponsive(Duration),
    #[error("the server closed the connection")]
    Closed,
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
}

/// A time when changes went unheard: the log says so once, when it begins, and again when it
/// ends.
struct Outage {
    since: Instant,
    failed_tries: u32,
}

impl Outage {
    /// An outage that begins with `error`, on a connection that was listening or not.
    fn begin(error: &Lost, was_listening: bool) -> Self {
        if was_listening {
            tracing::warn!(
                error = %ErrorChain(error),
                "lost the connection that listens for route changes; other nodes' changes reach \
                 this node when its cached routes expire, until it listens again"
            );
        } else {
            tracing::warn!(
                error = %ErrorChain(error),
                "cannot listen for route changes; other nodes' changes reach this node when its \
                 cached routes expire, until it can"
            );
        }
        Self {
            since: Instant::now(),
            failed_tries: u32::from(!was_listening),
        }
    }

    fn failed_again(&mut self, error: &Lost) {
        self.failed_tries += 1;
        tracing::debug!(error = %ErrorChain(error), failed_tries = self.failed_tries, "still cannot listen for route changes");
    }

    /// Listening (again) after `outage`, or for the first time.
    fn end(outage: Option<Self>) {
        let Some(outage) = outage else {
            tracing::info!("listening for route changes");
            return;
        };
        tracing::info!(
            unheard_ms = u64::try_from(outage.since.elapsed().as_millis()).unwrap_or(u64::MAX),
            failed_tries = outage.failed_tries,
            "listening for route changes again"
        );
    }
}

/// A connection that listens: its client and the payloads its connection task forwards.
struct Session {
    client: Client,
    payloads: mpsc::UnboundedReceiver<Result<String, tokio_postgres::Error>>,
}

impl ChangeListener {
    /// A listener on the database at `url` (the store's URL).
    pub fn new(url: &str, options: ListenerOptions) -> Result<Self, UrlError> {
        let mut config = tokio_postgres::Config::from_str(url).map_err(UrlError)?;
        config.application_name(APPLICATION_NAME);
        Ok(Self { config, options })
    }

    /// Listens until `stopped` completes, reporting to `on_event`.
    ///
    /// When the connection is lost or cannot be had, it says so in the log once per outage (a
    /// warning), reports [`ChangeEvent::Lost`], and tries again after a wait that doubles from
    /// [`ListenerOptions::first_retry`] up to [`ListenerOptions::max_retry`]; once listening
    /// again it reports [`ChangeEvent::Listening`].
    pub async fn run(
        &self,
        mut on_event: impl FnMut(ChangeEvent),
        stopped: impl Future<Output = ()>,
    ) {
        let mut stopped = pin!(stopped);
        let options = self.options;
        let mut delay = options.first_retry;
        let mut outage: Option<Outage> = None;
        loop {
            let attempt = tokio::select! {
                () = &mut stopped => return,
                attempt = self.connect() => attempt,
            };
            match attempt {
                Ok(mut session) => {
                    on_event(ChangeEvent::Listening);
                    Outage::end(outage.take());
                    let listening_since = Instant::now();
                    let lost = tokio::select! {
                        () = &mut stopped => return,
                        lost = session.follow(&mut on_event, options) => lost,
                    };
                    on_event(ChangeEvent::Lost);
                    outage = Some(Outage::begin(&lost, true));
                    // A connection that held a while starts a new series of waits.
                    if listening_since.elapsed() >= options.max_retry {
                        delay = options.first_retry;
                    }
                }
                Err(error) => match &mut outage {
                    Some(outage) => outage.failed_again(&error),
                    None => outage = Some(Outage::begin(&error, false)),
                },
            }
            tokio::select! {
                () = &mut stopped => return,
                () = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(options.max_retry);
        }
    }

    /// Connects and starts listening.
    async fn connect(&self) -> Result<Session, Lost> {
        let timeout = self.options.timeout;
        let (client, mut connection) = tokio::time::timeout(timeout, self.config.connect(NoTls))
            .await
            .map_err(|_| Lost::Unresponsive(timeout))??;
        let (forward, payloads) = mpsc::unbounded_channel();
        // Drives the connection; ends when it fails or closes, or when the client is dropped.
        tokio::spawn(async move {
            loop {
                let message = match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notification(n))) if n.channel() == CHANNEL => {
                        Ok(n.payload().to_owned())
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(error)) => Err(error),
                    None => break,
                };
                let last = message.is_err();
                if forward.send(message).is_err() || last {
                    break;
                }
            }
        });
        tokio::time::timeout(timeout, client.batch_execute(&format!("LISTEN {CHANNEL}")))
            .await
            .map_err(|_| Lost::Unresponsive(timeout))??;
        Ok(Session { client, payloads })
    }
}

impl Session {
    /// Reports each announcement until the connection is lost, checking it every
    /// [`ListenerOptions::heartbeat`].
    async fn follow(
        &mut self,
        on_event: &mut impl FnMut(ChangeEvent),
        options: ListenerOptions,
    ) -> Lost {
        let Self { client, payloads } = self;
        let mut heartbeat = pin!(async {
            loop {
                tokio::time::sleep(options.heartbeat).await;
                match tokio::time::timeout(options.timeout, client.batch_execute("SELECT 1")).await
                {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => return Lost::Database(error),
                    Err(_) => return Lost::Unresponsive(options.timeout),
                }
            }
        });
        loop {
            tokio::select! {
                lost = &mut heartbeat => return lost,
                payload = payloads.recv() => match payload {
                    Some(Ok(payload)) => {
                        if let Some(stale) = parse_payload(&payload) {
                            on_event(ChangeEvent::Changed(stale));
                        } else {
                            tracing::debug!(payload, "ignored an unknown route announcement");
                        }
                    }
                    Some(Err(error)) => return Lost::Database(error),
                    None => return Lost::Closed,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_name_what_is_stale() {
        let webhook = Stale::Webhook(WebhookId::from_uuid(Uuid::from_u128(1)));
        let organization = Stale::Organization(OrganizationId::from_uuid(Uuid::from_u128(2)));
        assert_eq!(
            payload(webhook),
            "webhook:00000000-0000-0000-0000-000000000001"
        );
        assert_eq!(
            payload(organization),
            "organization:00000000-0000-0000-0000-000000000002"
        );
        for stale in [webhook, organization] {
            assert_eq!(parse_payload(&payload(stale)), Some(stale));
        }
        for unknown in [
            "",
            "webhook:",
            "webhook:42",
            "target:00000000-0000-0000-0000-000000000001",
        ] {
            assert_eq!(parse_payload(unknown), None, "{unknown}");
        }
        assert!(
            payload(webhook).len() < 8000,
            "fits PostgreSQL's payload limit"
        );
    }
}
