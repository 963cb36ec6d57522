//! What an authenticated payload says, per source: a handshake or ping to answer without a
//! task, or the event's type, the delivery id that deduplicates it, and the task's
//! instruction (the webhook's template, else the payload's `message`, else the source's own).

use serde_json::Value;

use crate::model::{
    InvalidSetting, RequestHeaders, Source, SourceSettings, cut_bytes, header_text, scalar_text,
};
use crate::ports::{InstructionTemplates, RenderFailed};

/// Longest instruction kept, in bytes; a longer one is cut on a character boundary (the whole
/// payload stays in the task's context).
pub const MAX_INSTRUCTION_BYTES: usize = 4096;

/// Longest delivery id used for deduplication, in bytes; a request with a longer one is not
/// deduplicated.
pub const MAX_DELIVERY_ID_BYTES: usize = 255;

/// A request a sender makes to check the endpoint, answered 200 without a task.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Handshake {
    /// Slack's `url_verification`: answer with the challenge.
    SlackUrlVerification { challenge: String },
    /// GitHub's `ping` event, sent when a webhook is created.
    GithubPing,
    /// `PagerDuty`'s `pagey.ping`, sent from the webhook subscription's test button.
    PagerdutyPing,
}

impl Handshake {
    /// The text to answer with: Slack's challenge, nothing for pings.
    /// The event type the handshake is logged under.
    pub const fn event_type(&self) -> &'static str {
        match self {
            Self::SlackUrlVerification { .. } => "url_verification",
            Self::GithubPing => "ping",
            Self::PagerdutyPing => "pagey.ping",
        }
    }

    pub fn challenge(&self) -> Option<&str> {
        match self {
            Self::SlackUrlVerification { challenge } => Some(challenge),
            Self::GithubPing | Self::PagerdutyPing => None,
        }
    }
}

/// Where a task's instruction came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InstructionOrigin {
    /// The webhook's `instruction_template`.
    Template,
    /// The payload's `message` string.
    Message,
    /// The source's default (for `generic`, a `message` that is not a string, as JSON).
    SourceDefault,
    /// Nothing gave one.
    Absent,
}

/// Why the webhook's template did not make the instruction; noted on the invocation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateFallback {
    #[error(transparent)]
    Failed(RenderFailed),
    #[error("the template rendered only white space")]
    RenderedNothing,
}

/// The fields of an event that becomes a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFields {
    pub event_type: Option<String>,
    /// The id that deduplicates the event on its webhook; `None` when the source has none or
    /// the request did not carry one.
    pub delivery_id: Option<String>,
    /// At most [`MAX_INSTRUCTION_BYTES`].
    pub instruction: Option<String>,
    pub instruction_origin: InstructionOrigin,
    /// Set when the webhook has a template that did not render.
    pub template_fallback: Option<TemplateFallback>,
}

/// What a payload is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extraction {
    /// A handshake or ping: answer 200, make no task.
    Handshake(Handshake),
    /// An event.
    Event(EventFields),
}

impl SourceSettings {
    /// Reads `payload` (the JSON object as stored) and the request's headers: a handshake, or
    /// the event's fields. A template is rendered only for an event.
    pub fn extract(
        &self,
        headers: &impl RequestHeaders,
        payload: &Value,
        templates: &impl InstructionTemplates,
    ) -> Extraction {
        if let Some(handshake) = self.handshake(headers, payload) {
            return Extraction::Handshake(handshake);
        }
        let event_type = self.event_type(headers, payload);
        let (instruction, instruction_origin, template_fallback) =
            self.instruction(headers, payload, event_type.as_deref(), templates);
        Extraction::Event(EventFields {
            delivery_id: self.delivery_id(headers, payload),
            event_type,
            instruction: instruction.map(cap_instruction),
            instruction_origin,
            template_fallback,
        })
    }

