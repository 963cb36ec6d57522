//! Whether a request comes from a sender holding the webhook's secret: a header that carries
//! the secret (checked on the request head) or an HMAC signature of the body (checked once the
//! body is read), per source.

use std::borrow::Cow;
use std::time::Duration;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use subtle::ConstantTimeEq as _;

use crate::model::{
    MacAlgorithm, RequestHeaders, Secret, SignatureEncoding, Source, SourceSettings, Timestamp,
    Verification,
};
use crate::ports::SignatureMac;

/// How far a signed timestamp may be from now, either way, before the signature is stale.
pub const SIGNATURE_TOLERANCE: Duration = Duration::from_secs(300);

/// Signatures looked at in one header; further ones are ignored, so a header listing
/// thousands cannot make one request cost thousands of comparisons.
const MAX_SIGNATURES: usize = 8;

/// Standard base64, with or without padding.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a request failed authentication; all answer 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum AuthFailure {
    /// The header carrying the secret (or `Authorization`) is missing or wrong.
    #[error("the secret is missing or wrong")]
    InvalidSecret,
    /// The signature header is missing, malformed or matches no secret.
    #[error("the signature is missing or wrong")]
    InvalidSignature,
    /// The signature is right but its timestamp is more than five minutes from now.
    #[error("the signature's timestamp is more than 300 seconds away from now")]
    SignatureExpired,
}

impl AuthFailure {
    /// The stable problem `code` of the design's ingest table.
    pub const fn code(self) -> &'static str {
        match self {
            Self::InvalidSecret => "invalid_secret",
            Self::InvalidSignature => "invalid_signature",
            Self::SignatureExpired => "signature_expired",
        }
    }
}

/// Whether the sender proved it holds the secret (what a task's `source.verified` says).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Authenticity {
    /// It presented the secret or signed with it.
    Verified,
    /// The webhook has no secret, so nobody is authenticated and everyone is let through.
    Unverified,
}

impl Authenticity {
    pub const fn is_verified(self) -> bool {
        matches!(self, Self::Verified)
    }
}

/// When a source's authentication can be decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthStage {
    /// On the request head: the secret travels in a header.
    Head,
    /// Once the body is read: the sender signs the body.
    Body,
}

/// What the request head says about authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeadCheck {
    /// Decided on the head.
    Done(Authenticity),
    /// The source signs the body: call [`SourceSettings::verify_body`] once it is read.
    AwaitBody,
}

/// A scheme that presents the secret in a header.
#[derive(Debug, Clone, Copy)]
enum HeadScheme<'a> {
    /// The named header's value is the secret.
    SecretHeader(&'a str),
    Bearer,
    Basic,
    BearerOrBasic,
}

/// A scheme that signs the body.
#[derive(Debug, Clone, Copy)]
enum BodyScheme<'a> {
    Github,
    Stripe,
    Slack,
    Pagerduty,
    Shopify,
    StandardWebhooks,
    Hmac {
        header: &'a str,
        algorithm: MacAlgorithm,
        encoding: SignatureEncoding,
        prefix: Option<&'a str>,
    },
}

