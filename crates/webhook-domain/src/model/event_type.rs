//! Event-type subscriptions: exact names (`deploy.finished`) and prefixes (`deploy.*`).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::validated::text_conversions;

/// One entry of a webhook's event-type list.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventTypePattern {
    /// The name, or for a prefix pattern the text before `*` (ending in `.`).
    stem: String,
    prefix: bool,
}

/// Why an event-type pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidEventTypePattern {
    /// Empty pattern.
    #[error("must not be empty")]
    Empty,
    /// Longer than [`EventTypePattern::MAX_LEN`].
    #[error("must be at most {} characters", EventTypePattern::MAX_LEN)]
    TooLong,
    /// A character outside letters, digits and `. _ - : /`.
    #[error("may contain only letters, digits and . _ - : /, with an optional trailing .*")]
    InvalidCharacter,
    /// `*` anywhere but in a trailing `.*` after a non-empty prefix.
    #[error(
        "a wildcard is allowed only as a trailing `.*` after a prefix, e.g. `deploy.*`; an empty list subscribes to all events"
    )]
    MisplacedWildcard,
}

impl EventTypePattern {
    /// Longest pattern accepted.
    pub const MAX_LEN: usize = 128;

    /// Parses `name` or `prefix.*`.
    pub fn parse(text: &str) -> Result<Self, InvalidEventTypePattern> {
        if text.is_empty() {
            return Err(InvalidEventTypePattern::Empty);
        }
        if text.len() > Self::MAX_LEN {
            return Err(InvalidEventTypePattern::TooLong);
        }
        let (stem, prefix) = match text.strip_suffix('*') {
            Some(stem) if stem.len() > 1 && stem.ends_with('.') => (stem, true),
            Some(_) => return Err(InvalidEventTypePattern::MisplacedWildcard),
            None => (text, false),
        };
        if stem.contains('*') {
            return Err(InvalidEventTypePattern::MisplacedWildcard);
        }
        if !stem
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-:/".contains(&b))
        {
            return Err(InvalidEventTypePattern::InvalidCharacter);
        }
        Ok(Self {
            stem: stem.to_owned(),
            prefix,
        })
    }

    /// Whether `event_type` is selected by this pattern. A prefix pattern `deploy.*` selects
    /// `deploy.started` and `deploy.a.b`, not `deploy` itself.
    pub fn matches(&self, event_type: &str) -> bool {
        if self.prefix {
            event_type.len() > self.stem.len() && event_type.starts_with(&self.stem)
        } else {
            event_type == self.stem
        }
    }
}

text_conversions!(display EventTypePattern, InvalidEventTypePattern);

impl fmt::Display for EventTypePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.stem)?;
        if self.prefix {
            f.write_str("*")?;
        }
        Ok(())
    }
}

impl fmt::Debug for EventTypePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// A webhook's subscription: empty selects every event, with or without a type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventTypes(Vec<EventTypePattern>);

impl EventTypes {
    /// Most patterns one webhook may list.
    pub const MAX_PATTERNS: usize = 64;

    /// Subscribes to every event.
    pub const fn all() -> Self {
        Self(Vec::new())
    }

    /// Parses a list of patterns, dropping duplicates while keeping the first order.
    pub fn parse<S: AsRef<str>>(patterns: &[S]) -> Result<Self, (usize, InvalidEventTypePattern)> {
        let mut parsed: Vec<EventTypePattern> = Vec::with_capacity(patterns.len());
        for (index, text) in patterns.iter().enumerate() {
            let pattern = EventTypePattern::parse(text.as_ref()).map_err(|e| (index, e))?;
            if !parsed.contains(&pattern) {
                parsed.push(pattern);
            }
        }
        if parsed.len() > Self::MAX_PATTERNS {
            return Err((Self::MAX_PATTERNS, InvalidEventTypePattern::TooLong));
        }
        Ok(Self(parsed))
    }