    /// The source's handshake or ping, if `payload` is one.
    pub fn handshake(&self, headers: &impl RequestHeaders, payload: &Value) -> Option<Handshake> {
        match self.source() {
            Source::Slack if text_at(payload, "/type") == Some("url_verification") => {
                let challenge = payload.get("challenge").and_then(scalar_text)?;
                Some(Handshake::SlackUrlVerification { challenge })
            }
            Source::Github if header_text(headers, "x-github-event") == Some("ping") => {
                Some(Handshake::GithubPing)
            }
            Source::Pagerduty if text_at(payload, "/event/event_type") == Some("pagey.ping") => {
                Some(Handshake::PagerdutyPing)
            }
            _ => None,
        }
    }

    /// The event type: the webhook's `event_type_from` when set (and nothing else), else the
    /// source's.
    pub fn event_type(&self, headers: &impl RequestHeaders, payload: &Value) -> Option<String> {
        if let Some(reference) = self.event_type_from() {
            return reference.resolve(headers, payload);
        }
        let owned = |text: Option<&str>| text.map(str::to_owned);
        match self.source() {
            Source::Generic => owned(
                header_text(headers, "x-event-type").or_else(|| text_at(payload, "/event_type")),
            ),
            Source::Github => {
                let event = header_text(headers, "x-github-event")?;
                Some(match text_at(payload, "/action") {
                    Some(action) => format!("{event}.{action}"),
                    None => event.to_owned(),
                })
            }
            Source::Gitlab => owned(text_at(payload, "/object_kind")),
            Source::Stripe | Source::StandardWebhooks => owned(text_at(payload, "/type")),
            Source::Slack => match slash_command(payload) {
                Some(command) => Some(command.to_owned()),
                None => {
                    owned(text_at(payload, "/event/type").or_else(|| text_at(payload, "/type")))
                }
            },
            Source::Pagerduty => owned(text_at(payload, "/event/event_type")),
            Source::Shopify => owned(header_text(headers, "x-shopify-topic")),
            Source::Alertmanager => alert_status(payload).map(|s| format!("alertmanager.{s}")),
            Source::Grafana => alert_status(payload).map(|s| format!("grafana.{s}")),
        }
    }

    /// The delivery id: the webhook's `dedup_key_from` when set (and nothing else), else the
    /// source's; `None` when longer than [`MAX_DELIVERY_ID_BYTES`].
    pub fn delivery_id(&self, headers: &impl RequestHeaders, payload: &Value) -> Option<String> {
        let id = if let Some(reference) = self.dedup_key_from() {
            reference.resolve(headers, payload)
        } else {
            let header = |name: &str| header_text(headers, name).map(str::to_owned);
            let field = |pointer: &str| payload.pointer(pointer).and_then(scalar_text);
            match self.source() {
                Source::Generic | Source::Gitlab => header("idempotency-key"),
                Source::Github => header("x-github-delivery"),
                Source::Stripe => field("/id"),
                Source::Slack => field("/event_id"),
                Source::Pagerduty => field("/event/id"),
                Source::Shopify => header("x-shopify-webhook-id"),
                Source::StandardWebhooks => header("webhook-id"),
                // Alertmanager and Grafana repeat notifications on purpose.
                Source::Alertmanager | Source::Grafana => None,
            }
        };
        id.filter(|id| id.len() <= MAX_DELIVERY_ID_BYTES)
    }

    /// Checks the webhook's template's syntax, as it is saved.
    ///
    /// # Errors
    /// An [`InvalidSetting`] on `instruction_template` saying what is wrong.
    pub fn check_template(
        &self,
        templates: &impl InstructionTemplates,
    ) -> Result<(), InvalidSetting> {
        match self.instruction_template() {
            Some(template) => templates
                .check(template.as_str())
                .map_err(|e| InvalidSetting::new("instruction_template", e)),
            None => Ok(()),
        }
    }

