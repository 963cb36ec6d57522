//! The `test` pipeline: its steps in order, stopping at the first failure, `XTASK_SKIP`, and the
//! closing summary with each step's wall-clock time.

use std::{
    collections::BTreeSet,
    fmt::Write as _,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};

use crate::{browser, checks, deny, openapi, postgres, suite};

/// The environment variable naming steps to skip, comma-separated.
pub(crate) const SKIP_ENV: &str = "XTASK_SKIP";

/// Every step of `cargo xtask test`, in the order they run.
const STEPS: [&str; 7] = [
    "fmt", "clippy", "deny", "postgres", "tests", "openapi", "browser",
];

/// Runs every step of `cargo xtask test`, then prints the summary whatever happened.
pub(crate) fn test(skips: &Skips) -> Result<()> {
    let mut pipeline = Pipeline::new(skips);
    let result = steps(&mut pipeline);
    eprint!("{}", pipeline.summary());
    if !pipeline.skips("tests")
        && let Some((passed, failed)) = suite::last_counts()
    {
        println!("tests: {passed} passed, {failed} failed");
    }
    result
}

fn steps(pipeline: &mut Pipeline) -> Result<()> {
    pipeline.step("fmt", checks::fmt)?;
    pipeline.step("clippy", checks::clippy)?;
    pipeline.step("deny", deny::check)?;
    // Skipping `tests` makes a database pointless; skipping `postgres` alone runs the tests with
    // whatever DATABASE_URL the environment has.
    let database = if pipeline.skips("tests") {
        pipeline.skip("postgres", "no tests to run");
        None
    } else {
        pipeline.step("postgres", postgres::for_tests)?
    };
    pipeline.step("tests", || {
        suite::run(database.as_ref().map(postgres::Database::url))
    })?;
    pipeline.step("openapi", openapi::run)?;
    pipeline.step("browser", browser::run)?;
    // A throwaway cluster started for this run stops here, before the summary.
    drop(database);
    Ok(())
}

/// Steps to leave out, from `XTASK_SKIP`.
#[derive(Debug, Default)]
pub(crate) struct Skips(BTreeSet<String>);

impl Skips {
    pub(crate) fn none() -> Self {
        Self::default()
    }

    pub(crate) fn from_env() -> Result<Self> {
        Self::parse(&std::env::var(SKIP_ENV).unwrap_or_default())
    }

    fn parse(list: &str) -> Result<Self> {
        let names: BTreeSet<String> = list
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
            .collect();
        if let Some(unknown) = names.iter().find(|name| !STEPS.contains(&name.as_str())) {
            bail!(
                "{SKIP_ENV} names an unknown step `{unknown}`; the steps are: {}",
                STEPS.join(", ")
            );
        }
        Ok(Self(names))
    }
}

/// What a step produced, and what the summary should say about it.
#[derive(Debug)]
pub(crate) struct Outcome<T = ()> {
    value: T,
    note: Option<String>,
    skipped: bool,
}

impl Outcome {
    pub(crate) fn passed() -> Self {
        Self::value(())
    }

    /// The step had nothing to check, for the reason given.
    pub(crate) fn skipped(reason: impl Into<String>) -> Self {
        Self {
            value: (),
            note: Some(reason.into()),
            skipped: true,
        }
    }
}

impl<T> Outcome<T> {
    pub(crate) fn value(value: T) -> Self {
        Self {
            value,
            note: None,
            skipped: false,
        }
    }

    /// A remark for the summary line of a step that passed.
    pub(crate) fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }
}

#[derive(Debug)]
enum State {
    Passed,
    Skipped,
    Failed,
}

#[derive(Debug)]
struct Record {
    name: &'static str,
    state: State,
    elapsed: Duration,
    note: Option<String>,
}

#[derive(Debug)]
struct Pipeline<'a> {
    skips: &'a Skips,
    records: Vec<Record>,
    started: Instant,
}

impl<'a> Pipeline<'a> {
    fn new(skips: &'a Skips) -> Self {
        Self {
            skips,
            records: Vec::new(),
            started: Instant::now(),
        }
    }

