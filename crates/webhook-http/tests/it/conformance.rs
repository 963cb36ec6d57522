//! The management API against its own `OpenAPI` document, as a property: for random sequences of
//! plausible and implausible requests (unknown fields, bad ids, values out of range, wrong
//! types, bodies that are not objects or over the limit, every kind of caller, and on stores
//! that come back, the store down), every answer has a status the document lists for that
//! operation, the media type it lists for that status, and a body its schema accepts. The
//! schemas are held closed here: an answer may carry no property the document does not name.

#![expect(clippy::unwrap_used, reason = "tests: a panic is how a test fails")]

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use proptest::prelude::*;
use proptest::strategy::Union;
use proptest::test_runner::{Config, RngSeed, TestRunner};
use serde_json::{Map, Value, json};
use uuid::Uuid;
use webhook_http::api::{PUBLIC_ROUTES, ROUTES};

use crate::api::{ApiApp, Org};
use crate::helpers::{Backend, problem};

/// Cases per run, unless `PROPTEST_CASES` says otherwise; `PROPTEST_RNG_SEED` picks other
/// sequences than the fixed default.
const CASES: u32 = 64;
const SEED: u64 = 0x7765_6268_6f6f_6b64;

pub(crate) async fn answers_match_the_openapi_document<S: Backend>(store: S) {
    let app = ApiApp::start_on(store);
    let response = app.call("get", "/api/v1/openapi.json", None, None).await;
    let contract = Contract::new(response.json().await.unwrap());
    let outsider = app.org().await;

    let mut config = Config {
        max_shrink_iters: 200,
        failure_persistence: None,
        ..Config::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = CASES;
    }
    if config.rng_seed == RngSeed::Random {
        config.rng_seed = RngSeed::Fixed(SEED);
    }
    let seen = RefCell::new(BTreeSet::new());
    let runtime = tokio::runtime::Handle::current();
    let result = tokio::task::block_in_place(|| {
        TestRunner::new(config).run(&prop::collection::vec(call(), 1..24), |calls| {
            runtime.block_on(async {
                let org = app.org().await;
                let mut case = Case {
                    app: &app,
                    contract: &contract,
                    org,
                    outsider: &outsider.admin,
                    known: Known::default(),
                    seen: &seen,
                };
                for call in seed_calls().into_iter().chain(calls) {
                    case.run(&call).await;
                }
            });
            Ok(())
        })
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }

    // The calls reached what they are meant to: each route succeeded at least once, and each
    // kind of refusal was answered somewhere.
    let seen = seen.into_inner();
    let unreached: Vec<_> = ROUTES
        .iter()
        .filter(|route| !seen.iter().any(|(r, status)| r == *route && *status < 300))
        .collect();
    assert!(
        unreached.is_empty(),
        "never answered with success: {unreached:?}"
    );
    let statuses: BTreeSet<u16> = seen.iter().map(|(_, status)| *status).collect();
    let mut expected = vec![200, 201, 204, 400, 401, 403, 404, 409, 413, 422];
    if S::COMES_BACK {
        expected.push(503);
    }
    let missing: Vec<u16> = expected
        .into_iter()
        .filter(|status| !statuses.contains(status))
        .collect();
    assert!(missing.is_empty(), "never answered {missing:?}");
}

// ---------------------------------------------------------------------------------------------
// The document

/// The `OpenAPI` document and a validator per response schema.
struct Contract {
    document: Value,
    /// `components` with closed object schemas; response schemas refer into it.
    components: Value,
    validators: RefCell<HashMap<String, Arc<jsonschema::Validator>>>,
}

impl Contract {
    fn new(document: Value) -> Self {
        assert!(
            document["openapi"]
                .as_str()
                .is_some_and(|v| v.starts_with("3.1")),
            "an OpenAPI 3.1 document"
        );
        let schemas = document["components"]["schemas"]
            .as_object()
            .expect("component schemas")
            .clone();
        let mut components = json!({ "schemas": schemas });
        close(&mut components, &schemas);
        Self {
            document,
            components,
            validators: RefCell::default(),
        }
    }

    /// A validator of `schema`, whose `$ref`s point into the document's components.
    fn validator(&self, schema: &Value) -> Arc<jsonschema::Validator> {
        let key = schema.to_string();
        if let Some(validator) = self.validators.borrow().get(&key) {
            return validator.clone();
        }
        let mut root = Map::new();
        root.insert(
            "$schema".to_owned(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
        root.insert("components".to_owned(), self.components.clone());
        let mut schema = schema.clone();
        close(&mut schema, self.components["schemas"].as_object().unwrap());
        root.extend(schema.as_object().expect("a schema object").clone());
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .should_ignore_unknown_formats(true)
            .build(&Value::Object(root))
            .unwrap_or_else(|e| panic!("the document's schema {key} does not compile: {e}"));
        let validator = Arc::new(validator);
        self.validators.borrow_mut().insert(key, validator.clone());
        validator
    }

    /// Checks an answer of `method template` (called as `path`) against the document: its status
    /// is listed, its media type is the one listed for that status (none when it lists no
    /// content), and its body matches that schema. Returns the body (null when empty).
    async fn check(
        &self,
        method: &str,
        template: &str,
        path: &str,
        response: reqwest::Response,
    ) -> Value {
        let status = response.status().as_u16();
        let operation = &self.document["paths"][template][method];
        assert!(
            operation.is_object(),
            "{method} {template} is not documented"
        );
        let media_type = response.headers().get("content-type").map(|value| {
            let value = value.to_str().unwrap();
            value.split(';').next().unwrap().trim().to_ascii_lowercase()
        });
        let Some(documented) = operation["responses"].get(status.to_string()) else {
            let body = response.text().await.unwrap();
            panic!(
                "{} {path} answered {status}, which the document does not list for it \
                 ({media_type:?}): {body}",
                method.to_uppercase()
            );
        };
        let content = documented["content"].as_object().filter(|c| !c.is_empty());
        let Some(content) = content else {
            let body = response.text().await.unwrap();
            assert!(
                media_type.is_none() && body.is_empty(),
                "{} {path} answered {status} with {media_type:?} {body:?}; the document lists no body",
                method.to_uppercase()
            );
            return Value::Null;
        };
        let listed: Vec<&String> = content.keys().collect();
        let media_type = media_type.unwrap_or_else(|| {
            panic!(
                "{} {path} answered {status} without a Content-Type; the document lists {listed:?}",
                method.to_uppercase()
            )
        });
        let Some(media) = content.get(&media_type) else {
            panic!(
                "{} {path} answered {status} as {media_type}; the document lists {listed:?}",
                method.to_uppercase()
            );
        };
        let body = if media_type == "application/problem+json" {
            problem(response).await.body
        } else {
            let text = response.text().await.unwrap();
            serde_json::from_str(&text).unwrap_or_else(|e| {
                panic!(
                    "{} {path} answered {status} as {media_type}, but not JSON ({e}): {text}",
                    method.to_uppercase()
                )
            })
        };
        if let Some(schema) = media.get("schema") {
            let validator = self.validator(schema);
            let errors: Vec<String> = validator
                .iter_errors(&body)
                .map(|e| format!("at `{}`: {e}", e.instance_path()))
                .collect();
            assert!(
                errors.is_empty(),
                "{} {path} answered {status} with a body its documented schema {schema} \
                 refuses:\n  {}\n{body:#}",
                method.to_uppercase(),
                errors.join("\n  ")
            );
        }
        body
    }
}

/// Closes every object schema under `schema` (`additionalProperties: false` unless it says
/// otherwise), first merging an `allOf` of object schemas (what `#[serde(flatten)]` documents)
/// into one, so that closing one part does not refuse the properties of the other.
fn close(schema: &mut Value, schemas: &Map<String, Value>) {
    match schema {
        Value::Object(object) => {
            if let Some(merged) = object
                .get("allOf")
                .and_then(Value::as_array)
                .and_then(|parts| merge_objects(parts, schemas))
            {
                object.remove("allOf");
                object.extend(merged);
            }
            if object.contains_key("properties") && !object.contains_key("additionalProperties") {
                object.insert("additionalProperties".to_owned(), Value::Bool(false));
            }
            for value in object.values_mut() {
                close(value, schemas);
            }
        }
        Value::Array(items) => {
            for item in items {
                close(item, schemas);
            }
        }
        _ => {}
    }
}

/// One object schema with the properties and required names of `parts`, when each part is an
/// object schema (inline or a `$ref` to a component).
fn merge_objects(parts: &[Value], schemas: &Map<String, Value>) -> Option<Map<String, Value>> {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for part in parts {
        let part = match part.get("$ref").and_then(Value::as_str) {
            Some(reference) => schemas.get(reference.strip_prefix("#/components/schemas/")?)?,
            None => part,
        };
        if part.get("allOf").is_some() || part.get("type") != Some(&json!("object")) {
            return None;
        }
        properties.extend(part.get("properties")?.as_object()?.clone());
        if let Some(names) = part.get("required").and_then(Value::as_array) {
            required.extend(names.iter().cloned());
        }
    }
    let mut merged = Map::new();
    merged.insert("type".to_owned(), json!("object"));
    merged.insert("properties".to_owned(), Value::Object(properties));
    merged.insert("required".to_owned(), Value::Array(required));
    Some(merged)
}

// ---------------------------------------------------------------------------------------------
// Calls

/// Who calls.
#[derive(Debug, Clone, Copy)]
enum Who {
    Admin,
    Viewer,
    Nobody,
    UnknownKey,
    /// An admin of another organization.
    Outsider,
}

/// The id in a path: one seen in this case's answers, one of another kind, an unknown one or
/// text that is not a UUID.
#[derive(Debug, Clone)]
enum Id {
    Known(usize),
    OtherKind(usize),
    Unknown(u128),
    Malformed(String),
}

/// A request body.
#[derive(Debug, Clone)]
enum Body {
    None,
    Json(Value),
    /// Sent as is, with a JSON content type.
    Raw(&'static str),
    /// A JSON body one byte over the management API's limit of 2 MiB.
    OverTheLimit,
}

/// One request: a route of `ROUTES` (method, path) with a caller, an id, a query and a body. Strings
/// `@{kind}:{n}` in the query or body stand for the n-th id of that kind seen so far.
#[derive(Debug, Clone)]
struct Call {
    route: Route,
    who: Who,
    id: Id,
    query: Vec<(String, String)>,
    body: Body,
    /// Made while the store is down, on stores that come back.
    store_down: bool,
}

/// A route as (lower-case method, path template).
type Route = (&'static str, &'static str);

/// The kinds of objects ids name, as the first segment after `/api/v1/` spells them.
const KINDS: [&str; 5] = ["targets", "webhooks", "invocations", "tasks", "api-keys"];

/// Ids and cursors seen in the answers of one case.
#[derive(Debug, Default)]
struct Known {
    ids: HashMap<&'static str, Vec<String>>,
    cursors: Vec<String>,
}

impl Known {
    fn learn(&mut self, kind: Option<&'static str>, body: &Value) {
        let objects = match body["items"].as_array() {
            Some(items) => items.iter().collect(),
            None => vec![body],
        };
        for object in objects {
            if let (Some(kind), Some(id)) = (kind, object["id"].as_str()) {
                self.add(kind, id);
            }
            for (field, kind) in [
                ("target_id", "targets"),
                ("webhook_id", "webhooks"),
                ("invocation_id", "invocations"),
                ("task_id", "tasks"),
            ] {
                if let Some(id) = object[field].as_str() {
                    self.add(kind, id);
                }
            }
            if let Some(id) = object["target"]["id"].as_str() {
                self.add("targets", id);
            }
        }
        if let Some(cursor) = body["next_cursor"].as_str() {
            self.cursors.push(cursor.to_owned());
        }
    }

    fn add(&mut self, kind: &'static str, id: &str) {
        let ids = self.ids.entry(kind).or_default();
        if !ids.iter().any(|known| known == id) {
            ids.push(id.to_owned());
        }
    }

    fn nth(&self, kind: &str, n: usize) -> Option<&String> {
        let ids = self.ids.get(kind)?;
        ids.get(n % ids.len().max(1))
    }

    fn path_id(&self, kind: &str, id: &Id) -> String {
        let unknown = |n: u128| Uuid::from_u128(n).to_string();
        match id {
            Id::Known(n) => self.nth(kind, *n).cloned(),
            Id::OtherKind(n) => {
                let others: Vec<&str> = KINDS.into_iter().filter(|k| *k != kind).collect();
                self.nth(others[n % others.len()], *n).cloned()
            }
            Id::Unknown(n) => Some(unknown(*n)),
            Id::Malformed(text) => Some(text.clone()),
        }
        .unwrap_or_else(|| unknown(0x5eed))
    }

    /// `text` with a `@kind:n` stand-in replaced; any other text (a generated name may start
    /// with `@` and hold a `:`) as it is.
    fn resolve(&self, text: &str) -> String {
        let Some((kind, n)) = text.strip_prefix('@').and_then(|t| t.split_once(':')) else {
            return text.to_owned();
        };
        let Ok(n) = n.parse::<usize>() else {
            return text.to_owned();
        };
        let found = if kind == "cursor" {
            self.cursors.get(n % self.cursors.len().max(1))
        } else {
            self.nth(kind, n)
        };
        found.cloned().unwrap_or_else(|| text.to_owned())
    }

    fn resolve_value(&self, value: &mut Value) {
        match value {
            Value::String(text) => *text = self.resolve(text),
            Value::Array(items) => items.iter_mut().for_each(|v| self.resolve_value(v)),
            Value::Object(object) => object.values_mut().for_each(|v| self.resolve_value(v)),
            _ => {}
        }
    }
}

/// One case: an organization of its own, and what its answers revealed.
struct Case<'a, S: Backend> {
    app: &'a ApiApp<S>,
    contract: &'a Contract,
    org: Org,
    outsider: &'a str,
    known: Known,
    /// (route, status) of every answer of the run.
    seen: &'a RefCell<BTreeSet<(Route, u16)>>,
}

impl<S: Backend> Case<'_, S> {
    async fn run(&mut self, call: &Call) {
        let (method, template) = call.route;
        let kind = KINDS
            .iter()
            .copied()
            .find(|kind| template.starts_with(&format!("/api/v1/{kind}")));
        let path = match kind {
            Some(kind) if template.contains("{id}") => {
                template.replace("{id}", &self.known.path_id(kind, &call.id))
            }
            _ => template.to_owned(),
        };
        let key = match call.who {
            Who::Admin => Some(self.org.admin.as_str()),
            Who::Viewer => Some(self.org.viewer.as_str()),
            Who::Nobody => None,
            Who::UnknownKey => Some("whk_not-a-key-0000000000000000000000"),
            Who::Outsider => Some(self.outsider),
        };
        let query: Vec<(String, String)> = call
            .query
            .iter()
            .map(|(name, value)| (name.clone(), self.known.resolve(value)))
            .collect();
        let mut request = self.app.request(method, &path, key).query(&query);
        match &call.body {
            Body::None => {}
            Body::Json(body) => {
                let mut body = body.clone();
                self.known.resolve_value(&mut body);
                request = request.json(&body);
            }
            Body::Raw(text) => {
                request = request
                    .header("content-type", "application/json")
                    .body(*text);
            }
            Body::OverTheLimit => {
                let filler = "a".repeat(2 * 1024 * 1024 + 1 - r#"{"name":""}"#.len());
                request = request
                    .header("content-type", "application/json")
                    .body(format!(r#"{{"name":"{filler}"}}"#));
            }
        }
        let store_down = call.store_down && S::COMES_BACK;
        if store_down {
            self.app.store.go_down().await;
        }
        let response = request.send().await.unwrap();
        if store_down {
            self.app.store.come_back().await;
        }
        let shown = if query.is_empty() {
            path
        } else {
            let pairs: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{path}?{}", pairs.join("&"))
        };
        let status = response.status();
        self.seen.borrow_mut().insert((call.route, status.as_u16()));
        let body = self
            .contract
            .check(method, template, &shown, response)
            .await;
        if status.is_success() {
            self.known.learn(kind, &body);
        }
    }
}

/// What every case starts with, so that the generated calls find objects to work on: a target,
/// a webhook of it, two test events (invocations and tasks), the second task failed, a target
/// without webhooks, the board (with and without contexts), and an API key made and deleted.
fn seed_calls() -> Vec<Call> {
    let call = |method: &'static str, template: &'static str, id: usize, body: Body| Call {
        route: (method, template),
        who: Who::Admin,
        id: Id::Known(id),
        query: Vec::new(),
        body,
        store_down: false,
    };
    vec![
        call(
            "post",
            "/api/v1/targets",
            0,
            Body::Json(json!({"kind": "agent", "name": "Deploy bot"})),
        ),
        call(
            "post",
            "/api/v1/webhooks",
            0,
            Body::Json(json!({"name": "CI", "target_id": "@targets:0", "generate_secret": true})),
        ),
        call(
            "post",
            "/api/v1/webhooks/{id}/test",
            0,
            Body::Json(json!({"payload": {"message": "Deploy", "event_type": "deploy.done"}})),
        ),
        call("post", "/api/v1/webhooks/{id}/test", 0, Body::None),
        call(
            "patch",
            "/api/v1/tasks/{id}",
            1,
            Body::Json(json!({"status": "failed"})),
        ),
        call(
            "post",
            "/api/v1/targets",
            0,
            Body::Json(json!({"kind": "team", "name": "Ops"})),
        ),
        call("get", "/api/v1/tasks", 0, Body::None),
        Call {
            query: vec![("include".to_owned(), "context".to_owned())],
            ..call("get", "/api/v1/tasks", 0, Body::None)
        },
        call(
            "post",
            "/api/v1/api-keys",
            0,
            Body::Json(json!({"name": "CI", "role": "viewer"})),
        ),
        call("delete", "/api/v1/api-keys/{id}", 0, Body::None),
    ]
}

// ---------------------------------------------------------------------------------------------
// Strategies

fn call() -> impl Strategy<Value = Call> {
    let routes: Vec<(u32, BoxedStrategy<(Route, Request)>)> = ROUTES
        .iter()
        .map(|&route| {
            let (weight, request) = request(route);
            (weight, request.prop_map(move |r| (route, r)).boxed())
        })
        .collect();
    (
        Union::new_weighted(routes),
        who(),
        id(),
        prop::bool::weighted(0.03),
    )
        .prop_map(|((route, request), who, id, store_down)| Call {
            route,
            who,
            id,
            query: request.query,
            body: request.body,
            store_down,
        })
}

/// The query and body of a call.
#[derive(Debug, Clone)]
struct Request {
    query: Vec<(String, String)>,
    body: Body,
}

type Field = Option<Value>;

/// How often a route is called, and its requests.
fn request((method, template): Route) -> (u32, BoxedStrategy<Request>) {
    let no_query = Just(Vec::new()).boxed();
    let (weight, query, body) = match (method, template) {
        ("post", "/api/v1/targets") => (4, no_query, target_body(true)),
        ("get", "/api/v1/targets") => (2, list_query(vec![]), no_body()),
        ("get", "/api/v1/webhooks") => (
            3,
            list_query(vec![(
                "status",
                choice(&["active", "disabled", "deleted"], &["live", "Deleted", ""]),
            )]),
            no_body(),
        ),
        ("get", _) if PUBLIC_ROUTES.contains(&(method, template)) => (1, no_query, no_body()),
        (
            "get" | "delete",
            "/api/v1/targets/{id}"
            | "/api/v1/webhooks/{id}"
            | "/api/v1/invocations/{id}"
            | "/api/v1/tasks/{id}"
            | "/api/v1/api-keys/{id}",
        )
        | ("get", "/api/v1/api-keys" | "/api/v1/organization" | "/api/v1/tasks/{id}/attempts")
        | ("post", "/api/v1/tasks/{id}/retry" | "/api/v1/invocations/{id}/replay") => {
            (2, no_query, no_body())
        }
        ("patch", "/api/v1/targets/{id}") => (2, no_query, target_body(false)),
        ("post", "/api/v1/webhooks") => (4, no_query, webhook_body(true)),
        ("patch", "/api/v1/webhooks/{id}") => (3, no_query, webhook_body(false)),
        ("post", "/api/v1/webhooks/{id}/rotate-secret") => (
            2,
            no_query,
            optional_body(object(vec![("secret", field(secret(), refused_secret()))])),
        ),
        ("post", "/api/v1/webhooks/{id}/test") => (4, no_query, optional_body(test_body())),
        ("get", "/api/v1/webhooks/{id}/invocations") => (3, invocation_query(), no_body()),
        ("get", "/api/v1/tasks") => (
            3,
            list_query(vec![
                (
                    "status",
                    choice(
                        &["queued", "delivered", "in_progress", "completed", "failed"],
                        &["done", ""],
                    ),
                ),
                (
                    "target_id",
                    prop_oneof![2 => Just(Value::Null), 1 => id_text("targets")].boxed(),
                ),
                ("include", choice(&["context"], &["everything", ""])),
            ]),
            no_body(),
        ),
        ("patch", "/api/v1/tasks/{id}") => (
            3,
            no_query,
            object(vec![(
                "status",
                field(
                    strings(&["queued", "delivered", "in_progress", "completed", "failed"]),
                    strings(&["done", "Queued", ""]),
                ),
            )]),
        ),
        ("post", "/api/v1/api-keys") => (
            2,
            no_query,
            object(vec![
                ("name", field(name(), refused_name())),
                (
                    "role",
                    field(strings(&["admin", "viewer"]), strings(&["root", ""])),
                ),
            ]),
        ),
        ("patch", "/api/v1/organization") => (
            2,
            no_query,
            object(vec![
                ("name", field(name(), refused_name())),
                ("rate_limit_per_minute", field(rate(), refused_rate())),
            ]),
        ),
        other => panic!("no requests for {other:?}: add them"),
    };
    let request = (query, body).prop_map(|(query, body)| Request { query, body });
    (weight, request.boxed())
}

fn who() -> impl Strategy<Value = Who> {
    prop_oneof![
        12 => Just(Who::Admin),
        2 => Just(Who::Viewer),
        1 => Just(Who::Nobody),
        1 => Just(Who::UnknownKey),
        1 => Just(Who::Outsider),
    ]
}

fn id() -> impl Strategy<Value = Id> {
    prop_oneof![
        12 => (0..8usize).prop_map(Id::Known),
        1 => (0..8usize).prop_map(Id::OtherKind),
        1 => any::<u128>().prop_map(Id::Unknown),
        1 => "[a-zA-Z0-9_~-]{1,40}".prop_map(Id::Malformed),
    ]
}

/// A known id of `kind` (as a stand-in), an unknown one, or text that is not a UUID.
fn id_text(kind: &'static str) -> BoxedStrategy<Value> {
    prop_oneof![
        6 => (0..8usize).prop_map(move |n| json!(format!("@{kind}:{n}"))),
        1 => any::<u128>().prop_map(|n| json!(Uuid::from_u128(n).to_string())),
        1 => Just(json!("nope")),
    ]
    .boxed()
}

/// A field: absent, a plausible value, a refused value or a value of another JSON type.
fn field(valid: BoxedStrategy<Value>, refused: BoxedStrategy<Value>) -> BoxedStrategy<Field> {
    prop_oneof![
        4 => Just(None),
        12 => valid.prop_map(Some),
        2 => refused.prop_map(Some),
        1 => wrong_type().prop_map(Some),
    ]
    .boxed()
}

fn wrong_type() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!(7)),
        Just(json!(-1.5)),
        Just(json!(true)),
        Just(json!(null)),
        Just(json!(["a"])),
        Just(json!({"a": 1})),
        Just(json!("text")),
    ]
}

fn strings(values: &'static [&'static str]) -> BoxedStrategy<Value> {
    prop::sample::select(values).prop_map(|s| json!(s)).boxed()
}

/// A query parameter: absent, one of `valid`, or one of `refused`.
fn choice(
    valid: &'static [&'static str],
    refused: &'static [&'static str],
) -> BoxedStrategy<Value> {
    prop_oneof![
        2 => Just(Value::Null),
        4 => strings(valid),
        1 => strings(refused),
    ]
    .boxed()
}

