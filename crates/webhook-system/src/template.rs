//! Instruction templates with `minijinja`: Jinja syntax over the payload, as plain text, with
//! no loader (no `include`, `import` or `extends`, no file system), a fuel budget that ends a
//! runaway render, and a cap on the output that stops a render as soon as it is crossed.

use std::io;

use minijinja::value::{Serde, Value};
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};
use webhook_domain::ports::{InstructionTemplates, RenderFailed, TemplateInvalid};

/// The [`InstructionTemplates`] port on `minijinja`.
#[derive(Debug)]
pub struct MiniJinjaTemplates {
    env: Environment<'static>,
    output_limit: usize,
}

/// The name errors give the template, so a message reads "… (in `instruction_template`:1)".
const NAME: &str = "instruction_template";

impl MiniJinjaTemplates {
    /// Work one render may do, in `minijinja`'s fuel units (about one per instruction, plus
    /// one per 64 bytes allocated): a few milliseconds at most.
    pub const DEFAULT_FUEL: u64 = 50_000;
    /// Largest output, in bytes.
    pub const DEFAULT_OUTPUT_LIMIT: usize = 16 * 1024;

    /// With the default limits.
    pub fn new() -> Self {
        Self::with_limits(Self::DEFAULT_FUEL, Self::DEFAULT_OUTPUT_LIMIT)
    }

    /// With `fuel` per render and at most `output_limit` bytes of output.
    pub fn with_limits(fuel: u64, output_limit: usize) -> Self {
        let mut env = Environment::new();
        // Instructions are plain text for agents, never HTML.
        env.set_auto_escape_callback(|_| AutoEscape::None);
        // Payloads differ from event to event: a field that is absent renders as nothing, at
        // any depth, rather than failing the render.
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        env.set_fuel(Some(fuel));
        Self { env, output_limit }
    }
}

impl Default for MiniJinjaTemplates {
    fn default() -> Self {
        Self::new()
    }
}

/// A writer that refuses to grow past its limit, which ends the render.
struct Bounded {
    out: Vec<u8>,
    limit: usize,
    overflowed: bool,
}