#[derive(Debug, Clone, Copy)]
enum Scheme<'a> {
    Head(HeadScheme<'a>),
    Body(BodyScheme<'a>),
}

/// The header in which a generic sender presents the secret by default.
const WEBHOOK_SECRET_HEADER: &str = "x-webhook-secret";
const GITLAB_TOKEN_HEADER: &str = "x-gitlab-token";
const AUTHORIZATION: &str = "authorization";

impl SourceSettings {
    fn scheme(&self) -> Scheme<'_> {
        match self.source() {
            Source::Generic => match self.verification() {
                None => Scheme::Head(HeadScheme::SecretHeader(WEBHOOK_SECRET_HEADER)),
                Some(Verification::Header { header }) => {
                    Scheme::Head(HeadScheme::SecretHeader(header.as_str()))
                }
                Some(Verification::Bearer) => Scheme::Head(HeadScheme::Bearer),
                Some(Verification::Basic) => Scheme::Head(HeadScheme::Basic),
                Some(Verification::Hmac {
                    header,
                    algorithm,
                    encoding,
                    prefix,
                }) => Scheme::Body(BodyScheme::Hmac {
                    header: header.as_str(),
                    algorithm: *algorithm,
                    encoding: *encoding,
                    prefix: prefix.as_deref(),
                }),
            },
            Source::Gitlab => Scheme::Head(HeadScheme::SecretHeader(GITLAB_TOKEN_HEADER)),
            Source::Alertmanager | Source::Grafana => Scheme::Head(HeadScheme::BearerOrBasic),
            Source::Github => Scheme::Body(BodyScheme::Github),
            Source::Stripe => Scheme::Body(BodyScheme::Stripe),
            Source::Slack => Scheme::Body(BodyScheme::Slack),
            Source::Pagerduty => Scheme::Body(BodyScheme::Pagerduty),
            Source::Shopify => Scheme::Body(BodyScheme::Shopify),
            Source::StandardWebhooks => Scheme::Body(BodyScheme::StandardWebhooks),
        }
    }

    /// Whether the sender authenticates on the head or by signing the body.
    pub fn auth_stage(&self) -> AuthStage {
        match self.scheme() {
            Scheme::Head(_) => AuthStage::Head,
            Scheme::Body(_) => AuthStage::Body,
        }
    }

    /// The headers that carry a secret in clear text for this webhook, which must never be
    /// stored or logged: `authorization` and `x-webhook-secret` always, plus the source's own
    /// (`x-gitlab-token`, a generic webhook's custom header). Names are in lower case.
    pub fn secret_headers(&self) -> Vec<&str> {
        let mut names = vec![AUTHORIZATION, WEBHOOK_SECRET_HEADER];
        if let Scheme::Head(HeadScheme::SecretHeader(name)) = self.scheme()
            && !names.contains(&name)
        {
            names.push(name);
        }
        names
    }

    /// Authenticates what can be on the request head, before its body is read. `secrets` are
    /// the webhook's current secret and, during a rotation's overlap, the previous one: any
    /// of them passes. With no secret at all the request is let through unverified.
    ///
    /// # Errors
    /// [`AuthFailure::InvalidSecret`] when the source presents the secret in a header and
    /// that header is missing or matches no secret.
    pub fn authenticate_head(
        &self,
        headers: &impl RequestHeaders,
        secrets: &[&Secret],
    ) -> Result<HeadCheck, AuthFailure> {
        if secrets.is_empty() {
            return Ok(HeadCheck::Done(Authenticity::Unverified));
        }
        match self.scheme() {
            Scheme::Head(scheme) => check_head(scheme, headers, secrets)
                .map(|()| HeadCheck::Done(Authenticity::Verified)),
            Scheme::Body(_) => Ok(HeadCheck::AwaitBody),
        }
    }

    /// Authenticates the request with its whole body, at `now`: the body signature for the
    /// sources that sign, and the head check again for the others, so that this alone is a
    /// complete check. Secrets as for [`SourceSettings::authenticate_head`].
    ///
    /// # Errors
    /// [`AuthFailure::InvalidSignature`] when the signature headers are missing, malformed
    /// or match no secret; [`AuthFailure::SignatureExpired`] when the signature is right but
    /// its timestamp is more than [`SIGNATURE_TOLERANCE`] from `now`;
    /// [`AuthFailure::InvalidSecret`] as for [`SourceSettings::authenticate_head`].
    pub fn verify_body(
        &self,
        headers: &impl RequestHeaders,
        body: &[u8],
        secrets: &[&Secret],
        now: Timestamp,
        mac: &impl SignatureMac,
    ) -> Result<Authenticity, AuthFailure> {
        if secrets.is_empty() {
            return Ok(Authenticity::Unverified);
        }
        match self.scheme() {
            Scheme::Head(scheme) => check_head(scheme, headers, secrets),
            Scheme::Body(scheme) => check_signature(scheme, headers, body, secrets, now, mac),
        }
        .map(|()| Authenticity::Verified)
    }
}

// ---------------------------------------------------------------------------------------------
// Secrets presented in headers

fn check_head(
    scheme: HeadScheme<'_>,
    headers: &impl RequestHeaders,
    secrets: &[&Secret],
) -> Result<(), AuthFailure> {
    let presented = match scheme {
        HeadScheme::SecretHeader(name) => headers.get(name).map(Cow::Borrowed),
        HeadScheme::Bearer => bearer_token(headers).map(Cow::Borrowed),
        HeadScheme::Basic => basic_password(headers).map(Cow::Owned),
        HeadScheme::BearerOrBasic => bearer_token(headers)
            .map(Cow::Borrowed)
            .or_else(|| basic_password(headers).map(Cow::Owned)),
    };
    match presented {
        Some(presented) if any_secret_matches(secrets, &presented) => Ok(()),
        _ => Err(AuthFailure::InvalidSecret),
    }
}

/// Whether `presented` equals one of `secrets`, looking at every secret whatever matches.
fn any_secret_matches(secrets: &[&Secret], presented: &[u8]) -> bool {
    secrets
        .iter()
        .fold(false, |found, secret| found | secret.matches(presented))
}

/// The credentials of `Authorization: <scheme> <credentials>`, the scheme in any case.
fn authorization<'h>(headers: &'h impl RequestHeaders, scheme: &str) -> Option<&'h [u8]> {
    let value = headers.get(AUTHORIZATION)?.trim_ascii();
    let space = value.iter().position(|&b| b == b' ')?;
    let (name, credentials) = value.split_at(space);
    name.eq_ignore_ascii_case(scheme.as_bytes())
        .then(|| credentials.trim_ascii())
        .filter(|credentials| !credentials.is_empty())
}

fn bearer_token(headers: &impl RequestHeaders) -> Option<&[u8]> {
    authorization(headers, "bearer")
}

