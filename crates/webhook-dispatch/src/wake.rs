//! [`WakeOnAccept`]: an invocation log that wakes the dispatcher once an accepted event's task
//! is committed, so a task is delivered at once instead of at the next poll.

use std::sync::Arc;

use tokio::sync::Notify;
use webhook_domain::model::{
    Invocation, InvocationId, OrganizationId, OutcomeFilter, Page, PageRequest, Task, Timestamp,
    WebhookId,
};
use webhook_domain::ports::{InvocationLog, StoreError};

/// Wraps the invocation log ingest writes to; after a task is committed it wakes the
/// dispatcher through the [`Notify`] of [`crate::Dispatcher::waker`]. Everything else is passed
/// through unchanged.
#[derive(Debug, Clone)]
pub struct WakeOnAccept<L> {
    log: L,
    wake: Arc<Notify>,
}

impl<L> WakeOnAccept<L> {
    /// `log`, waking `wake` after every committed task.
    pub fn new(log: L, wake: Arc<Notify>) -> Self {
        Self { log, wake }
    }
}

impl<L: InvocationLog> InvocationLog for WakeOnAccept<L> {
    async fn record_invocation(
        &self,
        invocation: &Invocation,
        task: Option<&Task>,
    ) -> Result<(), StoreError> {
        self.log.record_invocation(invocation, task).await?;
        if task.is_some() {
            // Kept as a permit when the dispatcher is busy, so the task is not missed.
            self.wake.notify_one();
        }
        Ok(())
    }

    fn invocation(
        &self,
        organization_id: OrganizationId,
        id: InvocationId,
    ) -> impl Future<Output = Result<Invocation, StoreError>> + Send {
        self.log.invocation(organization_id, id)
    }

    fn invocations(
        &self,
        organization_id: OrganizationId,
        webhook_id: WebhookId,
        filter: Option<OutcomeFilter>,
        page: PageRequest,
    ) -> impl Future<Output = Result<Page<Invocation>, StoreError>> + Send {
        self.log
            .invocations(organization_id, webhook_id, filter, page)
    }

    fn purge_invocations(
        &self,
        before: Timestamp,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        self.log.purge_invocations(before)
    }
}
