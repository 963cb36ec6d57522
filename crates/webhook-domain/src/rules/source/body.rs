//! The body formats each source posts: JSON for all of them, and the forms GitHub
//! (`payload=<json>`) and Slack (slash commands, `payload=<json>` for interactions) send, which
//! are stored as the JSON object they carry.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::model::{Source, SourceSettings};

/// What a `Content-Type` header announces, as far as ingest cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaType {
    /// `application/json` or `application/<anything>+json`, parameters allowed.
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
    /// Anything else, or no `Content-Type` at all.
    Other,
}

impl MediaType {
    /// Classifies a `Content-Type` value, in any case, ignoring parameters.
    pub fn of(content_type: Option<&[u8]>) -> Self {
        let Some(value) = content_type.and_then(|v| std::str::from_utf8(v).ok()) else {
            return Self::Other;
        };
        let essence = value.split(';').next().unwrap_or_default().trim();
        let Some((kind, subtype)) = essence.split_once('/') else {
            return Self::Other;
        };
        if !kind.eq_ignore_ascii_case("application") {
            return Self::Other;
        }
        let subtype = subtype.to_ascii_lowercase();
        if subtype == "json" || subtype.ends_with("+json") {
            Self::Json
        } else if subtype == "x-www-form-urlencoded" {
            Self::Form
        } else {
            Self::Other
        }
    }
}

/// Why a body cannot become a payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyRefused {
    /// 415 `unsupported_media_type`: not JSON, nor a form this source sends.
    #[error("the body must be sent as {expected}")]
    UnsupportedMediaType { expected: &'static str },
    /// 400 `invalid_payload`: a form without the JSON it should carry.
    #[error("{0}")]
    InvalidForm(String),
}

/// The form field in which GitHub (and Slack interactions) put the JSON payload.
const PAYLOAD_FIELD: &str = "payload";

impl SourceSettings {
    /// Whether this source's senders may post `application/x-www-form-urlencoded`.
    pub fn accepts_forms(&self) -> bool {
        matches!(self.source(), Source::Github | Source::Slack)
    }

