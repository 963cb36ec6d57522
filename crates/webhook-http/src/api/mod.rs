//! The management API under `/api/v1`: targets, webhooks, the invocation log, the task board,
//! API keys and the organization, authenticated with `Authorization: Bearer <api key>`, and its
//! `OpenAPI` 3.1 document at `/api/v1/openapi.json`.
//!
//! Mount it with [`configure`] and a [`ManageState`] in the app data:
//!
//! ```text
//! App::new()
//!     .app_data(web::Data::new(manage_state))
//!     .configure(webhook_http::api::configure::<MyAdapters>)
//! ```
//!
//! Every route is declared once, in the `routes!` list below, which registers it and puts it in
//! the `OpenAPI` document, so the two cannot disagree.

mod account;
mod board;
mod dto;
mod error;
mod input;
mod targets;
mod webhooks;

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::{FromRequest, HttpRequest, HttpResponse, HttpResponseBuilder, Route, web};
use futures::future::LocalBoxFuture;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};
use webhook_domain::model::PageRequest;
use webhook_domain::ports::Adapters;
use webhook_domain::service::Ingest;
use webhook_domain::service::manage::{Caller, Management, page_request};

pub use dto::*;
pub use error::{ApiError, ProblemBody};

/// What the management handlers share: the use cases, and the node's ingest, through which
/// test events run.
pub struct ManageState<A: Adapters> {
    pub management: Management<A>,
    pub ingest: Arc<Ingest<A>>,
}

impl<A: Adapters> std::fmt::Debug for ManageState<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManageState").finish_non_exhaustive()
    }
}

impl<A: Adapters> ManageState<A> {
    /// The management use cases.
    pub fn management(&self) -> &Management<A> {
        &self.management
    }

    /// The ingest pipeline test events run through.
    pub fn tester(&self) -> &Ingest<A> {
        &self.ingest
    }
}

/// A management request and its caller, authenticated before anything else of the request is
/// read: any valid API key for a [`Reader`], an admin key for a [`Writer`], so that a write by
/// a viewer is refused before its body is read.
pub(crate) struct Authorized<A: Adapters, const WRITE: bool> {
    ctx: web::Data<ManageState<A>>,
    caller: Caller,
    request: HttpRequest,
}

/// A request by any valid API key.
pub(crate) type Reader<A> = Authorized<A, false>;

/// A request by an admin key.
pub(crate) type Writer<A> = Authorized<A, true>;

impl<A: Adapters, const WRITE: bool> Authorized<A, WRITE> {
    /// The management use cases.
    fn management(&self) -> &Management<A> {
        self.ctx.management()
    }

    /// The ingest pipeline test events run through.
    fn tester(&self) -> &Ingest<A> {
        self.ctx.tester()
    }

    /// Who sent the request.
    fn caller(&self) -> &Caller {
        &self.caller
    }

    /// The request, for its query and body.
    fn request(&self) -> &HttpRequest {
        &self.request
    }

    /// The shared state and the caller, for work that outlives the handler.
    fn into_parts(self) -> (Arc<ManageState<A>>, Caller) {
        (self.ctx.into_inner(), self.caller)
    }
}

impl<A: Adapters, const WRITE: bool> FromRequest for Authorized<A, WRITE> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let request = request.clone();
        Box::pin(async move {
            let ctx = web::Data::<ManageState<A>>::extract(&request).await?;
            let caller = authenticate(&ctx, &request, WRITE).await?;
            Ok(Self {
                ctx,
                caller,
                request,
            })
        })
    }
}

/// The caller of a request: a valid API key is required, and an admin key for a `write`.
async fn authenticate<A: Adapters>(
    ctx: &ManageState<A>,
    request: &HttpRequest,
    write: bool,
) -> Result<Caller, ApiError> {
    let key = input::bearer(request).ok_or_else(|| {
        ApiError::unauthorized("send an API key as `Authorization: Bearer <api key>`")
    })?;
    let caller = ctx.management().authenticate(key).await?;
    if write {
        caller.require_write()?;
    }
    Ok(caller)
}