    /// The patterns, in order.
    pub fn patterns(&self) -> &[EventTypePattern] {
        &self.0
    }

    /// Whether an event of this type (or untyped, `None`) is delivered. An empty list selects
    /// everything; a non-empty list never selects an untyped event.
    pub fn selects(&self, event_type: Option<&str>) -> bool {
        if self.0.is_empty() {
            return true;
        }
        event_type.is_some_and(|t| self.0.iter().any(|p| p.matches(t)))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn parses_patterns() {
        let check = |input: &str, expected: Result<&str, InvalidEventTypePattern>| {
            assert_eq!(
                EventTypePattern::parse(input).map(|p| p.to_string()),
                expected.map(str::to_owned),
                "{input:?}"
            );
        };
        check("deploy.finished", Ok("deploy.finished"));
        check("deploy.*", Ok("deploy.*"));
        check("github:push/main_1-x", Ok("github:push/main_1-x"));
        check("", Err(InvalidEventTypePattern::Empty));
        check("*", Err(InvalidEventTypePattern::MisplacedWildcard));
        check(".*", Err(InvalidEventTypePattern::MisplacedWildcard));
        check("deploy*", Err(InvalidEventTypePattern::MisplacedWildcard));
        check("de*ploy.x", Err(InvalidEventTypePattern::MisplacedWildcard));
        check("a.*.*", Err(InvalidEventTypePattern::MisplacedWildcard));
        check("with space", Err(InvalidEventTypePattern::InvalidCharacter));
        check("émoji", Err(InvalidEventTypePattern::InvalidCharacter));
        check(&"a".repeat(129), Err(InvalidEventTypePattern::TooLong));
    }

    #[test]
    fn matches_exact_and_prefix() {
        let exact = EventTypePattern::parse("deploy.finished").unwrap();
        assert!(exact.matches("deploy.finished"));
        assert!(!exact.matches("deploy.finished.late"));
        assert!(!exact.matches("deploy"));
        let prefix = EventTypePattern::parse("deploy.*").unwrap();
        assert!(prefix.matches("deploy.started"));
        assert!(prefix.matches("deploy.a.b"));
        assert!(!prefix.matches("deploy."));
        assert!(!prefix.matches("deploy"));
        assert!(!prefix.matches("deployment.started"));
    }

    #[test]
    fn subscriptions() {
        assert!(EventTypes::all().selects(None));
        assert!(EventTypes::all().selects(Some("anything")));
        let list = EventTypes::parse(&["alert.*", "deploy.finished", "alert.*"]).unwrap();
        assert_eq!(list.patterns().len(), 2, "duplicates dropped");
        assert!(list.selects(Some("alert.fired")));
        assert!(list.selects(Some("deploy.finished")));
        assert!(!list.selects(Some("deploy.started")));
        assert!(!list.selects(None));
        assert_eq!(
            EventTypes::parse(&["ok", "bad pattern"]),
            Err((1, InvalidEventTypePattern::InvalidCharacter))
        );
    }

    /// A reference matcher written the obvious way, over the pattern's text.
    fn reference_matches(pattern: &str, event_type: &str) -> bool {
        match pattern.strip_suffix(".*") {
            Some(prefix) => event_type
                .strip_prefix(prefix)
                .and_then(|rest| rest.strip_prefix('.'))
                .is_some_and(|rest| !rest.is_empty()),
            None => pattern == event_type,
        }
    }

    proptest! {
        #[test]
        fn agrees_with_reference(
            stem in "[a-c]{1,3}(\\.[a-c]{1,3}){0,2}",
            prefix in any::<bool>(),
            event_type in "[a-c]{0,3}(\\.[a-c]{0,3}){0,3}",
        ) {
            let text = if prefix { format!("{stem}.*") } else { stem };
            let pattern = EventTypePattern::parse(&text).unwrap();
            prop_assert_eq!(pattern.matches(&event_type), reference_matches(&text, &event_type));
        }
    }
}
