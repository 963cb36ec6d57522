//! Secrets: webhook secrets, target signing secrets and API keys. Their `Debug` and `Display`
//! never show the value, comparison is constant-time, and at rest they are sealed or hashed.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use subtle::ConstantTimeEq as _;

/// A secret in clear text. Redacted in `Debug` and `Display`; read it with [`Secret::expose`]
/// only where it must leave the process (shown once to its owner, sealed, or used to sign).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

/// Why a supplied secret was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSecret {
    /// Shorter than [`Secret::MIN_LEN`].
    #[error("must be at least {} characters", Secret::MIN_LEN)]
    TooShort,
    /// Longer than [`Secret::MAX_LEN`].
    #[error("must be at most {} characters", Secret::MAX_LEN)]
    TooLong,
    /// Contains a character that cannot travel in an HTTP header (space, control, non-ASCII).
    #[error("must contain only visible ASCII characters")]
    InvalidCharacter,
}

impl Secret {
    /// Shortest secret a user may supply.
    pub const MIN_LEN: usize = 16;
    /// Longest secret a user may supply.
    pub const MAX_LEN: usize = 256;
    /// Random bytes in a generated secret.
    pub const GENERATED_BYTES: usize = 32;

    /// Validates a user-supplied secret, which senders put in a header as is.
    pub fn parse(text: &str) -> Result<Self, InvalidSecret> {
        if text.len() < Self::MIN_LEN {
            return Err(InvalidSecret::TooShort);
        }
        if text.len() > Self::MAX_LEN {
            return Err(InvalidSecret::TooLong);
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(InvalidSecret::InvalidCharacter);
        }
        Ok(Self(text.to_owned()))
    }

    /// Builds a secret `{prefix}{base64url(random)}` from random bytes supplied by the caller.
    pub fn from_random(prefix: &str, random: &[u8; Self::GENERATED_BYTES]) -> Self {
        let mut text = String::with_capacity(prefix.len() + 43);
        text.push_str(prefix);
        URL_SAFE_NO_PAD.encode_string(random, &mut text);
        Self(text)
    }

    /// Prefix of Standard Webhooks symmetric signing secrets.
    pub const SIGNING_KEY_PREFIX: &str = "whsec_";

    /// Builds a target signing secret in the form Standard Webhooks libraries take:
    /// `whsec_` + padded standard base64 of the random bytes, which are the HMAC key.
    pub fn signing_key_from_random(random: &[u8; Self::GENERATED_BYTES]) -> Self {
        let mut text = String::with_capacity(Self::SIGNING_KEY_PREFIX.len() + 44);
        text.push_str(Self::SIGNING_KEY_PREFIX);
        STANDARD.encode_string(random, &mut text);
        Self(text)
    }

    /// Wraps a secret recovered from sealed storage.
    pub fn from_unsealed(text: String) -> Self {
        Self(text)
    }

    /// The clear text. Every call site is a place where the secret leaves its wrapper.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `presented` equals this secret, in time independent of where they differ.
    pub fn matches(&self, presented: &[u8]) -> bool {
        self.0.as_bytes().ct_eq(presented).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A secret encrypted at rest by a [`crate::ports::SecretSealer`]; opaque to everyone else.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret(Vec<u8>);

impl SealedSecret {
    /// Wraps sealed bytes produced by a sealer or read from a store.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The sealed bytes, for storage.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealedSecret({} bytes)", self.0.len())
    }
}

/// The digest under which an API key is stored; the key itself is never stored.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ApiKeyHash([u8; 32]);

impl ApiKeyHash {
    /// Wraps a digest computed by a [`crate::ports::KeyHasher`] or read from a store.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The digest bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for ApiKeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKeyHash(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_shows_its_value() {
        let secret = Secret::parse("s3cr3t-value-0123456789").unwrap();
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
        assert_eq!(format!("{secret}"), "<redacted>");
        assert!(!format!("{:?}", SealedSecret::from_bytes(vec![1, 2, 3])).contains('1'));
    }

    #[test]
    fn signing_keys_are_standard_base64() {
        // Bytes whose base64 uses `+`, `/` and padding, where the alphabets differ.
        let random = [0xFB; Secret::GENERATED_BYTES];
        let key = Secret::signing_key_from_random(&random);
        let encoded = key.expose().strip_prefix("whsec_").unwrap();
        assert_eq!(encoded.len(), 44);
        assert!(encoded.ends_with('='), "{encoded}");
        assert!(encoded.contains('/') || encoded.contains('+'), "{encoded}");
        assert_eq!(STANDARD.decode(encoded).unwrap(), random);
    }

    #[test]
    fn validates_supplied_secrets() {
        assert_eq!(Secret::parse("short"), Err(InvalidSecret::TooShort));
        assert_eq!(Secret::parse(&"a".repeat(257)), Err(InvalidSecret::TooLong));
        assert_eq!(
            Secret::parse("has a space in it!!"),
            Err(InvalidSecret::InvalidCharacter)
        );
        assert_eq!(
            Secret::parse("non-ascii-ééééééééé"),
            Err(InvalidSecret::InvalidCharacter)
        );
        assert!(Secret::parse(&"a".repeat(256)).is_ok());
    }

    #[test]
    fn generated_secrets_have_prefix_and_full_entropy() {
        let secret = Secret::from_random("whsec_", &[0xAB; 32]);
        assert!(secret.expose().starts_with("whsec_"));
        assert_eq!(secret.expose().len(), 6 + 43);
        assert!(Secret::parse(secret.expose()).is_ok());
    }

    #[test]
    fn matches_only_the_exact_value() {
        let secret = Secret::parse("0123456789abcdef").unwrap();
        assert!(secret.matches(b"0123456789abcdef"));
        assert!(!secret.matches(b"0123456789abcdeF"));
        assert!(!secret.matches(b"0123456789abcde"));
        assert!(!secret.matches(b"0123456789abcdef0"));
        assert!(!secret.matches(b""));
    }
}