/// The password of `Authorization: Basic base64(user:password)`, whatever the user.
fn basic_password(headers: &impl RequestHeaders) -> Option<Vec<u8>> {
    let mut decoded = BASE64.decode(authorization(headers, "basic")?).ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    Some(decoded.split_off(colon + 1))
}

// ---------------------------------------------------------------------------------------------
// Body signatures

/// How a secret becomes the HMAC key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyForm {
    /// The secret's bytes.
    Raw,
    /// Standard Webhooks: the base64 after `whsec_`; a secret without that prefix (or whose
    /// remainder is not base64) is used as raw bytes.
    StandardWebhooks,
}

/// What a request's signature headers say: the bytes signed ahead of the body, the tags
/// presented, and the signed timestamp if the scheme has one.
#[derive(Debug)]
struct Signed<'h> {
    algorithm: MacAlgorithm,
    key: KeyForm,
    before_body: Vec<&'h [u8]>,
    tags: Vec<Vec<u8>>,
    timestamp: Option<i64>,
}

impl Signed<'_> {
    /// A scheme signing the body alone, keyed with the raw secret.
    fn body_only(algorithm: MacAlgorithm, tags: Vec<Vec<u8>>) -> Option<Self> {
        (!tags.is_empty()).then_some(Self {
            algorithm,
            key: KeyForm::Raw,
            before_body: Vec::new(),
            tags,
            timestamp: None,
        })
    }
}

fn check_signature(
    scheme: BodyScheme<'_>,
    headers: &impl RequestHeaders,
    body: &[u8],
    secrets: &[&Secret],
    now: Timestamp,
    mac: &impl SignatureMac,
) -> Result<(), AuthFailure> {
    let signed = read_signature(scheme, headers).ok_or(AuthFailure::InvalidSignature)?;
    let mut message = signed.before_body.clone();
    message.push(body);
    let mut valid = false;
    for secret in secrets {
        let key = signing_key(secret, signed.key);
        let expected = mac.sign(signed.algorithm, &key, &message);
        for tag in &signed.tags {
            valid |= bool::from(expected.ct_eq(tag));
        }
    }
    if !valid {
        return Err(AuthFailure::InvalidSignature);
    }
    match signed.timestamp {
        Some(at) if !within_tolerance(at, now) => Err(AuthFailure::SignatureExpired),
        _ => Ok(()),
    }
}

fn signing_key(secret: &Secret, form: KeyForm) -> Cow<'_, [u8]> {
    let raw = secret.expose().as_bytes();
    if form == KeyForm::StandardWebhooks
        && let Some(encoded) = secret.expose().strip_prefix(Secret::SIGNING_KEY_PREFIX)
        && let Ok(key) = BASE64.decode(encoded)
        && !key.is_empty()
    {
        return Cow::Owned(key);
    }
    Cow::Borrowed(raw)
}

/// Whether `unix_seconds` is within [`SIGNATURE_TOLERANCE`] of `now`, either way.
fn within_tolerance(unix_seconds: i64, now: Timestamp) -> bool {
    let now_seconds = now.unix_micros().div_euclid(1_000_000);
    now_seconds.saturating_sub(unix_seconds).unsigned_abs() <= SIGNATURE_TOLERANCE.as_secs()
}