    /// The JSON text to validate and store for `body` posted as `media`: a JSON body as is;
    /// for GitHub's form its `payload` field; for Slack's forms the `payload` field of an
    /// interaction, or else the fields of a slash command as a JSON object of strings.
    ///
    /// # Errors
    /// [`BodyRefused::UnsupportedMediaType`] for a media type the source does not send;
    /// [`BodyRefused::InvalidForm`] for a GitHub form without a `payload` field.
    pub fn payload_json<'b>(
        &self,
        media: MediaType,
        body: &'b [u8],
    ) -> Result<Cow<'b, [u8]>, BodyRefused> {
        match media {
            MediaType::Json => Ok(Cow::Borrowed(body)),
            MediaType::Form if self.accepts_forms() => self.form_json(body).map(Cow::Owned),
            MediaType::Form | MediaType::Other => Err(BodyRefused::UnsupportedMediaType {
                expected: if self.accepts_forms() {
                    "application/json or application/x-www-form-urlencoded"
                } else {
                    "application/json"
                },
            }),
        }
    }

    fn form_json(&self, body: &[u8]) -> Result<Vec<u8>, BodyRefused> {
        let payload = form_urlencoded::parse(body)
            .find(|(name, _)| name == PAYLOAD_FIELD)
            .map(|(_, value)| value.into_owned().into_bytes());
        match (self.source(), payload) {
            (_, Some(payload)) => Ok(payload),
            (Source::Slack, None) => {
                let mut fields = Map::new();
                for (name, value) in form_urlencoded::parse(body) {
                    fields
                        .entry(name.into_owned())
                        .or_insert_with(|| Value::String(value.into_owned()));
                }
                // A map of strings always serializes.
                Ok(serde_json::to_vec(&fields).unwrap_or_default())
            }
            (_, None) => Err(BodyRefused::InvalidForm(
                "the form has no `payload` field with the event's JSON".to_owned(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn media_types() {
        let check = |value: Option<&str>, expected: MediaType| {
            assert_eq!(
                MediaType::of(value.map(str::as_bytes)),
                expected,
                "{value:?}"
            );
        };
        check(Some("application/json"), MediaType::Json);
        check(Some("application/json; charset=utf-8"), MediaType::Json);
        check(Some("Application/JSON"), MediaType::Json);
        check(Some("application/vnd.github+json"), MediaType::Json);
        check(
            Some("application/cloudevents+json; charset=UTF-8"),
            MediaType::Json,
        );
        check(Some("application/x-www-form-urlencoded"), MediaType::Form);
        check(
            Some("application/x-www-form-urlencoded; charset=utf-8"),
            MediaType::Form,
        );
        check(Some("text/json"), MediaType::Other);
        check(Some("text/plain"), MediaType::Other);
        check(Some("multipart/form-data; boundary=x"), MediaType::Other);
        check(Some("application/jsonp"), MediaType::Other);
        check(Some("json"), MediaType::Other);
        check(Some(""), MediaType::Other);
        check(None, MediaType::Other);
    }

    fn json_of(
        settings: &SourceSettings,
        media: MediaType,
        body: &str,
    ) -> Result<Value, BodyRefused> {
        settings
            .payload_json(media, body.as_bytes())
            .map(|json| serde_json::from_slice(&json).unwrap())
    }

    #[test]
    fn json_bodies_pass_as_they_are() {
        for source in Source::ALL {
            let settings = SourceSettings::of(source);
            let body = br#"{"a": 1}"#;
            let json = settings.payload_json(MediaType::Json, body).unwrap();
            assert!(matches!(json, Cow::Borrowed(b) if b == body), "{source}");
            let refused = settings.payload_json(MediaType::Other, body).unwrap_err();
            assert!(matches!(refused, BodyRefused::UnsupportedMediaType { .. }));
        }
    }

    #[test]
    fn only_github_and_slack_post_forms() {
        for source in Source::ALL {
            let settings = SourceSettings::of(source);
            let result = settings.payload_json(MediaType::Form, b"payload=%7B%7D");
            assert_eq!(result.is_ok(), settings.accepts_forms(), "{source}");
            assert_eq!(
                settings.accepts_forms(),
                matches!(source, Source::Github | Source::Slack)
            );
        }
        let refused = SourceSettings::default()
            .payload_json(MediaType::Form, b"a=b")
            .unwrap_err();
        assert_eq!(
            refused.to_string(),
            "the body must be sent as application/json"
        );
    }

    #[test]
    fn github_forms_carry_the_payload() {
        let github = SourceSettings::of(Source::Github);
        let body = "payload=%7B%22action%22%3A%22opened%22%2C%22n%22%3A%22a+b%22%7D";
        assert_eq!(
            json_of(&github, MediaType::Form, body).unwrap(),
            json!({"action": "opened", "n": "a b"})
        );
        let refused = github
            .payload_json(MediaType::Form, b"other=1")
            .unwrap_err();
        assert!(matches!(refused, BodyRefused::InvalidForm(_)));
        // What `payload` holds is checked like any JSON body afterwards.
        let raw = github
            .payload_json(MediaType::Form, b"payload=%5B1%5D")
            .unwrap();
        assert_eq!(&*raw, b"[1]");
    }

    #[test]
    fn slack_slash_commands_become_objects() {
        let slack = SourceSettings::of(Source::Slack);
        // The example of Slack's request-verification documentation.
        let body = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let json = json_of(&slack, MediaType::Form, body).unwrap();
        assert_eq!(json["command"], "/webhook-collect");
        assert_eq!(json["text"], "");
        assert_eq!(json["user_name"], "roadrunner");
        assert_eq!(
            json["response_url"],
            "https://hooks.slack.com/commands/T1DC2JH3J/397700885554/96rGlfmibIGlgcZRskXaIFfN"
        );
        assert_eq!(json.as_object().unwrap().len(), 11);

        let json = json_of(
            &slack,
            MediaType::Form,
            "command=%2Fdeploy&text=api+to+prod%21&text=again",
        )
        .unwrap();
        assert_eq!(json, json!({"command": "/deploy", "text": "api to prod!"}));

        let json = json_of(
            &slack,
            MediaType::Form,
            "payload=%7B%22type%22%3A%22block_actions%22%7D",
        )
        .unwrap();
        assert_eq!(json, json!({"type": "block_actions"}));

        assert_eq!(json_of(&slack, MediaType::Form, "").unwrap(), json!({}));
    }
}
