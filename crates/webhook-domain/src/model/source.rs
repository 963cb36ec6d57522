//! A webhook's source: the sender's dialect it speaks (how the sender authenticates, where the
//! event type and the delivery id are, how the task's instruction is made), the overrides a
//! webhook may set on it, and the networks a webhook accepts requests from.
//!
//! These are validated values only; the rules that read requests with them are in
//! [`crate::rules`] (`rules/source.rs`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::validated::text_conversions;

/// A refused setting, naming the field it came from (`source`, `verification.header`,
/// `allowed_source_ips[2]`), for the management API to answer 422 with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidSetting {
    pub field: String,
    pub reason: String,
}

impl InvalidSetting {
    /// A refusal of `field` because of `reason`.
    pub fn new(field: impl Into<String>, reason: impl fmt::Display) -> Self {
        Self {
            field: field.into(),
            reason: reason.to_string(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Request headers

/// Read access to a request's headers, which the HTTP adapter can give without copying.
pub trait RequestHeaders {
    /// The value of the first header called `name`, which callers pass in lower case; `None`
    /// when there is none.
    fn get(&self, name: &str) -> Option<&[u8]>;

    /// Calls `visit` with each header's name and value, in the order received (a header sent
    /// twice is visited twice).
    fn each(&self, visit: &mut dyn FnMut(&str, &[u8]));
}

impl RequestHeaders for [(String, Vec<u8>)] {
    fn get(&self, name: &str) -> Option<&[u8]> {
        self.iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_slice())
    }

    fn each(&self, visit: &mut dyn FnMut(&str, &[u8])) {
        for (name, value) in self {
            visit(name, value);
        }
    }
}

impl RequestHeaders for Vec<(String, Vec<u8>)> {
    fn get(&self, name: &str) -> Option<&[u8]> {
        RequestHeaders::get(self.as_slice(), name)
    }

    fn each(&self, visit: &mut dyn FnMut(&str, &[u8])) {
        self.as_slice().each(visit);
    }
}

impl<T: RequestHeaders + ?Sized> RequestHeaders for &T {
    fn get(&self, name: &str) -> Option<&[u8]> {
        (**self).get(name)
    }

    fn each(&self, visit: &mut dyn FnMut(&str, &[u8])) {
        (**self).each(visit);
    }
}

// ---------------------------------------------------------------------------------------------
// Source

/// The sender a webhook expects, which sets how it authenticates and where its event type,
/// delivery id and instruction are (see the design's "Sources" table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// `X-Webhook-Secret`, `X-Event-Type`, `Idempotency-Key` and a top-level `message`.
    #[default]
    Generic,
    Github,
    Gitlab,
    Stripe,
    Slack,
    Pagerduty,
    Shopify,
    StandardWebhooks,
    Alertmanager,
    Grafana,
}

impl Source {
    /// Every source, in the design's order.
    pub const ALL: [Self; 10] = [
        Self::Generic,
        Self::Github,
        Self::Gitlab,
        Self::Stripe,
        Self::Slack,
        Self::Pagerduty,
        Self::Shopify,
        Self::StandardWebhooks,
        Self::Alertmanager,
        Self::Grafana,
    ];

    /// The source's name in the API and in stores.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Generic => "generic",
            Self::Github => "github",
            Self::Gitlab => "gitlab",
            Self::Stripe => "stripe",
            Self::Slack => "slack",
            Self::Pagerduty => "pagerduty",
            Self::Shopify => "shopify",
            Self::StandardWebhooks => "standard_webhooks",
            Self::Alertmanager => "alertmanager",
            Self::Grafana => "grafana",
        }
    }

    /// Parses a source name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Parses the `source` field, saying which names exist when `text` is none of them.
    pub fn parse_field(text: &str) -> Result<Self, InvalidSetting> {
        Self::parse(text).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|s| s.as_str()).collect();
            InvalidSetting::new("source", format!("must be one of {}", names.join(", ")))
        })
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------------------------
// Header names

/// An HTTP header name as a webhook setting names it: an RFC 9110 token, kept in lower case.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HeaderName(String);

/// Why a header name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidHeaderName {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {} characters", HeaderName::MAX_LEN)]
    TooLong,
    #[error("must be an HTTP header name: letters, digits and !#$%&'*+-.^_`|~ only")]
    InvalidCharacter,
}

impl HeaderName {
    /// Longest header name accepted.
    pub const MAX_LEN: usize = 64;

    /// Validates `text` as a header name and lower-cases it.
    pub fn parse(text: &str) -> Result<Self, InvalidHeaderName> {
        if text.is_empty() {
            return Err(InvalidHeaderName::Empty);
        }
        if text.len() > Self::MAX_LEN {
            return Err(InvalidHeaderName::TooLong);
        }
        if !text.bytes().all(is_token_byte) {
            return Err(InvalidHeaderName::InvalidCharacter);
        }
        Ok(Self(text.to_ascii_lowercase()))
    }

