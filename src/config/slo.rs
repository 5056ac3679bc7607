//! Settings for service level objectives: `prometheus:` (where the SLIs are measured) and
//! `slos:`, with the checks each entry needs alone. Matchers and every check that spans
//! sections are the plan's.

use std::path::PathBuf;

use serde::Deserialize;

use super::problem::Problem;
use crate::domain::HumanDuration;

/// What a ratio SLI's queries must contain: the range each recording rule fills in.
pub const WINDOW_PLACEHOLDER: &str = "$window";

/// `prometheus:`: the server that holds the SLIs' series.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrometheusSettings {
    /// e.g. `http://prometheus-operated.monitoring:9090`.
    pub url: Option<String>,
    /// Sent as `Authorization: Bearer` when Prometheus sits behind a proxy that wants one.
    pub bearer_token_file: Option<PathBuf>,
}

/// One entry of `slos:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloSettings {
    /// The `slo` label of every rule made for it.
    pub name: String,
    /// The `service` label of every rule made for it.
    pub service: String,
    #[serde(default)]
    pub description: Option<String>,
    /// The share of good events promised, in percent (`99.9`).
    pub objective: f64,
    /// The period the objective is measured over (`30d`).
    pub window: HumanDuration,
    pub sli: SliSettings,
    /// Matchers on medic's incidents: which of them affect this SLO.
    #[serde(default)]
    pub incidents: Vec<String>,
    /// The incident label that names who owns the follow-up.
    #[serde(default)]
    pub owner_label: Option<String>,
}

/// `sli:`: exactly one of `ratio` and `latency`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SliSettings {
    pub ratio: Option<RatioSli>,
    pub latency: Option<LatencySli>,
}

/// Good events over all events, as two PromQL queries with `[$window]` in them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatioSli {
    pub good: String,
    pub total: String,
}

/// The share of a histogram's observations at or under `threshold`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencySli {
    /// The histogram's name, without `_bucket` or `_count`; its unit is seconds.
    pub histogram: String,
    /// One of the histogram's bucket boundaries.
    pub threshold: HumanDuration,
}

impl PrometheusSettings {
    pub(super) fn check(&self, problems: &mut Vec<Problem>) {
        let Some(url) = &self.url else { return };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            problems.push(Problem::new(
                "prometheus.url",
                format!("{url:?} must start with http:// or https://"),
            ));
        }
    }
}

impl SloSettings {
    /// Problems of one entry, at `slos[i]`.
    fn check(&self, at: &str, problems: &mut Vec<Problem>) {
        if let Err(message) = check_label_value(&self.name) {
            problems.push(Problem::new(format!("{at}.name"), message));
        }
        if self.service.trim().is_empty() {
            problems.push(Problem::new(format!("{at}.service"), "must not be empty"));
        }
        if !(self.objective > 0.0 && self.objective < 100.0) {
            problems.push(Problem::new(
                format!("{at}.objective"),
                "must be a percentage between 0 and 100, both excluded (e.g. 99.9)",
            ));
        }
        let window = self.window.0;
        if window.is_zero() || window.subsec_nanos() != 0 {
            problems.push(Problem::new(
                format!("{at}.window"),
                "must be a whole number of seconds greater than 0 (e.g. 30d)",
            ));
        }
        if let Some(label) = &self.owner_label {
            if !is_label_name(label) {
                problems.push(Problem::new(
                    format!("{at}.owner_label"),
                    format!("{label:?} is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)"),
                ));
            }
        }
        self.sli.check(&format!("{at}.sli"), problems);
    }
}

