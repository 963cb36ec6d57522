//! The `OpenAPI` document as a document: valid `OpenAPI` 3.1 as far as tools depend on it
//! (unique operation ids, `$ref`s that resolve, path parameters that match their templates,
//! schemas that compile), and saying what the server enforces: the enums, `format: uuid` on
//! every id, and the bounds of the domain's checks. `cargo xtask test` also runs
//! openapi-spec-validator and schemathesis against it.

#![expect(clippy::unwrap_used, reason = "tests: a panic is how a test fails")]

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};
use webhook_domain::model::{
    EventTypePattern, InvocationOutcome, Name, OutcomeFilter, PageRequest, RatePerMinute, Role,
    Secret, TargetKind, TaskStatus, WebhookStatus,
};

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn document() -> Value {
    serde_json::from_str(&webhook_http::api::openapi_json()).unwrap()
}

/// Every operation as (method, path, operation).
fn operations(document: &Value) -> Vec<(String, String, Value)> {
    let mut all = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if METHODS.contains(&method.as_str()) {
                all.push((method.clone(), path.clone(), operation.clone()));
            }
        }
    }
    all
}

/// Every string under a `$ref` key, anywhere in `value`.
fn refs(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("$ref", Value::String(target)) => found.push(target.clone()),
                    _ => refs(value, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| refs(item, found)),
        _ => {}
    }
}

/// `schema` with its `$ref`s followed, within `document`.
fn resolve<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(target) => resolve(document, document.pointer(&target[1..]).unwrap()),
        None => schema,
    }
}

/// The alternatives of a nullable `oneOf` with the null dropped, else the schema itself.
fn not_null<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    let schema = resolve(document, schema);
    match schema["oneOf"].as_array() {
        Some(alternatives) => {
            let rest: Vec<&Value> = alternatives
                .iter()
                .filter(|alternative| alternative["type"] != "null")
                .collect();
            assert_eq!(rest.len(), 1, "{schema}");
            resolve(document, rest[0])
        }
        None => schema,
    }
}

