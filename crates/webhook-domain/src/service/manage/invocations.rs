//! The invocation log of a webhook, and single entries.

use super::{Caller, Invalid, ManageError, Management, parse_id};
use crate::model::{
    DeliveryAttempt, Invocation, InvocationId, InvocationSummary, OutcomeFilter, Page, PageRequest,
    Task, WebhookId,
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

/// Reads the `outcome` filter of the invocation log.
pub fn parse_outcome_filter(text: &str) -> Result<OutcomeFilter, Invalid> {
    OutcomeFilter::parse(text).ok_or_else(|| {
        Invalid::new(
            "outcome",
            "must be `accepted`, `ignored`, `rejected` or `failed`",
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

    /// A webhook's invocations, newest first, deleted webhooks included, summarized: no whole
    /// payloads (read one with [`Management::invocation`]).
    pub async fn invocations(
        &self,
        caller: &Caller,
        webhook_id: &str,
        outcome: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<InvocationSummary>, ManageError> {
        let filter = outcome.map(parse_outcome_filter).transpose()?;
        let webhook_id: WebhookId = parse_id("id", webhook_id)?;
        let webhook = self.owned(caller, webhook_id).await?;
        Ok(self
            .store
            .invocation_summaries(caller.organization_id, webhook.id, filter, page)
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
}
