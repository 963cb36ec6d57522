//! Filters of the invocation log, and the words of payloads that its `q` search matches.
//!
//! A word is what both stores index and what a search looks for, made here so that every store
//! agrees on it:
//!
//! - the text searched is a payload's string values (their escapes decoded) and numbers (as
//!   written); member names, `true`, `false` and `null` are not searched;
//! - the text is lowercased character by character (Unicode's lowercase mapping; no accent
//!   folding: `café` is not `cafe`);
//! - a word is a longest run of alphanumeric characters (Unicode letters and digits); everything
//!   else separates words: spaces, punctuation (`deploy.finished` is `deploy` and `finished`,
//!   `user_id` is `user` and `id`), symbols and emoji;
//! - a run of more than [`MAX_WORD_CHARS`] characters (a blob, a long token) is not a word;
//! - a payload's first [`MAX_INDEXED_BYTES`] of distinct words are indexed, in order of first
//!   appearance; words after them are not found.
//!
//! A search finds the invocations whose payload has every word of the query, wherever they are
//! and in any order: `deploy.finished` finds `{"a":"finished","b":"deploy"}`. A word matches
//! whole words only: `deplo` does not find `deploy`.

use std::collections::HashSet;
use std::net::IpAddr;

use super::{Invocation, OutcomeFilter, Payload, Timestamp};

/// The longest word, in characters; longer runs are not indexed, and a search for one is
/// refused.
pub const MAX_WORD_CHARS: usize = 64;

/// The most words a search may have.
pub const MAX_QUERY_WORDS: usize = 16;

/// The most bytes of distinct words (each followed by a space) indexed per payload.
pub const MAX_INDEXED_BYTES: usize = 256 * 1024;

/// Splits lowercased text into words; fed one character at a time.
struct Splitter<F: FnMut(&str)> {
    word: String,
    chars: usize,
    emit: F,
}

impl<F: FnMut(&str)> Splitter<F> {
    fn new(emit: F) -> Self {
        Self {
            word: String::with_capacity(32),
            chars: 0,
            emit,
        }
    }

    fn push(&mut self, c: char) {
        if c.is_ascii() {
            if c.is_ascii_alphanumeric() {
                self.word.push(c.to_ascii_lowercase());
                self.chars += 1;
            } else {
                self.end();
            }
            return;
        }
        for lower in c.to_lowercase() {
            if lower.is_alphanumeric() {
                self.word.push(lower);
                self.chars += 1;
            } else {
                self.end();
            }
        }
    }

    fn end(&mut self) {
        if self.chars > 0 && self.chars <= MAX_WORD_CHARS {
            (self.emit)(&self.word);
        }
        self.word.clear();
        self.chars = 0;
    }
}

/// Calls `emit` with every word of a JSON text's string values and numbers, in order. The text
/// was validated when it was received; on anything unexpected the scan goes on leniently.
fn payload_words(json: &str, emit: impl FnMut(&str)) {
    let bytes = json.as_bytes();
    let mut splitter = Splitter::new(emit);
    let mut value = String::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                value.clear();
                i = read_string(json, i + 1, &mut value);
                // A member name is followed by `:`.
                let next = bytes[i..].iter().find(|b| !b.is_ascii_whitespace());
                if next != Some(&b':') {
                    for c in value.chars() {
                        splitter.push(c);
                    }
                    splitter.end();
                }
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < bytes.len()
                    && matches!(bytes[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                for c in json[start..i].chars() {
                    splitter.push(c);
                }
                splitter.end();
            }
            _ => i += 1,
        }
    }
}

/// Decodes the JSON string whose text starts at byte `start` (after its opening quote) into
/// `out`; returns the index after its closing quote.
fn read_string(json: &str, start: usize, out: &mut String) -> usize {
    let bytes = json.as_bytes();
    let mut i = start;
    let mut run = start;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                out.push_str(&json[run..i]);
                return i + 1;
            }
            b'\\' => {
                out.push_str(&json[run..i]);
                let (decoded, next) = escape(bytes, i + 1);
                if let Some(c) = decoded {
                    out.push(c);
                }
                i = next;
                run = i;
            }
            _ => i += 1,
        }
    }
    out.push_str(&json[run.min(bytes.len())..]);
    bytes.len()
}

/// The character an escape stands for (its text starts at `at`, after the backslash), and the
/// index after it. A lone surrogate stands for nothing.
fn escape(bytes: &[u8], at: usize) -> (Option<char>, usize) {
    let Some(&kind) = bytes.get(at) else {
        return (None, at);
    };
    let simple = match kind {
        b'n' => Some('\n'),
        b't' => Some('\t'),
        b'r' => Some('\r'),
        b'b' => Some('\u{8}'),
        b'f' => Some('\u{c}'),
        b'u' => None,
        other => Some(char::from(other)),
    };
    if kind != b'u' {
        return (simple, at + 1);
    }
    let Some(high) = hex4(bytes, at + 1) else {
        return (None, at + 1);
    };
    if (0xD800..0xDC00).contains(&high)
        && bytes.get(at + 5) == Some(&b'\\')
        && bytes.get(at + 6) == Some(&b'u')
        && let Some(low) = hex4(bytes, at + 7)
        && (0xDC00..0xE000).contains(&low)
    {
        let code = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
        return (char::from_u32(code), at + 11);
    }
    (char::from_u32(high), at + 5)
}

