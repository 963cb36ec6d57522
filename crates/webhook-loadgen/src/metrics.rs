//! `metrics`: one read of a Prometheus text exposition (webhookd's `/metrics`), printed as a JSON
//! object of every sample, so a script can take counters at the edges of a measured window.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result, bail};
use hyper::{StatusCode, Uri};
use serde_json::json;

use crate::client::Server;

/// Every sample of an exposition (`OpenMetrics` or Prometheus text), keyed by the series as
/// written (`name{label="value",…}`), in the order of the text's keys. Comments, `# EOF` and
/// blank lines are skipped; a timestamp after the value is ignored.
pub(crate) fn samples(text: &str) -> Result<BTreeMap<String, f64>> {
    let mut samples = BTreeMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, rest) = split_series(line)
            .with_context(|| format!("line {}: {line:?} is not a sample", number + 1))?;
        let value = rest
            .split_whitespace()
            .next()
            .with_context(|| format!("line {}: {line:?} has no value", number + 1))?;
        let value: f64 = value
            .parse()
            .with_context(|| format!("line {}: {value:?} is not a number", number + 1))?;
        samples.insert(series.to_owned(), value);
    }
    Ok(samples)
}

/// A sample line's series (the name and its labels) and what follows it. Label values are
/// quoted and may hold `}`, spaces and escaped quotes.
fn split_series(line: &str) -> Option<(&str, &str)> {
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    if name_end == 0 {
        return None;
    }
    if !line[name_end..].starts_with('{') {
        return Some((&line[..name_end], &line[name_end..]));
    }
    let mut quoted = false;
    let mut escaped = false;
    for (offset, c) in line[name_end..].char_indices() {
        match (quoted, escaped, c) {
            (true, true, _) => escaped = false,
            (true, false, '\\') => escaped = true,
            (_, false, '"') => quoted = !quoted,
            (false, _, '}') => {
                let end = name_end + offset + 1;
                return Some((&line[..end], &line[end..]));
            }
            _ => {}
        }
    }
    None
}

/// `webhook-loadgen metrics --url URL`: GETs the exposition and prints its samples.
pub(crate) async fn metrics(url: &str) -> Result<()> {
    let uri: Uri = url
        .parse()
        .with_context(|| format!("--url {url:?} is not a URL"))?;
    let server = Server::of(&uri).await?;
    let mut sender = server.connect().await?;
    let path = uri.path_and_query().map_or("/", |path| path.as_str());
    let (status, body) = server.get(&mut sender, path).await?;
    let text = String::from_utf8_lossy(&body);
    if status != StatusCode::OK {
        bail!("GET {url} answered {status}: {text}");
    }
    let samples = samples(&text).with_context(|| format!("reading the answer to GET {url}"))?;
    println!("{}", json!(samples));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_samples_of_an_openmetrics_exposition() {
        let text = "\
# HELP webhookd_ingest_requests Ingest requests by outcome.
# TYPE webhookd_ingest_requests counter
webhookd_ingest_requests_total{outcome=\"accepted\"} 1234
webhookd_ingest_requests_total{outcome=\"rate_limited\"} 5
webhookd_dispatch_in_flight 3
webhookd_dispatch_oldest_queued_age_seconds 0.25
odd{path=\"/a b}\",quote=\"say \\\"hi\\\"\"} 7 1700000000
webhookd_dispatch_attempt_duration_seconds_bucket{le=\"+Inf\"} 9
# EOF
";
        let samples = samples(text).unwrap();
        let check = |series: &str, value: f64| {
            assert_eq!(samples.get(series), Some(&value), "{series} in {samples:?}");
        };
        check(
            "webhookd_ingest_requests_total{outcome=\"accepted\"}",
            1234.0,
        );
        check(
            "webhookd_ingest_requests_total{outcome=\"rate_limited\"}",
            5.0,
        );
        check("webhookd_dispatch_in_flight", 3.0);
        check("webhookd_dispatch_oldest_queued_age_seconds", 0.25);
        check("odd{path=\"/a b}\",quote=\"say \\\"hi\\\"\"}", 7.0);
        check(
            "webhookd_dispatch_attempt_duration_seconds_bucket{le=\"+Inf\"}",
            9.0,
        );
        assert_eq!(samples.len(), 6);
    }

    #[test]
    fn refuses_lines_that_are_not_samples() {
        let check = |text: &str, fragment: &str| {
            let error = format!("{:#}", samples(text).unwrap_err());
            assert!(error.contains(fragment), "{text:?}: {error}");
        };
        check("lonely_name\n", "line 1");
        check("ok 1\nbroken{a=\"1\" 2\n", "line 2");
        check("name{a=\"1\"}\n", "has no value");
        check("name abc\n", "not a number");
        check("{a=\"1\"} 2\n", "not a sample");
    }
}