fn name() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => "[A-Za-z][A-Za-z0-9 ._-]{0,30}",
        1 => "\\PC{1,20}",
        1 => "[a-z]{200}",
    ]
    .prop_map(|s| json!(s))
    .boxed()
}

fn refused_name() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(String::new()),
        Just("   ".to_owned()),
        "[a-z]{201,230}"
    ]
    .prop_map(|s| json!(s))
    .boxed()
}

fn secret() -> BoxedStrategy<Value> {
    "whsec_[A-Za-z0-9]{10,40}".prop_map(|s| json!(s)).boxed()
}

fn refused_secret() -> BoxedStrategy<Value> {
    prop_oneof![
        Just("short".to_owned()),
        "[a-z]{257,260}",
        Just("with space in it!".to_owned())
    ]
    .prop_map(|s| json!(s))
    .boxed()
}

fn rate() -> BoxedStrategy<Value> {
    prop_oneof![1..=1_000_000i64, Just(1), Just(1_000_000)]
        .prop_map(|n| json!(n))
        .boxed()
}

fn refused_rate() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(json!(0)),
        Just(json!(-5)),
        Just(json!(1_000_001)),
        Just(json!(1.5)),
        Just(json!("fast")),
        Just(json!(i64::MAX)),
    ]
    .boxed()
}