/// Reads the signature headers of `scheme`; `None` when they are missing or malformed.
fn read_signature<'h>(
    scheme: BodyScheme<'_>,
    headers: &'h impl RequestHeaders,
) -> Option<Signed<'h>> {
    let header = |name: &str| headers.get(name).map(<[u8]>::trim_ascii);
    match scheme {
        BodyScheme::Github => {
            let hex = header("x-hub-signature-256")?.strip_prefix(b"sha256=")?;
            Signed::body_only(MacAlgorithm::Sha256, vec![decode_hex(hex)?])
        }
        BodyScheme::Pagerduty => {
            let tags = list(header("x-pagerduty-signature")?, b',')
                .filter_map(|item| item.strip_prefix(b"v1=").and_then(decode_hex))
                .take(MAX_SIGNATURES)
                .collect();
            Signed::body_only(MacAlgorithm::Sha256, tags)
        }
        BodyScheme::Shopify => {
            let tag = BASE64.decode(header("x-shopify-hmac-sha256")?).ok()?;
            Signed::body_only(MacAlgorithm::Sha256, vec![tag])
        }
        BodyScheme::Hmac {
            header: name,
            algorithm,
            encoding,
            prefix,
        } => {
            let mut text = header(name)?;
            if let Some(prefix) = prefix {
                text = text.strip_prefix(prefix.as_bytes())?;
            }
            let tag = match encoding {
                SignatureEncoding::Hex => decode_hex(text)?,
                SignatureEncoding::Base64 => BASE64.decode(text).ok()?,
            };
            Signed::body_only(algorithm, vec![tag])
        }
        BodyScheme::Stripe => {
            let mut timestamp = None;
            let mut tags = Vec::new();
            for item in list(header("stripe-signature")?, b',') {
                if let Some(t) = item.strip_prefix(b"t=") {
                    timestamp = timestamp.or(Some(t));
                } else if let Some(hex) = item.strip_prefix(b"v1=")
                    && tags.len() < MAX_SIGNATURES
                {
                    tags.extend(decode_hex(hex));
                }
            }
            let timestamp = timestamp?;
            Some(Signed {
                algorithm: MacAlgorithm::Sha256,
                key: KeyForm::Raw,
                before_body: vec![timestamp, b"."],
                timestamp: Some(parse_unix_seconds(timestamp)?),
                tags: non_empty(tags)?,
            })
        }
        BodyScheme::Slack => {
            let hex = header("x-slack-signature")?.strip_prefix(b"v0=")?;
            let timestamp = header("x-slack-request-timestamp")?;
            Some(Signed {
                algorithm: MacAlgorithm::Sha256,
                key: KeyForm::Raw,
                before_body: vec![b"v0:", timestamp, b":"],
                timestamp: Some(parse_unix_seconds(timestamp)?),
                tags: vec![decode_hex(hex)?],
            })
        }
        BodyScheme::StandardWebhooks => {
            let id = header("webhook-id").filter(|id| !id.is_empty())?;
            let timestamp = header("webhook-timestamp")?;
            let tags = list(header("webhook-signature")?, b' ')
                .filter_map(|item| {
                    item.strip_prefix(b"v1,")
                        .and_then(|encoded| BASE64.decode(encoded).ok())
                })
                .take(MAX_SIGNATURES)
                .collect();
            Some(Signed {
                algorithm: MacAlgorithm::Sha256,
                key: KeyForm::StandardWebhooks,
                before_body: vec![id, b".", timestamp, b"."],
                timestamp: Some(parse_unix_seconds(timestamp)?),
                tags: non_empty(tags)?,
            })
        }
    }
}

/// The non-empty, trimmed items of a `separator`-separated header value.
fn list(value: &[u8], separator: u8) -> impl Iterator<Item = &[u8]> {
    value
        .split(move |&b| b == separator)
        .map(<[u8]>::trim_ascii)
        .filter(|item| !item.is_empty())
}

fn non_empty<T>(items: Vec<T>) -> Option<Vec<T>> {
    (!items.is_empty()).then_some(items)
}