    /// The name, in lower case.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether `b` may appear in an RFC 9110 `token`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

text_conversions!(text HeaderName, InvalidHeaderName);

// ---------------------------------------------------------------------------------------------
// Verification overrides

/// The hash function of an HMAC signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MacAlgorithm {
    /// HMAC-SHA1, which some older senders still use.
    Sha1,
    Sha256,
    Sha512,
}

impl MacAlgorithm {
    /// Every algorithm.
    pub const ALL: [Self; 3] = [Self::Sha1, Self::Sha256, Self::Sha512];

    /// The algorithm's name in the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sha1 => "sha1",
            Self::Sha256 => "sha256",
            Self::Sha512 => "sha512",
        }
    }

    /// Parses an algorithm name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == text)
    }

    /// Length of a tag, in bytes.
    pub const fn tag_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Sha512 => 64,
        }
    }
}

/// How a signature header writes the tag's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureEncoding {
    /// Hexadecimal digits, either case.
    Hex,
    /// Standard base64 (`+` and `/`), padding optional.
    Base64,
}

impl SignatureEncoding {
    /// Every encoding.
    pub const ALL: [Self; 2] = [Self::Hex, Self::Base64];

    /// The encoding's name in the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Hex => "hex",
            Self::Base64 => "base64",
        }
    }

    /// Parses an encoding name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == text)
    }
}

/// How a `generic` webhook's sender proves it holds the secret, when not with
/// `X-Webhook-Secret`. In JSON: `{"scheme":"header","header":NAME}`,
/// `{"scheme":"hmac","header":NAME,"algorithm":"sha256","encoding":"hex","prefix":"sha256="}`,
/// `{"scheme":"bearer"}` or `{"scheme":"basic"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "scheme", rename_all = "snake_case")]
pub enum Verification {
    /// The header's value equals the secret.
    Header { header: HeaderName },
    /// The header carries an HMAC of the body keyed with the secret.
    Hmac {
        header: HeaderName,
        algorithm: MacAlgorithm,
        encoding: SignatureEncoding,
        /// Text in front of the encoded tag, such as `sha256=`; it must be there.
        #[serde(skip_serializing_if = "Option::is_none")]
        prefix: Option<String>,
    },
    /// `Authorization: Bearer <secret>`.
    Bearer,
    /// `Authorization: Basic` with the secret as the password, any user name.
    Basic,
}

impl Verification {
    /// Longest signature prefix accepted.
    pub const PREFIX_MAX_LEN: usize = 32;

    /// Validates the `verification` field as the management API receives it. Refusals name
    /// the field: `verification`, `verification.scheme`, `verification.header`,
    /// `verification.algorithm`, `verification.encoding`, `verification.prefix`, or the unknown
    /// key.
    pub fn from_json(value: &Value) -> Result<Self, InvalidSetting> {
        const FIELD: &str = "verification";
        let Value::Object(fields) = value else {
            return Err(InvalidSetting::new(
                FIELD,
                "must be an object with a `scheme`: header, hmac, bearer or basic",
            ));
        };
        let scheme = match fields.get("scheme") {
            Some(Value::String(scheme)) => scheme.as_str(),
            Some(_) => {
                return Err(InvalidSetting::new(
                    "verification.scheme",
                    "must be a string",
                ));
            }
            None => {
                return Err(InvalidSetting::new(
                    "verification.scheme",
                    "is required: header, hmac, bearer or basic",
                ));
            }
        };
        let allowed: &[&str] = match scheme {
            "header" => &["scheme", "header"],
            "hmac" => &["scheme", "header", "algorithm", "encoding", "prefix"],
            "bearer" | "basic" => &["scheme"],
            _ => {
                return Err(InvalidSetting::new(
                    "verification.scheme",
                    "must be header, hmac, bearer or basic",
                ));
            }
        };
        if let Some(unknown) = fields.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(InvalidSetting::new(
                format!("verification.{unknown}"),
                format!("is not a setting of the {scheme} scheme"),
            ));
        }
        let text = |name: &str| -> Result<Option<&str>, InvalidSetting> {
            match fields.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(text)) => Ok(Some(text)),
                Some(_) => Err(InvalidSetting::new(
                    format!("verification.{name}"),
                    "must be a string",
                )),
            }
        };
        let header = || -> Result<HeaderName, InvalidSetting> {
            let name = text("header")?
                .ok_or_else(|| InvalidSetting::new("verification.header", "is required"))?;
            HeaderName::parse(name).map_err(|e| InvalidSetting::new("verification.header", e))
        };
        Ok(match scheme {
            "header" => Self::Header { header: header()? },
            "hmac" => {
                let header = header()?;
                let algorithm = match text("algorithm")? {
                    None => MacAlgorithm::Sha256,
                    Some(name) => MacAlgorithm::parse(name).ok_or_else(|| {
                        InvalidSetting::new(
                            "verification.algorithm",
                            "must be sha1, sha256 or sha512",
                        )
                    })?,
                };
                let encoding = match text("encoding")? {
                    None => SignatureEncoding::Hex,
                    Some(name) => SignatureEncoding::parse(name).ok_or_else(|| {
                        InvalidSetting::new("verification.encoding", "must be hex or base64")
                    })?,
                };
                let prefix = text("prefix")?.map(Self::check_prefix).transpose()?;
                Self::Hmac {
                    header,
                    algorithm,
                    encoding,
                    prefix,
                }
            }
            "bearer" => Self::Bearer,
            _ => Self::Basic,
        })
    }

    fn check_prefix(prefix: &str) -> Result<String, InvalidSetting> {
        let field = "verification.prefix";
        if prefix.is_empty() {
            return Err(InvalidSetting::new(
                field,
                "must not be empty; omit it instead",
            ));
        }
        if prefix.len() > Self::PREFIX_MAX_LEN {
            return Err(InvalidSetting::new(
                field,
                format!("must be at most {} characters", Self::PREFIX_MAX_LEN),
            ));
        }
        if !prefix.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(InvalidSetting::new(
                field,
                "must contain only visible ASCII characters",
            ));
        }
        Ok(prefix.to_owned())
    }

    /// Whether the scheme signs the body (so it is checked once the body is read) rather than
    /// presenting the secret in a header.
    pub const fn signs_body(&self) -> bool {
        matches!(self, Self::Hmac { .. })
    }
}

