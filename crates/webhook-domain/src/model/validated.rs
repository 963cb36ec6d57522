//! Small validated value types shared by several entities.

use std::fmt;
use std::num::NonZeroU32;

use serde::{Deserialize, Serialize};

/// The `String` conversions serde uses for a value type validated by its `parse`
/// (`#[serde(try_from = "String", into = "String")]`): a deserialized value is parsed like any
/// other. A `newtype` gives back the text it wraps; a `text` newtype also shows as that text
/// (`Debug` quoted); a `display` type writes itself out.
macro_rules! text_conversions {
    (newtype $type:ident, $error:ident) => {
        text_conversions!(@parse $type, $error);

        impl From<$type> for String {
            fn from(value: $type) -> Self {
                value.0
            }
        }
    };
    (text $type:ident, $error:ident) => {
        text_conversions!(newtype $type, $error);

        impl ::std::fmt::Debug for $type {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                ::std::fmt::Debug::fmt(&self.0, f)
            }
        }

        impl ::std::fmt::Display for $type {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
    (display $type:ident, $error:ident) => {
        text_conversions!(@parse $type, $error);

        impl From<$type> for String {
            fn from(value: $type) -> Self {
                value.to_string()
            }
        }
    };
    (@parse $type:ident, $error:ident) => {
        impl TryFrom<String> for $type {
            type Error = $error;

            fn try_from(text: String) -> Result<Self, Self::Error> {
                Self::parse(&text)
            }
        }
    };
}
pub(super) use text_conversions;

/// A display name: trimmed, 1 to 200 characters, no control characters.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Name(String);

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidName {
    /// Empty, or only white space.
    #[error("must not be empty")]
    Empty,
    /// Longer than [`Name::MAX_CHARS`] characters.
    #[error("must be at most {} characters", Name::MAX_CHARS)]
    TooLong,
    /// Contains a control character such as a newline.
    #[error("must not contain control characters")]
    ControlCharacter,
}

impl Name {
    /// The longest name accepted, in characters.
    pub const MAX_CHARS: usize = 200;

    /// Validates and trims `text`.
    pub fn parse(text: &str) -> Result<Self, InvalidName> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(InvalidName::Empty);
        }
        if trimmed.chars().count() > Self::MAX_CHARS {
            return Err(InvalidName::TooLong);
        }
        if trimmed.chars().any(char::is_control) {
            return Err(InvalidName::ControlCharacter);
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

text_conversions!(text Name, InvalidName);

/// A rate limit in requests per minute, from 1 to 1,000,000.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct RatePerMinute(NonZeroU32);

/// A rate limit outside 1..=1,000,000 per minute.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be between 1 and {} requests per minute", RatePerMinute::MAX)]
pub struct InvalidRate;

impl RatePerMinute {
    /// The highest settable limit.
    pub const MAX: u32 = 1_000_000;
    /// A webhook's limit unless set otherwise.
    pub const WEBHOOK_DEFAULT: Self = Self(NonZeroU32::new(100).expect("100 is not zero"));
    /// An organization's limit unless set otherwise.
    pub const ORGANIZATION_DEFAULT: Self = Self(NonZeroU32::new(1_000).expect("1000 is not zero"));

    /// Validates a limit.
    pub fn new(per_minute: u32) -> Result<Self, InvalidRate> {
        if per_minute > Self::MAX {
            return Err(InvalidRate);
        }
        NonZeroU32::new(per_minute).map(Self).ok_or(InvalidRate)
    }

    /// Requests per minute.
    pub const fn get(self) -> u32 {
        self.0.get()
    }
}

impl TryFrom<u32> for RatePerMinute {
    type Error = InvalidRate;

    fn try_from(per_minute: u32) -> Result<Self, Self::Error> {
        Self::new(per_minute)
    }
}

impl From<RatePerMinute> for u32 {
    fn from(rate: RatePerMinute) -> Self {
        rate.get()
    }
}

impl fmt::Debug for RatePerMinute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/min", self.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let check = |input: &str, expected: Result<&str, InvalidName>| {
            assert_eq!(
                Name::parse(input).as_ref().map(Name::as_str),
                expected.as_ref().map(|s| *s),
                "{input:?}"
            );
        };
        check("CI pipeline", Ok("CI pipeline"));
        check("  padded  ", Ok("padded"));
        check("", Err(InvalidName::Empty));
        check("   ", Err(InvalidName::Empty));
        check("line\nbreak", Err(InvalidName::ControlCharacter));
        check(&"é".repeat(200), Ok(&"é".repeat(200)));
        check(&"a".repeat(201), Err(InvalidName::TooLong));
    }

    #[test]
    fn rates() {
        assert_eq!(RatePerMinute::new(0), Err(InvalidRate));
        assert_eq!(RatePerMinute::new(1).map(RatePerMinute::get), Ok(1));
        assert_eq!(
            RatePerMinute::new(1_000_000).map(RatePerMinute::get),
            Ok(1_000_000)
        );
        assert_eq!(RatePerMinute::new(1_000_001), Err(InvalidRate));
        assert_eq!(RatePerMinute::WEBHOOK_DEFAULT.get(), 100);
        assert_eq!(RatePerMinute::ORGANIZATION_DEFAULT.get(), 1000);
    }
}
