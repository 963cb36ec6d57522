//! The invocation log of a webhook, and single entries.

use super::{Caller, Invalid, ManageError, Management, parse_id};
use crate::model::{
    Invocation, InvocationId, InvocationSummary, OutcomeFilter, Page, PageRequest, WebhookId,
};
use crate::ports::{Adapters, InvocationLog};

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