impl<'de> Deserialize<'de> for Verification {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Self::from_json(&value).map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------------------------
// Field references

/// Where a value is read from: a request header (`header:X-Name`) or a place in the JSON
/// payload named by an RFC 6901 JSON Pointer (`/event/id`).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum FieldRef {
    Header(HeaderName),
    /// A JSON Pointer, as written (escapes `~0` and `~1` included).
    Pointer(String),
}

/// Why a field reference was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidFieldRef {
    #[error("must be `header:NAME` or a JSON Pointer such as `/event/id`")]
    NotAReference,
    #[error("must be at most {} characters", FieldRef::MAX_LEN)]
    TooLong,
    #[error("the header name {0}")]
    Header(InvalidHeaderName),
    #[error("in a JSON Pointer `~` must be followed by 0 (for `~`) or 1 (for `/`)")]
    BadEscape,
}

impl FieldRef {
    /// Longest reference accepted.
    pub const MAX_LEN: usize = 256;
    const HEADER_PREFIX: &str = "header:";

    /// Parses `header:NAME` or a JSON Pointer such as `/a/b` (the empty pointer, which names
    /// the whole document, is refused: it is never a scalar).
    pub fn parse(text: &str) -> Result<Self, InvalidFieldRef> {
        if text.len() > Self::MAX_LEN {
            return Err(InvalidFieldRef::TooLong);
        }
        if let Some(name) = text.strip_prefix(Self::HEADER_PREFIX) {
            return HeaderName::parse(name)
                .map(Self::Header)
                .map_err(InvalidFieldRef::Header);
        }
        if !text.starts_with('/') {
            return Err(InvalidFieldRef::NotAReference);
        }
        let mut bytes = text.bytes();
        while let Some(b) = bytes.next() {
            if b == b'~' && !matches!(bytes.next(), Some(b'0' | b'1')) {
                return Err(InvalidFieldRef::BadEscape);
            }
        }
        Ok(Self::Pointer(text.to_owned()))
    }

    /// The value referred to, as text: a header's value when it is UTF-8, a payload string as
    /// is, a number or boolean as its JSON text. `None` when absent, empty, null, an object or
    /// an array.
    pub fn resolve(&self, headers: &impl RequestHeaders, payload: &Value) -> Option<String> {
        match self {
            Self::Header(name) => header_text(headers, name.as_str()).map(str::to_owned),
            Self::Pointer(pointer) => payload.pointer(pointer).and_then(scalar_text),
        }
    }
}

/// A header's value as trimmed UTF-8 text, `None` when absent, empty or not UTF-8.
pub(crate) fn header_text<'h>(headers: &'h impl RequestHeaders, name: &str) -> Option<&'h str> {
    let value = std::str::from_utf8(headers.get(name)?).ok()?.trim();
    (!value.is_empty()).then_some(value)
}

/// A JSON scalar as text: strings as is, numbers and booleans as JSON; `None` for the rest and
/// for an empty string.
pub(crate) fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

