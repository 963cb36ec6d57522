//! The task board: list and read tasks, move them as the lifecycle allows, retry failed ones.

use super::{Caller, ConflictCode, Invalid, ManageError, Management, parse_id, written_id};
use crate::model::{
    DeliveryAttempt, Page, PageRequest, Task, TaskFilter, TaskId, TaskStatus, TaskSummary,
};
use crate::ports::{Adapters, Clock, StoreError, TaskQueue};
use crate::rules::task_status_change;

/// The most tasks a page of the board holds when each carries its context (`include=context`).
pub const MAX_TASKS_WITH_CONTEXT: u32 = 50;

/// Reads a task status name, for `field`.
pub fn parse_task_status(field: &str, text: &str) -> Result<TaskStatus, Invalid> {
    TaskStatus::parse(text).ok_or_else(|| {
        Invalid::new(
            field,
            "must be `queued`, `delivered`, `in_progress`, `completed` or `failed`",
        )
    })
}

impl<A: Adapters> Management<A> {
    /// Every delivery attempt of one of the caller's tasks, oldest first, numbered over the
    /// task's life.
    pub async fn task_attempts(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<Vec<DeliveryAttempt>, ManageError> {
        let id: TaskId = parse_id("id", id)?;
        Ok(self
            .store
            .delivery_attempts(caller.organization_id, id)
            .await?)
    }

    /// The board, newest first, filtered by target and status, without contexts (read them
    /// one at a time with [`Management::task_by_id`]).
    pub async fn tasks(
        &self,
        caller: &Caller,
        target_id: Option<&str>,
        status: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<TaskSummary>, ManageError> {
        let filter = TaskFilter {
            target_id: target_id.map(|t| parse_id("target_id", t)).transpose()?,
            status: status.map(|s| parse_task_status("status", s)).transpose()?,
        };
        Ok(self
            .store
            .task_summaries(caller.organization_id, filter, page)
            .await?)
    }

    /// One task of the caller's organization, by an id already read.
    pub async fn task_by_id(&self, caller: &Caller, id: TaskId) -> Result<Task, ManageError> {
        Ok(self.store.task(caller.organization_id, id).await?)
    }

    /// One task of the caller's organization.
    pub async fn task(&self, caller: &Caller, id: &str) -> Result<Task, ManageError> {
        self.task_by_id(caller, parse_id("id", id)?).await
    }

    /// Moves a task to `status` (an agent reporting progress) if the lifecycle allows it.
    pub async fn set_task_status(
        &self,
        caller: &Caller,
        id: &str,
        status: &str,
    ) -> Result<Task, ManageError> {
        let id: TaskId = written_id(caller, id)?;
        let to = parse_task_status("status", status)?;
        self.transition(caller, id, to).await
    }

    /// Puts a failed task back in the queue, due now, for a new delivery round: the whole retry
    /// schedule again, with its last error cleared (see [`task_status_change`]).
    pub async fn retry_task(&self, caller: &Caller, id: &str) -> Result<Task, ManageError> {
        let id: TaskId = written_id(caller, id)?;
        self.transition(caller, id, TaskStatus::Queued).await
    }

    async fn transition(
        &self,
        caller: &Caller,
        id: TaskId,
        to: TaskStatus,
    ) -> Result<Task, ManageError> {
        let task = self.store.task(caller.organization_id, id).await?;
        let change = task_status_change(task.status, task.attempts, to, self.clock.now())
            .map_err(|e| ManageError::conflict(ConflictCode::InvalidTransition, e.to_string()))?;
        match self
            .store
            .set_task_status(caller.organization_id, id, change)
            .await
        {
            Ok(task) => Ok(task),
            Err(StoreError::Conflict(_)) => Err(ManageError::conflict(
                ConflictCode::Concurrent,
                format!(
                    "the task left `{}` meanwhile; read it again",
                    task.status.as_str()
                ),
            )),
            Err(e) => Err(e.into()),
        }
    }
}
