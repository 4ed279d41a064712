//! Latency histograms and the result lines the load tool prints.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Latencies (µs, 3 significant digits, up to 60 s) and outcomes of one worker or one run.
pub struct Sample {
    latencies: Histogram<u64>,
    /// Outcomes by label (a status code, `io-error`, or an event type).
    pub statuses: BTreeMap<String, u64>,
}

impl Default for Sample {
    fn default() -> Self {
        Sample {
            latencies: Histogram::new_with_bounds(1, 60_000_000, 3)
                .expect("static histogram bounds are valid"),
            statuses: BTreeMap::new(),
        }
    }
}

impl Sample {
    /// Records one outcome and how long it took.
    pub fn record(&mut self, outcome: &str, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.latencies.saturating_record(micros.max(1));
        *self.statuses.entry(outcome.to_string()).or_default() += 1;
    }

    /// Adds another sample into this one.
    pub fn merge(&mut self, other: &Sample) {
        self.latencies
            .add(&other.latencies)
            .expect("histograms share bounds");
        for (s, n) in &other.statuses {
            *self.statuses.entry(s.clone()).or_default() += n;
        }
    }

    /// Outcomes that `ok` accepts.
    pub fn count(&self, ok: impl Fn(&str) -> bool) -> u64 {
        self.statuses
            .iter()
            .filter(|(s, _)| ok(s))
            .map(|(_, n)| n)
            .sum()
    }

    /// The latency at quantile `q` (0..=1).
    pub fn quantile(&self, q: f64) -> Duration {
        Duration::from_micros(self.latencies.value_at_quantile(q))
    }
}

/// One result line: a throughput with its latencies.
pub struct Line {
    /// What was measured.
    pub name: String,
    /// Concurrency (clients).
    pub concurrency: usize,
    /// Successful operations per second.
    pub per_second: f64,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// Outcomes by label, for the reader to spot errors.
    pub statuses: BTreeMap<String, u64>,
}

impl Line {
    /// A line from a sample over `elapsed`, counting statuses in `ok` as successes.
    pub fn from_sample(
        name: impl Into<String>,
        concurrency: usize,
        sample: &Sample,
        elapsed: Duration,
        ok: impl Fn(&str) -> bool,
    ) -> Line {
        Line {
            name: name.into(),
            concurrency,
            per_second: sample.count(ok) as f64 / elapsed.as_secs_f64(),
            p50: sample.quantile(0.5),
            p99: sample.quantile(0.99),
            statuses: sample.statuses.clone(),
        }
    }
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let statuses: Vec<String> = self
            .statuses
            .iter()
            .map(|(s, n)| format!("{s}×{n}"))
            .collect();
        write!(
            f,
            "| {} | {} | {:.0} | {:.2} | {:.2} | {} |",
            self.name,
            self.concurrency,
            self.per_second,
            ms(self.p50),
            ms(self.p99),
            statuses.join(" ")
        )
    }
}

/// The header matching [`Line`]'s `Display`.
pub const HEADER: &str =
    "| measure | clients | per second | p50 ms | p99 ms | answers |\n|---|---|---|---|---|---|";

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
