//! `/api/v1/api-keys`, `/api/v1/organization` and the `OpenAPI` document.

use actix_web::{HttpResponse, web};
use webhook_domain::model::Page;
use webhook_domain::service::manage::{NewApiKey, OrganizationPatch};

use webhook_domain::ports::Adapters;

use super::dto::{ApiKeyList, CreateApiKey, CreatedApiKeyOut, OrganizationOut, PatchOrganization};
use super::error::{ApiError, ProblemBody};
use super::input::read_json;
use super::{Reader, Writer, created_with_secret, openapi_json};

/// Create an API key; the key is in the answer, once.
#[utoipa::path(
    operation_id = "create_api_key",
    post, path = "/api/v1/api-keys", tag = "account",
    request_body = CreateApiKey,
    responses(
        (status = 201, description = "Created", body = CreatedApiKeyOut, headers(("Cache-Control" = String, description = "`no-store`: the answer carries a secret shown once"))),
        (status = 422, description = "A value was refused", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn create_key<A: Adapters>(
    api: Writer<A>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: CreateApiKey = read_json(api.request(), payload).await?;
    let new = NewApiKey {
        name: body.name,
        role: body.role,
    };
    let out = CreatedApiKeyOut::from(api.management().create_api_key(api.caller(), new).await?);
    Ok(created_with_secret("/api/v1/api-keys", out.key.id, &out))
}

/// The organization's API keys, oldest first (one page).
#[utoipa::path(
    operation_id = "list_api_keys",
    get, path = "/api/v1/api-keys", tag = "account",
    responses(
        (status = 200, description = "The keys", body = ApiKeyList),
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn list_keys<A: Adapters>(api: Reader<A>) -> Result<HttpResponse, ApiError> {
    let keys = api.management().api_keys(api.caller()).await?;
    Ok(HttpResponse::Ok().json(ApiKeyList::from_page(Page {
        items: keys,
        next: None,
    })))
}

/// Delete an API key; it stops authenticating at once. A key cannot delete itself (another
/// admin key deletes it), and the last admin key cannot be deleted.
#[utoipa::path(
    operation_id = "delete_api_key",
    delete, path = "/api/v1/api-keys/{id}", tag = "account",
    params(("id" = uuid::Uuid, Path, description = "API key id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such key in this organization", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "`own_key`: the key of this request cannot delete itself; `last_admin_key`: the organization's last admin key", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn delete_key<A: Adapters>(
    api: Writer<A>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    api.management().delete_api_key(api.caller(), &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The caller's organization.
#[utoipa::path(
    operation_id = "get_organization",
    get, path = "/api/v1/organization", tag = "account",
    responses(
        (status = 200, description = "The organization", body = OrganizationOut),
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn organization<A: Adapters>(api: Reader<A>) -> Result<HttpResponse, ApiError> {
    let organization = api.management().organization(api.caller()).await?;
    Ok(HttpResponse::Ok().json(OrganizationOut::from(organization)))
}

/// Rename the organization or change its rate limit.
#[utoipa::path(
    operation_id = "update_organization",
    patch, path = "/api/v1/organization", tag = "account",
    request_body = PatchOrganization,
    responses(
        (status = 200, description = "The changed organization", body = OrganizationOut),
        (status = 422, description = "A value was refused", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn patch_organization<A: Adapters>(
    api: Writer<A>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: PatchOrganization = read_json(api.request(), payload).await?;
    let patch = OrganizationPatch {
        name: body.name,
        rate_limit_per_minute: body.rate_limit_per_minute,
    };
    let organization = api
        .management()
        .update_organization(api.caller(), patch)
        .await?;
    Ok(HttpResponse::Ok().json(OrganizationOut::from(organization)))
}

/// This document: the `OpenAPI` 3.1 description of the management API. No key needed.
#[utoipa::path(
    operation_id = "get_openapi",
    get, path = "/api/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json")),
)]
#[expect(
    clippy::extra_unused_type_parameters,
    reason = "every route is registered as `handler::<A>`"
)]
pub(crate) async fn openapi<A: Adapters>() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(openapi_json())
}