/// Seconds since the Unix epoch, written in decimal digits only.
fn parse_unix_seconds(text: &[u8]) -> Option<i64> {
    if text.is_empty() || text.len() > 18 || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// Hexadecimal digits, either case, two per byte.
fn decode_hex(text: &[u8]) -> Option<Vec<u8>> {
    fn nibble(digit: u8) -> Option<u8> {
        match digit {
            b'0'..=b'9' => Some(digit - b'0'),
            b'a'..=b'f' => Some(digit - b'a' + 10),
            b'A'..=b'F' => Some(digit - b'A' + 10),
            _ => None,
        }
    }
    if text.is_empty() || !text.len().is_multiple_of(2) {
        return None;
    }
    text.chunks_exact(2)
        .map(|pair| Some((nibble(pair[0])? << 4) | nibble(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::testing::{SpellingMac, base64, headers, hex};
    use super::*;
    use crate::model::{HeaderName, Verification};

    const BODY: &[u8] = br#"{"message":"deploy"}"#;
    const NOW_SECONDS: i64 = 1_700_000_000;
    const NOW: Timestamp = Timestamp::from_unix_micros(NOW_SECONDS * 1_000_000 + 250_000);
    const CURRENT: &str = "current-secret-0123";
    const PREVIOUS: &str = "previous-secret-0123";

    fn secret(text: &str) -> Secret {
        Secret::parse(text).unwrap()
    }

    fn sign(algorithm: MacAlgorithm, key: &str, parts: &[&[u8]]) -> Vec<u8> {
        SpellingMac.sign(algorithm, key.as_bytes(), parts)
    }

    fn sha256_hex(key: &str, parts: &[&[u8]]) -> String {
        hex(&sign(MacAlgorithm::Sha256, key, parts))
    }

    fn basic(credentials: &str) -> String {
        format!("Basic {}", base64(credentials.as_bytes()))
    }

    /// Runs both entry points: `verify_body` must give `expected`, and `authenticate_head`
    /// the same on a head-authenticated source or `AwaitBody` on a signing one.
    fn check(
        settings: &SourceSettings,
        pairs: &[(&str, &str)],
        secrets: &[&str],
        expected: Expected,
    ) {
        let owned: Vec<Secret> = secrets.iter().map(|s| secret(s)).collect();
        let secrets: Vec<&Secret> = owned.iter().collect();
        let headers = headers(pairs);
        let label = format!("{:?} {pairs:?}", settings.source());
        let body = settings.verify_body(&headers, BODY, &secrets, NOW, &SpellingMac);
        assert_eq!(body, expected, "verify_body {label}");
        let head = settings.authenticate_head(&headers, &secrets);
        let expected_head = if settings.auth_stage() == AuthStage::Body && !secrets.is_empty() {
            Ok(HeadCheck::AwaitBody)
        } else {
            expected.map(HeadCheck::Done)
        };
        assert_eq!(head, expected_head, "authenticate_head {label}");
    }

    type Expected = Result<Authenticity, AuthFailure>;

    const BOTH: &[&str] = &[CURRENT, PREVIOUS];
    const OK: Expected = Ok(Authenticity::Verified);
    const SECRET: Expected = Err(AuthFailure::InvalidSecret);
    const SIGNATURE: Expected = Err(AuthFailure::InvalidSignature);
    const EXPIRED: Expected = Err(AuthFailure::SignatureExpired);
    const UNVERIFIED: Expected = Ok(Authenticity::Unverified);

    /// `check` against both secrets, once per `(value, expected)`, the request carrying
    /// `value` in `header` and nothing else.
    fn check_values(settings: &SourceSettings, header: &str, cases: &[(&str, Expected)]) {
        for &(value, expected) in cases {
            check(settings, &[(header, value)], BOTH, expected);
        }
    }

    /// A secret sent as it is in `header`: the current or the previous one passes, whatever
    /// the case of the header's name; another value, another header or none fails.
    fn check_token_header(settings: &SourceSettings, header: &str) {
        let lower = header.to_ascii_lowercase();
        check(settings, &[(header, CURRENT)], BOTH, OK);
        check(settings, &[(&lower, PREVIOUS)], BOTH, OK);
        check(settings, &[(&lower, "wrong")], BOTH, SECRET);
        check(settings, &[("x-webhook-secret", CURRENT)], BOTH, SECRET);
        check(settings, &[], BOTH, SECRET);
    }

    fn generic(verification: Verification) -> SourceSettings {
        SourceSettings::new(Source::Generic, Some(verification), None, None, None).unwrap()
    }

    #[test]
    fn stages_per_source() {
        use Source::*;
        for source in Source::ALL {
            let expected = match source {
                Generic | Gitlab | Alertmanager | Grafana => AuthStage::Head,
                Github | Stripe | Slack | Pagerduty | Shopify | StandardWebhooks => AuthStage::Body,
            };
            assert_eq!(
                SourceSettings::of(source).auth_stage(),
                expected,
                "{source}"
            );
        }
        let hmac = generic(Verification::Hmac {
            header: HeaderName::parse("x-sig").unwrap(),
            algorithm: MacAlgorithm::Sha256,
            encoding: SignatureEncoding::Hex,
            prefix: None,
        });
        assert_eq!(hmac.auth_stage(), AuthStage::Body);
        assert_eq!(generic(Verification::Bearer).auth_stage(), AuthStage::Head);
    }

    #[test]
    fn failures_have_the_design_codes() {
        assert_eq!(AuthFailure::InvalidSecret.code(), "invalid_secret");
        assert_eq!(AuthFailure::InvalidSignature.code(), "invalid_signature");
        assert_eq!(AuthFailure::SignatureExpired.code(), "signature_expired");
    }

    #[test]
    fn secret_headers_are_named_for_redaction() {
        let custom = generic(Verification::Header {
            header: HeaderName::parse("X-Api-Key").unwrap(),
        });
        assert_eq!(
            custom.secret_headers(),
            ["authorization", "x-webhook-secret", "x-api-key"]
        );
        assert_eq!(
            SourceSettings::of(Source::Gitlab).secret_headers(),
            ["authorization", "x-webhook-secret", "x-gitlab-token"]
        );
        assert_eq!(
            SourceSettings::default().secret_headers(),
            ["authorization", "x-webhook-secret"]
        );
    }

    #[test]
    fn without_a_secret_nobody_is_verified() {
        for source in Source::ALL {
            let settings = SourceSettings::of(source);
            check(&settings, &[], &[], UNVERIFIED);
            check(&settings, &[("x-webhook-secret", CURRENT)], &[], UNVERIFIED);
        }
    }

    #[test]
    fn generic_secret_header() {
        let settings = SourceSettings::default();
        check(&settings, &[("X-Webhook-Secret", CURRENT)], BOTH, OK);
        check(
            &settings,
            &[("x-webhook-secret", PREVIOUS)],
            &[CURRENT],
            SECRET,
        );
        check_values(
            &settings,
            "x-webhook-secret",
            &[
                (PREVIOUS, OK),
                ("wrong-secret-0123", SECRET),
                ("current-secret-012", SECRET),
                ("", SECRET),
            ],
        );
        check(&settings, &[], BOTH, SECRET);
        check_values(
            &settings,
            "authorization",
            &[(&format!("Bearer {CURRENT}"), SECRET)],
        );
    }

    #[test]
    fn generic_custom_header() {
        let settings = generic(Verification::Header {
            header: HeaderName::parse("X-Api-Key").unwrap(),
        });
        check_token_header(&settings, "X-Api-Key");
    }

    #[test]
    fn generic_bearer() {
        let settings = generic(Verification::Bearer);
        check(
            &settings,
            &[("Authorization", &format!("bearer   {PREVIOUS} "))],
            BOTH,
            OK,
        );
        check_values(
            &settings,
            "authorization",
            &[
                (&format!("Bearer {CURRENT}"), OK),
                ("Bearer wrong", SECRET),
                ("Bearer", SECRET),
                ("Bearer ", SECRET),
                (CURRENT, SECRET),
                (&basic(&format!("u:{CURRENT}")), SECRET),
            ],
        );
        check(&settings, &[("x-webhook-secret", CURRENT)], BOTH, SECRET);
        check(&settings, &[], BOTH, SECRET);
    }

    #[test]
    fn generic_basic() {
        let settings = generic(Verification::Basic);
        let unpadded = basic(&format!("anyone:{CURRENT}"));
        check_values(
            &settings,
            "authorization",
            &[
                (&basic(&format!("ops:{CURRENT}")), OK),
                (&basic(&format!(":{PREVIOUS}")), OK),
                (unpadded.trim_end_matches('='), OK),
                (&basic("ops:wrong"), SECRET),
                (&basic(CURRENT), SECRET),
                (&basic(&format!("{CURRENT}:")), SECRET),
                ("Basic !!!", SECRET),
                (&format!("Bearer {CURRENT}"), SECRET),
            ],
        );
        check(&settings, &[], BOTH, SECRET);
    }

    #[test]
    fn gitlab_token() {
        let settings = SourceSettings::of(Source::Gitlab);
        check_token_header(&settings, "X-Gitlab-Token");
    }

    #[test]
    fn alertmanager_and_grafana_take_bearer_or_basic() {
        for source in [Source::Alertmanager, Source::Grafana] {
            let settings = SourceSettings::of(source);
            check_values(
                &settings,
                "authorization",
                &[
                    (&format!("Bearer {CURRENT}"), OK),
                    (&format!("Bearer {PREVIOUS}"), OK),
                    (&basic(&format!("am:{CURRENT}")), OK),
                    (&basic(&format!("x:{PREVIOUS}")), OK),
                    ("Bearer wrong", SECRET),
                    (&basic("am:wrong"), SECRET),
                    (&format!("Token {CURRENT}"), SECRET),
                ],
            );
            check(&settings, &[("x-webhook-secret", CURRENT)], BOTH, SECRET);
            check(&settings, &[], BOTH, SECRET);
        }
    }

    #[test]
    fn github_signature() {
        let settings = SourceSettings::of(Source::Github);
        let good = format!("sha256={}", sha256_hex(CURRENT, &[BODY]));
        let previous = format!("sha256={}", sha256_hex(PREVIOUS, &[BODY]));
        let other_body = format!("sha256={}", sha256_hex(CURRENT, &[b"{}"]));
        check(&settings, &[("X-Hub-Signature-256", &good)], BOTH, OK);
        check(
            &settings,
            &[("x-hub-signature-256", &previous)],
            &[CURRENT],
            SIGNATURE,
        );
        check_values(
            &settings,
            "x-hub-signature-256",
            &[
                (&previous, OK),
                (&good.to_uppercase().replace("SHA256=", "sha256="), OK),
                (&other_body, SIGNATURE),
                (&good.replace("sha256=", "sha1="), SIGNATURE),
                (&good[7..], SIGNATURE),
                ("sha256=zz", SIGNATURE),
                ("sha256=", SIGNATURE),
            ],
        );
        check(&settings, &[("x-hub-signature", &good)], BOTH, SIGNATURE);
        check(&settings, &[("x-webhook-secret", CURRENT)], BOTH, SIGNATURE);
        check(&settings, &[], BOTH, SIGNATURE);
    }

    #[test]
    fn stripe_signature() {
        let settings = SourceSettings::of(Source::Stripe);
        let at = |seconds: i64| seconds.to_string();
        let v1 = |key: &str, t: &str| sha256_hex(key, &[t.as_bytes(), b".", BODY]);
        let now = at(NOW_SECONDS);
        let header = |value: String| [("Stripe-Signature", value)];
        let run = |value: String, secrets: &[&str], expected| {
            let pairs = header(value);
            let pairs: Vec<(&str, &str)> = pairs.iter().map(|(n, v)| (*n, v.as_str())).collect();
            check(&settings, &pairs, secrets, expected);
        };
        run(format!("t={now},v1={}", v1(CURRENT, &now)), BOTH, OK);
        run(format!("t={now},v1={}", v1(PREVIOUS, &now)), BOTH, OK);
        run(
            format!("t={now},v1={},v0=abcd", v1(PREVIOUS, &now)),
            &[CURRENT],
            SIGNATURE,
        );
        run(
            format!("t={now}, v1=00ff, v1={}", v1(CURRENT, &now)),
            BOTH,
            OK,
        );
        run(format!("v1={},t={now}", v1(CURRENT, &now)), BOTH, OK);
        run(format!("t={now},v1={}", v1(CURRENT, "1")), BOTH, SIGNATURE);
        run(format!("t={now},v0={}", v1(CURRENT, &now)), BOTH, SIGNATURE);
        run(format!("v1={}", v1(CURRENT, &now)), BOTH, SIGNATURE);
        run(format!("t={now}"), BOTH, SIGNATURE);
        run(
            format!("t=soon,v1={}", v1(CURRENT, "soon")),
            BOTH,
            SIGNATURE,
        );
        // Timestamps: 300 s either way is fresh; 301 s is stale, but only a right
        // signature learns that.
        for (t, expected) in [
            (NOW_SECONDS - 300, OK),
            (NOW_SECONDS + 300, OK),
            (NOW_SECONDS - 301, EXPIRED),
            (NOW_SECONDS + 302, EXPIRED),
            (0, EXPIRED),
        ] {
            let t = at(t);
            run(format!("t={t},v1={}", v1(CURRENT, &t)), BOTH, expected);
        }
        let stale = at(NOW_SECONDS - 301);
        run(
            format!("t={stale},v1={}", v1("wrong-secret-0123", &stale)),
            BOTH,
            SIGNATURE,
        );
        check(&settings, &[], BOTH, SIGNATURE);
    }

    #[test]
    fn slack_signature() {
        let settings = SourceSettings::of(Source::Slack);
        let v0 = |key: &str, t: &str| {
            format!(
                "v0={}",
                sha256_hex(key, &[b"v0:", t.as_bytes(), b":", BODY])
            )
        };
        let now = NOW_SECONDS.to_string();
        let stale = (NOW_SECONDS - 301).to_string();
        let pairs = |sig: &str, t: &str| -> Vec<(String, String)> {
            vec![
                ("X-Slack-Signature".into(), sig.into()),
                ("X-Slack-Request-Timestamp".into(), t.into()),
            ]
        };
        let run = |pairs: Vec<(String, String)>, expected| {
            let pairs: Vec<(&str, &str)> = pairs
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            check(&settings, &pairs, BOTH, expected);
        };
        run(pairs(&v0(CURRENT, &now), &now), OK);
        run(pairs(&v0(PREVIOUS, &now), &now), OK);
        run(pairs(&v0("wrong-secret-0123", &now), &now), SIGNATURE);
        run(pairs(&v0(CURRENT, &now), &stale), SIGNATURE);
        run(pairs(&v0(CURRENT, &stale), &stale), EXPIRED);
        run(
            pairs(&v0(CURRENT, &now).replace("v0=", "v1="), &now),
            SIGNATURE,
        );
        run(pairs(&v0(CURRENT, "x"), "x"), SIGNATURE);
        run(
            vec![("x-slack-signature".into(), v0(CURRENT, &now))],
            SIGNATURE,
        );
        run(
            vec![("x-slack-request-timestamp".into(), now.clone())],
            SIGNATURE,
        );
    }

    #[test]
    fn pagerduty_signature() {
        let settings = SourceSettings::of(Source::Pagerduty);
        let v1 = |key: &str| format!("v1={}", sha256_hex(key, &[BODY]));
        check_values(
            &settings,
            "X-PagerDuty-Signature",
            &[
                (&v1(CURRENT), OK),
                (&v1(PREVIOUS), OK),
                (&format!("v1=00ff,{}", v1(CURRENT)), OK),
                (&format!("{}, v1=00ff", v1(PREVIOUS)), OK),
                (&format!("v1=00ff,{}", v1("wrong-secret-0123")), SIGNATURE),
                (&v1(CURRENT).replace("v1=", "v2="), SIGNATURE),
                ("", SIGNATURE),
            ],
        );
        check(&settings, &[], BOTH, SIGNATURE);
    }

    #[test]
    fn shopify_signature() {
        let settings = SourceSettings::of(Source::Shopify);
        let tag = |key: &str| sign(MacAlgorithm::Sha256, key, &[BODY]);
        check_values(
            &settings,
            "X-Shopify-Hmac-Sha256",
            &[
                (&base64(&tag(CURRENT)), OK),
                (&base64(&tag(PREVIOUS)), OK),
                (base64(&tag(CURRENT)).trim_end_matches('='), OK),
                (&hex(&tag(CURRENT)), SIGNATURE),
                (&base64(&tag("wrong-secret-0123")), SIGNATURE),
                ("not base64!", SIGNATURE),
            ],
        );
        check(&settings, &[], BOTH, SIGNATURE);
    }

    #[test]
    fn standard_webhooks_signature() {
        let settings = SourceSettings::of(Source::StandardWebhooks);
        // `whsec_` + base64: the key is the decoded bytes.
        let current = format!("whsec_{}", base64(b"key-bytes-current"));
        let previous = "raw-previous-secret";
        let secrets = [current.as_str(), previous];
        let id = "msg_2Lx";
        let v1 = |key: &str, t: &str| {
            let parts: [&[u8]; 5] = [id.as_bytes(), b".", t.as_bytes(), b".", BODY];
            format!("v1,{}", base64(&sign(MacAlgorithm::Sha256, key, &parts)))
        };
        let now = NOW_SECONDS.to_string();
        let stale = (NOW_SECONDS + 301).to_string();
        let run = |id: &str, t: &str, signature: &str, expected| {
            let pairs = [
                ("webhook-id", id),
                ("webhook-timestamp", t),
                ("webhook-signature", signature),
            ];
            let pairs: Vec<(&str, &str)> =
                pairs.into_iter().filter(|(_, v)| !v.is_empty()).collect();
            check(&settings, &pairs, &secrets, expected);
        };
        run(id, &now, &v1("key-bytes-current", &now), OK);
        run(id, &now, &v1(previous, &now), OK);
        run(id, &now, &v1(&current, &now), SIGNATURE);
        run(id, &now, &format!("v1,bm9wZQ== {}", v1(previous, &now)), OK);
        run(
            id,
            &now,
            &format!("v1a,bm9wZQ== {}", v1(previous, &now)),
            OK,
        );
        run(
            id,
            &now,
            &v1(previous, &now).replace("v1,", "v1a,"),
            SIGNATURE,
        );
        run(id, &now, "v1,bm9wZQ==", SIGNATURE);
        run(id, &now, &v1(previous, "1"), SIGNATURE);
        run(id, &stale, &v1(previous, &stale), EXPIRED);
        run("", &now, &v1(previous, &now), SIGNATURE);
        run(id, "", &v1(previous, &now), SIGNATURE);
        run(id, &now, "", SIGNATURE);
    }

    #[test]
    fn at_most_eight_signatures_are_looked_at() {
        let settings = SourceSettings::of(Source::Pagerduty);
        let good = format!("v1={}", sha256_hex(CURRENT, &[BODY]));
        let decoys = |n: usize| vec!["v1=00"; n].join(",");
        check_values(
            &settings,
            "x-pagerduty-signature",
            &[
                (&format!("{},{good}", decoys(7)), OK),
                (&format!("{},{good}", decoys(8)), SIGNATURE),
            ],
        );
    }

    #[test]
    fn generic_hmac() {
        let header = HeaderName::parse("X-Signature").unwrap();
        let sha1_hex = generic(Verification::Hmac {
            header: header.clone(),
            algorithm: MacAlgorithm::Sha1,
            encoding: SignatureEncoding::Hex,
            prefix: Some("sha1=".into()),
        });
        let tag = |algorithm, key: &str| sign(algorithm, key, &[BODY]);
        let sha1 = |key: &str| format!("sha1={}", hex(&tag(MacAlgorithm::Sha1, key)));
        let sha256 = format!("sha1={}", hex(&tag(MacAlgorithm::Sha256, CURRENT)));
        check_values(
            &sha1_hex,
            "x-signature",
            &[
                (&sha1(CURRENT), OK),
                (&sha1(PREVIOUS), OK),
                (&sha1("wrong-secret-0123"), SIGNATURE),
                (&sha1(CURRENT)[5..], SIGNATURE),
                (&sha256, SIGNATURE),
            ],
        );
        check(&sha1_hex, &[], BOTH, SIGNATURE);

        let sha512_base64 = generic(Verification::Hmac {
            header,
            algorithm: MacAlgorithm::Sha512,
            encoding: SignatureEncoding::Base64,
            prefix: None,
        });
        let sha512 = |key: &str| base64(&tag(MacAlgorithm::Sha512, key));
        check_values(
            &sha512_base64,
            "x-signature",
            &[
                (&sha512(CURRENT), OK),
                (&sha512(PREVIOUS), OK),
                (&hex(&tag(MacAlgorithm::Sha512, CURRENT)), SIGNATURE),
                (&format!("sha512={}", sha512(CURRENT)), SIGNATURE),
            ],
        );
    }

    #[test]
    fn hex_and_timestamps() {
        let check_hex = |text: &str, expected: Option<&[u8]>| {
            assert_eq!(decode_hex(text.as_bytes()).as_deref(), expected, "{text:?}");
        };
        check_hex("00ff7A", Some(&[0x00, 0xff, 0x7a]));
        check_hex("", None);
        check_hex("abc", None);
        check_hex("0g", None);
        check_hex("+1", None);
        let check_t = |text: &str, expected: Option<i64>| {
            assert_eq!(parse_unix_seconds(text.as_bytes()), expected, "{text:?}");
        };
        check_t("1700000000", Some(1_700_000_000));
        check_t("0", Some(0));
        check_t("", None);
        check_t("-5", None);
        check_t("+5", None);
        check_t("1.5", None);
        check_t("9999999999999999999999", None);
    }
}
