//! What the management use cases fail with: one decision per variant, for the API to map.

use crate::ports::StoreError;

/// Authentication failed: no usable key, or the store could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The key is missing, malformed, unknown or deleted.
    #[error("a valid API key is required")]
    Unauthorized,
    /// The store could not be asked.
    #[error("the API key could not be checked")]
    Store(#[source] StoreError),
}

/// A value that was refused, naming the field it came from (`name`, `event_types[2]`, `limit`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Invalid {
    pub field: String,
    pub reason: String,
}

impl Invalid {
    /// A refusal of `field` because of `reason`.
    pub fn new(field: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Self {
            field: field.into(),
            reason: reason.to_string(),
        }
    }
}

/// Why a write was refused although every value is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConflictCode {
    /// The status change is not allowed by the lifecycle rules.
    InvalidTransition,
    /// The webhook is a tombstone and never changes again.
    WebhookDeleted,
    /// A webhook that is not deleted still points at the target.
    TargetInUse,
    /// The organization would be left without an admin key.
    LastAdminKey,
    /// A key may not delete itself: every later request with it would answer 401.
    OwnKey,
    /// The object changed meanwhile (a concurrent write won); read it again.
    Concurrent,
    /// The logged request's body was not kept whole, so it cannot be sent again.
    NotReplayable,
}

impl ConflictCode {
    /// The stable problem `code`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidTransition => "invalid_transition",
            Self::WebhookDeleted => "webhook_deleted",
            Self::TargetInUse => "target_in_use",
            Self::LastAdminKey => "last_admin_key",
            Self::OwnKey => "own_key",
            Self::Concurrent => "conflict",
            Self::NotReplayable => "not_replayable",
        }
    }
}

/// What a management use case fails with.
#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    /// No such object in the caller's organization (objects of other organizations included).
    #[error("not found")]
    NotFound,
    /// The caller's key may only read.
    #[error("this API key may only read; writing needs an admin key")]
    Forbidden,
    /// A value was refused; nothing was written.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The write contradicts the stored state; nothing was written.
    #[error("{message}")]
    Conflict { code: ConflictCode, message: String },
    /// The webhook was deleted: nothing can be sent to it any more (its URL answers 410).
    #[error("this webhook was deleted and accepts no more events")]
    WebhookDeleted,
    /// The store failed; nothing of the operation is known to be written.
    #[error("the store failed")]
    Store(#[source] StoreError),
}

impl ManageError {
    pub(crate) fn conflict(code: ConflictCode, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }
}

impl From<StoreError> for ManageError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => Self::NotFound,
            StoreError::Conflict(what) => Self::conflict(
                ConflictCode::Concurrent,
                format!("the object changed meanwhile ({what}); read it again"),
            ),
            StoreError::Unavailable(_)
            | StoreError::OutcomeUnknown(_)
            | StoreError::Internal(_) => Self::Store(error),
        }
    }
}