fn enum_values(schema: &Value) -> BTreeSet<&str> {
    schema["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("no enum: {schema}"))
        .iter()
        .map(|value| value.as_str().unwrap())
        .collect()
}

#[test]
fn the_document_is_valid_openapi_3_1() {
    let document = document();
    assert_eq!(document["openapi"], "3.1.0");
    assert!(document["info"]["title"].is_string());
    assert!(document["info"]["version"].is_string());

    // Operation ids: present on every operation, unique, and in snake case.
    let mut ids: BTreeMap<String, String> = BTreeMap::new();
    for (method, path, operation) in operations(&document) {
        let id = operation["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path} has no operationId"))
            .to_owned();
        assert!(
            id.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{id}"
        );
        if let Some(other) = ids.insert(id.clone(), format!("{method} {path}")) {
            panic!("operationId {id} is used by {other} and {method} {path}");
        }
    }

    // Every `$ref` resolves inside the document.
    let mut found = Vec::new();
    refs(&document, &mut found);
    assert!(!found.is_empty());
    for target in &found {
        let pointer = target
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{target} points outside the document"));
        assert!(
            document.pointer(pointer).is_some(),
            "{target} does not resolve"
        );
    }

    // Path templates and path parameters match one to one, and every parameter is unique.
    for (method, path, operation) in operations(&document) {
        let templated: BTreeSet<&str> = path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        let parameters = operation["parameters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let declared: BTreeSet<&str> = parameters
            .iter()
            .filter(|parameter| parameter["in"] == "path")
            .map(|parameter| {
                assert_eq!(parameter["required"], true, "{method} {path}: {parameter}");
                parameter["name"].as_str().unwrap()
            })
            .collect();
        assert_eq!(templated, declared, "{method} {path}");
        let unique: BTreeSet<(&str, &str)> = parameters
            .iter()
            .map(|p| (p["in"].as_str().unwrap(), p["name"].as_str().unwrap()))
            .collect();
        assert_eq!(unique.len(), parameters.len(), "{method} {path}");
        for (status, response) in operation["responses"].as_object().unwrap() {
            assert!(
                status.len() == 3 && status.bytes().all(|b| b.is_ascii_digit()),
                "{method} {path}: {status}"
            );
            assert!(
                response["description"].is_string(),
                "{method} {path} {status}"
            );
        }
    }

    // Every component schema compiles as JSON Schema 2020-12, `$ref`s included.
    let components = document["components"].clone();
    for name in components["schemas"].as_object().unwrap().keys() {
        let mut root = Map::new();
        root.insert(
            "$schema".to_owned(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
        root.insert("components".to_owned(), components.clone());
        root.insert(
            "$ref".to_owned(),
            json!(format!("#/components/schemas/{name}")),
        );
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(&Value::Object(root))
            .unwrap_or_else(|e| panic!("schema {name} does not compile: {e}"));
    }
}

#[test]
fn every_id_is_a_uuid() {
    let document = document();
    let mut checked = 0;
    for (method, path, operation) in operations(&document) {
        for parameter in operation["parameters"].as_array().into_iter().flatten() {
            let name = parameter["name"].as_str().unwrap();
            if name == "id" || name.ends_with("_id") {
                let schema = resolve(&document, &parameter["schema"]);
                assert_eq!(schema["format"], "uuid", "{method} {path} {name}");
                checked += 1;
            }
        }
    }
    // The 16 `{id}`s, ingest's `{webhook_id}` and the task board's `target_id`.
    assert_eq!(checked, 18);
    for (name, schema) in document["components"]["schemas"].as_object().unwrap() {
        for (field, property) in schema["properties"].as_object().into_iter().flatten() {
            // A sender's delivery id is the sender's own text, not one of ours.
            if field == "id" || (field.ends_with("_id") && field != "delivery_id") {
                let property = resolve(&document, property);
                assert_eq!(property["format"], "uuid", "{name}.{field}: {property}");
            }
        }
    }
}

#[test]
fn the_enums_are_the_domain_s() {
    let document = document();
    let schema = |name: &str| &document["components"]["schemas"][name];
    let check = |name: &str, domain: &[&str]| {
        let documented = enum_values(schema(name))
            .into_iter()
            .map(str::to_owned)
            .collect::<BTreeSet<_>>();
        let domain: BTreeSet<String> = domain.iter().map(|v| (*v).to_owned()).collect();
        assert_eq!(documented, domain, "{name}");
    };
    check("Role", &[Role::Admin.as_str(), Role::Viewer.as_str()]);
    check(
        "TargetKind",
        &[TargetKind::Agent.as_str(), TargetKind::Team.as_str()],
    );
    check(
        "WebhookStatus",
        &[
            WebhookStatus::Active.as_str(),
            WebhookStatus::Disabled.as_str(),
            WebhookStatus::Deleted.as_str(),
        ],
    );
    check(
        "SettableWebhookStatus",
        &[
            WebhookStatus::Active.as_str(),
            WebhookStatus::Disabled.as_str(),
        ],
    );
    check("TaskStatus", &TaskStatus::ALL.map(TaskStatus::as_str));
    check(
        "InvocationOutcome",
        &[
            InvocationOutcome::Accepted.as_str(),
            InvocationOutcome::Ignored.as_str(),
            InvocationOutcome::Rejected.as_str(),
            InvocationOutcome::Duplicate.as_str(),
        ],
    );
    check(
        "Source",
        &webhook_domain::model::Source::ALL.map(webhook_domain::model::Source::as_str),
    );
    let filters = enum_values(schema("OutcomeFilter"));
    assert_eq!(filters.len(), 5);
    for filter in filters {
        assert!(OutcomeFilter::parse(filter).is_some(), "{filter}");
    }

    // Where the enums are used: requests, queries and answers.
    let uses = [
        ("CreateTarget", "kind", "TargetKind"),
        ("PatchTarget", "kind", "TargetKind"),
        ("TargetOut", "kind", "TargetKind"),
        ("TargetRef", "kind", "TargetKind"),
        ("CreateApiKey", "role", "Role"),
        ("ApiKeyOut", "role", "Role"),
        ("PatchWebhook", "status", "SettableWebhookStatus"),
        ("WebhookOut", "status", "WebhookStatus"),
        ("PatchTask", "status", "TaskStatus"),
        ("TaskOut", "status", "TaskStatus"),
        ("InvocationOut", "outcome", "InvocationOutcome"),
        ("TestOut", "status", "InvocationOutcome"),
        ("CreateWebhook", "source", "Source"),
        ("PatchWebhook", "source", "Source"),
        ("WebhookOut", "source", "Source"),
        ("TaskSourceOut", "provider", "Source"),
    ];
    for (object, field, expected) in uses {
        let property = not_null(&document, &schema(object)["properties"][field]);
        assert_eq!(property, schema(expected), "{object}.{field}");
    }
    let query = |path: &str, name: &str| {
        let parameters = document["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap();
        let parameter = parameters.iter().find(|p| p["name"] == name).unwrap();
        resolve(&document, &parameter["schema"]).clone()
    };
    assert_eq!(&query("/api/v1/tasks", "status"), schema("TaskStatus"));
    assert_eq!(
        &query("/api/v1/webhooks/{id}/invocations", "outcome"),
        schema("OutcomeFilter")
    );
}

#[test]
fn the_bounds_are_the_domain_s() {
    let document = document();
    let schema = |name: &str| &document["components"]["schemas"][name];

    // Page sizes, on every list.
    let mut lists = 0;
    for (_, path, operation) in operations(&document) {
        for parameter in operation["parameters"].as_array().into_iter().flatten() {
            if parameter["name"] == "limit" {
                let limit = &parameter["schema"];
                assert_eq!(limit["type"], "integer", "{path}");
                assert_eq!(limit["minimum"], 1, "{path}");
                assert_eq!(limit["maximum"], PageRequest::MAX_LIMIT, "{path}");
                lists += 1;
            }
        }
    }
    assert_eq!(lists, 4);

    let rate = schema("RateLimitPerMinute");
    assert_eq!(
        (rate["minimum"].as_u64(), rate["maximum"].as_u64()),
        (Some(1), Some(u64::from(RatePerMinute::MAX)))
    );
    for object in ["CreateWebhook", "PatchWebhook", "PatchOrganization"] {
        let property = not_null(
            &document,
            &schema(object)["properties"]["rate_limit_per_minute"],
        );
        assert_eq!(property, rate, "{object}");
    }

    let name = schema("DisplayName");
    assert_eq!(name["minLength"], 1);
    for object in [
        "CreateTarget",
        "PatchTarget",
        "CreateWebhook",
        "PatchWebhook",
        "CreateApiKey",
        "PatchOrganization",
    ] {
        let property = not_null(&document, &schema(object)["properties"]["name"]);
        assert_eq!(property, name, "{object}");
    }

    let secret = schema("WebhookSecret");
    assert_eq!(
        (secret["minLength"].as_u64(), secret["maxLength"].as_u64()),
        (Some(Secret::MIN_LEN as u64), Some(Secret::MAX_LEN as u64))
    );
    let pattern = schema("EventTypePattern");
    assert_eq!(
        pattern["maxLength"].as_u64(),
        Some(EventTypePattern::MAX_LEN as u64)
    );
    assert_eq!(
        schema("CreateWebhook")["properties"]["event_types"]["maxItems"].as_u64(),
        Some(webhook_domain::model::EventTypes::MAX_PATTERNS as u64)
    );
}

/// The documented patterns say what the domain's parsers say, on samples at and across the
/// edges.
#[test]
fn the_patterns_are_the_domain_s() {
    let document = document();
    let schema = |name: &str| &document["components"]["schemas"][name];
    let validator = |name: &str| {
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(schema(name))
            .unwrap()
    };

    let names = validator("DisplayName");
    for sample in [
        "Deploy bot",
        "  padded  ",
        "é",
        "",
        "   ",
        "\t",
        "line\nbreak",
        "\u{7f}",
        "\u{85}x",
        "a\u{9f}",
        "x\u{a0}",
        "\tx\r\n",
        "\u{1c}x",
        "x\u{1f}",
        "\u{feff}",
        "\u{3000}x\u{2029}",
        "\u{200b}",
    ] {
        let long = "é".repeat(Name::MAX_CHARS - 1);
        for text in [
            sample.to_owned(),
            format!("{long}{sample}"),
            format!("{sample}{long}"),
            format!("{sample}{long}x{sample}"),
            format!("{long}xy{sample}"),
        ] {
            assert_eq!(
                names.is_valid(&json!(text)),
                Name::parse(&text).is_ok(),
                "{text:?}"
            );
        }
    }

    let patterns = validator("EventTypePattern");
    for sample in [
        "deploy",
        "deploy.*",
        "deploy..*",
        "a/b:c_d-e.f",
        "*",
        ".*",
        "a.*.*",
        "a*",
        "deploy.x*",
        "",
        "dé",
        "a b",
        "a.b.*",
    ] {
        assert_eq!(
            patterns.is_valid(&json!(sample)),
            EventTypePattern::parse(sample).is_ok(),
            "{sample:?}"
        );
    }
    let long = "a".repeat(EventTypePattern::MAX_LEN);
    for text in [
        long.clone(),
        format!("{long}a"),
        format!("{}.*", &long[2..]),
    ] {
        assert_eq!(
            patterns.is_valid(&json!(text)),
            EventTypePattern::parse(&text).is_ok(),
            "{} chars",
            text.len()
        );
    }

    let secrets = validator("WebhookSecret");
    for text in [
        "0123456789abcdef".to_owned(),
        "0123456789abcde".to_owned(),
        "0123456789 abcdef".to_owned(),
        "0123456789abcdeé".to_owned(),
        "x".repeat(Secret::MAX_LEN),
        "x".repeat(Secret::MAX_LEN + 1),
    ] {
        assert_eq!(
            secrets.is_valid(&json!(text)),
            Secret::parse(&text).is_ok(),
            "{text:?}"
        );
    }

    let rates = validator("RateLimitPerMinute");
    for rate in [0_i64, 1, 100, 1_000_000, 1_000_001, -1] {
        let domain = u32::try_from(rate)
            .ok()
            .is_some_and(|rate| RatePerMinute::new(rate).is_ok());
        assert_eq!(rates.is_valid(&json!(rate)), domain, "{rate}");
    }
}