impl fmt::Display for FieldRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Header(name) => write!(f, "{}{name}", Self::HEADER_PREFIX),
            Self::Pointer(pointer) => f.write_str(pointer),
        }
    }
}

impl fmt::Debug for FieldRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FieldRef({self})")
    }
}

text_conversions!(display FieldRef, InvalidFieldRef);

// ---------------------------------------------------------------------------------------------
// Instruction templates

/// A webhook's `instruction_template`, bounded in length. Its syntax is checked by the
/// [`crate::ports::InstructionTemplates`] port when it is saved.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InstructionTemplate(String);

/// Why an instruction template was refused before its syntax was looked at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidInstructionTemplate {
    #[error("must not be empty; send null to use the source's instruction")]
    Empty,
    #[error("must be at most {} bytes", InstructionTemplate::MAX_LEN)]
    TooLong,
}

impl InstructionTemplate {
    /// Longest template accepted, in bytes.
    pub const MAX_LEN: usize = 4096;

    /// Bounds `text`; the syntax is the port's to check.
    pub fn parse(text: &str) -> Result<Self, InvalidInstructionTemplate> {
        if text.trim().is_empty() {
            return Err(InvalidInstructionTemplate::Empty);
        }
        if text.len() > Self::MAX_LEN {
            return Err(InvalidInstructionTemplate::TooLong);
        }
        Ok(Self(text.to_owned()))
    }

    /// The template text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for InstructionTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InstructionTemplate({:?})", self.0)
    }
}

text_conversions!(newtype InstructionTemplate, InvalidInstructionTemplate);

// ---------------------------------------------------------------------------------------------
// Source settings

/// A webhook's source and the overrides it sets on it: everything the source rules
/// ([`crate::rules`]) need besides the request and the secrets.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourceSettings {
    source: Source,
    verification: Option<Verification>,
    event_type_from: Option<FieldRef>,
    dedup_key_from: Option<FieldRef>,
    instruction_template: Option<InstructionTemplate>,
}

impl SourceSettings {
    /// The settings of a source without overrides.
    pub fn of(source: Source) -> Self {
        Self {
            source,
            ..Self::default()
        }
    }

    /// Combines validated values, refusing combinations that make no sense: a `verification`
    /// is for the `generic` source only (the others authenticate in their own way).
    pub fn new(
        source: Source,
        verification: Option<Verification>,
        event_type_from: Option<FieldRef>,
        dedup_key_from: Option<FieldRef>,
        instruction_template: Option<InstructionTemplate>,
    ) -> Result<Self, InvalidSetting> {
        if verification.is_some() && source != Source::Generic {
            return Err(InvalidSetting::new(
                "verification",
                format!(
                    "only a generic webhook takes a verification; a {source} sender authenticates its own way"
                ),
            ));
        }
        Ok(Self {
            source,
            verification,
            event_type_from,
            dedup_key_from,
            instruction_template,
        })
    }

    pub const fn source(&self) -> Source {
        self.source
    }

    /// The `generic` source with no override: the seed's behaviour, which ingest reads without
    /// parsing the payload twice.
    pub const fn is_plain_generic(&self) -> bool {
        matches!(self.source, Source::Generic)
            && self.verification.is_none()
            && self.event_type_from.is_none()
            && self.dedup_key_from.is_none()
            && self.instruction_template.is_none()
    }

    pub const fn verification(&self) -> Option<&Verification> {
        self.verification.as_ref()
    }

    pub const fn event_type_from(&self) -> Option<&FieldRef> {
        self.event_type_from.as_ref()
    }

    pub const fn dedup_key_from(&self) -> Option<&FieldRef> {
        self.dedup_key_from.as_ref()
    }

    pub const fn instruction_template(&self) -> Option<&InstructionTemplate> {
        self.instruction_template.as_ref()
    }
}

// ---------------------------------------------------------------------------------------------
// Allowed source networks

/// A network in CIDR notation, IPv4 or IPv6; a bare address is a network of one.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix_len: u8,
}

/// Why a network was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidCidr {
    #[error("must be an IP address or a network such as 203.0.113.0/24 or 2001:db8::/32")]
    NotAnAddress,
    #[error("the prefix length must be a number from 0 to {max}")]
    BadPrefix { max: u8 },
    #[error("has bits set after the prefix; the network is {network}")]
    HostBitsSet { network: String },
}