fn hex4(bytes: &[u8], at: usize) -> Option<u32> {
    let digits = std::str::from_utf8(bytes.get(at..at + 4)?).ok()?;
    u32::from_str_radix(digits, 16).ok()
}

/// The words a store indexes for `payload`: distinct, in order of first appearance, each
/// followed by one space, at most [`MAX_INDEXED_BYTES`] in all. Each word is lowercase
/// alphanumeric characters only, so a tokenizer that splits on spaces alone reads them back.
pub fn indexed_words(payload: &Payload) -> String {
    let mut out = String::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut full = false;
    payload_words(payload.as_str(), |word| {
        if full || seen.contains(word) {
            return;
        }
        if out.len() + word.len() + 1 > MAX_INDEXED_BYTES {
            full = true;
            return;
        }
        out.push_str(word);
        out.push(' ');
        seen.insert(word.to_owned());
    });
    out
}

/// The words of a `q` search: at least one, at most [`MAX_QUERY_WORDS`], distinct, each of at
/// most [`MAX_WORD_CHARS`] characters, lowercase alphanumeric.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SearchWords(Vec<String>);

/// Why a search was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSearch {
    /// Nothing but spaces, punctuation or symbols.
    #[error("must contain a word (letters or digits)")]
    NoWords,
    /// A run of letters and digits longer than a word may be: it is never indexed.
    #[error("words are at most {MAX_WORD_CHARS} letters or digits")]
    WordTooLong,
    #[error("at most {MAX_QUERY_WORDS} words")]
    TooManyWords,
}

impl SearchWords {
    /// The words of `text`, split as payloads are.
    pub fn parse(text: &str) -> Result<Self, InvalidSearch> {
        let mut words: Vec<String> = Vec::new();
        let mut too_long = false;
        let mut splitter = Splitter::new(|word: &str| {
            if !words.iter().any(|w| w == word) {
                words.push(word.to_owned());
            }
        });
        for c in text.chars() {
            splitter.push(c);
            too_long |= splitter.chars > MAX_WORD_CHARS;
        }
        splitter.end();
        if too_long {
            return Err(InvalidSearch::WordTooLong);
        }
        match words.len() {
            0 => Err(InvalidSearch::NoWords),
            n if n > MAX_QUERY_WORDS => Err(InvalidSearch::TooManyWords),
            _ => Ok(Self(words)),
        }
    }

    /// The words, in the order the query has them.
    pub fn words(&self) -> &[String] {
        &self.0
    }

    /// Whether `payload` has every word among its indexed words.
    pub fn found_in(&self, payload: &Payload) -> bool {
        let indexed = indexed_words(payload);
        let present: HashSet<&str> = indexed.split_ascii_whitespace().collect();
        self.0.iter().all(|w| present.contains(w.as_str()))
    }
}

/// What a list of a webhook's invocations keeps: every filter that is set, together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvocationFilter {
    pub outcome: Option<OutcomeFilter>,
    /// Exactly this event type.
    pub event_type: Option<String>,
    /// Exactly this source address.
    pub source_ip: Option<IpAddr>,
    /// Received at or after.
    pub since: Option<Timestamp>,
    /// Received before.
    pub until: Option<Timestamp>,
    /// Sent by the test endpoint (`true`) or not (`false`).
    pub test: Option<bool>,
    /// The payload has every one of these words.
    pub words: Option<SearchWords>,
}

impl InvocationFilter {
    /// Keeps only the invocations that `outcome` keeps.
    pub fn outcome(outcome: OutcomeFilter) -> Self {
        Self {
            outcome: Some(outcome),
            ..Self::default()
        }
    }