    fn instruction(
        &self,
        headers: &impl RequestHeaders,
        payload: &Value,
        event_type: Option<&str>,
        templates: &impl InstructionTemplates,
    ) -> (Option<String>, InstructionOrigin, Option<TemplateFallback>) {
        let mut fallback = None;
        if let Some(template) = self.instruction_template() {
            match templates.render(template.as_str(), payload) {
                Ok(text) if !text.trim().is_empty() => {
                    return (
                        Some(text.trim().to_owned()),
                        InstructionOrigin::Template,
                        None,
                    );
                }
                Ok(_) => fallback = Some(TemplateFallback::RenderedNothing),
                Err(failure) => fallback = Some(TemplateFallback::Failed(failure)),
            }
        }
        if let Some(message) = text_at(payload, "/message") {
            return (
                Some(message.to_owned()),
                InstructionOrigin::Message,
                fallback,
            );
        }
        match self.default_instruction(headers, payload, event_type) {
            Some(text) => (Some(text), InstructionOrigin::SourceDefault, fallback),
            None => (None, InstructionOrigin::Absent, fallback),
        }
    }

    /// The source's own instruction: short, deterministic, from the payload's main fields.
    fn default_instruction(
        &self,
        headers: &impl RequestHeaders,
        payload: &Value,
        event_type: Option<&str>,
    ) -> Option<String> {
        let text = |pointer: &str| text_at(payload, pointer);
        match self.source() {
            Source::Generic => match payload.get("message")? {
                Value::Null => None,
                Value::String(message) => Some(message.clone()),
                other => Some(other.to_string()),
            },
            Source::Github => {
                let event = header_text(headers, "x-github-event")?;
                let subject = event_type.unwrap_or(event);
                let title = [
                    "/pull_request/title",
                    "/issue/title",
                    "/head_commit/message",
                    "/release/name",
                    "/release/tag_name",
                    "/discussion/title",
                    "/workflow_run/display_title",
                    "/workflow_run/name",
                    "/check_run/name",
                ]
                .into_iter()
                .find_map(text)
                .map(first_line);
                let joiner = if event == "push" { "to" } else { "on" };
                let place =
                    text("/repository/full_name").map(|repo| format!("{subject} {joiner} {repo}"));
                Some(headline(place.as_deref().unwrap_or(subject), title))
            }
            Source::Gitlab => {
                let kind = text("/object_kind")?;
                let last_commit = payload
                    .get("commits")
                    .and_then(Value::as_array)
                    .and_then(|commits| commits.last())
                    .and_then(|commit| {
                        text_at(commit, "/title").or_else(|| text_at(commit, "/message"))
                    });
                let title = text("/object_attributes/title")
                    .or_else(|| text("/object_attributes/name"))
                    .or(last_commit)
                    .map(first_line);
                let place = text("/project/path_with_namespace")
                    .map(|project| format!("{kind} in {project}"));
                Some(headline(place.as_deref().unwrap_or(kind), title))
            }
            Source::Stripe => {
                let kind = text("/type")?;
                Some(match text("/data/object/id") {
                    Some(id) => format!("{kind} {id}"),
                    None => kind.to_owned(),
                })
            }
            Source::Slack => match slash_command(payload) {
                Some(command) => Some(text("/text").unwrap_or(command).to_owned()),
                None => text("/event/text").map(str::to_owned),
            },
            Source::Pagerduty => {
                let kind = text("/event/event_type")?;
                Some(headline(kind, text("/event/data/title")))
            }
            Source::Shopify => {
                let topic = header_text(headers, "x-shopify-topic")?;
                Some(match payload.get("id").and_then(scalar_text) {
                    Some(id) => format!("{topic} {id}"),
                    None => topic.to_owned(),
                })
            }
            Source::StandardWebhooks => text("/type").map(str::to_owned),
            Source::Alertmanager => alert_summary(payload),
            Source::Grafana => text("/title")
                .map(str::to_owned)
                .or_else(|| alert_summary(payload)),
        }
    }
}

/// A non-empty string at `pointer`.
fn text_at<'p>(payload: &'p Value, pointer: &str) -> Option<&'p str> {
    payload
        .pointer(pointer)
        .and_then(Value::as_str)
        .filter(|text| !text.trim().is_empty())
}

/// The first line of a commit message or title.
fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default().trim()
}

/// `subject: detail`, or the subject alone.
fn headline(subject: &str, detail: Option<&str>) -> String {
    match detail {
        Some(detail) => format!("{subject}: {detail}"),
        None => subject.to_owned(),
    }
}

/// The command of a Slack slash-command form (`command=/deploy&text=…`).
fn slash_command(payload: &Value) -> Option<&str> {
    text_at(payload, "/command").filter(|_| payload.get("type").is_none())
}

