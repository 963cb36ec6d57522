//! Reading request bodies and query strings into strict types, naming the field on failure.

use actix_web::http::header;
use actix_web::{HttpRequest, web};
use serde::de::DeserializeOwned;

use super::{ApiError, BODY_LIMIT};
use crate::ingest::BodyError;

/// Reads a JSON body of at most [`BODY_LIMIT`] bytes (a longer one is refused before it is
/// read) within the body timeout (else 408 `request_timeout`), after the caller was checked.
pub(crate) async fn read_json<T: DeserializeOwned>(
    request: &HttpRequest,
    payload: web::Payload,
) -> Result<T, ApiError> {
    match crate::ingest::read_body(request, payload, BODY_LIMIT).await {
        Ok(Some(body)) => json_body(&body),
        Ok(None) => Err(ApiError::payload_too_large(BODY_LIMIT)),
        Err(BodyError::Payload(e)) => Err(ApiError::unreadable_body(&e)),
        Err(BodyError::TimedOut(after)) => {
            tracing::info!(
                code = "request_timeout",
                path = request.path(),
                timeout_ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX),
                "management request rejected: the body did not arrive within the body timeout"
            );
            Err(ApiError::request_timeout(after))
        }
    }
}

/// Parses a JSON body; an empty body reads as `{}` (every field absent).
///
/// Only a JSON object is accepted: serde's derived `Deserialize` would also map an array onto
/// a struct's fields by position (`["k","viewer"]` as `{name, role}`), so anything that does
/// not start with `{` is refused before it reaches the type.
pub(crate) fn json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        &b"{}"[..]
    } else {
        body
    };
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(
            match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                Ok(_) => ApiError::malformed(None, "the body must be a JSON object"),
                Err(e) => refusal(".", &e.to_string()),
            },
        );
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|e| refusal(&e.path().to_string(), &e.inner().to_string()))?;
    deserializer
        .end()
        .map_err(|e| ApiError::malformed(None, format!("the body is not valid JSON: {e}")))?;
    Ok(value)
}

/// Parses the query string.
pub(crate) fn query<T: DeserializeOwned>(request: &HttpRequest) -> Result<T, ApiError> {
    let object: serde_json::Map<String, serde_json::Value> = form_pairs(request.query_string())
        .into_iter()
        .map(|(key, value)| (key, serde_json::Value::String(value)))
        .collect();
    serde_path_to_error::deserialize(serde_json::Value::Object(object))
        .map_err(|e| refusal(&e.path().to_string(), &e.inner().to_string()))
}

/// The text after `Bearer ` in the `Authorization` header.
pub(crate) fn bearer(request: &HttpRequest) -> Option<&str> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, key) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| key.trim())
        .filter(|key| !key.is_empty())
}

/// Decoded `key=value` pairs of a query string.
fn form_pairs(query: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

/// A serde refusal at `path` (`.` for the top level), with serde's message.
fn refusal(path: &str, message: &str) -> ApiError {
    // Unknown and missing fields are reported at their parent; name the field itself.
    let named = ["unknown field `", "missing field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next());
    let field = match (path, named) {
        ("." | "", Some(name)) => Some(name.to_owned()),
        (path, Some(name)) if path == name || path.ends_with(&format!(".{name}")) => {
            Some(path.to_owned())
        }
        (parent, Some(name)) => Some(format!("{parent}.{name}")),
        // A top-level array or scalar: no field to name.
        ("." | "", None) => None,
        (path, None) if path.starts_with('[') => None,
        (path, None) => Some(path.to_owned()),
    };
    let message = message.split(" at line ").next().unwrap_or(message);
    let detail = match &field {
        Some(field) => format!("`{field}`: {message}"),
        None => format!("the body is not valid: {message}"),
    };
    ApiError::malformed(field, detail)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        name: String,
        #[serde(default)]
        list: Option<Vec<String>>,
    }

    #[test]
    fn names_the_refused_field() {
        let field = |body: &str| {
            json_body::<Body>(body.as_bytes())
                .unwrap_err()
                .field()
                .map(str::to_owned)
        };
        assert_eq!(field(r#"{"name":"a","extra":1}"#).as_deref(), Some("extra"));
        assert_eq!(field(r"{}").as_deref(), Some("name"));
        assert_eq!(field(r#"{"name":5}"#).as_deref(), Some("name"));
        assert_eq!(
            field(r#"{"name":"a","list":["x",3]}"#).as_deref(),
            Some("list[1]")
        );
        assert_eq!(field(r"[1]"), None);
        assert_eq!(field(r"[1"), None);
        assert_eq!(field(r#"{"name":"a"} x"#), None);
        let body = json_body::<Body>(br#"{"name":"a","list":["x"]}"#).unwrap();
        assert_eq!(
            (body.name.as_str(), body.list.as_deref()),
            ("a", Some(&["x".to_owned()][..]))
        );
    }

    #[test]
    fn refuses_every_body_that_is_not_an_object() {
        for body in [
            r#"["a"]"#,
            r#" ["a", ["x"]]"#,
            r#""a""#,
            "1",
            "null",
            "true",
            "[",
        ] {
            let error = json_body::<Body>(body.as_bytes()).unwrap_err();
            assert_eq!(
                (error.code(), error.field()),
                ("validation_failed", None),
                "{body}"
            );
        }
        let error = json_body::<Body>(br#"["a"]"#).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("400 validation_failed: the body must be a JSON object"),
            "{error}"
        );
    }

    #[test]
    fn decodes_queries() {
        assert_eq!(
            form_pairs("a=1&b=x%20y+z&&c"),
            [
                ("a".to_owned(), "1".to_owned()),
                ("b".to_owned(), "x y z".to_owned()),
                ("c".to_owned(), String::new()),
            ]
        );
    }
}
