//! Prometheus rules for the SLOs, by the multi-window, multi-burn-rate method of Google's SRE
//! workbook (chapter 5): a recording rule per SLI and window for the error ratio, and per SLO
//! an alert that pages when the budget burns fast and one that opens a ticket when it burns
//! slowly. Each alert needs a long window (is the burn significant?) and a short one (is it
//! still going on?), so that it stops firing soon after the burn stops.
//!
//! The output is YAML written by hand: a Prometheus rule file, or the same groups in a
//! PrometheusRule object for the Prometheus Operator.

use std::{fmt::Write as _, time::Duration};

use crate::{
    config::WINDOW_PLACEHOLDER,
    plan::{Sli, Slo},
};

/// Where every burn-rate alert's `runbook_url` points.
pub const RUNBOOK_URL: &str = "https://github.com/medic-sre/medic/blob/main/runbooks/SLOBurnRate.md";
/// The name of every burn-rate alert; the `slo` and `severity` labels tell them apart.
pub const ALERT_NAME: &str = "SLOBurnRate";

/// The SLO's error budget as a ratio (`1 - objective / 100`), recorded so that dashboards can
/// divide an error ratio by it: `slo:sli_error:ratio_rate1h / on(slo, service) slo:error_budget:ratio`
/// is the burn rate over an hour.
pub const ERROR_BUDGET_RECORD: &str = "slo:error_budget:ratio";
/// The share of the error budget left over the SLO's window (1 untouched, 0 spent, below 0
/// overspent).
pub const BUDGET_REMAINING_RECORD: &str = "slo:error_budget_remaining:ratio";

const MINUTE: u64 = 60;
const HOUR: u64 = 3600;
const DAY: u64 = 86_400;

/// The windows the alerts read, shortest first; the SLO's own window is recorded too.
pub const WINDOWS: [Duration; 7] = [
    Duration::from_secs(5 * MINUTE),
    Duration::from_secs(30 * MINUTE),
    Duration::from_secs(HOUR),
    Duration::from_secs(2 * HOUR),
    Duration::from_secs(6 * HOUR),
    Duration::from_secs(DAY),
    Duration::from_secs(3 * DAY),
];

/// The error ratio over both windows is above `factor` times the error budget.
#[derive(Debug, Clone, Copy)]
pub struct Burn {
    pub factor: f64,
    pub long: Duration,
    pub short: Duration,
}

const fn burn(factor: f64, long: u64, short: u64) -> Burn {
    Burn {
        factor,
        long: Duration::from_secs(long),
        short: Duration::from_secs(short),
    }
}

/// Who is told: a page wakes someone, a ticket waits for working hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Page,
    Ticket,
}

impl Severity {
    /// The `severity` label, as medic's rules and Alertmanager routes read it.
    pub fn label(self) -> &'static str {
        match self {
            Severity::Page => "critical",
            Severity::Ticket => "warning",
        }
    }

    /// The workbook's conditions: 2% of a 30-day budget in an hour or 5% in six hours pages;
    /// 10% in a day or 10% in three days opens a ticket.
    pub fn burns(self) -> [Burn; 2] {
        match self {
            Severity::Page => [burn(14.4, HOUR, 5 * MINUTE), burn(6.0, 6 * HOUR, 30 * MINUTE)],
            Severity::Ticket => [burn(3.0, DAY, 2 * HOUR), burn(1.0, 3 * DAY, 6 * HOUR)],
        }
    }
}

/// One rule group: every rule of one SLO.
#[derive(Debug)]
pub struct Group {
    pub name: String,
    pub rules: Vec<Rule>,
}

