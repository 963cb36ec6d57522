//! Status transitions of webhooks and tasks. Anything not listed here is refused.

use crate::model::{TaskStatus, WebhookStatus};

/// A webhook status change that the lifecycle does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a {} webhook cannot become {}", from.as_str(), to.as_str())]
pub struct WebhookTransitionError {
    pub from: WebhookStatus,
    pub to: WebhookStatus,
}

/// `active ⇄ disabled`, `active | disabled → deleted`; `deleted` is terminal. Setting the status
/// a webhook already has is allowed (an idempotent no-op), except on a deleted one.
pub fn webhook_transition(
    from: WebhookStatus,
    to: WebhookStatus,
) -> Result<WebhookStatus, WebhookTransitionError> {
    use WebhookStatus::{Active, Deleted, Disabled};
    match (from, to) {
        (Active | Disabled, Active | Disabled | Deleted) => Ok(to),
        (Deleted, _) => Err(WebhookTransitionError { from, to }),
    }
}

/// A task status change that the board does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a {} task cannot become {}", from.as_str(), to.as_str())]
pub struct TaskTransitionError {
    pub from: TaskStatus,
    pub to: TaskStatus,
}

/// `queued → delivered → in_progress → completed | failed`; `queued → failed` when retries are
/// exhausted; `failed → queued` by an explicit retry. Nothing else, not even staying put: every
/// accepted transition is a real change that the caller records.
pub fn task_transition(
    from: TaskStatus,
    to: TaskStatus,
) -> Result<TaskStatus, TaskTransitionError> {
    use TaskStatus::{Completed, Delivered, Failed, InProgress, Queued};
    match (from, to) {
        (Queued, Delivered | Failed)
        | (Delivered, InProgress)
        | (InProgress, Completed | Failed)
        | (Failed, Queued) => Ok(to),
        _ => Err(TaskTransitionError { from, to }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_webhook_transition() {
        use WebhookStatus::{Active, Deleted, Disabled};
        let check = |from, to, allowed: bool| {
            let result = webhook_transition(from, to);
            assert_eq!(result.is_ok(), allowed, "{from:?} -> {to:?}");
            if let Err(e) = result {
                assert_eq!(e, WebhookTransitionError { from, to });
            }
        };
        check(Active, Active, true);
        check(Active, Disabled, true);
        check(Active, Deleted, true);
        check(Disabled, Active, true);
        check(Disabled, Disabled, true);
        check(Disabled, Deleted, true);
        check(Deleted, Active, false);
        check(Deleted, Disabled, false);
        check(Deleted, Deleted, false);
    }

    #[test]
    fn every_task_transition() {
        use TaskStatus::{Completed, Delivered, Failed, InProgress, Queued};
        let allowed = [
            (Queued, Delivered),
            (Queued, Failed),
            (Delivered, InProgress),
            (InProgress, Completed),
            (InProgress, Failed),
            (Failed, Queued),
        ];
        for from in TaskStatus::ALL {
            for to in TaskStatus::ALL {
                let expected = allowed.contains(&(from, to));
                let result = task_transition(from, to);
                assert_eq!(result.is_ok(), expected, "{from:?} -> {to:?}");
                match result {
                    Ok(status) => assert_eq!(status, to),
                    Err(e) => {
                        assert_eq!(e, TaskTransitionError { from, to });
                        assert_eq!(
                            e.to_string(),
                            format!("a {} task cannot become {}", from.as_str(), to.as_str())
                        );
                    }
                }
            }
        }
        assert_eq!(allowed.len(), 6);
    }
}