    /// Whether `invocation` passes every filter but `outcome`, which needs its task: for
    /// stores that hold invocations in memory.
    pub fn admits(&self, invocation: &Invocation) -> bool {
        self.event_type
            .as_ref()
            .is_none_or(|e| invocation.event_type.as_ref() == Some(e))
            && self
                .source_ip
                .is_none_or(|ip| invocation.source_ip == Some(ip))
            && self.since.is_none_or(|t| invocation.received_at >= t)
            && self.until.is_none_or(|t| invocation.received_at < t)
            && self.test.is_none_or(|t| invocation.test == t)
            && self.words.as_ref().is_none_or(|w| {
                invocation
                    .payload
                    .as_ref()
                    .is_some_and(|payload| w.found_in(payload))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words_of(json: &str) -> Vec<String> {
        let (payload, _) = Payload::parse_object(json.as_bytes()).unwrap();
        indexed_words(&payload)
            .split_ascii_whitespace()
            .map(str::to_owned)
            .collect()
    }

    fn search(text: &str) -> Vec<String> {
        SearchWords::parse(text).unwrap().words().to_vec()
    }

    #[test]
    fn words_of_payloads() {
        let check = |json: &str, expected: &[&str]| assert_eq!(words_of(json), expected, "{json}");
        check(r#"{"message":"Deploy FINISHED"}"#, &["deploy", "finished"]);
        // Member names are not words; nested values are.
        check(r#"{"message":{"service":"api"}}"#, &["api"]);
        check(
            r#"{"event_type":"deploy.finished"}"#,
            &["deploy", "finished"],
        );
        check(
            r#"{"a":"user_id api-gateway a@b.io"}"#,
            &["user", "id", "api", "gateway", "a", "b", "io"],
        );
        // Numbers as written; literals are not words.
        check(
            r#"{"n":-12.5e3,"t":true,"f":false,"z":null}"#,
            &["12", "5e3"],
        );
        check(r#"{"ids":[42,"42",7]}"#, &["42", "7"]);
        // Escapes are decoded: `\n` separates, `\u00c9` is a letter, a pair is one character.
        check(
            r#"{"a":"line1\nline2","b":"\u00c9t\u00c9","c":"\"quoted\""}"#,
            &["line1", "line2", "été", "quoted"],
        );
        check(r#"{"a":"x\ud83d\ude00y \ud801\udc00"}"#, &["x", "y", "𐐨"]);
        // Unicode letters and digits; no accent folding; symbols and emoji separate.
        check(
            r#"{"a":"Café 東京 ÜBER naïve ½ 😀ok"}"#,
            &["café", "東京", "über", "naïve", "½", "ok"],
        );
        // A key-looking string that is a value is a value.
        check(r#"{"a":"b", "c" : "d"}"#, &["b", "d"]);
        // Distinct words only, in order of first appearance.
        check(r#"{"a":"b a B","c":"a"}"#, &["b", "a"]);
        check("{}", &[]);
    }

    #[test]
    fn long_runs_are_not_words() {
        let longest = "a".repeat(MAX_WORD_CHARS);
        let over = "b".repeat(MAX_WORD_CHARS + 1);
        assert_eq!(
            words_of(&format!(r#"{{"a":"{longest} {over} c"}}"#)),
            [longest.as_str(), "c"]
        );
        assert_eq!(
            SearchWords::parse(&longest).unwrap().words(),
            std::slice::from_ref(&longest)
        );
        assert_eq!(SearchWords::parse(&over), Err(InvalidSearch::WordTooLong));
    }

    #[test]
    fn indexed_words_are_bounded() {
        let words: Vec<String> = (0..100_000).map(|n| format!("w{n}")).collect();
        let json = format!(r#"{{"a":"{}"}}"#, words.join(" "));
        let (payload, _) = Payload::parse_object(json.as_bytes()).unwrap();
        let indexed = indexed_words(&payload);
        assert!(indexed.len() <= MAX_INDEXED_BYTES);
        assert!(indexed.len() > MAX_INDEXED_BYTES - 10);
        assert!(indexed.starts_with("w0 w1 w2 "));
        let last = indexed.split_ascii_whitespace().last().unwrap().to_owned();
        let query = SearchWords::parse(&last).unwrap();
        assert!(query.found_in(&payload));
        assert!(!SearchWords::parse("w99999").unwrap().found_in(&payload));
    }

    #[test]
    fn queries() {
        assert_eq!(search("Deploy.FINISHED deploy"), ["deploy", "finished"]);
        assert_eq!(search("  Café  "), ["café"]);
        for empty in ["", "   ", "...", "😀", "-_-"] {
            assert_eq!(
                SearchWords::parse(empty),
                Err(InvalidSearch::NoWords),
                "{empty:?}"
            );
        }
        let many: Vec<String> = (0..=MAX_QUERY_WORDS).map(|n| format!("w{n}")).collect();
        assert_eq!(
            SearchWords::parse(&many.join(" ")),
            Err(InvalidSearch::TooManyWords)
        );
        assert_eq!(
            search(&many[..MAX_QUERY_WORDS].join(" ")).len(),
            MAX_QUERY_WORDS
        );
    }

    #[test]
    fn every_word_must_be_found() {
        let (payload, _) =
            Payload::parse_object(br#"{"message":"Deploy of api finished","env":"prod"}"#).unwrap();
        let found = |q: &str| SearchWords::parse(q).unwrap().found_in(&payload);
        assert!(found("deploy"));
        assert!(found("PROD api"));
        assert!(found("finished.deploy"));
        assert!(!found("deploy staging"));
        assert!(!found("deplo"));
        assert!(!found("message"), "member names are not searched");
    }
}