fn event_types() -> BoxedStrategy<Value> {
    let pattern = prop_oneof![
        4 => prop::sample::select(&["deploy.*", "build.finished", "alert", "a:b/c-d_e"][..]),
        1 => prop::sample::select(&["bad*", "", "*", "deploy.**", "*.x", "spa ce", "é"][..]),
    ];
    prop::collection::vec(pattern, 0..4)
        .prop_map(|patterns| json!(patterns))
        .boxed()
}

fn target_body(create: bool) -> BoxedStrategy<Body> {
    let kind = field(
        strings(&["agent", "team"]),
        strings(&["robot", "", "Agent"]),
    );
    let endpoint = field(
        prop_oneof![
            Just(json!("https://agent.example.com/tasks")),
            Just(json!("http://hooks.example.org:8443/in?x=1")),
            Just(Value::Null),
        ]
        .boxed(),
        strings(&[
            "ftp://x",
            "not a url",
            "http://127.0.0.1:9000/hook",
            "http://169.254.169.254/latest/meta-data",
            "http://10.0.0.1/",
        ]),
    );
    let fields = vec![
        ("kind", if create { required(kind) } else { kind }),
        ("name", {
            let name = field(name(), refused_name());
            if create { required(name) } else { name }
        }),
        ("endpoint_url", endpoint),
    ];
    object(fields)
}