impl Cidr {
    /// Parses `address/prefix` or a bare address (`/32` for IPv4, `/128` for IPv6). The
    /// address must be the network's first: `10.1.2.3/8` is refused, naming `10.0.0.0/8`.
    pub fn parse(text: &str) -> Result<Self, InvalidCidr> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address.parse().map_err(|_| InvalidCidr::NotAnAddress)?;
        let max = match network {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let prefix_len = match prefix {
            None => max,
            Some(digits) => {
                if digits.is_empty()
                    || digits.len() > 3
                    || !digits.bytes().all(|b| b.is_ascii_digit())
                {
                    return Err(InvalidCidr::BadPrefix { max });
                }
                match digits.parse::<u8>() {
                    Ok(len) if len <= max => len,
                    _ => return Err(InvalidCidr::BadPrefix { max }),
                }
            }
        };
        let cidr = Self {
            network,
            prefix_len,
        };
        let masked = cidr.masked();
        if masked != cidr {
            return Err(InvalidCidr::HostBitsSet {
                network: masked.to_string(),
            });
        }
        Ok(cidr)
    }

    /// The same prefix with the host bits cleared.
    fn masked(self) -> Self {
        let network = match self.network {
            IpAddr::V4(address) => IpAddr::V4(Ipv4Addr::from(
                u32::from(address) & v4_mask(self.prefix_len),
            )),
            IpAddr::V6(address) => IpAddr::V6(Ipv6Addr::from(
                u128::from(address) & v6_mask(self.prefix_len),
            )),
        };
        Self { network, ..self }
    }

    /// Whether `address` is in this network. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`,
    /// as a dual-stack listener reports IPv4 peers) counts as its IPv4 address.
    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.network, address.to_canonical()) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                (u32::from(network) ^ u32::from(address)) & v4_mask(self.prefix_len) == 0
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                (u128::from(network) ^ u128::from(address)) & v6_mask(self.prefix_len) == 0
            }
            _ => false,
        }
    }

    pub const fn network(&self) -> IpAddr {
        self.network
    }

    pub const fn prefix_len(&self) -> u8 {
        self.prefix_len
    }
}

/// The mask of an IPv4 prefix of `len` bits (at most 32).
fn v4_mask(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

/// The mask of an IPv6 prefix of `len` bits (at most 128).
fn v6_mask(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

impl fmt::Debug for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cidr({self})")
    }
}

/// A webhook's `allowed_source_ips`: the networks its requests may come from (at most
/// [`CidrList::MAX_LEN`] of them); an empty list allows every address.
#[derive(Default, Clone, PartialEq, Eq, Hash)]
pub struct CidrList(Vec<Cidr>);

impl CidrList {
    /// Most networks one webhook may list.
    pub const MAX_LEN: usize = 100;

    /// Validates the `allowed_source_ips` field; refusals name it, or the entry at fault as
    /// `allowed_source_ips[i]`.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, InvalidSetting> {
        const FIELD: &str = "allowed_source_ips";
        if entries.len() > Self::MAX_LEN {
            return Err(InvalidSetting::new(
                FIELD,
                format!("must list at most {} networks", Self::MAX_LEN),
            ));
        }
        entries
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                Cidr::parse(entry.as_ref().trim())
                    .map_err(|e| InvalidSetting::new(format!("{FIELD}[{i}]"), e))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// Whether no network is listed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether a webhook with this list accepts a request from `source_ip`: any address when
    /// the list is empty, else only one inside a listed network.
    pub fn admits(&self, source_ip: Option<IpAddr>) -> bool {
        self.is_empty() || self.allows(source_ip)
    }

    /// Whether `source_ip` is inside a listed network; an unknown source IP is not.
    pub fn allows(&self, source_ip: Option<IpAddr>) -> bool {
        source_ip.is_some_and(|ip| self.0.iter().any(|cidr| cidr.contains(ip)))
    }

    /// The networks, as listed.
    pub fn as_slice(&self) -> &[Cidr] {
        &self.0
    }
}

impl fmt::Debug for CidrList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(ToString::to_string))
            .finish()
    }
}

impl Serialize for CidrList {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(ToString::to_string))
    }
}