/// The page a list request asks for with its `limit` and `cursor` query parameters.
fn list_page(request: &HttpRequest) -> Result<PageRequest, ApiError> {
    let q: ListQuery = input::query(request)?;
    page_of(q.limit.as_deref(), q.cursor.as_deref())
}

/// The page that the texts of a list's `limit` and `cursor` ask for.
fn page_of(limit: Option<&str>, cursor: Option<&str>) -> Result<PageRequest, ApiError> {
    Ok(page_request(targets::parse_limit(limit)?, cursor)?)
}

/// A 201 with the `Location` of the object created in `collection` as `id`, whose answer
/// carries its secret or key (see [`secret_answer`]).
fn created_with_secret(
    collection: &str,
    id: uuid::Uuid,
    body: &impl serde::Serialize,
) -> HttpResponse {
    secret_answer(HttpResponse::Created())
        .insert_header((
            actix_web::http::header::LOCATION,
            format!("{collection}/{id}"),
        ))
        .json(body)
}

/// Marks an answer that carries a secret or an API key `Cache-Control: no-store`: no cache on
/// its way (a proxy, the browser's) may keep a copy of what is shown only once.
fn secret_answer(mut response: HttpResponseBuilder) -> HttpResponseBuilder {
    response.insert_header((
        actix_web::http::header::CACHE_CONTROL,
        actix_web::http::header::HeaderValue::from_static("no-store"),
    ));
    response
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An organization API key: `Authorization: Bearer whk_…`",
                    ))
                    .build(),
            ),
        );
    }
}

/// The answers many operations share, documented here once rather than on every route: every
/// operation behind an API key answers 401 `unauthorized` without a valid key, and every write
/// among them 403 `forbidden` to a viewer key; each reads the store, so it may answer 503
/// `store_unavailable` (the test endpoint also `outcome_unknown`) or 500 `internal_error` when
/// the store fails beyond retrying,
/// every one that takes a body refuses a malformed one with 400, one over [`BODY_LIMIT`] with
/// 413 `payload_too_large` and one that does not arrive within the body timeout with 408
/// `request_timeout`, every one on a path with an `{id}` refuses an id that is not a UUID with
/// 422, and every one refuses a request head over 32 KiB with 431 `request_header_too_large`.
/// An operation that documents one of these statuses itself keeps its own description.
struct SharedProblems;

/// Which operations a shared answer belongs to.
#[derive(Clone, Copy)]
enum SharedTo {
    Every,
    WithBody,
    WithId,
    Secured,
    SecuredWrites,
}

