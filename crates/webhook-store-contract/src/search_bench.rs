//! The search bench every store runs (`cargo xtask bench search`): a log of many invocations
//! with realistic payloads, written through the store, then searches by words of the payload
//! timed as the API makes them (a first page of 50 summaries).
//!
//! Payloads are about 1 KiB of JSON drawn from a vocabulary of 5,000 words whose frequencies
//! fall off as in text (word `n` is drawn about 1/n as often as the first), so a few words are
//! in nearly every payload and most are rare; one word in 10,000 payloads is planted for a rare
//! search. Nine in ten invocations are accepted, one in twenty ignored (the outcome filter's
//! case), the rest rejected without a body.

#![expect(
    clippy::cast_precision_loss,
    reason = "sizes, indexes and durations far below 2^52"
)]

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use webhook_domain::model::{
    Invocation, InvocationFilter, OutcomeFilter, PageRequest, Payload, SearchWords,
};
use webhook_domain::ports::Store;

use crate::bench::{log_concurrently, percentile};
use crate::fixtures::{World, accepted, at_micros, ignored, rejected};

/// Words of the vocabulary.
const VOCABULARY: usize = 5_000;
/// Payloads per planted rare word.
const RARE_EVERY: u64 = 10_000;
/// The planted rare word.
const RARE: &str = "zephyrine";
/// Searches timed per kind.
const SEARCHES_PER_KIND: usize = 25;

/// A small deterministic generator (xorshift64*), so that every run and store logs the same.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..1`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The `rank`-th word of the vocabulary (0 is the most frequent): letters only.
fn word(rank: usize) -> String {
    const SYLLABLES: [&str; 20] = [
        "ka", "lo", "mi", "ne", "ru", "ta", "vo", "si", "pe", "da", "gu", "fo", "be", "zi", "ha",
        "jo", "wu", "xe", "yo", "qi",
    ];
    let mut n = rank;
    let mut text = String::new();
    loop {
        text.push_str(SYLLABLES[n % SYLLABLES.len()]);
        n /= SYLLABLES.len();
        if n == 0 {
            break;
        }
        n -= 1;
    }
    text
}

/// Draws word ranks with probability about proportional to 1 / (rank + 1).
#[derive(Debug)]
struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    fn new(n: usize) -> Self {
        let mut total = 0.0;
        let cumulative = (0..n)
            .map(|rank| {
                total += 1.0 / (rank as f64 + 1.0);
                total
            })
            .collect::<Vec<_>>();
        let cumulative = cumulative.into_iter().map(|c| c / total).collect();
        Self { cumulative }
    }

    fn draw(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        self.cumulative.partition_point(|&c| c < u)
    }
}

/// A payload of about 1 KiB for invocation number `n`.
fn payload(n: u64, rng: &mut Rng, zipf: &Zipf, words: &[String]) -> Payload {
    let text = |count: usize, rng: &mut Rng| {
        let mut out = String::new();
        for i in 0..count {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(&words[zipf.draw(rng)]);
        }
        out
    };
    let message = text(12, rng);
    let mut details = text(110, rng);
    if n % RARE_EVERY == 7 {
        details.push(' ');
        details.push_str(RARE);
    }
    let service = &words[zipf.draw(rng)];
    let json = format!(
        r#"{{"message":"{message}","event_type":"deploy.finished","service":"{service}","build":{n},"details":{{"text":"{details}","env":"prod","region":"eu-west-1"}}}}"#
    );
    Payload::parse_object(json.as_bytes())
        .expect("bench payloads are JSON objects")
        .0
}

/// Payloads like the search bench's, each made from its number alone, so that writers sharing
/// a plan need no generator of their own.
#[derive(Debug)]
pub struct Payloads {
    words: Vec<String>,
    zipf: Zipf,
}

impl Payloads {
    /// The vocabulary and its frequencies.
    pub fn new() -> Self {
        Self {
            words: (0..VOCABULARY).map(word).collect(),
            zipf: Zipf::new(VOCABULARY),
        }
    }