fn webhook_body(create: bool) -> BoxedStrategy<Body> {
    let name = field(name(), refused_name());
    let target = field(id_text("targets"), Just(json!("nope")).boxed());
    let mut fields = vec![
        ("name", if create { required(name) } else { name }),
        ("target_id", if create { required(target) } else { target }),
        (
            "event_types",
            field(event_types(), Just(json!(["ok", 5])).boxed()),
        ),
        ("rate_limit_per_minute", field(rate(), refused_rate())),
    ];
    if create {
        fields.push(("secret", field(secret(), refused_secret())));
        fields.push((
            "generate_secret",
            field(
                prop::bool::ANY.prop_map(|b| json!(b)).boxed(),
                Just(json!("yes")).boxed(),
            ),
        ));
    } else {
        fields.push((
            "status",
            field(
                strings(&["active", "disabled"]),
                strings(&["deleted", "paused", ""]),
            ),
        ));
    }
    object(fields)
}

fn test_body() -> BoxedStrategy<Body> {
    let payload = prop_oneof![
        4 => (
            prop::option::of(name()),
            prop::option::of(prop::sample::select(&["deploy.done", "build.finished", "alert", "other"][..])),
        )
            .prop_map(|(message, event_type)| {
                let mut payload = Map::new();
                if let Some(message) = message {
                    payload.insert("message".to_owned(), message);
                }
                if let Some(event_type) = event_type {
                    payload.insert("event_type".to_owned(), json!(event_type));
                }
                json!(payload)
            }),
        1 => Just(json!([1, 2])),
        1 => Just(json!("text")),
    ];
    object(vec![("payload", prop::option::of(payload).boxed())])
}