    fn skips(&self, name: &str) -> bool {
        self.skips.0.contains(name)
    }

    /// Runs step `name` unless `XTASK_SKIP` names it (then `None`); a failure comes back as an
    /// error naming the step.
    fn step<T>(
        &mut self,
        name: &'static str,
        step: impl FnOnce() -> Result<Outcome<T>>,
    ) -> Result<Option<T>> {
        debug_assert!(STEPS.contains(&name), "step `{name}` missing from STEPS");
        if self.skips(name) {
            self.skip(name, SKIP_ENV);
            return Ok(None);
        }
        eprintln!("\n==> {name}");
        let started = Instant::now();
        let result = step();
        let elapsed = started.elapsed();
        match result {
            Ok(outcome) => {
                let state = if outcome.skipped {
                    State::Skipped
                } else {
                    State::Passed
                };
                if let Some(note) = &outcome.note {
                    eprintln!("{name}: {note}");
                }
                self.record(name, state, elapsed, outcome.note);
                Ok(Some(outcome.value))
            }
            Err(error) => {
                self.record(name, State::Failed, elapsed, None);
                Err(error.context(format!("step `{name}` failed")))
            }
        }
    }

    fn skip(&mut self, name: &'static str, reason: &str) {
        eprintln!("\n==> {name}: skipped ({reason})");
        self.record(
            name,
            State::Skipped,
            Duration::ZERO,
            Some(reason.to_owned()),
        );
    }

    fn record(
        &mut self,
        name: &'static str,
        state: State,
        elapsed: Duration,
        note: Option<String>,
    ) {
        self.records.push(Record {
            name,
            state,
            elapsed,
            note,
        });
    }

    fn summary(&self) -> String {
        let mut out = String::from("\n==> summary\n");
        for name in STEPS {
            let line = match self.records.iter().find(|record| record.name == name) {
                Some(record) => {
                    let state = match record.state {
                        State::Passed => "ok",
                        State::Skipped => "skipped",
                        State::Failed => "FAILED",
                    };
                    let note = record
                        .note
                        .as_deref()
                        .map(|note| format!("  {note}"))
                        .unwrap_or_default();
                    format!("{state:<8} {name:<9} {:>8}{note}", seconds(record.elapsed))
                }
                None => format!("{:<8} {name:<9} {:>8}", "not run", "-"),
            };
            let _ = writeln!(out, "  {line}");
        }
        let _ = writeln!(out, "  total    {:>18}", seconds(self.started.elapsed()));
        out
    }
}

fn seconds(duration: Duration) -> String {
    format!("{:.1}s", duration.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_parse_a_comma_list_and_reject_unknown_steps() {
        let skips = Skips::parse(" fmt, clippy,,deny ").unwrap();
        let names: Vec<&str> = skips.0.iter().map(String::as_str).collect();
        assert_eq!(names, ["clippy", "deny", "fmt"]);
        assert!(Skips::parse("").unwrap().0.is_empty());
        let error = Skips::parse("fmt,lint").unwrap_err().to_string();
        assert!(error.contains("`lint`"), "{error}");
    }

    #[test]
    fn summary_lists_every_step_and_marks_those_not_run() {
        let skips = Skips::parse("fmt").unwrap();
        let mut pipeline = Pipeline::new(&skips);
        assert_eq!(
            pipeline.step("fmt", || Ok(Outcome::passed())).unwrap(),
            None
        );
        assert_eq!(
            pipeline
                .step("clippy", || Ok(Outcome::value(7).with_note("fine")))
                .unwrap(),
            Some(7)
        );
        let error = pipeline
            .step("deny", || -> Result<Outcome> { bail!("banned crate") })
            .unwrap_err();
        assert_eq!(format!("{error:#}"), "step `deny` failed: banned crate");
        let summary = pipeline.summary();
        let states: Vec<&str> = summary
            .lines()
            .skip(2)
            .map(|line| line.split_whitespace().next().unwrap())
            .collect();
        assert_eq!(
            states,
            [
                "skipped", "ok", "FAILED", "not", "not", "not", "not", "total"
            ]
        );
        assert!(summary.contains("fine"), "{summary}");
    }
}