impl io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.out.len() + buf.len() > self.limit {
            self.overflowed = true;
            return Err(io::Error::other("the output limit is reached"));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl InstructionTemplates for MiniJinjaTemplates {
    fn check(&self, template: &str) -> Result<(), TemplateInvalid> {
        self.env
            .template_from_named_str(NAME, template)
            .map(drop)
            .map_err(|e| TemplateInvalid {
                reason: e.to_string(),
            })
    }

    fn render(&self, template: &str, payload: &serde_json::Value) -> Result<String, RenderFailed> {
        let failed = |e: &minijinja::Error| RenderFailed::Failed {
            reason: e.to_string(),
        };
        let compiled = self
            .env
            .template_from_named_str(NAME, template)
            .map_err(|e| failed(&e))?;
        let mut output = Bounded {
            out: Vec::new(),
            limit: self.output_limit,
            overflowed: false,
        };
        let rendered = compiled
            .render_captured_to(Value::from(Serde(payload)), &mut output)
            .map(drop);
        match rendered {
            Ok(()) => String::from_utf8(output.out).map_err(|e| RenderFailed::Failed {
                reason: e.to_string(),
            }),
            Err(_) if output.overflowed => Err(RenderFailed::TooLarge {
                limit: self.output_limit,
            }),
            Err(e) if e.kind() == ErrorKind::OutOfFuel => Err(RenderFailed::BudgetExhausted),
            Err(e) => Err(failed(&e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use serde_json::json;
    use webhook_domain::model::{InstructionTemplate, Source, SourceSettings};
    use webhook_domain::rules::{Extraction, InstructionOrigin, TemplateFallback};

    use super::*;

    fn render(template: &str) -> Result<String, RenderFailed> {
        let payload = json!({
            "event": {"type": "incident.triggered", "data": {"title": "DB <down> & out"}},
            "alerts": [{"name": "a"}, {"name": "b"}],
            "count": 3,
        });
        MiniJinjaTemplates::new().render(template, &payload)
    }

    #[test]
    fn renders_over_the_payload() {
        let check = |template: &str, expected: &str| {
            assert_eq!(render(template).as_deref(), Ok(expected), "{template}");
        };
        check(
            "{{ event.type }}: {{ event.data.title }}",
            "incident.triggered: DB <down> & out",
        );
        check("{{ event['type'] | upper }}", "INCIDENT.TRIGGERED");
        check("{{ alerts | map(attribute='name') | join(', ') }}", "a, b");
        check(
            "{{ alerts | length }} alerts, {{ count * 2 }}",
            "2 alerts, 6",
        );
        check("{% for a in alerts %}[{{ a.name }}]{% endfor %}", "[a][b]");
        check(
            "{{ missing }}|{{ missing.deeper.still }}|{{ event.nope.x }}",
            "||",
        );
        check("{{ missing | default('none') }}", "none");
        check("{% if event.data.title %}yes{% endif %}", "yes");
        // JSON is written safe to embed in HTML, as MiniJinja does.
        check("{{ alerts[0] | tojson }}", r#"{"name": "a"}"#);
        check(
            "{{ event.data | tojson }}",
            r#"{"title": "DB \u003cdown\u003e \u0026 out"}"#,
        );
        check("plain text", "plain text");
    }

    #[test]
    fn checks_syntax_only() {
        let templates = MiniJinjaTemplates::new();
        let check = |template: &str, valid: bool| {
            let result = templates.check(template);
            assert_eq!(result.is_ok(), valid, "{template}: {result:?}");
            if let Err(invalid) = result {
                assert!(invalid.reason.contains(NAME), "{invalid}");
                assert!(render(template).is_err(), "{template}");
            }
        };
        check("{{ event.type }}", true);
        check("{{ anything.at.all | default('x') }}", true);
        check("{{ event.type", false);
        check("{% for x in %}{% endfor %}", false);
        check("{% if x %}no end", false);
        check("{{ x | }}", false);
        check("{% include 'other' %}", false);
        check("{% extends 'base' %}", false);
        check("{% macro m() %}{% endmacro %}", false);
        let invalid = templates.check("{{ event.type").unwrap_err();
        assert!(invalid.reason.contains("syntax error"), "{invalid}");
    }

    #[test]
    fn runtime_failures_are_values() {
        let check = |template: &str| {
            let result = render(template);
            assert!(
                matches!(result, Err(RenderFailed::Failed { .. })),
                "{template}: {result:?}"
            );
        };
        check("{{ count + 'a' }}");
        check("{{ 1 / 0 }}");
        check("{{ unknown_function() }}");
        check("{{ event | unknown_filter }}");
        check("{% for x in count %}{% endfor %}");
    }

    /// Runs `template`, which must fail in the way `expected` says, within a second.
    fn stopped(template: &str, expected: fn(&RenderFailed) -> bool) {
        let started = Instant::now();
        let result = render(template);
        let took = started.elapsed();
        assert!(
            matches!(&result, Err(e) if expected(e)),
            "{template}: {result:?}"
        );
        assert!(took < Duration::from_secs(1), "{template} took {took:?}");
    }

    #[test]
    fn runaway_loops_run_out_of_fuel() {
        let budget = |e: &RenderFailed| *e == RenderFailed::BudgetExhausted;
        stopped(
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            budget,
        );
        stopped(
            "{% set ns = namespace(s='') %}{% for i in range(100000) %}{% set ns.s = ns.s ~ 'xxxxxxxx' %}{% endfor %}",
            budget,
        );
        stopped("{{ 'x' * 50000000 }}", budget);
    }

    #[test]
    fn large_output_is_refused_as_it_grows() {
        let too_large = |e: &RenderFailed| *e == RenderFailed::TooLarge { limit: 16 * 1024 };
        stopped(
            "{% for i in range(400) %}{{ 'abcdefghij' * 5 }}{% endfor %}",
            too_large,
        );
        stopped("{{ 'x' * 20000 }}", |e| {
            matches!(
                e,
                RenderFailed::TooLarge { .. } | RenderFailed::BudgetExhausted
            )
        });
        let at_limit = format!("{{{{ 'x' * {} }}}}", 16 * 1024);
        assert_eq!(render(&at_limit).map(|s| s.len()), Ok(16 * 1024));
    }

    #[test]
    fn the_domain_renders_instructions_through_it() {
        let template =
            InstructionTemplate::parse("{{ event.event_type }}: {{ event.data.title }}").unwrap();
        let payload = json!({"event": {"id": "01", "event_type": "incident.triggered", "data": {"title": "DB down"}}});
        let extract = |template: InstructionTemplate| {
            let settings =
                SourceSettings::new(Source::Pagerduty, None, None, None, Some(template)).unwrap();
            let Extraction::Event(fields) = settings.extract(
                &Vec::<(String, Vec<u8>)>::new(),
                &payload,
                &MiniJinjaTemplates::new(),
            ) else {
                panic!("an incident is an event");
            };
            assert_eq!(
                fields.instruction.as_deref(),
                Some("incident.triggered: DB down")
            );
            fields
        };
        let fields = extract(template);
        assert_eq!(fields.instruction_origin, InstructionOrigin::Template);

        let runaway = InstructionTemplate::parse(
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        )
        .unwrap();
        let fields = extract(runaway);
        assert_eq!(fields.instruction_origin, InstructionOrigin::SourceDefault);
        assert_eq!(
            fields.template_fallback,
            Some(TemplateFallback::Failed(RenderFailed::BudgetExhausted))
        );
    }
}
