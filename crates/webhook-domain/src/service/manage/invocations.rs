//! The invocation log of a webhook, and single entries.

use std::net::IpAddr;

use super::{Caller, Invalid, ManageError, Management, parse_id};
use crate::model::{
    DeliveryAttempt, Invocation, InvocationFilter, InvocationId, InvocationSummary, OutcomeFilter,
    Page, PageRequest, SearchWords, Task, Timestamp, WebhookId,
};
use crate::ports::{Adapters, InvocationLog, StoreError, TaskQueue};

/// The whole record of a request: the invocation (with its request's record), its task and
/// every delivery attempt of the task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvocationRecord {
    pub invocation: Invocation,
    /// The task it made, when it was accepted (and the task is still kept).
    pub task: Option<Task>,
    /// Every delivery attempt of the task, oldest first.
    pub attempts: Vec<DeliveryAttempt>,
}

/// The filters of an invocation list as the caller wrote them, each absent or its text.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogQuery<'a> {
    pub outcome: Option<&'a str>,
    pub event_type: Option<&'a str>,
    pub source_ip: Option<&'a str>,
    pub since: Option<&'a str>,
    pub until: Option<&'a str>,
    pub test: Option<&'a str>,
    pub q: Option<&'a str>,
}

fn instant(field: &str, text: &str) -> Result<Timestamp, Invalid> {
    Timestamp::parse_rfc3339(text).ok_or_else(|| {
        Invalid::new(
            field,
            "must be an RFC 3339 date and time, e.g. `2026-12-07T10:00:00Z`",
        )
    })
}

/// Reads the filters of the invocation log; an error names the first refused one.
pub fn parse_invocation_filter(query: &LogQuery<'_>) -> Result<InvocationFilter, Invalid> {
    let outcome = query.outcome.map(parse_outcome_filter).transpose()?;
    let event_type = query
        .event_type
        .map(|text| {
            if text.is_empty() {
                Err(Invalid::new("event_type", "must not be empty"))
            } else {
                Ok(text.to_owned())
            }
        })
        .transpose()?;
    let source_ip = query
        .source_ip
        .map(|text| {
            text.parse::<IpAddr>()
                .map_err(|_| Invalid::new("source_ip", "must be an IPv4 or IPv6 address"))
        })
        .transpose()?;
    let since = query.since.map(|t| instant("since", t)).transpose()?;
    let until = query.until.map(|t| instant("until", t)).transpose()?;
    if let (Some(since), Some(until)) = (since, until)
        && until <= since
    {
        return Err(Invalid::new("until", "must be later than `since`"));
    }
    let test = query
        .test
        .map(|text| match text {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(Invalid::new("test", "must be `true` or `false`")),
        })
        .transpose()?;
    let words = query
        .q
        .map(|text| SearchWords::parse(text).map_err(|e| Invalid::new("q", e)))
        .transpose()?;
    Ok(InvocationFilter {
        outcome,
        event_type,
        source_ip,
        since,
        until,
        test,
        words,
    })
}

/// Reads the `outcome` filter of the invocation log.
pub fn parse_outcome_filter(text: &str) -> Result<OutcomeFilter, Invalid> {
    OutcomeFilter::parse(text).ok_or_else(|| {
        Invalid::new(
            "outcome",
            "must be `accepted`, `ignored`, `duplicate`, `rejected` or `failed`",
        )
    })
}

impl<A: Adapters> Management<A> {
    /// One invocation of the caller's organization.
    pub async fn invocation(&self, caller: &Caller, id: &str) -> Result<Invocation, ManageError> {
        let id: InvocationId = parse_id("id", id)?;
        Ok(self.store.invocation(caller.organization_id, id).await?)
    }