impl Modify for SharedProblems {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let problem = |description: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        crate::problem::PROBLEM_JSON,
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ProblemBody")))
                            .build(),
                    )
                    .build(),
            )
        };
        let shared = [
            (
                SharedTo::Every,
                "431",
                problem(&format!(
                    "`request_header_too_large`: the request line and headers are over {} KiB",
                    crate::head::MAX_REQUEST_HEAD_BYTES / 1024
                )),
            ),
            (SharedTo::WithBody, "400", problem("Malformed body")),
            (
                SharedTo::WithBody,
                "413",
                problem(&format!(
                    "`payload_too_large`: the body is over {} MiB",
                    BODY_LIMIT / (1024 * 1024)
                )),
            ),
            (
                SharedTo::WithBody,
                "408",
                problem(
                    "`request_timeout`: the whole body did not arrive within the body timeout; the connection is closed",
                ),
            ),
            (SharedTo::WithId, "422", problem("The id is not a UUID")),
            (SharedTo::Secured, "401", problem("No valid API key")),
            (SharedTo::SecuredWrites, "403", problem("Viewer key")),
            (
                SharedTo::Secured,
                "503",
                problem(
                    "`store_unavailable`: the store could not be reached; nothing was changed. `outcome_unknown` (the test endpoint only): the store was lost during the commit and did not come back in time to say whether the test event was stored",
                ),
            ),
            (
                SharedTo::Secured,
                "500",
                problem(
                    "`internal_error`: the store failed in a way retrying cannot mend (a corrupt row, a secret that cannot be unsealed)",
                ),
            ),
        ];
        for (path, item) in &mut openapi.paths.paths {
            let with_id = path.contains("{id}");
            let operations = [
                (false, &mut item.get),
                (true, &mut item.put),
                (true, &mut item.post),
                (true, &mut item.delete),
                (true, &mut item.patch),
            ];
            for (writes, operation) in operations {
                let Some(operation) = operation else {
                    continue;
                };
                let secured = operation.security.is_some();
                let with_body = operation.request_body.is_some();
                for (to, status, answer) in &shared {
                    let applies = match to {
                        SharedTo::Every => true,
                        SharedTo::WithBody => with_body,
                        SharedTo::WithId => with_id,
                        SharedTo::Secured => secured,
                        SharedTo::SecuredWrites => secured && writes,
                    };
                    if applies {
                        operation
                            .responses
                            .responses
                            .entry((*status).to_owned())
                            .or_insert_with(|| answer.clone());
                    }
                }
            }
        }
    }
}

/// Marks a request body optional when its schema requires no property: the server reads an
/// empty body as `{}` (every field absent), so a PATCH without a body changes nothing and
/// `rotate-secret` or `test` without one take their defaults.
struct OptionalBodies;

impl Modify for OptionalBodies {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(components) = &openapi.components else {
            return;
        };
        let requires_nothing = |schema: &RefOr<utoipa::openapi::schema::Schema>| {
            let RefOr::Ref(reference) = schema else {
                return false;
            };
            let name = reference
                .ref_location
                .trim_start_matches("#/components/schemas/");
            matches!(
                components.schemas.get(name),
                Some(RefOr::T(utoipa::openapi::schema::Schema::Object(object)))
                    if object.required.is_empty()
            )
        };
        for item in openapi.paths.paths.values_mut() {
            let operations = [&mut item.post, &mut item.patch, &mut item.put];
            for operation in operations.into_iter().flatten() {
                let Some(body) = &mut operation.request_body else {
                    continue;
                };
                let optional = body
                    .content
                    .values()
                    .all(|content| content.schema.as_ref().is_some_and(requires_nothing));
                if optional {
                    body.required = Some(utoipa::openapi::Required::False);
                }
            }
        }
    }
}

macro_rules! routes {
    ($($method:ident $path:literal => $module:ident :: $handler:ident),* $(,)?) => {
        /// Every management route as (lower-case method, path), as registered and documented.
        pub const ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path)),*];

        fn route_table<A: Adapters>() -> Vec<(&'static str, Route)> {
            vec![$(($path, web::$method().to($module::$handler::<A>))),*]
        }

        /// The `OpenAPI` document of the management API, and of the routes
        /// [`crate::configure`] serves beside it ([`crate::SERVICE_ROUTES`]: ingest and the
        /// operations endpoints).
        #[derive(Debug, OpenApi)]
        #[openapi(
            info(
                title = "webhookd API",
                description = "The ingest endpoint senders post events to; the management API of targets, webhooks, invocation logs, the task board, API keys and organization settings; and the operations endpoints. Errors are RFC 9457 problem+json with a stable `code`.",
            ),
            paths(
                $($module::$handler,)*
                crate::ingest::handle,
                crate::ops::healthz,
                crate::ops::readyz,
                crate::ops::metrics,
            ),
            components(schemas(
                dto::OutcomeFilter,
                dto::IpAddress,
                dto::TaskStatus,
                dto::DeliveryStatus,
                dto::TaskInclude,
                dto::BodyKept
            )),
            modifiers(&BearerAuth, &SharedProblems, &OptionalBodies),
            tags(
                (name = "targets", description = "Agents and teams that receive tasks"),
                (name = "webhooks", description = "Webhook endpoints and their invocation logs"),
                (name = "tasks", description = "The task board"),
                (name = "account", description = "API keys and organization settings"),
                (name = "meta", description = "This document"),
                (name = "ingest", description = "Where senders post events"),
                (name = "operations", description = "Liveness, readiness and metrics"),
            ),
        )]
        pub struct ApiDoc;
    };
}

