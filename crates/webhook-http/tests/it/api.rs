//! The management API over real HTTP: the app serving it over any store backend, and, on the
//! in-memory store, the authorization matrix, the `OpenAPI` document against the registered
//! routes, the design's workflows, validation errors and task transitions.

#![expect(
    clippy::unwrap_used,
    reason = "test harness: a panic with a message is how a test fails"
)]
#![expect(
    clippy::too_many_lines,
    clippy::match_same_arms,
    reason = "workflow tests read top to bottom; the route table lists each route once"
)]

use std::collections::BTreeSet;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use serde_json::{Value, json};
use uuid::Uuid;
use webhook_domain::model::{
    ApiKey, ApiKeyId, EndpointUrl, Name, Organization, OrganizationId, PublicUrl, RatePerMinute,
    Role, Secret, TaskId, TaskStatus, TaskStatusChange, Timestamp,
};
use webhook_domain::ports::{
    EndpointGuard, EndpointRefused, Entropy as _, KeyHasher as _, TaskQueue as _,
};
use webhook_http::SERVICE_ROUTES;
use webhook_http::api::{PUBLIC_ROUTES, ROUTES};
use webhook_store_mem::MemoryStore;
use webhook_system::{ManualClock, MasterKey, Sha256KeyHasher, SystemEntropy};
use webhookd::{Node, NodeAdapters, NodeParts};

use crate::helpers::{Backend, Options, ProblemAnswer, problem, serve_node};

/// An outbound policy without DNS: refuses hosts that are loopback, private, link-local or
/// unspecified IP literals, and allows every name.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LiteralGuard;

impl EndpointGuard for LiteralGuard {
    async fn check(&self, url: &EndpointUrl) -> Result<(), EndpointRefused> {
        let refused = match url.as_url().host() {
            Some(url::Host::Ipv4(ip)) => {
                ip.is_loopback() || ip.is_private() || ip.is_link_local() || ip.is_unspecified()
            }
            Some(url::Host::Ipv6(ip)) => ip.is_loopback() || ip.is_unspecified(),
            _ => false,
        };
        if refused {
            Err(EndpointRefused {
                reason: "is not a public address".to_owned(),
            })
        } else {
            Ok(())
        }
    }
}

fn master_key() -> MasterKey {
    MasterKey::from_bytes([9; 32])
}

/// The whole app (ingest and management) on a loopback port, stopped when dropped.
pub(crate) struct ApiApp<S: Backend = MemoryStore> {
    base: String,
    pub(crate) store: S,
    pub(crate) node: Node<NodeAdapters<S, ManualClock, LiteralGuard>>,
    /// The node's clock, which moves only when a test moves it.
    pub(crate) clock: ManualClock,
    client: reqwest::Client,
    handle: ServerHandle,
}

impl<S: Backend> Drop for ApiApp<S> {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

/// An organization with an admin and a viewer key.
pub(crate) struct Org {
    pub(crate) id: OrganizationId,
    pub(crate) admin: String,
    pub(crate) viewer: String,
}

impl ApiApp {
    /// The app over a fresh in-memory store.
    fn start() -> Self {
        Self::start_on(MemoryStore::new())
    }
}

impl<S: Backend> ApiApp<S> {
    /// The app over `store`.
    pub(crate) fn start_on(store: S) -> Self {
        Self::start_on_with(store, Options::default())
    }

    /// The app over `store`, with `options`.
    pub(crate) fn start_on_with(store: S, options: Options) -> Self {
        let clock = ManualClock::new(Timestamp::from_unix_micros(1_767_225_600_000_000));
        let parts = NodeParts {
            store: store.clone(),
            clock: clock.clone(),
            endpoints: LiteralGuard,
            master_key: master_key(),
            public_url: PublicUrl::parse("https://hooks.example.com").unwrap(),
        };
        let (address, node, handle) = serve_node(parts, options);
        Self {
            base: format!("http://{address}"),
            store,
            node,
            clock,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            handle,
        }
    }

