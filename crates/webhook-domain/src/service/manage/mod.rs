//! The management use cases behind `/api/v1`: authentication and roles, organizations, API
//! keys, targets, webhooks, the invocation log and replays, the task board and the test endpoint.
//!
//! Every use case takes the authenticated [`Caller`], validates all of its input before it
//! writes anything (nothing is half-applied), and answers [`ManageError::NotFound`] for objects
//! of other organizations, never `Forbidden`.

mod api_keys;
mod auth;
mod error;
mod invocations;
mod organization;
mod replay;
mod targets;
mod tasks;
mod test_send;
mod webhooks;

pub use api_keys::{API_KEY_PREFIX, CreatedApiKey, NewApiKey};
pub use auth::Caller;
pub use error::{AuthError, ConflictCode, Invalid, ManageError};
pub use invocations::{InvocationRecord, LogQuery, parse_invocation_filter, parse_outcome_filter};
pub use organization::OrganizationPatch;
pub use replay::Replay;
pub use targets::{CreatedTarget, NewTarget, SIGNING_SECRET_PREFIX, TargetPatch};
pub use tasks::{MAX_TASKS_WITH_CONTEXT, parse_task_status};
pub use test_send::{DEFAULT_TEST_PAYLOAD, TestResult, TestSender};
pub use webhooks::{
    CreatedWebhook, MAX_PREVIOUS_SECRET_SECONDS, NewWebhook, SecretRotation, SourceFields,
    TargetSummary, WEBHOOK_SECRET_PREFIX, WebhookPatch, WebhookView, parse_webhook_status_filter,
};

use std::str::FromStr;

use crate::model::{
    Cursor, Name, PageRequest, PublicUrl, RatePerMinute, Secret, Webhook, WebhookId,
};
use crate::ports::{Adapters, Entropy, WebhookStore};

/// The management use cases over a node's [`Adapters`].
pub struct Management<A: Adapters> {
    pub store: A::Store,
    pub sealer: A::Sealer,
    pub hasher: A::Hasher,
    pub clock: A::Clock,
    pub entropy: A::Entropy,
    /// Checks target endpoints against outbound policy when they are saved.
    pub endpoints: A::Endpoints,
    /// Told of every change that makes cached ingest routes stale.
    pub notifier: A::Notifier,
    /// Checks instruction templates when they are saved.
    pub templates: A::Templates,
    /// Base of the webhook URLs handed out.
    pub public_url: PublicUrl,
}

impl<A: Adapters> std::fmt::Debug for Management<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Management")
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

/// Reads an id from a path segment or a body field.
pub fn parse_id<T: FromStr>(field: &str, text: &str) -> Result<T, Invalid> {
    text.parse()
        .map_err(|_| Invalid::new(field, "must be a UUID"))
}

/// The `id` of the object a write names, once the caller is allowed to write: the role is
/// checked first, so a viewer is refused whatever the id.
fn written_id<T: FromStr>(caller: &Caller, id: &str) -> Result<T, ManageError> {
    caller.require_write()?;
    Ok(parse_id("id", id)?)
}

/// Validates the `limit` and `cursor` of a list request.
pub fn page_request(limit: Option<i64>, cursor: Option<&str>) -> Result<PageRequest, Invalid> {
    let limit = match limit {
        None => PageRequest::DEFAULT_LIMIT,
        Some(limit) => u32::try_from(limit).unwrap_or(0),
    };
    let page = PageRequest::first(limit).map_err(|e| Invalid::new("limit", e))?;
    let after = cursor
        .map(|text| {
            Cursor::decode(text)
                .ok_or_else(|| Invalid::new("cursor", "is not a cursor returned by this list"))
        })
        .transpose()?;
    Ok(page.after(after))
}

impl<A: Adapters> Management<A> {
    /// A webhook of the caller's organization, whatever its status; another organization's
    /// webhook is not found.
    async fn owned(&self, caller: &Caller, id: WebhookId) -> Result<Webhook, ManageError> {
        let webhook = self.store.webhook(id).await?;
        if webhook.organization_id == caller.organization_id {
            Ok(webhook)
        } else {
            Err(ManageError::NotFound)
        }
    }
}

fn parse_name(field: &str, text: &str) -> Result<Name, Invalid> {
    Name::parse(text).map_err(|e| Invalid::new(field, e))
}

fn parse_rate(field: &str, per_minute: i64) -> Result<RatePerMinute, Invalid> {
    u32::try_from(per_minute)
        .ok()
        .and_then(|n| RatePerMinute::new(n).ok())
        .ok_or_else(|| {
            Invalid::new(
                field,
                format!(
                    "must be between 1 and {} requests per minute",
                    RatePerMinute::MAX
                ),
            )
        })
}

/// A patch's new `name`, parsed, when it has one.
fn patch_name(name: Option<&str>) -> Result<Option<Name>, Invalid> {
    name.map(|n| parse_name("name", n)).transpose()
}

/// A patch's new `rate_limit_per_minute`, parsed, when it has one.
fn patch_rate(per_minute: Option<i64>) -> Result<Option<RatePerMinute>, Invalid> {
    per_minute
        .map(|r| parse_rate("rate_limit_per_minute", r))
        .transpose()
}

/// Puts a patch's value in `field` when the patch has one; an absent value leaves it as it is.
fn apply<T>(field: &mut T, change: Option<T>) {
    if let Some(value) = change {
        *field = value;
    }
}

fn generate_secret(entropy: &impl Entropy, prefix: &str) -> Secret {
    let mut random = [0u8; Secret::GENERATED_BYTES];
    entropy.fill(&mut random);
    Secret::from_random(prefix, &random)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_requests() {
        let check = |limit, cursor, expected: Result<u32, &str>| {
            let result = page_request(limit, cursor);
            assert_eq!(
                result
                    .as_ref()
                    .map(PageRequest::limit)
                    .map_err(|e| e.field.as_str()),
                expected,
                "{limit:?} {cursor:?}"
            );
        };
        check(None, None, Ok(50));
        check(Some(1), None, Ok(1));
        check(Some(500), None, Ok(500));
        check(Some(0), None, Err("limit"));
        check(Some(501), None, Err("limit"));
        check(Some(-1), None, Err("limit"));
        check(Some(i64::MAX), None, Err("limit"));
        check(None, Some("nope"), Err("cursor"));
        let cursor = Cursor {
            at: crate::model::Timestamp::from_unix_micros(7),
            id: uuid::Uuid::nil(),
        };
        let page = page_request(Some(10), Some(&cursor.encode())).unwrap();
        assert_eq!(page.after, Some(cursor));
    }

    #[test]
    fn rates_name_their_field() {
        assert_eq!(parse_rate("x", 1).map(RatePerMinute::get), Ok(1));
        assert_eq!(
            parse_rate("x", 1_000_000).map(RatePerMinute::get),
            Ok(1_000_000)
        );
        for bad in [0, -5, 1_000_001, i64::MAX] {
            assert_eq!(parse_rate("x", bad).unwrap_err().field, "x", "{bad}");
        }
    }

    #[test]
    fn ids_name_their_field() {
        assert!(parse_id::<WebhookId>("id", "67e55044-10b1-426f-9247-bb680e5fe0c8").is_ok());
        assert_eq!(
            parse_id::<WebhookId>("target_id", "nope").unwrap_err(),
            Invalid::new("target_id", "must be a UUID")
        );
    }
}