impl<'de> Deserialize<'de> for CidrList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let entries = Vec::<String>::deserialize(deserializer)?;
        Self::parse(&entries).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use serde_json::json;

    use super::*;

    #[test]
    fn source_names_round_trip() {
        for source in Source::ALL {
            assert_eq!(Source::parse(source.as_str()), Some(source));
            let json = serde_json::to_value(source).unwrap();
            assert_eq!(json, json!(source.as_str()));
            assert_eq!(serde_json::from_value::<Source>(json).unwrap(), source);
        }
        assert_eq!(Source::default(), Source::Generic);
        assert_eq!(Source::parse("GitHub"), None);
        let refused = Source::parse_field("jira").unwrap_err();
        assert_eq!(refused.field, "source");
        assert!(refused.reason.contains("standard_webhooks"), "{refused}");
    }

    #[test]
    fn header_names() {
        let check = |text: &str, expected: Result<&str, InvalidHeaderName>| {
            let parsed = HeaderName::parse(text);
            assert_eq!(
                parsed.as_ref().map(HeaderName::as_str),
                expected.as_ref().map(|s| *s),
                "{text:?}"
            );
        };
        check("X-Signature", Ok("x-signature"));
        check("x-api-key", Ok("x-api-key"));
        check("X_Weird!Token~1", Ok("x_weird!token~1"));
        check("", Err(InvalidHeaderName::Empty));
        check(&"a".repeat(65), Err(InvalidHeaderName::TooLong));
        check("X Signature", Err(InvalidHeaderName::InvalidCharacter));
        check("X-Sig:", Err(InvalidHeaderName::InvalidCharacter));
        check("X-Sïg", Err(InvalidHeaderName::InvalidCharacter));
        check("X-Sig\n", Err(InvalidHeaderName::InvalidCharacter));
    }

    #[test]
    fn verification_from_json() {
        let check = |value: Value, expected: Result<Verification, (&str, &str)>| {
            let parsed = Verification::from_json(&value);
            match (&parsed, &expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{value}"),
                (Err(got), Err((field, reason))) => {
                    assert_eq!(got.field, *field, "{value}: {got}");
                    assert!(got.reason.contains(reason), "{value}: {got}");
                }
                _ => panic!("{value}: got {parsed:?}, expected {expected:?}"),
            }
        };
        let header = |name: &str| HeaderName::parse(name).unwrap();
        check(
            json!({"scheme": "header", "header": "X-Api-Key"}),
            Ok(Verification::Header {
                header: header("x-api-key"),
            }),
        );
        check(
            json!({"scheme": "hmac", "header": "X-Sig", "algorithm": "sha512",
                   "encoding": "base64", "prefix": "v1="}),
            Ok(Verification::Hmac {
                header: header("x-sig"),
                algorithm: MacAlgorithm::Sha512,
                encoding: SignatureEncoding::Base64,
                prefix: Some("v1=".into()),
            }),
        );
        check(
            json!({"scheme": "hmac", "header": "X-Sig", "prefix": null}),
            Ok(Verification::Hmac {
                header: header("x-sig"),
                algorithm: MacAlgorithm::Sha256,
                encoding: SignatureEncoding::Hex,
                prefix: None,
            }),
        );
        check(json!({"scheme": "bearer"}), Ok(Verification::Bearer));
        check(json!({"scheme": "basic"}), Ok(Verification::Basic));

        check(json!("header"), Err(("verification", "must be an object")));
        check(json!({}), Err(("verification.scheme", "is required")));
        check(json!({"scheme": 1}), Err(("verification.scheme", "string")));
        check(
            json!({"scheme": "oauth"}),
            Err(("verification.scheme", "header, hmac")),
        );
        check(
            json!({"scheme": "header"}),
            Err(("verification.header", "is required")),
        );
        check(
            json!({"scheme": "header", "header": "X Key"}),
            Err(("verification.header", "HTTP header name")),
        );
        check(
            json!({"scheme": "header", "header": 7}),
            Err(("verification.header", "must be a string")),
        );
        check(
            json!({"scheme": "hmac", "header": "x-sig", "algorithm": "md5"}),
            Err(("verification.algorithm", "sha1, sha256 or sha512")),
        );
        check(
            json!({"scheme": "hmac", "header": "x-sig", "encoding": "base32"}),
            Err(("verification.encoding", "hex or base64")),
        );
        check(
            json!({"scheme": "hmac", "header": "x-sig", "prefix": ""}),
            Err(("verification.prefix", "must not be empty")),
        );
        check(
            json!({"scheme": "hmac", "header": "x-sig", "prefix": "a b"}),
            Err(("verification.prefix", "visible ASCII")),
        );
        check(
            json!({"scheme": "hmac", "header": "x-sig", "prefix": "p".repeat(33)}),
            Err(("verification.prefix", "at most 32")),
        );
        check(
            json!({"scheme": "bearer", "header": "x-sig"}),
            Err(("verification.header", "not a setting of the bearer scheme")),
        );
        check(
            json!({"scheme": "header", "header": "x-key", "algorithm": "sha1"}),
            Err((
                "verification.algorithm",
                "not a setting of the header scheme",
            )),
        );
    }

    #[test]
    fn verification_serializes_in_the_api_shape() {
        let check = |value: Value| {
            let parsed: Verification = serde_json::from_value(value.clone()).unwrap();
            assert_eq!(serde_json::to_value(&parsed).unwrap(), value);
        };
        check(json!({"scheme": "header", "header": "x-api-key"}));
        check(
            json!({"scheme": "hmac", "header": "x-sig", "algorithm": "sha1",
                     "encoding": "hex", "prefix": "sha1="}),
        );
        check(
            json!({"scheme": "hmac", "header": "x-sig", "algorithm": "sha256",
                     "encoding": "base64"}),
        );
        check(json!({"scheme": "bearer"}));
        check(json!({"scheme": "basic"}));
        let refused = serde_json::from_value::<Verification>(json!({"scheme": "x"})).unwrap_err();
        assert!(
            refused.to_string().contains("verification.scheme"),
            "{refused}"
        );
    }

    #[test]
    fn field_refs() {
        let check = |text: &str, expected: Result<&str, InvalidFieldRef>| {
            let parsed = FieldRef::parse(text);
            assert_eq!(
                parsed.map(|r| r.to_string()),
                expected.clone().map(str::to_owned),
                "{text:?}"
            );
        };
        check("header:X-Request-Id", Ok("header:x-request-id"));
        check("/event/id", Ok("/event/id"));
        check("/a~1b/c~0d", Ok("/a~1b/c~0d"));
        check("/", Ok("/"));
        check("/items/0/id", Ok("/items/0/id"));
        check("", Err(InvalidFieldRef::NotAReference));
        check("event.id", Err(InvalidFieldRef::NotAReference));
        check("Header:X-Id", Err(InvalidFieldRef::NotAReference));
        check(
            "header:",
            Err(InvalidFieldRef::Header(InvalidHeaderName::Empty)),
        );
        check(
            "header:X Id",
            Err(InvalidFieldRef::Header(InvalidHeaderName::InvalidCharacter)),
        );
        check("/a~2b", Err(InvalidFieldRef::BadEscape));
        check("/a~", Err(InvalidFieldRef::BadEscape));
        check("/a~~1", Err(InvalidFieldRef::BadEscape));
        check(
            &format!("/{}", "a".repeat(256)),
            Err(InvalidFieldRef::TooLong),
        );
    }

    #[test]
    fn field_refs_resolve() {
        let headers: Vec<(String, Vec<u8>)> = vec![
            ("X-Request-Id".into(), b" req-1 ".to_vec()),
            ("x-empty".into(), b"".to_vec()),
            ("x-binary".into(), vec![0xff, 0xfe]),
        ];
        let payload = json!({
            "event": {"id": "evt_1", "n": 42, "ok": true, "none": null, "obj": {}, "list": [1]},
            "a/b": {"c~d": "escaped"},
            "items": [{"id": "first"}],
            "": "empty key",
            "blank": "",
        });
        let check = |reference: &str, expected: Option<&str>| {
            let reference = FieldRef::parse(reference).unwrap();
            assert_eq!(
                reference.resolve(&headers, &payload).as_deref(),
                expected,
                "{reference}"
            );
        };
        check("header:x-request-id", Some("req-1"));
        check("header:X-REQUEST-ID", Some("req-1"));
        check("header:x-missing", None);
        check("header:x-empty", None);
        check("header:x-binary", None);
        check("/event/id", Some("evt_1"));
        check("/event/n", Some("42"));
        check("/event/ok", Some("true"));
        check("/event/none", None);
        check("/event/obj", None);
        check("/event/list", None);
        check("/event/missing", None);
        check("/a~1b/c~0d", Some("escaped"));
        check("/items/0/id", Some("first"));
        check("/items/1/id", None);
        check("/", Some("empty key"));
        check("/blank", None);
    }

    #[test]
    fn field_refs_serialize_as_text() {
        let reference: FieldRef = serde_json::from_value(json!("header:X-Id")).unwrap();
        assert_eq!(
            serde_json::to_value(&reference).unwrap(),
            json!("header:x-id")
        );
        assert!(serde_json::from_value::<FieldRef>(json!("id")).is_err());
    }

    #[test]
    fn instruction_templates_are_bounded() {
        assert!(InstructionTemplate::parse("{{ type }}").is_ok());
        assert_eq!(
            InstructionTemplate::parse(" \n"),
            Err(InvalidInstructionTemplate::Empty)
        );
        assert_eq!(
            InstructionTemplate::parse(&"x".repeat(4097)),
            Err(InvalidInstructionTemplate::TooLong)
        );
        assert!(InstructionTemplate::parse(&"x".repeat(4096)).is_ok());
    }

    #[test]
    fn verification_is_for_generic_sources_only() {
        let bearer = || Some(Verification::Bearer);
        for source in Source::ALL {
            let result = SourceSettings::new(source, bearer(), None, None, None);
            if source == Source::Generic {
                assert_eq!(result.unwrap().verification(), Some(&Verification::Bearer));
            } else {
                let refused = result.unwrap_err();
                assert_eq!(refused.field, "verification", "{source}");
            }
            assert!(SourceSettings::new(source, None, None, None, None).is_ok());
        }
        assert_eq!(SourceSettings::of(Source::Slack).source(), Source::Slack);
    }

    #[test]
    fn cidrs_parse() {
        let check = |text: &str, expected: Result<&str, InvalidCidr>| {
            let parsed = Cidr::parse(text);
            assert_eq!(
                parsed.map(|c| c.to_string()),
                expected.map(str::to_owned),
                "{text:?}"
            );
        };
        check("10.0.0.0/8", Ok("10.0.0.0/8"));
        check("203.0.113.7", Ok("203.0.113.7/32"));
        check("0.0.0.0/0", Ok("0.0.0.0/0"));
        check("2001:db8::/32", Ok("2001:db8::/32"));
        check("::1", Ok("::1/128"));
        check("::/0", Ok("::/0"));
        check("10.1.2.3/32", Ok("10.1.2.3/32"));
        check("", Err(InvalidCidr::NotAnAddress));
        check("example.com", Err(InvalidCidr::NotAnAddress));
        check("10.0.0/8", Err(InvalidCidr::NotAnAddress));
        check("10.0.0.0/33", Err(InvalidCidr::BadPrefix { max: 32 }));
        check("2001:db8::/129", Err(InvalidCidr::BadPrefix { max: 128 }));
        check("10.0.0.0/", Err(InvalidCidr::BadPrefix { max: 32 }));
        check("10.0.0.0/+8", Err(InvalidCidr::BadPrefix { max: 32 }));
        check("10.0.0.0/008", Ok("10.0.0.0/8"));
        check("10.0.0.0/0008", Err(InvalidCidr::BadPrefix { max: 32 }));
        check("10.0.0.0/8/8", Err(InvalidCidr::BadPrefix { max: 32 }));
        check(
            "10.1.2.3/8",
            Err(InvalidCidr::HostBitsSet {
                network: "10.0.0.0/8".into(),
            }),
        );
        check(
            "2001:db8::1/64",
            Err(InvalidCidr::HostBitsSet {
                network: "2001:db8::/64".into(),
            }),
        );
    }

    #[test]
    fn cidrs_contain() {
        let check = |cidr: &str, address: &str, expected: bool| {
            let cidr = Cidr::parse(cidr).unwrap();
            let address: IpAddr = address.parse().unwrap();
            assert_eq!(cidr.contains(address), expected, "{cidr} ∋ {address}");
        };
        check("10.0.0.0/8", "10.255.255.255", true);
        check("10.0.0.0/8", "11.0.0.0", false);
        check("10.0.0.0/8", "9.255.255.255", false);
        check("192.168.1.0/31", "192.168.1.1", true);
        check("192.168.1.0/31", "192.168.1.2", false);
        check("203.0.113.7", "203.0.113.7", true);
        check("203.0.113.7", "203.0.113.8", false);
        check("0.0.0.0/0", "8.8.8.8", true);
        check("0.0.0.0/0", "::1", false);
        check("10.0.0.0/8", "::ffff:10.1.2.3", true);
        check("10.0.0.0/8", "::ffff:11.1.2.3", false);
        check("2001:db8::/32", "2001:db8:ffff::1", true);
        check("2001:db8::/32", "2001:db9::1", false);
        check("2001:db8::/33", "2001:db8:8000::", false);
        check("2001:db8::/33", "2001:db8:7fff::", true);
        check("::/0", "2001:db8::1", true);
        check("::/0", "10.0.0.1", false);
        check("::1", "::1", true);
        check("::1", "::2", false);
    }

    #[test]
    fn cidr_lists() {
        let list = CidrList::parse(&["10.0.0.0/8", " 2001:db8::/32 "]).unwrap();
        assert!(list.allows(Some("10.2.3.4".parse().unwrap())));
        assert!(list.allows(Some("2001:db8::5".parse().unwrap())));
        assert!(!list.allows(Some("192.0.2.1".parse().unwrap())));
        assert!(!list.allows(None));
        assert_eq!(
            serde_json::to_value(&list).unwrap(),
            json!(["10.0.0.0/8", "2001:db8::/32"])
        );
        let back: CidrList =
            serde_json::from_value(json!(["10.0.0.0/8", "2001:db8::/32"])).unwrap();
        assert_eq!(back, list);

        let check = |entries: &[String], field: &str| {
            let refused = CidrList::parse(entries).unwrap_err();
            assert_eq!(refused.field, field, "{refused}");
        };
        let none = CidrList::parse::<String>(&[]).unwrap();
        assert!(none.is_empty());
        assert!(none.admits(None));
        assert!(none.admits(Some("192.0.2.1".parse().unwrap())));
        assert!(!list.admits(None));
        assert!(list.admits(Some("10.1.2.3".parse().unwrap())));
        check(&vec!["10.0.0.1".to_owned(); 101], "allowed_source_ips");
        check(
            &["10.0.0.0/8".to_owned(), "nope".to_owned()],
            "allowed_source_ips[1]",
        );
        check(&["10.0.0.1/8".to_owned()], "allowed_source_ips[0]");
        assert!(CidrList::parse(&vec!["10.0.0.1".to_owned(); 100]).is_ok());
    }
}