    /// One invocation of the caller's organization with its task and the task's delivery
    /// attempts.
    pub async fn invocation_record(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<InvocationRecord, ManageError> {
        let invocation = self.invocation(caller, id).await?;
        let org = caller.organization_id;
        let (task, attempts) = match invocation.task_id {
            None => (None, Vec::new()),
            Some(task_id) => match self.store.task(org, task_id).await {
                Ok(task) => {
                    let attempts = self.store.delivery_attempts(org, task_id).await?;
                    (Some(task), attempts)
                }
                // Purged since the invocation was read.
                Err(StoreError::NotFound) => (None, Vec::new()),
                Err(e) => return Err(e.into()),
            },
        };
        Ok(InvocationRecord {
            invocation,
            task,
            attempts,
        })
    }

    /// A webhook's invocations, newest first, deleted webhooks included, filtered by `query`,
    /// summarized: no whole payloads (read one with [`Management::invocation`]).
    pub async fn invocations(
        &self,
        caller: &Caller,
        webhook_id: &str,
        query: &LogQuery<'_>,
        page: PageRequest,
    ) -> Result<Page<InvocationSummary>, ManageError> {
        let filter = parse_invocation_filter(query)?;
        let webhook_id: WebhookId = parse_id("id", webhook_id)?;
        let webhook = self.owned(caller, webhook_id).await?;
        Ok(self
            .store
            .invocation_summaries(caller.organization_id, webhook.id, &filter, page)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_filters() {
        assert_eq!(parse_outcome_filter("failed"), Ok(OutcomeFilter::Failed));
        assert_eq!(
            parse_outcome_filter("accepted"),
            Ok(OutcomeFilter::Accepted)
        );
        assert_eq!(parse_outcome_filter("nope").unwrap_err().field, "outcome");
    }

    #[test]
    fn filters_are_read() {
        let all = LogQuery {
            outcome: Some("failed"),
            event_type: Some("deploy.finished"),
            source_ip: Some("2001:db8::1"),
            since: Some("2026-12-07T10:00:00+01:00"),
            until: Some("2026-12-07T10:00:00.5Z"),
            test: Some("false"),
            q: Some("Deploy api"),
        };
        let filter = parse_invocation_filter(&all).unwrap();
        assert_eq!(filter.outcome, Some(OutcomeFilter::Failed));
        assert_eq!(filter.event_type.as_deref(), Some("deploy.finished"));
        assert_eq!(filter.source_ip, Some("2001:db8::1".parse().unwrap()));
        assert_eq!(
            filter.since,
            Timestamp::parse_rfc3339("2026-12-07T09:00:00Z")
        );
        assert_eq!(filter.test, Some(false));
        assert_eq!(
            filter.words.map(|w| w.words().to_vec()),
            Some(vec!["deploy".to_owned(), "api".to_owned()])
        );
        assert_eq!(
            parse_invocation_filter(&LogQuery::default()),
            Ok(InvocationFilter::default())
        );
    }

    #[test]
    fn refused_filters_name_their_field() {
        let refused = |query: LogQuery<'_>| parse_invocation_filter(&query).unwrap_err().field;
        let none = LogQuery::default();
        for (query, field) in [
            (
                LogQuery {
                    outcome: Some("all"),
                    ..none
                },
                "outcome",
            ),
            (
                LogQuery {
                    event_type: Some(""),
                    ..none
                },
                "event_type",
            ),
            (
                LogQuery {
                    source_ip: Some("10.0.0.300"),
                    ..none
                },
                "source_ip",
            ),
            (
                LogQuery {
                    source_ip: Some("example.com"),
                    ..none
                },
                "source_ip",
            ),
            (
                LogQuery {
                    since: Some("2026-12-07"),
                    ..none
                },
                "since",
            ),
            (
                LogQuery {
                    until: Some("yesterday"),
                    ..none
                },
                "until",
            ),
            (
                LogQuery {
                    since: Some("2026-12-07T10:00:00Z"),
                    until: Some("2026-12-07T10:00:00Z"),
                    ..none
                },
                "until",
            ),
            (
                LogQuery {
                    test: Some("yes"),
                    ..none
                },
                "test",
            ),
            (
                LogQuery {
                    q: Some("..."),
                    ..none
                },
                "q",
            ),
            (
                LogQuery {
                    q: Some(&"x".repeat(65)),
                    ..none
                },
                "q",
            ),
        ] {
            assert_eq!(refused(query), field, "{query:?}");
        }
    }
}