    /// The payload of invocation number `n`: about 1 KiB of JSON, the same for the same `n`.
    pub fn get(&self, n: u64) -> Payload {
        let mut rng = Rng((n + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        payload(n, &mut rng, &self.zipf, &self.words)
    }
}

impl Default for Payloads {
    fn default() -> Self {
        Self::new()
    }
}

/// Logs `count` invocations of `world`'s webhook through `store`, 1 ms apart, with `writers`
/// writing at once; returns how long it took.
pub async fn fill<S: Store + Clone + 'static>(
    store: &S,
    world: &World,
    count: u64,
    writers: u64,
) -> Duration {
    let words: Arc<Vec<String>> = Arc::new((0..VOCABULARY).map(word).collect());
    let zipf = Arc::new(Zipf::new(VOCABULARY));
    log_concurrently(store, writers, count, |writer| {
        let webhook = world.webhook.clone();
        let (words, zipf) = (words.clone(), zipf.clone());
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (writer + 1));
        move |n| {
            let received = at_micros(i64::try_from(n).unwrap_or(i64::MAX) * 1_000);
            let kind = n % 20;
            if kind == 19 {
                return (rejected(&webhook, received), None);
            }
            let body = payload(n, &mut rng, &zipf, &words);
            if kind == 18 {
                let invocation = Invocation {
                    payload: Some(body),
                    ..ignored(&webhook, received)
                };
                return (invocation, None);
            }
            let (mut invocation, mut task) = accepted(&webhook, received);
            invocation.payload = Some(body.clone());
            task.context = body;
            (invocation, Some(task))
        }
    })
    .await
}

/// Times first pages (50 summaries) of searches of four kinds, interleaved: a common word, a
/// rare one, two words, and a common word with the outcome filter `ignored`. Returns the
/// report, JSON: p50 and p95 in ms per kind and over all, and how many items the first page of
/// each kind had.
pub async fn time_searches<S: Store>(store: &S, world: &World) -> String {
    let common = word(0);
    let kinds: [(&str, InvocationFilter); 4] = [
        ("common word", search(&common, None)),
        ("rare word", search(RARE, None)),
        (
            "two words",
            search(&format!("{} {}", word(3), word(40)), None),
        ),
        (
            "common word, outcome ignored",
            search(&common, Some(OutcomeFilter::Ignored)),
        ),
    ];
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); kinds.len()];
    let mut found = vec![0usize; kinds.len()];
    let (org, webhook) = (world.organization.id, world.webhook.id);
    for _ in 0..SEARCHES_PER_KIND {
        for (i, (_, filter)) in kinds.iter().enumerate() {
            let started = Instant::now();
            let page = store
                .invocation_summaries(org, webhook, filter, PageRequest::default())
                .await
                .expect("search");
            times[i].push(started.elapsed());
            found[i] = page.items.len();
        }
    }
    let mut all: Vec<Duration> = times.iter().flatten().copied().collect();
    all.sort_unstable();
    let mut report = String::from("{\"kinds\":[");
    for (i, (name, _)) in kinds.iter().enumerate() {
        times[i].sort_unstable();
        if i > 0 {
            report.push(',');
        }
        let _ = write!(
            report,
            r#"{{"kind":"{name}","searches":{},"first_page_items":{},"p50_ms":{:.2},"p95_ms":{:.2},"max_ms":{:.2}}}"#,
            times[i].len(),
            found[i],
            percentile(&times[i], 0.5),
            percentile(&times[i], 0.95),
            percentile(&times[i], 1.0),
        );
    }
    let _ = write!(
        report,
        r#"],"all":{{"searches":{},"p50_ms":{:.2},"p95_ms":{:.2},"max_ms":{:.2}}}}}"#,
        all.len(),
        percentile(&all, 0.5),
        percentile(&all, 0.95),
        percentile(&all, 1.0),
    );
    report
}

fn search(q: &str, outcome: Option<OutcomeFilter>) -> InvocationFilter {
    InvocationFilter {
        outcome,
        words: Some(SearchWords::parse(q).expect("bench searches are valid")),
        ..InvocationFilter::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_about_a_kibibyte_of_words_of_the_vocabulary() {
        let words: Vec<String> = (0..VOCABULARY).map(word).collect();
        let zipf = Zipf::new(VOCABULARY);
        let mut rng = Rng(1);
        let sizes: Vec<usize> = (0..100)
            .map(|n| payload(n, &mut rng, &zipf, &words).as_str().len())
            .collect();
        let mean = sizes.iter().sum::<usize>() / sizes.len();
        assert!((700..1400).contains(&mean), "{mean}");
        let distinct: std::collections::HashSet<&String> = words.iter().collect();
        assert_eq!(distinct.len(), VOCABULARY, "every rank has its own word");
        assert!(!words.contains(&RARE.to_owned()));
        assert!(payload(7, &mut rng, &zipf, &words).as_str().contains(RARE));
    }
}