    /// Writes the counted rejections to the log, as the node does every second.
    pub(crate) async fn flush_rejections(&self) {
        self.node.rejections.flush_into(&self.store).await.unwrap();
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A new organization with an admin and a viewer key, made through the store.
    pub(crate) async fn org(&self) -> Org {
        let id = OrganizationId::from_uuid(Uuid::new_v4());
        let at = Timestamp::from_unix_micros(1_767_225_000_000_000);
        self.store
            .insert_organization(&Organization {
                id,
                name: Name::parse("Acme").unwrap(),
                rate_limit_per_minute: RatePerMinute::ORGANIZATION_DEFAULT,
                created_at: at,
                updated_at: at,
            })
            .await
            .unwrap();
        let mut keys = Vec::new();
        for role in [Role::Admin, Role::Viewer] {
            let mut random = [0u8; 32];
            SystemEntropy::new().fill(&mut random);
            let key = Secret::from_random("whk_", &random);
            self.store
                .insert_api_key(&ApiKey {
                    id: ApiKeyId::from_uuid(Uuid::new_v4()),
                    organization_id: id,
                    name: Name::parse(role.as_str()).unwrap(),
                    role,
                    hash: Sha256KeyHasher.hash(&key),
                    created_at: at,
                })
                .await
                .unwrap();
            keys.push(key.expose().to_owned());
        }
        let viewer = keys.pop().unwrap();
        let admin = keys.pop().unwrap();
        Org { id, admin, viewer }
    }

    /// A request to `path` (lower-case `method`), with `key` as the bearer key when given.
    pub(crate) fn request(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let request = self.client.request(method, self.url(path));
        match key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    /// A request with an optional key and JSON body.
    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> reqwest::Response {
        let mut request = self.request(method, path, key);
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.unwrap()
    }

    /// A call that must be refused with a problem: the problem.
    pub(crate) async fn refusal(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> ProblemAnswer {
        problem(self.call(method, path, key, body).await).await
    }

    /// A call that must answer `status`; returns the JSON body (null when empty).
    pub(crate) async fn expect(
        &self,
        status: u16,
        method: &str,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> Value {
        let response = self.call(method, path, Some(key), body.as_ref()).await;
        let got = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert_eq!(got, status, "{method} {path}: {text}");
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        }
    }

    pub(crate) async fn target(&self, key: &str) -> Value {
        self.expect(
            201,
            "post",
            "/api/v1/targets",
            key,
            Some(json!({"kind": "agent", "name": "Deploy bot"})),
        )
        .await
    }

    pub(crate) async fn webhook(&self, key: &str, target: &Value) -> Value {
        self.expect(
            201,
            "post",
            "/api/v1/webhooks",
            key,
            Some(json!({"name": "CI", "target_id": target["id"], "generate_secret": true})),
        )
        .await
    }

    /// Posts `body` to a webhook's URL on this server (its `url` names the public host).
    pub(crate) async fn send(
        &self,
        webhook: &Value,
        secret: Option<&str>,
        body: &str,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(self.url(&format!(
                "/api/webhooks/{}",
                webhook["id"].as_str().unwrap()
            )))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(secret) = secret {
            request = request.header("x-webhook-secret", secret);
        }
        request.send().await.unwrap()
    }
}

fn s(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_checks_keys_roles_and_organizations() {
    let app = ApiApp::start();
    let a = app.org().await;
    let b = app.org().await;

    // Objects of organization A for the id routes, one per destructive route.
    let target = app.target(&a.admin).await;
    let spare_target = app.target(&a.admin).await;
    let webhook = app.webhook(&a.admin, &target).await;
    let spare_webhook = app.webhook(&a.admin, &target).await;
    let webhook_id = s(&webhook["id"]);
    let test = test_send(&app, &a.admin, webhook_id, None).await;
    let task_id = s(&test["task_id"]).to_owned();
    let test2 = test_send(&app, &a.admin, webhook_id, None).await;
    let failed_task: TaskId = s(&test2["task_id"]).parse().unwrap();
    app.store
        .set_task_status(
            a.id,
            failed_task,
            TaskStatusChange {
                from: TaskStatus::Queued,
                to: TaskStatus::Failed,
                at: Timestamp::UNIX_EPOCH,
                round: None,
            },
        )
        .await
        .unwrap();
    let spare_key = create_key(&app, &a.admin, json!({"name": "spare", "role": "viewer"})).await;

    // (path with ids, admin body, admin status) for each route, in `ROUTES` order.
    let case = |method: &str, path: &str| -> (String, Option<Value>, u16) {
        let with = |id: &str| path.replace("{id}", id);
        match (method, path) {
            ("post", "/api/v1/targets") => {
                (with(""), Some(json!({"kind": "team", "name": "Ops"})), 201)
            }
            (
                "get",
                "/api/v1/targets"
                | "/api/v1/webhooks"
                | "/api/v1/tasks"
                | "/api/v1/api-keys"
                | "/api/v1/organization",
            ) => (with(""), None, 200),
            ("get", "/api/v1/targets/{id}") => (with(s(&target["id"])), None, 200),
            ("patch", "/api/v1/targets/{id}") => (
                with(s(&target["id"])),
                Some(json!({"name": "Renamed"})),
                200,
            ),
            ("delete", "/api/v1/targets/{id}") => (with(s(&spare_target["id"])), None, 204),
            ("post", "/api/v1/webhooks") => (
                with(""),
                Some(json!({"name": "New", "target_id": target["id"]})),
                201,
            ),
            ("get", "/api/v1/webhooks/{id}") => (with(webhook_id), None, 200),
            ("patch", "/api/v1/webhooks/{id}") => {
                (with(webhook_id), Some(json!({"name": "Renamed"})), 200)
            }
            ("delete", "/api/v1/webhooks/{id}") => (with(s(&spare_webhook["id"])), None, 204),
            ("post", "/api/v1/webhooks/{id}/rotate-secret") => (with(webhook_id), None, 200),
            ("post", "/api/v1/webhooks/{id}/test") => (
                with(webhook_id),
                Some(json!({"payload": {"message": "hi"}})),
                200,
            ),
            ("get", "/api/v1/webhooks/{id}/invocations") => (with(webhook_id), None, 200),
            ("get", "/api/v1/invocations/{id}") => (with(s(&test["invocation_id"])), None, 200),
            ("post", "/api/v1/invocations/{id}/replay") => {
                (with(s(&test["invocation_id"])), None, 200)
            }
            ("get", "/api/v1/tasks/{id}/attempts") => (with(&task_id), None, 200),
            ("get", "/api/v1/tasks/{id}") => (with(&task_id), None, 200),
            ("patch", "/api/v1/tasks/{id}") => {
                (with(&task_id), Some(json!({"status": "delivered"})), 200)
            }
            ("post", "/api/v1/tasks/{id}/retry") => (with(&failed_task.to_string()), None, 200),
            ("post", "/api/v1/api-keys") => {
                (with(""), Some(json!({"name": "ci", "role": "viewer"})), 201)
            }
            ("delete", "/api/v1/api-keys/{id}") => (with(s(&spare_key["id"])), None, 204),
            ("patch", "/api/v1/organization") => (with(""), Some(json!({"name": "Acme Inc"})), 200),
            other => panic!("no authorization case for {other:?}: add one"),
        }
    };

    let mut checked = 0;
    for &(method, template) in ROUTES {
        if PUBLIC_ROUTES.contains(&(method, template)) {
            continue;
        }
        let (path, body, admin_status) = case(method, template);
        let body = body.as_ref();
        let expect_problem = |who: &str, status: u16, code: &str, response: reqwest::Response| {
            let (method, path, who, code) = (
                method.to_owned(),
                path.clone(),
                who.to_owned(),
                code.to_owned(),
            );
            async move {
                let answer = problem(response).await;
                assert_eq!(
                    (answer.status, answer.code()),
                    (status, code.as_str()),
                    "{method} {path} as {who}"
                );
            }
        };
        expect_problem(
            "nobody",
            401,
            "unauthorized",
            app.call(method, &path, None, body).await,
        )
        .await;
        expect_problem(
            "a bad key",
            401,
            "unauthorized",
            app.call(
                method,
                &path,
                Some("whk_not-a-key-000000000000000000"),
                body,
            )
            .await,
        )
        .await;
        let viewer = app.call(method, &path, Some(&a.viewer), body).await;
        if method == "get" {
            assert_eq!(viewer.status(), 200, "{method} {path} as viewer");
        } else {
            expect_problem("viewer", 403, "forbidden", viewer).await;
        }
        if template.contains("{id}") {
            expect_problem(
                "another organization",
                404,
                "not_found",
                app.call(method, &path, Some(&b.admin), body).await,
            )
            .await;
        }
        app.expect(admin_status, method, &path, &a.admin, body.cloned())
            .await;
        checked += 1;
    }
    assert_eq!(checked, ROUTES.len() - PUBLIC_ROUTES.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_exactly_the_registered_routes() {
    let app = ApiApp::start();
    let response = app.call("get", "/api/v1/openapi.json", None, None).await;
    assert_eq!(response.status(), 200);
    let document: Value = response.json().await.unwrap();
    assert!(
        s(&document["openapi"]).starts_with("3.1"),
        "{}",
        document["openapi"]
    );
    let mut documented = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if [
                "get", "post", "put", "patch", "delete", "head", "options", "trace",
            ]
            .contains(&method.as_str())
            {
                documented.insert((method.clone(), path.clone()));
            }
        }
    }
    let registered: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    let service: BTreeSet<(String, String)> = SERVICE_ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert!(
        registered.is_disjoint(&service),
        "{registered:?} {service:?}"
    );
    assert_eq!(
        documented,
        registered.union(&service).cloned().collect::<BTreeSet<_>>()
    );
    assert!(document["components"]["securitySchemes"]["api_key"].is_object());

    // Each documented service route is served by `webhook_http::configure`: the operations
    // endpoints answer, and ingest answers its own 404 for an unknown webhook, not the
    // catch-all's.
    for (method, path) in &service {
        let path = path.replace("{webhook_id}", &Uuid::new_v4().to_string());
        let body = (method == "post").then(|| json!({}));
        let response = app.call(method, &path, None, body.as_ref()).await;
        if method == "post" {
            let answer = problem(response).await;
            assert_eq!(
                (answer.status, answer.code()),
                (404, "webhook_not_found"),
                "{method} {path}"
            );
        } else {
            assert_eq!(response.status(), 200, "{method} {path}");
        }
    }

    // Each documented route is served: without a key it is refused, not unknown.
    for (method, path) in &registered {
        let path = path.replace("{id}", &Uuid::new_v4().to_string());
        let response = app.call(method, &path, None, None).await;
        let expected = if PUBLIC_ROUTES
            .iter()
            .any(|(m, p)| m == method && p.replace("{id}", "") == path)
        {
            200
        } else {
            401
        };
        assert_eq!(response.status(), expected, "{method} {path}");
    }
    // Another method on a served path is 405, not 404.
    let answer = app.refusal("put", "/api/v1/webhooks", None, None).await;
    assert_eq!((answer.status, answer.code()), (405, "method_not_allowed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_test_disable_delete_and_read_failed_invocations() {
    let app = ApiApp::start();
    let org = app.org().await;
    let key = org.admin.as_str();

    let target = app.target(key).await;
    assert!(s(&target["signing_secret"]).starts_with("whsec_"));
    let fetched = get(&app, key, &format!("/api/v1/targets/{}", s(&target["id"]))).await;
    assert!(fetched.get("signing_secret").is_none(), "shown once only");

    let created = app
        .expect(
            201,
            "post",
            "/api/v1/webhooks",
            key,
            Some(json!({
                "name": "CI pipeline", "target_id": target["id"], "event_types": ["deploy.*"],
                "generate_secret": true, "rate_limit_per_minute": 60,
            })),
        )
        .await;
    let fields: BTreeSet<&str> = created
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        BTreeSet::from([
            "id",
            "name",
            "url",
            "target",
            "event_types",
            "has_secret",
            "status",
            "rate_limit_per_minute",
            "created_at",
            "updated_at",
            "last_triggered_at",
            "secret",
            "source",
            "verification",
            "event_type_from",
            "dedup_key_from",
            "instruction_template",
            "allowed_source_ips",
            "previous_secret_expires_at",
            "health",
        ])
    );
    assert_eq!(
        created["source"], "generic",
        "the seed's behaviour by default"
    );
    let id = s(&created["id"]).to_owned();
    let hook = format!("/api/v1/webhooks/{id}");
    assert_eq!(Uuid::parse_str(&id).unwrap().get_version_num(), 4);
    assert_eq!(
        created["url"],
        format!("https://hooks.example.com/api/webhooks/{id}")
    );
    assert_eq!(
        created["target"],
        json!({"id": target["id"], "kind": "agent", "name": "Deploy bot"})
    );
    assert_eq!(created["event_types"], json!(["deploy.*"]));
    assert_eq!(created["has_secret"], true);
    assert_eq!(created["status"], "active");
    assert_eq!(created["rate_limit_per_minute"], 60);
    assert!(s(&created["created_at"]).ends_with('Z'));
    assert_eq!(created["last_triggered_at"], Value::Null);
    let secret = s(&created["secret"]).to_owned();
    assert!(secret.starts_with("whsec_"));

    let fetched = get(&app, key, &hook).await;
    assert!(fetched.get("secret").is_none(), "shown once only");
    let listed = get(&app, key, "/api/v1/webhooks").await;
    assert_eq!(listed["items"][0]["id"], created["id"]);
    assert_eq!(listed["next_cursor"], Value::Null);

    // A real sender with the copied URL's id and the secret, then a wrong secret.
    let response = app
        .send(
            &created,
            Some(&secret),
            r#"{"message":"Deploy","event_type":"deploy.done"}"#,
        )
        .await;
    assert_eq!(response.status(), 202);
    assert_eq!(
        app.send(&created, Some("whsec_wrong-wrong-wrong"), "{}")
            .await
            .status(),
        401
    );
    // The 401 is counted; the node writes its count to the log every second.
    app.flush_rejections().await;

    // The test endpoint runs the pipeline; the default payload has no event type, so a
    // subscription to `deploy.*` ignores it, and a typed payload is accepted.
    let ignored = test_send(&app, key, &id, None).await;
    assert_eq!(ignored["status"], "ignored");
    let payload = json!({"payload": {"message": "Test deploy", "event_type": "deploy.test"}});
    let accepted = test_send(&app, key, &id, Some(payload)).await;
    assert_eq!(accepted["status"], "accepted");
    let invocation_path = format!("/api/v1/invocations/{}", s(&accepted["invocation_id"]));
    let invocation = get(&app, key, &invocation_path).await;
    assert_eq!(invocation["test"], true);
    assert_eq!(invocation["outcome"], "accepted");
    assert_eq!(invocation["task_id"], accepted["task_id"]);
    assert_eq!(invocation["payload"]["message"], "Test deploy");
    assert_eq!(invocation["target_response"], Value::Null);
    let task = get(
        &app,
        key,
        &format!("/api/v1/tasks/{}", s(&accepted["task_id"])),
    )
    .await;
    assert_eq!(
        (task["test"].clone(), task["status"].clone()),
        (json!(true), json!("queued"))
    );
    assert_eq!(task["instruction"], "Test deploy");

    // Disable: the URL answers 403 at once (the cached route was dropped).
    let disabled = app
        .expect(
            200,
            "patch",
            &hook,
            key,
            Some(json!({"status": "disabled"})),
        )
        .await;
    assert_eq!(disabled["status"], "disabled");
    let answer = problem(app.send(&created, Some(&secret), "{}").await).await;
    assert_eq!((answer.status, answer.code()), (403, "webhook_disabled"));
    let refused = test_send(&app, key, &id, None).await;
    assert_eq!(
        (refused["status"].clone(), refused["code"].clone()),
        (json!("rejected"), json!("webhook_disabled"))
    );

    // Failed invocations: the wrong secret, newest first.
    let failed = get(&app, key, &format!("{hook}/invocations?outcome=failed")).await;
    let items = failed["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{failed}");
    assert_eq!(items[0]["http_status"], 401);
    assert_eq!(items[0]["error_code"], "invalid_secret");
    assert_eq!(items[0]["source_ip"], "127.0.0.1");
    let all = get(&app, key, &format!("{hook}/invocations?limit=2")).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
    let cursor = s(&all["next_cursor"]).to_owned();
    let rest_path = format!("{hook}/invocations?limit=2&cursor={cursor}");
    let rest = get(&app, key, &rest_path).await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 2, "{rest}");
    assert_ne!(rest["items"][0]["id"], all["items"][0]["id"]);

    // Delete: 204, then 410 at the URL forever; the tombstone reads back and never changes.
    app.expect(204, "delete", &hook, key, None).await;
    let answer = problem(app.send(&created, Some(&secret), "{}").await).await;
    assert_eq!((answer.status, answer.code()), (410, "webhook_deleted"));
    let tombstone = get(&app, key, &hook).await;
    assert_eq!(tombstone["status"], "deleted");
    let revive = json!({"status": "active"});
    let answer = app.refusal("patch", &hook, Some(key), Some(&revive)).await;
    assert_eq!((answer.status, answer.code()), (409, "webhook_deleted"));
    let listed = get(&app, key, "/api/v1/webhooks").await;
    assert_eq!(listed["items"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_values_name_their_field_and_change_nothing() {
    let app = ApiApp::start();
    let org = app.org().await;
    let other = app.org().await;
    let key = org.admin.as_str();
    let target = app.target(key).await;
    let foreign_target = app.target(&other.admin).await;
    let webhook = app.webhook(key, &target).await;
    let id = s(&webhook["id"]);

    let check = |status: u16,
                 method: &'static str,
                 path: &str,
                 body: Option<Value>,
                 field: &'static str| {
        let (app, path) = (&app, path.to_owned());
        async move {
            let answer = app.refusal(method, &path, Some(key), body.as_ref()).await;
            assert_eq!(
                answer.status, status,
                "{method} {path} {body:?}: {}",
                answer.body
            );
            assert_eq!(answer.code(), "validation_failed");
            assert_eq!(answer.body["field"], field, "{}", answer.body);
        }
    };
    let base = json!({"name": "x", "target_id": target["id"]});
    let rate = "rate_limit_per_minute";
    // Creating a webhook: a body without a name, then a valid body with one field changed.
    let no_name = json!({"target_id": target["id"]});
    check(400, "post", "/api/v1/webhooks", Some(no_name), "name").await;
    for (status, extra, field) in [
        (400, json!({"colour": "red"}), "colour"),
        (400, json!({rate: "fast"}), rate),
        (422, json!({"name": "n".repeat(201)}), "name"),
        (
            422,
            json!({"event_types": ["ok", "bad*"]}),
            "event_types[1]",
        ),
        (422, json!({rate: 0}), rate),
        (422, json!({rate: 1_000_001}), rate),
        (422, json!({"target_id": "nope"}), "target_id"),
        (422, json!({"target_id": foreign_target["id"]}), "target_id"),
        (422, json!({"secret": "short"}), "secret"),
        (
            422,
            json!({"secret": "0123456789abcdef", "generate_secret": true}),
            "generate_secret",
        ),
    ] {
        let mut body = base.clone();
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        check(status, "post", "/api/v1/webhooks", Some(body), field).await;
    }
    // Other bodies, all 422: (method, path, body, the field named).
    let hook = format!("/api/v1/webhooks/{id}");
    let this_target = format!("/api/v1/targets/{}", s(&target["id"]));
    let (test, organization) = (format!("{hook}/test"), "/api/v1/organization");
    let (targets, keys) = ("/api/v1/targets", "/api/v1/api-keys");
    let endpoint = "endpoint_url";
    let of_kind = |kind: &str| json!({"kind": kind, "name": "x"});
    let agent_at = |url: &str| json!({"kind": "agent", "name": "x", endpoint: url});
    let loopback = "http://127.0.0.1:9000/hook";
    let metadata = "http://169.254.169.254/latest/meta-data";
    for (method, path, body, field) in [
        ("post", targets, of_kind("robot"), "kind"),
        ("post", targets, agent_at("ftp://x"), endpoint),
        ("post", targets, agent_at(loopback), endpoint),
        ("patch", &this_target, json!({endpoint: metadata}), endpoint),
        ("patch", &hook, json!({"status": "deleted"}), "status"),
        ("patch", organization, json!({rate: 2_000_000}), rate),
        ("post", keys, json!({"name": "x", "role": "root"}), "role"),
        ("post", &test, json!({"payload": [1, 2]}), "payload"),
    ] {
        check(422, method, path, Some(body), field).await;
    }
    // Queries and path ids: (status, path, the field named).
    for (status, path, field) in [
        (422, "/api/v1/webhooks?limit=0", "limit"),
        (422, "/api/v1/webhooks?limit=501", "limit"),
        (422, "/api/v1/webhooks?cursor=zzz", "cursor"),
        (400, "/api/v1/webhooks?colour=red", "colour"),
        (422, &format!("{hook}/invocations?outcome=bogus"), "outcome"),
        (422, "/api/v1/tasks?status=done", "status"),
        (422, "/api/v1/webhooks/not-a-uuid", "id"),
    ] {
        check(status, "get", path, None, field).await;
    }

    // A valid name with an invalid limit: nothing is applied.
    let body = json!({"name": "Changed", rate: 0});
    check(422, "patch", &hook, Some(body), rate).await;
    let unchanged = get(&app, key, &hook).await;
    assert_eq!(unchanged["name"], "CI");
    assert_eq!(unchanged["updated_at"], webhook["updated_at"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_moves_follow_the_lifecycle() {
    let app = ApiApp::start();
    let org = app.org().await;
    let key = org.admin.as_str();
    let target = app.target(key).await;
    let webhook = app.webhook(key, &target).await;
    let sent = test_send(&app, key, s(&webhook["id"]), None).await;
    let task = format!("/api/v1/tasks/{}", s(&sent["task_id"]));

    let refused = |body: Value, path: String| {
        let app = &app;
        async move {
            let answer = app
                .refusal(
                    if path.ends_with("retry") {
                        "post"
                    } else {
                        "patch"
                    },
                    &path,
                    Some(key),
                    Some(&body),
                )
                .await;
            assert_eq!(
                (answer.status, answer.code()),
                (409, "invalid_transition"),
                "{}",
                answer.body
            );
            answer
        }
    };
    let answer = refused(json!({"status": "completed"}), task.clone()).await;
    assert_eq!(
        answer.body["detail"],
        "a queued task cannot become completed"
    );
    refused(json!({}), format!("{task}/retry")).await;
    for status in ["delivered", "in_progress", "failed"] {
        let moved = app
            .expect(200, "patch", &task, key, Some(json!({"status": status})))
            .await;
        assert_eq!(moved["status"], status);
    }
    refused(json!({"status": "completed"}), task.clone()).await;
    let retried = app
        .expect(200, "post", &format!("{task}/retry"), key, None)
        .await;
    assert_eq!(retried["status"], "queued");

    // The board filters by status and target.
    let queued = format!("/api/v1/tasks?status=queued&target_id={}", s(&target["id"]));
    let board = get(&app, key, &queued).await;
    assert_eq!(board["items"].as_array().unwrap().len(), 1);
    let board = get(&app, key, "/api/v1/tasks?status=failed").await;
    assert_eq!(board["items"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_are_shown_once_and_stop_working_when_deleted() {
    let app = ApiApp::start();
    let org = app.org().await;
    let created = create_key(&app, &org.admin, json!({"name": "CI", "role": "admin"})).await;
    let new_key = s(&created["api_key"]).to_owned();
    assert!(new_key.starts_with("whk_"));
    let listed = get(&app, &new_key, "/api/v1/api-keys").await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 3);
    assert!(
        !listed.to_string().contains(&new_key),
        "keys are never listed"
    );
    app.expect(
        204,
        "delete",
        &format!("/api/v1/api-keys/{}", s(&created["id"])),
        &org.admin,
        None,
    )
    .await;
    let answer = app
        .refusal("get", "/api/v1/api-keys", Some(&new_key), None)
        .await;
    assert_eq!(answer.status, 401);

    // The last admin key stays: the only key that could delete it is itself.
    let keys = get(&app, &org.admin, "/api/v1/api-keys").await;
    let admin = keys["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["role"] == "admin")
        .unwrap();
    let answer = app
        .refusal(
            "delete",
            &format!("/api/v1/api-keys/{}", s(&admin["id"])),
            Some(&org.admin),
            None,
        )
        .await;
    assert_eq!((answer.status, answer.code()), (409, "own_key"));

    let organization = app
        .expect(
            200,
            "patch",
            "/api/v1/organization",
            &org.admin,
            Some(json!({"name": "Acme Inc", "rate_limit_per_minute": 5000})),
        )
        .await;
    assert_eq!(
        organization,
        json!({"id": org.id.to_string(), "name": "Acme Inc", "rate_limit_per_minute": 5000})
    );
    // The document's `integer` is JSON Schema's: a whole number written with a zero fraction
    // is one.
    let organization = app
        .expect(
            200,
            "patch",
            "/api/v1/organization",
            &org.admin,
            Some(json!({"rate_limit_per_minute": 250.0})),
        )
        .await;
    assert_eq!(organization["rate_limit_per_minute"], 250);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_page_with_cursors() {
    let app = ApiApp::start();
    let org = app.org().await;
    let target = app.target(&org.admin).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(app.webhook(&org.admin, &target).await["id"].clone());
    }
    let mut seen = Vec::new();
    let mut path = "/api/v1/webhooks?limit=2".to_owned();
    loop {
        let page = get(&app, &org.admin, &path).await;
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w["id"].clone()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/webhooks?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    let unique: BTreeSet<String> = seen.iter().map(|v| s(v).to_owned()).collect();
    assert_eq!(unique.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_are_refused_after_the_key() {
    let app = ApiApp::start();
    let org = app.org().await;
    let body = format!(
        r#"{{"name":"{}","kind":"team"}}"#,
        "a".repeat(2 * 1024 * 1024)
    );
    let send = |key: &str| {
        app.request("post", "/api/v1/targets", Some(key))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
    };
    let answer = problem(send(&org.viewer).await.unwrap()).await;
    assert_eq!((answer.status, answer.code()), (403, "forbidden"));
    let answer = problem(send(&org.admin).await.unwrap()).await;
    assert_eq!((answer.status, answer.code()), (413, "payload_too_large"));
    assert_eq!(answer.header("connection"), Some("close"));
    // A body within the limit is read and judged on its values.
    let body = format!(r#"{{"name":"{}","kind":"team"}}"#, "a".repeat(300));
    let answer = app
        .refusal(
            "post",
            "/api/v1/targets",
            Some(&org.admin),
            Some(&serde_json::from_str(&body).unwrap()),
        )
        .await;
    assert_eq!((answer.status, answer.code()), (422, "validation_failed"));
}

/// `GET path` as `key`, which must answer 200: the JSON body.
async fn get(app: &ApiApp, key: &str, path: &str) -> Value {
    app.expect(200, "get", path, key, None).await
}

/// `POST /api/v1/webhooks/{webhook_id}/test` as `key`, with `body` when given, which must answer
/// 200: the JSON body.
async fn test_send(app: &ApiApp, key: &str, webhook_id: &str, body: Option<Value>) -> Value {
    let path = format!("/api/v1/webhooks/{webhook_id}/test");
    app.expect(200, "post", &path, key, body).await
}

/// `POST /api/v1/api-keys` with `body` as `admin`, which must answer 201: the JSON body.
async fn create_key(app: &ApiApp, admin: &str, body: Value) -> Value {
    app.expect(201, "post", "/api/v1/api-keys", admin, Some(body))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn management_bodies_must_be_json_objects_not_arrays() {
    let app = ApiApp::start();
    let org = app.org().await;
    let target = app.target(&org.admin).await;
    for (path, body) in [
        ("/api/v1/api-keys", json!(["k", "viewer"])),
        ("/api/v1/webhooks", json!(["wh", target["id"]])),
        ("/api/v1/targets", json!(["agent", "bot"])),
    ] {
        let answer = app
            .refusal("post", path, Some(&org.admin), Some(&body))
            .await;
        assert_eq!(
            (answer.status, answer.code()),
            (400, "validation_failed"),
            "{path}: {}",
            answer.body
        );
        assert_eq!(answer.body["field"], Value::Null, "{}", answer.body);
    }
    let keys = app
        .expect(200, "get", "/api/v1/api-keys", &org.admin, None)
        .await;
    assert_eq!(
        keys["items"].as_array().unwrap().len(),
        2,
        "nothing created"
    );
    let webhooks = app
        .expect(200, "get", "/api/v1/webhooks", &org.admin, None)
        .await;
    assert_eq!(webhooks["items"], json!([]), "nothing created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_key_cannot_delete_itself() {
    let app = ApiApp::start();
    let org = app.org().await;
    let created = app
        .expect(
            201,
            "post",
            "/api/v1/api-keys",
            &org.admin,
            Some(json!({"name": "second admin", "role": "admin"})),
        )
        .await;
    let second = s(&created["api_key"]).to_owned();
    let path = format!("/api/v1/api-keys/{}", s(&created["id"]));

    // Another admin key exists, so this is not about the last admin key.
    let answer = app.refusal("delete", &path, Some(&second), None).await;
    assert_eq!(
        (answer.status, answer.code()),
        (409, "own_key"),
        "{}",
        answer.body
    );
    // It still works, and another admin key may delete it.
    app.expect(200, "get", "/api/v1/api-keys", &second, None)
        .await;
    app.expect(204, "delete", &path, &org.admin, None).await;
    let answer = app
        .refusal("get", "/api/v1/api-keys", Some(&second), None)
        .await;
    assert_eq!(answer.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_405_names_the_allowed_methods() {
    let app = ApiApp::start();
    let org = app.org().await;
    let id = Uuid::new_v4().to_string();
    let mut allowed = std::collections::BTreeMap::<&str, BTreeSet<String>>::new();
    for (method, path) in ROUTES {
        allowed
            .entry(path)
            .or_default()
            .insert(method.to_uppercase());
    }
    let mut paths: Vec<(String, BTreeSet<String>)> = allowed
        .into_iter()
        .map(|(path, methods)| (path.replace("{id}", &id), methods))
        .collect();
    for (path, methods) in [
        (format!("/api/webhooks/{id}"), &["POST"][..]),
        ("/healthz".to_owned(), &["GET"]),
        ("/readyz".to_owned(), &["GET"]),
        ("/metrics".to_owned(), &["GET"]),
        ("/".to_owned(), &["GET", "HEAD"]),
    ] {
        paths.push((path, methods.iter().map(|m| (*m).to_owned()).collect()));
    }
    for (path, methods) in &paths {
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            if methods.contains(method) {
                continue;
            }
            let answer = problem(
                app.request(method, path, Some(&org.admin))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            assert_eq!(
                (answer.status, answer.code()),
                (405, "method_not_allowed"),
                "{method} {path}"
            );
            let allow: BTreeSet<String> = answer
                .header("allow")
                .unwrap_or_else(|| panic!("{method} {path}: no Allow header"))
                .split(',')
                .map(|m| m.trim().to_owned())
                .collect();
            assert_eq!(&allow, methods, "{method} {path}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_with_a_secret_or_key_are_not_stored_by_caches() {
    let app = ApiApp::start();
    let org = app.org().await;
    // Posts `body` to `path` as the admin, and checks the answer's status and that no cache
    // may keep it.
    let post = async |path: &str, body: Option<Value>, status: u16, what: &str| -> Value {
        let response = app
            .call("post", path, Some(&org.admin), body.as_ref())
            .await;
        assert_eq!(response.status(), status, "{what}");
        assert_eq!(
            response
                .headers()
                .get("cache-control")
                .map(|v| v.to_str().unwrap()),
            Some("no-store"),
            "{what}"
        );
        response.json().await.unwrap()
    };

    let target = post(
        "/api/v1/targets",
        Some(json!({"kind": "agent", "name": "bot"})),
        201,
        "create target (signing_secret)",
    )
    .await;
    assert!(target["signing_secret"].is_string());
    let webhook = post(
        "/api/v1/webhooks",
        Some(json!({"name": "CI", "target_id": target["id"], "generate_secret": true})),
        201,
        "create webhook (secret)",
    )
    .await;
    assert!(webhook["secret"].is_string());
    let rotate = format!("/api/v1/webhooks/{}/rotate-secret", s(&webhook["id"]));
    post(&rotate, None, 200, "rotate-secret").await;
    post(
        "/api/v1/api-keys",
        Some(json!({"name": "ci", "role": "viewer"})),
        201,
        "create api key",
    )
    .await;
}

/// A management body that stops arriving is answered 408 `request_timeout` once the body
/// timeout passes, and the connection is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfinished_body_is_answered_408_after_the_body_timeout() {
    let app = ApiApp::start_on_with(
        MemoryStore::new(),
        Options {
            body_timeout: Duration::from_millis(300),
            ..Options::default()
        },
    );
    let org = app.org().await;
    let address = app.base.strip_prefix("http://").unwrap().to_owned();
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /api/v1/targets HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
        org.admin
    );
    tokio::io::AsyncWriteExt::write_all(&mut stream, head.as_bytes())
        .await
        .unwrap();
    crate::helpers::assert_timed_out(&mut stream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_take_a_source_with_its_overrides_and_refuse_bad_ones() {
    let app = ApiApp::start();
    let org = app.org().await;
    let key = org.admin.as_str();
    let target = app.target(key).await;

    // Created with a source: shown back, never the secret.
    let created = app
        .expect(
            201,
            "post",
            "/api/v1/webhooks",
            key,
            Some(json!({
                "name": "Repo", "target_id": target["id"], "generate_secret": true,
                "source": "github",
                "instruction_template": "Review {{ pull_request.title }}",
                "allowed_source_ips": ["192.0.2.0/24", "2001:db8::/32"],
            })),
        )
        .await;
    assert_eq!(created["source"], "github");
    assert_eq!(created["verification"], Value::Null);
    assert_eq!(
        created["instruction_template"],
        "Review {{ pull_request.title }}"
    );
    assert_eq!(
        created["allowed_source_ips"],
        json!(["192.0.2.0/24", "2001:db8::/32"])
    );
    assert_eq!(created["previous_secret_expires_at"], Value::Null);
    let hook = format!("/api/v1/webhooks/{}", s(&created["id"]));
    let read = get(&app, key, &hook).await;
    assert!(read.get("secret").is_none());
    assert_eq!(read["source"], "github");

    // Refused values name their field, and nothing is saved.
    let base = json!({"name": "x", "target_id": target["id"]});
    for (extra, field) in [
        (json!({"source": "gitea"}), "source"),
        (json!({"event_type_from": "event/id"}), "event_type_from"),
        (json!({"dedup_key_from": "/a/~2"}), "dedup_key_from"),
        (json!({"dedup_key_from": "header:X Bad"}), "dedup_key_from"),
        (
            json!({"instruction_template": "{{ unclosed"}),
            "instruction_template",
        ),
        (
            json!({"instruction_template": "{% for %}"}),
            "instruction_template",
        ),
        (
            json!({"allowed_source_ips": ["10.0.0.0/8", "garbage"]}),
            "allowed_source_ips[1]",
        ),
        (
            json!({"allowed_source_ips": ["10.0.0.1/8"]}),
            "allowed_source_ips[0]",
        ),
        (
            json!({"verification": {"scheme": "rot13"}}),
            "verification.scheme",
        ),
        (
            json!({"verification": {"scheme": "hmac", "header": "X-Sig", "algorithm": "md5", "encoding": "hex"}}),
            "verification.algorithm",
        ),
        (
            json!({"source": "stripe", "verification": {"scheme": "bearer"}}),
            "verification",
        ),
    ] {
        let mut body = base.clone();
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let answer = app
            .refusal("post", "/api/v1/webhooks", Some(key), Some(&body))
            .await;
        assert_eq!(answer.status, 422, "{body}: {}", answer.body);
        assert_eq!(answer.body["field"], field, "{body}: {}", answer.body);
        let answer = app.refusal("patch", &hook, Some(key), Some(&extra)).await;
        assert_eq!(answer.status, 422, "{extra}: {}", answer.body);
        assert_eq!(answer.body["field"], field, "{extra}: {}", answer.body);
    }
    let listed = get(&app, key, "/api/v1/webhooks").await;
    assert_eq!(
        listed["items"].as_array().unwrap().len(),
        1,
        "nothing was created"
    );
    assert_eq!(get(&app, key, &hook).await, read, "nothing was changed");

    // A change to generic with a verification, then `null` clears the overrides.
    let changed = app
        .expect(
            200,
            "patch",
            &hook,
            key,
            Some(json!({
                "source": "generic",
                "verification": {"scheme": "hmac", "header": "X-Signature", "algorithm": "sha512", "encoding": "base64", "prefix": "sha512="},
                "event_type_from": "header:X-Kind",
                "dedup_key_from": "/delivery/id",
            })),
        )
        .await;
    assert_eq!(
        changed["verification"],
        json!({"scheme": "hmac", "header": "x-signature", "algorithm": "sha512", "encoding": "base64", "prefix": "sha512="})
    );
    assert_eq!(changed["event_type_from"], "header:x-kind");
    assert_eq!(changed["dedup_key_from"], "/delivery/id");
    assert_eq!(
        changed["instruction_template"],
        "Review {{ pull_request.title }}"
    );
    let cleared = app
        .expect(
            200,
            "patch",
            &hook,
            key,
            Some(json!({
                "verification": null, "event_type_from": null, "dedup_key_from": null,
                "instruction_template": null, "allowed_source_ips": null,
            })),
        )
        .await;
    for field in [
        "verification",
        "event_type_from",
        "dedup_key_from",
        "instruction_template",
        "allowed_source_ips",
    ] {
        assert_eq!(cleared[field], Value::Null, "{field}");
    }

    // Rotation with an overlap: both secrets verify until it ends; a week at most.
    let old = s(&created["secret"]).to_owned();
    let generic = app.webhook(key, &target).await;
    let generic_hook = format!("/api/v1/webhooks/{}", s(&generic["id"]));
    let old_generic = s(&generic["secret"]).to_owned();
    let rotate = format!("{generic_hook}/rotate-secret");
    let answer = app
        .refusal(
            "post",
            &rotate,
            Some(key),
            Some(&json!({"previous_valid_for_seconds": 604_801})),
        )
        .await;
    assert_eq!(
        (answer.status, answer.body["field"].as_str()),
        (422, Some("previous_valid_for_seconds"))
    );
    let rotated = app
        .expect(
            200,
            "post",
            &rotate,
            key,
            Some(json!({"previous_valid_for_seconds": 3600})),
        )
        .await;
    assert!(rotated["previous_secret_expires_at"].is_string());
    let new = s(&rotated["secret"]).to_owned();
    assert_ne!(new, old_generic);
    let body = r#"{"message":"m"}"#;
    assert_eq!(app.send(&generic, Some(&new), body).await.status(), 202);
    assert_eq!(
        app.send(&generic, Some(&old_generic), body).await.status(),
        202
    );
    assert_eq!(app.send(&generic, Some(&old), body).await.status(), 401);
    // A rotation without an overlap ends every earlier secret at once.
    let again = app.expect(200, "post", &rotate, key, Some(json!({}))).await;
    assert_eq!(again["previous_secret_expires_at"], Value::Null);
    assert_eq!(app.send(&generic, Some(&new), body).await.status(), 401);
    assert_eq!(
        app.send(&generic, Some(&old_generic), body).await.status(),
        401
    );
    assert_eq!(
        app.send(&generic, Some(s(&again["secret"])), body)
            .await
            .status(),
        202
    );
}

/// The invocation log's filters over HTTP: each one alone, together with the cursor, and a
/// refused value of each answered 422 naming its field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invocation_lists_filter_and_search() {
    let app = ApiApp::start();
    let org = app.org().await;
    let key = org.admin.as_str();
    let target = app.target(key).await;
    let webhook = app.webhook(key, &target).await;
    let secret = s(&webhook["secret"]).to_owned();
    let id = s(&webhook["id"]).to_owned();
    let log = format!("/api/v1/webhooks/{id}/invocations");
    let deploy = r#"{"message":"Deploy of API finished","event_type":"deploy.finished"}"#;
    let build = r#"{"message":"Build failed: api-gateway","event_type":"build.failed"}"#;
    for body in [deploy, build] {
        assert_eq!(app.send(&webhook, Some(&secret), body).await.status(), 202);
        app.clock.advance(Duration::from_secs(1));
    }
    let payload = json!({"payload": {"message": "Deploy test", "event_type": "deploy.test"}});
    let tested = test_send(&app, key, &id, Some(payload)).await;
    let all = get(&app, key, &log).await;
    let items = all["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{all}");
    let (newest, middle, oldest) = (&items[0], &items[1], &items[2]);
    assert_eq!(newest["id"], tested["invocation_id"]);

    let ids = |page: &Value| -> Vec<Value> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].clone())
            .collect()
    };
    let listed = async |query: &str| ids(&get(&app, key, &format!("{log}?{query}")).await);
    assert_eq!(
        listed("event_type=deploy.finished").await,
        [oldest["id"].clone()]
    );
    assert_eq!(
        listed("source_ip=127.0.0.1").await,
        [middle["id"].clone(), oldest["id"].clone()]
    );
    assert!(listed("source_ip=10.0.0.1").await.is_empty());
    assert_eq!(listed("test=true").await, [newest["id"].clone()]);
    assert_eq!(listed("test=false").await.len(), 2);
    let at = |item: &Value| s(&item["received_at"]).to_owned();
    assert_eq!(
        listed(&format!("since={}", at(middle))).await,
        [newest["id"].clone(), middle["id"].clone()]
    );
    assert_eq!(
        listed(&format!("until={}", at(middle))).await,
        [oldest["id"].clone()]
    );
    assert_eq!(
        listed("q=deploy").await,
        [newest["id"].clone(), oldest["id"].clone()]
    );
    assert_eq!(listed("q=API%20deploy").await, [oldest["id"].clone()]);
    assert_eq!(
        listed("q=gateway&outcome=accepted").await,
        [middle["id"].clone()]
    );
    assert!(listed("q=gateway&outcome=rejected").await.is_empty());
    assert_eq!(listed("q=deploy&test=false").await, [oldest["id"].clone()]);

    // A search a page at a time: the cursor goes on with the same filters.
    let first = get(&app, key, &format!("{log}?q=deploy&limit=1")).await;
    assert_eq!(ids(&first), [newest["id"].clone()]);
    let cursor = s(&first["next_cursor"]).to_owned();
    let second = get(
        &app,
        key,
        &format!("{log}?q=deploy&limit=1&cursor={cursor}"),
    )
    .await;
    assert_eq!(ids(&second), [oldest["id"].clone()]);
    assert_eq!(second["next_cursor"], Value::Null);

    for (query, field) in [
        ("event_type=", "event_type"),
        ("source_ip=localhost", "source_ip"),
        ("source_ip=10.0.0.256", "source_ip"),
        ("since=2026-12-07", "since"),
        ("until=2026-13-01T00:00:00Z", "until"),
        (
            "since=2026-12-07T10:00:00Z&until=2026-12-07T09:00:00Z",
            "until",
        ),
        ("test=yes", "test"),
        ("q=...", "q"),
        ("q=%F0%9F%98%80", "q"),
        (&format!("q={}", "x".repeat(65)), "q"),
        ("q=a+b+c+d+e+f+g+h+i+j+k+l+m+n+o+p+q", "q"),
    ] {
        let path = format!("{log}?{query}");
        let answer = app.refusal("get", &path, Some(key), None).await;
        assert_eq!(answer.status, 422, "{path}: {}", answer.body);
        assert_eq!(answer.code(), "validation_failed");
        assert_eq!(answer.body["field"], field, "{path}: {}", answer.body);
    }
}
