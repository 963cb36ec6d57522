//! `/api/v1/targets`: the agents and teams tasks go to.

use actix_web::{HttpResponse, web};
use webhook_domain::service::manage::{NewTarget, TargetPatch};

use webhook_domain::ports::Adapters;

use super::dto::{CreateTarget, CreatedTargetOut, ListQuery, PatchTarget, TargetList, TargetOut};
use super::error::{ApiError, ProblemBody};
use super::input::read_json;
use super::{Reader, Writer, created_with_secret, list_page};

/// Create a target; its signing secret is in the answer, once.
#[utoipa::path(
    operation_id = "create_target",
    post, path = "/api/v1/targets", tag = "targets",
    request_body = CreateTarget,
    responses(
        (status = 201, description = "Created", body = CreatedTargetOut, headers(("Cache-Control" = String, description = "`no-store`: the answer carries a secret shown once"))),
        (status = 422, description = "A value was refused", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn create<A: Adapters>(
    api: Writer<A>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: CreateTarget = read_json(api.request(), payload).await?;
    let new = NewTarget {
        kind: body.kind,
        name: body.name,
        endpoint_url: body.endpoint_url,
    };
    let out = CreatedTargetOut::from(api.management().create_target(api.caller(), new).await?);
    Ok(created_with_secret("/api/v1/targets", out.target.id, &out))
}

/// List targets, newest first.
#[utoipa::path(
    operation_id = "list_targets",
    get, path = "/api/v1/targets", tag = "targets",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of targets", body = TargetList),
        (status = 400, description = "Bad query", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Bad limit or cursor", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn list<A: Adapters>(api: Reader<A>) -> Result<HttpResponse, ApiError> {
    let page = api
        .management()
        .targets(api.caller(), list_page(api.request())?)
        .await?;
    Ok(HttpResponse::Ok().json(TargetList::from_page(page)))
}

/// Read a target.
#[utoipa::path(
    operation_id = "get_target",
    get, path = "/api/v1/targets/{id}", tag = "targets",
    params(("id" = uuid::Uuid, Path, description = "Target id")),
    responses(
        (status = 200, description = "The target", body = TargetOut),
        (status = 404, description = "No such target in this organization", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn get<A: Adapters>(
    api: Reader<A>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let target = api.management().target(api.caller(), &id).await?;
    Ok(HttpResponse::Ok().json(TargetOut::from(target)))
}

/// Change a target's kind, name or endpoint.
#[utoipa::path(
    operation_id = "update_target",
    patch, path = "/api/v1/targets/{id}", tag = "targets",
    params(("id" = uuid::Uuid, Path, description = "Target id")),
    request_body = PatchTarget,
    responses(
        (status = 200, description = "The changed target", body = TargetOut),
        (status = 404, description = "No such target in this organization", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A value was refused", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn patch<A: Adapters>(
    api: Writer<A>,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: PatchTarget = read_json(api.request(), payload).await?;
    let patch = TargetPatch {
        kind: body.kind,
        name: body.name,
        endpoint_url: body.endpoint_url,
    };
    let target = api
        .management()
        .update_target(api.caller(), &id, patch)
        .await?;
    Ok(HttpResponse::Ok().json(TargetOut::from(target)))
}

/// Delete a target no live webhook points at; its tasks stay on the board.
#[utoipa::path(
    operation_id = "delete_target",
    delete, path = "/api/v1/targets/{id}", tag = "targets",
    params(("id" = uuid::Uuid, Path, description = "Target id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such target in this organization", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "`target_in_use`: webhooks point at it", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn delete<A: Adapters>(
    api: Writer<A>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    api.management().delete_target(api.caller(), &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Reads the `limit` query parameter as a number.
pub(super) fn parse_limit(text: Option<&str>) -> Result<Option<i64>, ApiError> {
    text.map(|t| {
        t.parse::<i64>().map_err(|_| {
            ApiError::invalid(webhook_domain::service::manage::Invalid::new(
                "limit",
                "must be a whole number from 1 to 500",
            ))
        })
    })
    .transpose()
}
