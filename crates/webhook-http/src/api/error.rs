//! The management API's error answers: [`crate::problem::Problem`], whose one table maps every
//! domain error to its status, `code` and title, and the schema its body is documented with.

use serde::Serialize;
use utoipa::ToSchema;

/// An error answer of the management API: the service's one problem type.
pub type ApiError = crate::problem::Problem;

/// An RFC 9457 problem as the management API answers it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemBody {
    /// `urn:webhookd:problem:{code}`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable machine-readable code: `unauthorized`, `forbidden`, `not_found`,
    /// `validation_failed`, `invalid_transition`, `webhook_deleted`, `target_in_use`,
    /// `own_key`, `last_admin_key`, `conflict`, `not_replayable`, `method_not_allowed`,
    /// `payload_too_large`, `request_timeout`,
    /// `store_unavailable`, `outcome_unknown`, `internal_error`.
    pub code: String,
    /// For `validation_failed`: the refused field (`name`, `event_types[1]`, `limit`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}