impl SliSettings {
    fn check(&self, at: &str, problems: &mut Vec<Problem>) {
        match (&self.ratio, &self.latency) {
            (Some(ratio), None) => {
                for (key, query) in [("good", &ratio.good), ("total", &ratio.total)] {
                    if let Err(message) = check_query(query) {
                        problems.push(Problem::new(format!("{at}.ratio.{key}"), message));
                    }
                }
            }
            (None, Some(latency)) => {
                if !is_metric_name(&latency.histogram) {
                    problems.push(Problem::new(
                        format!("{at}.latency.histogram"),
                        format!(
                            "{:?} is not a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)",
                            latency.histogram
                        ),
                    ));
                }
                if latency.threshold.0.is_zero() {
                    problems.push(Problem::new(
                        format!("{at}.latency.threshold"),
                        "must be greater than 0",
                    ));
                }
            }
            _ => problems.push(Problem::new(at, "must have exactly one of ratio and latency")),
        }
    }
}

/// Checks every entry of `slos:` and that names are unique.
pub(super) fn check(slos: &[SloSettings], problems: &mut Vec<Problem>) {
    for (i, slo) in slos.iter().enumerate() {
        let at = format!("slos[{i}]");
        slo.check(&at, problems);
        if slos[..i].iter().any(|other| other.name == slo.name) {
            problems.push(Problem::new(
                format!("{at}.name"),
                format!("another SLO is already named {:?}", slo.name),
            ));
        }
    }
}

/// SLO names become label values and parts of rule group names: keep them plain, so that
/// they need no quoting anywhere they are written.
fn check_label_value(name: &str) -> Result<(), String> {
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.is_empty() {
        Err("must not be empty".into())
    } else if name.len() > 63 || !name.chars().all(plain) {
        Err(format!(
            "{name:?} must be at most 63 letters, digits, '-', '_' or '.' (it becomes the `slo` label)"
        ))
    } else {
        Ok(())
    }
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// A ratio query must name the range to fill in, and its brackets must balance.
fn check_query(query: &str) -> Result<(), String> {
    if query.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if !query.contains(WINDOW_PLACEHOLDER) {
        return Err(format!(
            "must contain {WINDOW_PLACEHOLDER} as its range, e.g. rate(x[{WINDOW_PLACEHOLDER}])"
        ));
    }
    check_brackets(query)
}

/// A query must not be empty and its brackets must balance (outside quoted strings), which
/// catches most copy-and-paste accidents before Prometheus does.
pub(super) fn check_brackets(query: &str) -> Result<(), String> {
    if query.trim().is_empty() {
        return Err("must not be empty".into());
    }
    let mut open = Vec::new();
    let mut quote = None;
    let mut escaped = false;
    for c in query.chars() {
        if let Some(q) = quote {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                c if c == q => quote = None,
                _ => {}
            }
            continue;
        }
        match c {
            '"' | '\'' | '`' => quote = Some(c),
            '(' | '[' | '{' => open.push(c),
            ')' | ']' | '}' => {
                let want = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                if open.pop() != Some(want) {
                    return Err(format!("{c:?} closes nothing: brackets do not balance"));
                }
            }
            _ => {}
        }
    }
    match (quote, open.last()) {
        (Some(q), _) => Err(format!("a string opened with {q} is not closed")),
        (None, Some(c)) => Err(format!("{c:?} is not closed: brackets do not balance")),
        (None, None) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_need_the_window_and_balanced_brackets() {
        let good = r#"sum(rate(x{code!~"5.."}[$window]))"#;
        assert_eq!(check_query(good), Ok(()));
        assert!(check_query("sum(rate(x[5m]))").unwrap_err().contains("$window"));
        assert!(check_query("sum(rate(x[$window])").is_err());
        assert!(check_query(r#"sum(rate(x{a=")"}[$window]))"#).is_ok());
        assert!(check_query(r#"sum(rate(x{a="}[$window]))"#).is_err());
    }

    #[test]
    fn names_are_plain_label_values() {
        assert!(check_label_value("api-availability.v2_x").is_ok());
        assert!(check_label_value("").is_err());
        assert!(check_label_value("has space").is_err());
        assert!(check_label_value(&"a".repeat(64)).is_err());
    }
}