/// An Alertmanager or Grafana notification's status (`firing`, `resolved`); Grafana's legacy
/// alerts say `state` instead.
fn alert_status(payload: &Value) -> Option<&str> {
    text_at(payload, "/status").or_else(|| text_at(payload, "/state"))
}

/// `firing: HighLatency — p99 above 2 s (3 alerts)`, from what the notification has.
fn alert_summary(payload: &Value) -> Option<String> {
    let text = |pointer: &str| text_at(payload, pointer);
    let status = alert_status(payload);
    let name = text("/commonLabels/alertname")
        .or_else(|| text("/groupLabels/alertname"))
        .or_else(|| text("/alerts/0/labels/alertname"));
    let summary = text("/commonAnnotations/summary")
        .or_else(|| text("/alerts/0/annotations/summary"))
        .or_else(|| text("/commonAnnotations/description"))
        .or_else(|| text("/alerts/0/annotations/description"));
    let count = payload
        .get("alerts")
        .and_then(Value::as_array)
        .map(Vec::len);
    if status.is_none() && name.is_none() && summary.is_none() {
        return None;
    }
    let mut line = String::new();
    if let Some(status) = status {
        line.push_str(status);
        line.push_str(": ");
    }
    line.push_str(name.unwrap_or("alert"));
    if let Some(summary) = summary {
        line.push_str(" — ");
        line.push_str(first_line(summary));
    }
    match count {
        Some(1) => line.push_str(" (1 alert)"),
        Some(n) => {
            line.push_str(" (");
            line.push_str(&n.to_string());
            line.push_str(" alerts)");
        }
        None => {}
    }
    Some(line)
}

