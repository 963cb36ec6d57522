//! `/api/v1/webhooks`: create, list, read, change, re-key, test and delete webhooks.

use actix_web::{HttpResponse, web};
use webhook_domain::ports::Adapters;
use webhook_domain::service::manage::{NewWebhook, SecretRotation, WebhookPatch};

use super::dto::{
    CreateWebhook, PatchWebhook, RotateSecret, TestOut, TestWebhook, WebhookList, WebhookOut,
    WebhookQuery, WebhookWithSecret, source_fields,
};
use super::error::{ApiError, ProblemBody};
use super::input::{query, read_json};
use super::{Reader, Writer, created_with_secret, page_of, secret_answer};

/// Create a webhook; with `secret` or `generate_secret: true`, its secret is in the answer, once.
#[utoipa::path(
    operation_id = "create_webhook",
    post, path = "/api/v1/webhooks", tag = "webhooks",
    request_body = CreateWebhook,
    responses(
        (status = 201, description = "Created", body = WebhookWithSecret, headers(("Cache-Control" = String, description = "`no-store`: the answer carries a secret shown once"))),
        (status = 422, description = "A value was refused", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn create<A: Adapters>(
    api: Writer<A>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: CreateWebhook = read_json(api.request(), payload).await?;
    let new = NewWebhook {
        source: source_fields!(body),
        name: body.name,
        target_id: body.target_id,
        event_types: body.event_types.unwrap_or_default(),
        secret: body.secret,
        generate_secret: body.generate_secret.unwrap_or(false),
        rate_limit_per_minute: body.rate_limit_per_minute,
    };
    let out = WebhookWithSecret::from(api.management().create_webhook(api.caller(), new).await?);
    Ok(created_with_secret(
        "/api/v1/webhooks",
        out.webhook.id,
        &out,
    ))
}

/// List webhooks, newest first: those that are not deleted, or those with `status`
/// (`status=deleted` lists the tombstones, whose logs stay readable).
#[utoipa::path(
    operation_id = "list_webhooks",
    get, path = "/api/v1/webhooks", tag = "webhooks",
    params(WebhookQuery),
    responses(
        (status = 200, description = "A page of webhooks", body = WebhookList),
        (status = 400, description = "Bad query", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Bad status, limit or cursor (`field` names it)", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn list<A: Adapters>(api: Reader<A>) -> Result<HttpResponse, ApiError> {
    let q: WebhookQuery = query(api.request())?;
    let page = page_of(q.limit.as_deref(), q.cursor.as_deref())?;
    let page = api
        .management()
        .webhooks(api.caller(), q.status.as_deref(), page)
        .await?;
    Ok(HttpResponse::Ok().json(WebhookList::from_page(page)))
}

/// Read a webhook (deleted ones included, with status `deleted`).
#[utoipa::path(
    operation_id = "get_webhook",
    get, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = uuid::Uuid, Path, description = "Webhook id")),
    responses(
        (status = 200, description = "The webhook", body = WebhookOut),
        (status = 404, description = "No such webhook in this organization", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn get<A: Adapters>(
    api: Reader<A>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let view = api.management().webhook(api.caller(), &id).await?;
    Ok(HttpResponse::Ok().json(WebhookOut::from(view)))
}

/// Change a webhook's name, target, event types, status (`active` | `disabled`), limit, source
/// and its overrides, or allowed networks; `null` clears an override.
#[utoipa::path(
    operation_id = "update_webhook",
    patch, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = uuid::Uuid, Path, description = "Webhook id")),
    request_body = PatchWebhook,
    responses(
        (status = 200, description = "The changed webhook", body = WebhookOut),
        (status = 404, description = "No such webhook in this organization", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "`webhook_deleted`: a tombstone never changes", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A value was refused", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn patch<A: Adapters>(
    api: Writer<A>,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: PatchWebhook = read_json(api.request(), payload).await?;
    let patch = WebhookPatch {
        source: source_fields!(body),
        name: body.name,
        target_id: body.target_id,
        event_types: body.event_types,
        status: body.status,
        rate_limit_per_minute: body.rate_limit_per_minute,
    };
    let view = api
        .management()
        .update_webhook(api.caller(), &id, patch)
        .await?;
    Ok(HttpResponse::Ok().json(WebhookOut::from(view)))
}

/// Delete a webhook: it stays as a tombstone and its URL answers 410 forever.
#[utoipa::path(
    operation_id = "delete_webhook",
    delete, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = uuid::Uuid, Path, description = "Webhook id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such webhook in this organization", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "`webhook_deleted`: already deleted", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn delete<A: Adapters>(
    api: Writer<A>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    api.management().delete_webhook(api.caller(), &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Replace the webhook's secret with `secret` or a generated one; the old one stops working at
/// once, or after `previous_valid_for_seconds` (at most seven days) during which both verify.
#[utoipa::path(
    operation_id = "rotate_webhook_secret",
    post, path = "/api/v1/webhooks/{id}/rotate-secret", tag = "webhooks",
    params(("id" = uuid::Uuid, Path, description = "Webhook id")),
    request_body(content = RotateSecret, description = "Optional: the new secret"),
    responses(
        (status = 200, description = "The webhook with its new secret, shown once", body = WebhookWithSecret, headers(("Cache-Control" = String, description = "`no-store`: the answer carries a secret shown once"))),
        (status = 404, description = "No such webhook in this organization", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "`webhook_deleted`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "The secret or the id was refused", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn rotate_secret<A: Adapters>(
    api: Writer<A>,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: RotateSecret = read_json(api.request(), payload).await?;
    let rotated = api
        .management()
        .rotate_webhook_secret(
            api.caller(),
            &id,
            SecretRotation {
                secret: body.secret,
                previous_valid_for_seconds: body.previous_valid_for_seconds,
            },
        )
        .await?;
    Ok(secret_answer(HttpResponse::Ok()).json(WebhookWithSecret::from(rotated)))
}

/// Send a test event through the real pipeline as an authenticated sender; the invocation and
/// task are marked `test`.
#[utoipa::path(
    operation_id = "test_webhook",
    post, path = "/api/v1/webhooks/{id}/test", tag = "webhooks",
    params(("id" = uuid::Uuid, Path, description = "Webhook id")),
    request_body(content = TestWebhook, description = "Optional: the payload to send"),
    responses(
        (status = 200, description = "What the pipeline did; `status` is `accepted`, `ignored` or `rejected`", body = TestOut),
        (status = 404, description = "No such webhook in this organization", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "The payload is not a JSON object (or nests deeper than 128 levels), or the id is not a UUID", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn test<A: Adapters>(
    api: Writer<A>,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: TestWebhook = read_json(api.request(), payload).await?;
    let result = api
        .management()
        .test_webhook(
            api.caller(),
            &id,
            body.payload
                .as_deref()
                .map(serde_json::value::RawValue::get),
            api.tester(),
        )
        .await?;
    Ok(HttpResponse::Ok().json(TestOut::from(result)))
}