/// A recording rule or an alerting rule.
#[derive(Debug)]
pub enum Rule {
    Record {
        record: String,
        expr: String,
        labels: Vec<(&'static str, String)>,
    },
    Alert {
        alert: &'static str,
        expr: String,
        labels: Vec<(&'static str, String)>,
        annotations: Vec<(&'static str, String)>,
    },
}

/// The rule groups for these SLOs, one per SLO, in config order.
pub fn groups(slos: &[Slo]) -> Vec<Group> {
    slos.iter().map(group).collect()
}

fn group(slo: &Slo) -> Group {
    let mut windows = WINDOWS.to_vec();
    if !windows.contains(&slo.window) {
        windows.push(slo.window);
    }
    let labels = || vec![("slo", slo.name.clone()), ("service", slo.service.clone())];
    let mut rules: Vec<Rule> = windows
        .iter()
        .map(|&window| Rule::Record {
            record: record_name(window),
            expr: error_ratio(&slo.sli, window),
            labels: labels(),
        })
        .collect();
    // For dashboards: the budget, to divide a window's error ratio by (its burn rate), and
    // what is left of it over the SLO's own window (as `medic slo report` computes it).
    let budget = number(slo.error_budget());
    rules.push(Rule::Record {
        record: ERROR_BUDGET_RECORD.into(),
        expr: format!("vector({budget})"),
        labels: labels(),
    });
    rules.push(Rule::Record {
        record: BUDGET_REMAINING_RECORD.into(),
        expr: format!(
            "1 - {}{{slo=\"{}\"}} / {budget}",
            record_name(slo.window),
            slo.name
        ),
        labels: labels(),
    });
    rules.extend([Severity::Page, Severity::Ticket].map(|severity| alert(slo, severity)));
    Group {
        name: format!("slo-{}", slo.name),
        rules,
    }
}

/// `slo:sli_error:ratio_rate5m`: the share of bad events over the window.
pub fn record_name(window: Duration) -> String {
    format!("slo:sli_error:ratio_rate{}", prometheus_duration(window))
}

/// `1 - good / total`, the queries' `$window` filled in. A latency SLI's good events are the
/// observations in the bucket whose upper bound is the threshold.
fn error_ratio(sli: &Sli, window: Duration) -> String {
    let (good, total) = good_and_total(sli, window);
    format!(
        "1 - (\n  ({})\n/\n  ({})\n)",
        indent(good.trim(), 2),
        indent(total.trim(), 2)
    )
}

/// The SLI's good and total events per second over `window`, as two PromQL queries: the
/// rules record their ratio, and `medic slo report` reads them.
pub fn good_and_total(sli: &Sli, window: Duration) -> (String, String) {
    let range = prometheus_duration(window);
    match sli {
        Sli::Ratio { good, total } => (
            good.replace(WINDOW_PLACEHOLDER, &range),
            total.replace(WINDOW_PLACEHOLDER, &range),
        ),
        Sli::Latency { histogram, threshold } => (
            format!(
                "sum(rate({histogram}_bucket{{{}}}[{range}]))",
                le_matcher(*threshold)
            ),
            format!("sum(rate({histogram}_count[{range}]))"),
        ),
    }
}

fn alert(slo: &Slo, severity: Severity) -> Rule {
    let budget = number(slo.error_budget());
    let condition = |b: &Burn| {
        let side = |window| {
            format!(
                "{}{{slo=\"{}\"}} > ({} * {budget})",
                record_name(window),
                slo.name,
                number(b.factor)
            )
        };
        format!("(\n  {}\nand\n  {}\n)", side(b.long), side(b.short))
    };
    let burns = severity.burns();
    Rule::Alert {
        alert: ALERT_NAME,
        expr: format!("{}\nor\n{}", condition(&burns[0]), condition(&burns[1])),
        labels: vec![("slo", slo.name.clone()), ("severity", severity.label().into())],
        annotations: vec![
            ("summary", summary(slo, severity)),
            ("description", description(slo, &burns)),
            ("runbook_url", RUNBOOK_URL.into()),
        ],
    }
}

fn summary(slo: &Slo, severity: Severity) -> String {
    let speed = match severity {
        Severity::Page => "fast",
        Severity::Ticket => "steadily",
    };
    format!(
        "SLO {} of {} is burning its error budget {speed}",
        slo.name,
        template_literal(&slo.service)
    )
}

/// What the alert means, with the numbers it was made from; `$value` is the error ratio over
/// the long window of the condition that holds.
fn description(slo: &Slo, burns: &[Burn; 2]) -> String {
    let what = slo
        .description
        .as_deref()
        .map(|d| format!(" ({})", template_literal(d.trim())))
        .unwrap_or_default();
    let conditions = burns
        .iter()
        .map(|b| {
            format!(
                "{}x over {} and {}",
                number(b.factor),
                prometheus_duration(b.long),
                prometheus_duration(b.short)
            )
        })
        .collect::<Vec<_>>()
        .join(", or ");
    let slowest = burns[1].factor;
    let lasts = Duration::from_secs((slo.window.as_secs_f64() / slowest) as u64);
    format!(
        "{}{what}: {{{{ $value | humanizePercentage }}}} of events were bad over the long window. \
         The error budget of {}% ({}% over {}) is burning faster than {conditions}: at that rate \
         it is spent within {}.",
        slo.name,
        number(100.0 - slo.objective),
        number(slo.objective),
        prometheus_duration(slo.window),
        prometheus_duration(lasts),
    )
}

/// The groups as a Prometheus rule file.
pub fn rule_file(groups: &[Group]) -> String {
    if groups.is_empty() {
        return "groups: []\n".into();
    }
    let mut out = String::from("groups:\n");
    for group in groups {
        let _ = writeln!(out, "  - name: {}", quoted(&group.name));
        out.push_str("    rules:\n");
        for rule in &group.rules {
            write_rule(&mut out, rule);
        }
    }
    out
}

/// The groups in a PrometheusRule object (`monitoring.coreos.com/v1`) named `name`.
pub fn prometheus_rule(groups: &[Group], name: &str, labels: &[(String, String)]) -> String {
    let mut out = String::from("apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata:\n");
    let _ = writeln!(out, "  name: {}", quoted(name));
    if !labels.is_empty() {
        out.push_str("  labels:\n");
        for (key, value) in labels {
            let _ = writeln!(out, "    {}: {}", quoted(key), quoted(value));
        }
    }
    out.push_str("spec:\n");
    for line in rule_file(groups).lines() {
        if !line.is_empty() {
            out.push_str("  ");
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn write_rule(out: &mut String, rule: &Rule) {
    let (labels, annotations) = match rule {
        Rule::Record { record, expr, labels } => {
            let _ = writeln!(out, "      - record: {}", quoted(record));
            let _ = writeln!(out, "        expr: |-\n{}", indent_all(expr, 10));
            (labels, None)
        }
        Rule::Alert {
            alert,
            expr,
            labels,
            annotations,
        } => {
            let _ = writeln!(out, "      - alert: {}", quoted(alert));
            let _ = writeln!(out, "        expr: |-\n{}", indent_all(expr, 10));
            (labels, Some(annotations))
        }
    };
    for (title, map) in [("labels", Some(labels)), ("annotations", annotations)] {
        let Some(map) = map else { continue };
        let _ = writeln!(out, "        {title}:");
        for (key, value) in map {
            let _ = writeln!(out, "          {key}: {}", quoted(value));
        }
    }
}

/// A YAML double-quoted scalar: JSON's escapes are YAML's too.
fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into())
}

/// Every line but the first indented by `by` spaces (the first is placed by the caller).
fn indent(text: &str, by: usize) -> String {
    text.lines()
        .collect::<Vec<_>>()
        .join(&format!("\n{}", " ".repeat(by)))
}

/// Every line indented by `by` spaces: the body of a YAML block scalar.
fn indent_all(text: &str, by: usize) -> String {
    format!("{}{}", " ".repeat(by), indent(text, by))
}

/// Alert annotations are Go templates: text from the config must not open an action.
fn template_literal(text: &str) -> String {
    text.replace("{{", "{{ \"{{\" }}")
}

/// A duration as Prometheus writes one, in its largest whole unit: `5m`, `1h`, `30d`.
pub fn prometheus_duration(d: Duration) -> String {
    let ms = d.as_millis();
    let units = [(86_400_000, "d"), (3_600_000, "h"), (60_000, "m"), (1000, "s")];
    match units.iter().find(|(size, _)| ms > 0 && ms % size == 0) {
        Some((size, unit)) => format!("{}{unit}", ms / size),
        None => format!("{ms}ms"),
    }
}

/// Selects the threshold's bucket. Prometheus 3 stores a whole-number bound as `"1.0"` where
/// Prometheus 2 (and the client libraries) wrote `"1"`: such a bound is matched in both forms,
/// so that the SLI survives an upgrade.
fn le_matcher(threshold: Duration) -> String {
    let le = le_label(threshold);
    if le.contains('.') {
        format!("le=\"{le}\"")
    } else {
        format!("le=~\"{le}|{le}\\\\.0\"")
    }
}

/// A bucket's `le` label as Prometheus's client libraries write it: seconds, shortest form
/// (`0.2`, `1`, `2.5`).
pub fn le_label(threshold: Duration) -> String {
    number(threshold.as_secs_f64())
}

/// A number in its shortest form, without the noise of binary floating point (`0.001`, not
/// `0.0010000000000000009`).
fn number(x: f64) -> String {
    let text = format!("{x:.12}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text.is_empty() || text == "-" {
        "0".into()
    } else {
        text.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_numbers_are_written_as_prometheus_writes_them() {
        let secs = Duration::from_secs;
        assert_eq!(prometheus_duration(secs(300)), "5m");
        assert_eq!(prometheus_duration(secs(30 * DAY)), "30d");
        assert_eq!(prometheus_duration(secs(90)), "90s");
        assert_eq!(prometheus_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(le_label(Duration::from_millis(200)), "0.2");
        assert_eq!(le_label(secs(1)), "1");
        assert_eq!(le_label(Duration::from_millis(2500)), "2.5");
        assert_eq!(le_matcher(Duration::from_millis(200)), r#"le="0.2""#);
        assert_eq!(le_matcher(secs(1)), r#"le=~"1|1\\.0""#);
        assert_eq!(number((100.0 - 99.9) / 100.0), "0.001");
        assert_eq!(number(14.4), "14.4");
        assert_eq!(number(6.0), "6");
    }

    #[test]
    fn config_text_cannot_open_a_template_action() {
        assert_eq!(template_literal("a {{ b }}"), "a {{ \"{{\" }} b }}");
    }
}