routes! {
    post "/api/v1/targets" => targets::create,
    get "/api/v1/targets" => targets::list,
    get "/api/v1/targets/{id}" => targets::get,
    patch "/api/v1/targets/{id}" => targets::patch,
    delete "/api/v1/targets/{id}" => targets::delete,
    post "/api/v1/webhooks" => webhooks::create,
    get "/api/v1/webhooks" => webhooks::list,
    get "/api/v1/webhooks/{id}" => webhooks::get,
    patch "/api/v1/webhooks/{id}" => webhooks::patch,
    delete "/api/v1/webhooks/{id}" => webhooks::delete,
    post "/api/v1/webhooks/{id}/rotate-secret" => webhooks::rotate_secret,
    post "/api/v1/webhooks/{id}/test" => webhooks::test,
    get "/api/v1/webhooks/{id}/invocations" => board::invocations,
    get "/api/v1/invocations/{id}" => board::invocation,
    post "/api/v1/invocations/{id}/replay" => board::replay,
    get "/api/v1/tasks" => board::tasks,
    get "/api/v1/tasks/{id}" => board::task,
    patch "/api/v1/tasks/{id}" => board::patch_task,
    post "/api/v1/tasks/{id}/retry" => board::retry_task,
    get "/api/v1/tasks/{id}/attempts" => board::task_attempts,
    post "/api/v1/api-keys" => account::create_key,
    get "/api/v1/api-keys" => account::list_keys,
    delete "/api/v1/api-keys/{id}" => account::delete_key,
    get "/api/v1/organization" => account::organization,
    patch "/api/v1/organization" => account::patch_organization,
    get "/api/v1/openapi.json" => account::openapi,
}

/// The paths that answer without an API key.
pub const PUBLIC_ROUTES: &[(&str, &str)] = &[("get", "/api/v1/openapi.json")];

/// Registers every management route. A path's other methods answer 405 problem+json with an
/// `Allow` header listing the methods the path serves; a request head over
/// [`crate::head::MAX_REQUEST_HEAD_BYTES`] answers 431.
pub fn configure<A: Adapters>(cfg: &mut web::ServiceConfig) {
    let mut resources: BTreeMap<&'static str, actix_web::Resource> = BTreeMap::new();
    for (path, route) in route_table::<A>() {
        let resource = resources.remove(path).unwrap_or_else(|| {
            let allow = allowed_methods(path);
            web::resource(path).default_service(web::to(move || {
                let allow = allow.clone();
                async move { method_not_allowed(&allow) }
            }))
        });
        resources.insert(path, resource.route(route));
    }
    for resource in resources.into_values() {
        cfg.service(resource.wrap(actix_web::middleware::from_fn(
            crate::head::limit_request_head,
        )));
    }
}

/// The `Allow` value of `path`: its methods in [`ROUTES`], upper case, in the order listed.
fn allowed_methods(path: &str) -> String {
    ROUTES
        .iter()
        .filter(|(_, p)| *p == path)
        .map(|(method, _)| method.to_ascii_uppercase())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Largest management request body: room for a test payload at ingest's default limit.
const BODY_LIMIT: usize = 2 * 1024 * 1024;

fn method_not_allowed(allow: &str) -> HttpResponse {
    actix_web::ResponseError::error_response(&ApiError::api_method_not_allowed(allow))
}

/// The `OpenAPI` document as JSON text.
pub fn openapi_json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|_| String::from("{}"))
}