/// `text` cut to at most [`MAX_INSTRUCTION_BYTES`], on a character boundary.
pub fn cap_instruction(text: String) -> String {
    cut_bytes(text, MAX_INSTRUCTION_BYTES)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testing::headers;
    use super::*;
    use crate::model::{FieldRef, InstructionTemplate};
    use crate::ports::TemplateInvalid;

    /// Templates `ptr:/json/pointer` render the text there; a few names stand for failures.
    #[derive(Debug)]
    struct PointerTemplates;

    impl InstructionTemplates for PointerTemplates {
        fn check(&self, template: &str) -> Result<(), TemplateInvalid> {
            if template.starts_with("ptr:/") || ["blank", "runaway"].contains(&template) {
                Ok(())
            } else {
                Err(TemplateInvalid {
                    reason: format!("unknown template {template:?}"),
                })
            }
        }

        fn render(&self, template: &str, payload: &Value) -> Result<String, RenderFailed> {
            match template {
                "blank" => Ok(" \n ".into()),
                "runaway" => Err(RenderFailed::BudgetExhausted),
                _ => {
                    let pointer = template.strip_prefix("ptr:").unwrap_or_default();
                    payload
                        .pointer(pointer)
                        .and_then(scalar_text)
                        .ok_or_else(|| RenderFailed::Failed {
                            reason: format!("nothing at {pointer}"),
                        })
                }
            }
        }
    }

    /// What one request should yield: event type, delivery id, instruction.
    type Expected<'a> = (Option<&'a str>, Option<&'a str>, Option<&'a str>);

    fn fields(settings: &SourceSettings, pairs: &[(&str, &str)], payload: &Value) -> EventFields {
        match settings.extract(&headers(pairs), payload, &PointerTemplates) {
            Extraction::Event(fields) => fields,
            Extraction::Handshake(handshake) => panic!("unexpected {handshake:?}"),
        }
    }

    #[expect(
        clippy::needless_pass_by_value,
        reason = "the tables read better with json! literals"
    )]
    fn check(source: Source, pairs: &[(&str, &str)], payload: Value, expected: Expected<'_>) {
        let got = fields(&SourceSettings::of(source), pairs, &payload);
        assert_eq!(
            (
                got.event_type.as_deref(),
                got.delivery_id.as_deref(),
                got.instruction.as_deref()
            ),
            expected,
            "{source} {pairs:?} {payload}"
        );
        assert_eq!(got.template_fallback, None);
    }

    #[test]
    fn generic() {
        use Source::Generic;
        let headers = [("X-Event-Type", "deploy.done"), ("Idempotency-Key", "k-1")];
        check(
            Generic,
            &headers,
            json!({"message": "Deploy api", "event_type": "ignored"}),
            (Some("deploy.done"), Some("k-1"), Some("Deploy api")),
        );
        check(
            Generic,
            &[("x-event-type", " ")],
            json!({"event_type": "build.failed", "message": {"n": 1}}),
            (Some("build.failed"), None, Some(r#"{"n":1}"#)),
        );
        check(Generic, &[], json!({"message": ""}), (None, None, Some("")));
        check(
            Generic,
            &[],
            json!({"message": null, "event_type": 3}),
            (None, None, None),
        );
        check(Generic, &[], json!({}), (None, None, None));
    }

    #[test]
    fn github() {
        use Source::Github;
        let push = json!({
            "ref": "refs/heads/main",
            "repository": {"full_name": "octo/hello"},
            "head_commit": {"message": "Fix the build\n\nThe long story."},
        });
        let headers = [
            ("X-GitHub-Event", "push"),
            ("X-GitHub-Delivery", "72d3162e-cc78"),
        ];
        check(
            Github,
            &headers,
            push,
            (
                Some("push"),
                Some("72d3162e-cc78"),
                Some("push to octo/hello: Fix the build"),
            ),
        );
        let opened = json!({
            "action": "opened",
            "pull_request": {"title": "Add retries"},
            "repository": {"full_name": "octo/hello"},
        });
        check(
            Github,
            &[("x-github-event", "pull_request")],
            opened,
            (
                Some("pull_request.opened"),
                None,
                Some("pull_request.opened on octo/hello: Add retries"),
            ),
        );
        check(
            Github,
            &[("x-github-event", "star")],
            json!({"action": "created"}),
            (Some("star.created"), None, Some("star.created")),
        );
        check(
            Github,
            &[("x-github-event", "issues")],
            json!({"action": "opened", "issue": {"title": "Crash"}, "message": "Look"}),
            (Some("issues.opened"), None, Some("Look")),
        );
        check(Github, &[], json!({"action": "opened"}), (None, None, None));
    }

    #[test]
    fn gitlab() {
        use Source::Gitlab;
        let merge_request = json!({
            "object_kind": "merge_request",
            "project": {"path_with_namespace": "group/app"},
            "object_attributes": {"title": "Bump deps"},
        });
        check(
            Gitlab,
            &[
                ("Idempotency-Key", "gl-1"),
                ("X-Gitlab-Event", "Merge Request Hook"),
            ],
            merge_request,
            (
                Some("merge_request"),
                Some("gl-1"),
                Some("merge_request in group/app: Bump deps"),
            ),
        );
        let push = json!({
            "object_kind": "push",
            "project": {"path_with_namespace": "group/app"},
            "commits": [{"title": "First"}, {"message": "Second\nbody"}],
        });
        check(
            Gitlab,
            &[],
            push,
            (Some("push"), None, Some("push in group/app: Second")),
        );
        check(
            Gitlab,
            &[],
            json!({"object_kind": "note"}),
            (Some("note"), None, Some("note")),
        );
    }

    #[test]
    fn stripe() {
        use Source::Stripe;
        let paid = json!({
            "id": "evt_1NG8Du2eZvKYlo2C",
            "type": "invoice.paid",
            "data": {"object": {"id": "in_1NG8Dt2eZvKYlo2C", "object": "invoice"}},
        });
        check(
            Stripe,
            &[("Idempotency-Key", "ignored")],
            paid,
            (
                Some("invoice.paid"),
                Some("evt_1NG8Du2eZvKYlo2C"),
                Some("invoice.paid in_1NG8Dt2eZvKYlo2C"),
            ),
        );
        check(
            Stripe,
            &[],
            json!({"id": "evt_2", "type": "balance.available", "data": {}}),
            (
                Some("balance.available"),
                Some("evt_2"),
                Some("balance.available"),
            ),
        );
    }

    #[test]
    fn slack() {
        use Source::Slack;
        let mention = json!({
            "type": "event_callback",
            "event_id": "Ev08MFMKH6",
            "event": {"type": "app_mention", "text": "<@U0LAN0Z89> deploy api"},
        });
        check(
            Slack,
            &[],
            mention,
            (
                Some("app_mention"),
                Some("Ev08MFMKH6"),
                Some("<@U0LAN0Z89> deploy api"),
            ),
        );
        check(
            Slack,
            &[],
            json!({"type": "block_actions", "user": {"id": "U1"}}),
            (Some("block_actions"), None, None),
        );
        let command = json!({"command": "/deploy", "text": "api to prod", "user_name": "ana"});
        check(
            Slack,
            &[],
            command,
            (Some("/deploy"), None, Some("api to prod")),
        );
        let bare = json!({"command": "/deploy", "text": ""});
        check(Slack, &[], bare, (Some("/deploy"), None, Some("/deploy")));
    }

    #[test]
    fn pagerduty() {
        use Source::Pagerduty;
        let triggered = json!({"event": {
            "id": "01DEN5T4C5FNHQ7ATGKNCTGZHE",
            "event_type": "incident.triggered",
            "data": {"title": "Database down", "id": "PGR0VU2"},
        }});
        check(
            Pagerduty,
            &[],
            triggered,
            (
                Some("incident.triggered"),
                Some("01DEN5T4C5FNHQ7ATGKNCTGZHE"),
                Some("incident.triggered: Database down"),
            ),
        );
    }

    #[test]
    fn shopify() {
        use Source::Shopify;
        check(
            Shopify,
            &[
                ("X-Shopify-Topic", "orders/create"),
                ("X-Shopify-Webhook-Id", "b54557e4"),
            ],
            json!({"id": 820_982_911_946_154_508_u64, "email": "jon@example.com"}),
            (
                Some("orders/create"),
                Some("b54557e4"),
                Some("orders/create 820982911946154508"),
            ),
        );
        check(Shopify, &[], json!({"id": 1}), (None, None, None));
    }

    #[test]
    fn standard_webhooks() {
        use Source::StandardWebhooks;
        check(
            StandardWebhooks,
            &[("webhook-id", "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W")],
            json!({"type": "user.created", "timestamp": "2022-11-03T20:26:10Z", "data": {}}),
            (
                Some("user.created"),
                Some("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"),
                Some("user.created"),
            ),
        );
    }

    #[test]
    fn alertmanager() {
        use Source::Alertmanager;
        let firing = json!({
            "version": "4",
            "status": "firing",
            "groupLabels": {"alertname": "HighLatency"},
            "commonLabels": {"alertname": "HighLatency", "severity": "page"},
            "commonAnnotations": {"summary": "p99 above 2 s"},
            "alerts": [{"status": "firing"}, {"status": "firing"}],
        });
        check(
            Alertmanager,
            &[("Idempotency-Key", "not-used")],
            firing,
            (
                Some("alertmanager.firing"),
                None,
                Some("firing: HighLatency — p99 above 2 s (2 alerts)"),
            ),
        );
        let resolved = json!({
            "status": "resolved",
            "alerts": [{"labels": {"alertname": "DiskFull"}, "annotations": {"description": "/var\nmore"}}],
        });
        check(
            Alertmanager,
            &[],
            resolved,
            (
                Some("alertmanager.resolved"),
                None,
                Some("resolved: DiskFull — /var (1 alert)"),
            ),
        );
        check(Alertmanager, &[], json!({"alerts": []}), (None, None, None));
    }

    #[test]
    fn grafana() {
        use Source::Grafana;
        let resolved = json!({
            "status": "resolved",
            "title": "[RESOLVED] CPU high",
            "message": "CPU is back to normal",
            "alerts": [{"labels": {"alertname": "CPU"}}],
        });
        check(
            Grafana,
            &[],
            resolved,
            (
                Some("grafana.resolved"),
                None,
                Some("CPU is back to normal"),
            ),
        );
        check(
            Grafana,
            &[],
            json!({"status": "firing", "title": "[FIRING:1] CPU high"}),
            (Some("grafana.firing"), None, Some("[FIRING:1] CPU high")),
        );
        check(
            Grafana,
            &[],
            json!({"state": "alerting", "commonLabels": {"alertname": "CPU"}, "alerts": [{}]}),
            (
                Some("grafana.alerting"),
                None,
                Some("alerting: CPU (1 alert)"),
            ),
        );
    }

    #[test]
    fn handshakes() {
        let check = |source: Source,
                     pairs: &[(&str, &str)],
                     payload: Value,
                     expected: Option<Handshake>| {
            let extraction =
                SourceSettings::of(source).extract(&headers(pairs), &payload, &PointerTemplates);
            match (extraction, expected) {
                (Extraction::Handshake(got), Some(want)) => assert_eq!(got, want),
                (Extraction::Event(_), None) => {}
                (got, want) => panic!("{source} {payload}: got {got:?}, expected {want:?}"),
            }
        };
        let verification = json!({"token": "Jhj5dZrVaK7ZwHHjRyZWjbDl", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "type": "url_verification"});
        check(
            Source::Slack,
            &[],
            verification.clone(),
            Some(Handshake::SlackUrlVerification {
                challenge: "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P".into(),
            }),
        );
        check(Source::Generic, &[], verification, None);
        check(
            Source::Slack,
            &[],
            json!({"type": "url_verification"}),
            None,
        );
        let ping = json!({"zen": "Design for failure.", "hook_id": 1});
        check(
            Source::Github,
            &[("X-GitHub-Event", "ping")],
            ping.clone(),
            Some(Handshake::GithubPing),
        );
        check(
            Source::Github,
            &[("X-GitHub-Event", "push")],
            ping.clone(),
            None,
        );
        check(Source::Generic, &[("X-GitHub-Event", "ping")], ping, None);
        let pagey = json!({"event": {"event_type": "pagey.ping", "id": "01"}});
        check(
            Source::Pagerduty,
            &[],
            pagey.clone(),
            Some(Handshake::PagerdutyPing),
        );
        check(Source::StandardWebhooks, &[], pagey, None);

        assert_eq!(
            Handshake::SlackUrlVerification {
                challenge: "c".into()
            }
            .challenge(),
            Some("c")
        );
        assert_eq!(Handshake::GithubPing.challenge(), None);
        assert_eq!(Handshake::PagerdutyPing.challenge(), None);
    }

    fn with(
        source: Source,
        event_type_from: Option<&str>,
        dedup_key_from: Option<&str>,
        template: Option<&str>,
    ) -> SourceSettings {
        SourceSettings::new(
            source,
            None,
            event_type_from.map(|r| FieldRef::parse(r).unwrap()),
            dedup_key_from.map(|r| FieldRef::parse(r).unwrap()),
            template.map(|t| InstructionTemplate::parse(t).unwrap()),
        )
        .unwrap()
    }

    #[test]
    fn overrides_replace_the_source_fields() {
        let payload = json!({
            "type": "invoice.paid",
            "id": "evt_1",
            "meta": {"kind": "billing/paid", "seq": 17},
            "data": {"object": {"id": "in_1"}},
        });
        let pairs = [("X-Kind", "from-header"), ("X-Request-Id", "req-9")];
        for (source, event_type_from, dedup_key_from, expected) in [
            (
                Source::Stripe,
                None,
                None,
                (Some("invoice.paid"), Some("evt_1")),
            ),
            (
                Source::Stripe,
                Some("/meta/kind"),
                Some("/meta/seq"),
                (Some("billing/paid"), Some("17")),
            ),
            (
                Source::Stripe,
                Some("header:X-Kind"),
                Some("header:x-request-id"),
                (Some("from-header"), Some("req-9")),
            ),
            // An override that finds nothing gives nothing, rather than the source's field.
            (
                Source::Stripe,
                Some("/missing"),
                Some("header:x-missing"),
                (None, None),
            ),
            (
                Source::Alertmanager,
                None,
                Some("/id"),
                (None, Some("evt_1")),
            ),
        ] {
            let settings = with(source, event_type_from, dedup_key_from, None);
            let got = fields(&settings, &pairs, &payload);
            assert_eq!(
                (got.event_type.as_deref(), got.delivery_id.as_deref()),
                expected,
                "{source} {event_type_from:?} {dedup_key_from:?}"
            );
        }
    }

    #[test]
    fn instruction_order() {
        let check =
            |settings: SourceSettings,
             payload: Value,
             expected: (Option<&str>, InstructionOrigin, Option<TemplateFallback>)| {
                let got = fields(&settings, &[], &payload);
                assert_eq!(
                    (
                        got.instruction.as_deref(),
                        got.instruction_origin,
                        got.template_fallback
                    ),
                    expected,
                    "{payload}"
                );
            };
        let stripe = json!({"type": "invoice.paid", "message": "Paid!", "who": "ana"});
        check(
            with(Source::Stripe, None, None, Some("ptr:/who")),
            stripe.clone(),
            (Some("ana"), InstructionOrigin::Template, None),
        );
        check(
            with(Source::Stripe, None, None, None),
            stripe.clone(),
            (Some("Paid!"), InstructionOrigin::Message, None),
        );
        check(
            with(Source::Stripe, None, None, Some("ptr:/nobody")),
            stripe,
            (
                Some("Paid!"),
                InstructionOrigin::Message,
                Some(TemplateFallback::Failed(RenderFailed::Failed {
                    reason: "nothing at /nobody".into(),
                })),
            ),
        );
        check(
            with(Source::Stripe, None, None, Some("runaway")),
            json!({"type": "invoice.paid", "message": 3}),
            (
                Some("invoice.paid"),
                InstructionOrigin::SourceDefault,
                Some(TemplateFallback::Failed(RenderFailed::BudgetExhausted)),
            ),
        );
        check(
            with(Source::Stripe, None, None, Some("blank")),
            json!({}),
            (
                None,
                InstructionOrigin::Absent,
                Some(TemplateFallback::RenderedNothing),
            ),
        );
        check(
            with(Source::Generic, None, None, None),
            json!({"message": ["a"]}),
            (Some(r#"["a"]"#), InstructionOrigin::SourceDefault, None),
        );
    }

    #[test]
    fn instructions_are_capped_on_a_character_boundary() {
        let settings = SourceSettings::default();
        let long = "é".repeat(3000);
        let got = fields(&settings, &[], &json!({ "message": long }));
        let instruction = got.instruction.unwrap();
        assert_eq!(instruction.len(), MAX_INSTRUCTION_BYTES);
        assert!(long.starts_with(&instruction));
        let odd = format!("x{long}");
        let got = fields(&settings, &[], &json!({ "message": odd }));
        assert_eq!(got.instruction.unwrap().len(), MAX_INSTRUCTION_BYTES - 1);
        let exact = "a".repeat(MAX_INSTRUCTION_BYTES);
        let got = fields(&settings, &[], &json!({ "message": exact }));
        assert_eq!(got.instruction.unwrap(), exact);
    }

    #[test]
    fn long_delivery_ids_are_not_used() {
        let settings = SourceSettings::default();
        let id = "k".repeat(MAX_DELIVERY_ID_BYTES);
        let got = fields(&settings, &[("idempotency-key", &id)], &json!({}));
        assert_eq!(got.delivery_id.as_deref(), Some(id.as_str()));
        let id = "k".repeat(MAX_DELIVERY_ID_BYTES + 1);
        let got = fields(&settings, &[("idempotency-key", &id)], &json!({}));
        assert_eq!(got.delivery_id, None);
    }

    #[test]
    fn templates_are_checked_as_saved() {
        let good = with(Source::Generic, None, None, Some("ptr:/a"));
        assert_eq!(good.check_template(&PointerTemplates), Ok(()));
        let bad = with(Source::Generic, None, None, Some("{{ a"));
        let refused = bad.check_template(&PointerTemplates).unwrap_err();
        assert_eq!(refused.field, "instruction_template");
        assert!(refused.reason.contains("unknown template"), "{refused}");
        assert_eq!(
            SourceSettings::default().check_template(&PointerTemplates),
            Ok(())
        );
    }
}