/// A field that is present far more often than not (a missing one is refused).
fn required(field: BoxedStrategy<Field>) -> BoxedStrategy<Field> {
    prop_oneof![
        9 => field.prop_filter("present", Option::is_some),
        1 => Just(None),
    ]
    .boxed()
}

/// A JSON object of the present `fields`; now and then with an unknown field, or replaced by a
/// body that is not an object or not JSON.
fn object(fields: Vec<(&'static str, BoxedStrategy<Field>)>) -> BoxedStrategy<Body> {
    let (names, values): (Vec<&'static str>, Vec<BoxedStrategy<Field>>) =
        fields.into_iter().unzip();
    let object = (values, prop::bool::weighted(0.08)).prop_map(move |(values, unknown)| {
        let mut object = Map::new();
        for (name, value) in names.iter().zip(values) {
            if let Some(value) = value {
                object.insert((*name).to_owned(), value);
            }
        }
        if unknown {
            object.insert("colour".to_owned(), json!("red"));
        }
        Body::Json(Value::Object(object))
    });
    prop_oneof![
        20 => object,
        1 => Just(Body::Json(json!([1, 2]))),
        1 => Just(Body::Json(json!("text"))),
        1 => Just(Body::Json(json!(null))),
        1 => Just(Body::Raw("{\"name\":")),
        1 => Just(Body::Raw("{} trailing")),
        1 => Just(Body::OverTheLimit),
    ]
    .boxed()
}

/// No body, or `body`.
fn optional_body(body: BoxedStrategy<Body>) -> BoxedStrategy<Body> {
    prop_oneof![1 => Just(Body::None), 3 => body].boxed()
}

fn no_body() -> BoxedStrategy<Body> {
    Just(Body::None).boxed()
}

/// `limit`, `cursor` and `extra` parameters, each present or not; now and then an unknown one.
/// The invocation log's query: every filter, each absent, valid or refused.
fn invocation_query() -> BoxedStrategy<Vec<(String, String)>> {
    list_query(vec![
        (
            "outcome",
            choice(
                &["accepted", "ignored", "rejected", "failed"],
                &["bogus", ""],
            ),
        ),
        ("event_type", choice(&["deploy.finished", "push"], &[""])),
        (
            "source_ip",
            choice(&["127.0.0.1", "2001:db8::1"], &["localhost", "10.0.0.256"]),
        ),
        (
            "since",
            choice(&["2026-01-01T00:00:00Z"], &["yesterday", "2026-01-01"]),
        ),
        (
            "until",
            choice(&["2030-01-01T00:00:00.5+01:00"], &["2025-12-31T00:00:00Z"]),
        ),
        ("test", choice(&["true", "false"], &["yes", ""])),
        (
            "q",
            choice(&["test", "Test event", "deploy.finished"], &["...", ""]),
        ),
    ])
}

fn list_query(
    extra: Vec<(&'static str, BoxedStrategy<Value>)>,
) -> BoxedStrategy<Vec<(String, String)>> {
    let limit = prop_oneof![
        2 => Just(Value::Null),
        4 => (1..=500u32).prop_map(|n| json!(n.to_string())),
        2 => (1..=3u32).prop_map(|n| json!(n.to_string())),
        1 => strings(&["0", "501", "-1", "abc", "", "1.5", "99999999999999999999"]),
    ];
    let cursor = prop_oneof![
        3 => Just(Value::Null),
        2 => (0..8usize).prop_map(|n| json!(format!("@cursor:{n}"))),
        1 => strings(&["zzz", "", "AAAA"]),
    ];
    let (mut names, mut values): (Vec<&'static str>, Vec<BoxedStrategy<Value>>) =
        extra.into_iter().unzip();
    names.extend(["limit", "cursor", "colour"]);
    values.extend([
        limit.boxed(),
        cursor.boxed(),
        prop_oneof![15 => Just(Value::Null), 1 => Just(json!("red"))].boxed(),
    ]);
    values
        .prop_map(move |values| {
            names
                .iter()
                .zip(values)
                .filter_map(|(name, value)| Some(((*name).to_owned(), value.as_str()?.to_owned())))
                .collect()
        })
        .boxed()
}
