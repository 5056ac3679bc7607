//! Optional evidence that a step helped: the value of its `verify_query` (PromQL, one series)
//! read before it acted and again when it was verified, as stored in `remediations.evidence`
//! and shown to people ("error ratio 7.2% → 0.4%").

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How a `verify_query`'s value is shown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ValueFormat {
    /// As the number it is, to three significant digits.
    #[default]
    Number,
    /// A ratio (0 to 1) shown as a percentage: 0.072 is `7.2%`.
    Percent,
}

impl ValueFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ValueFormat::Number => "number",
            ValueFormat::Percent => "percent",
        }
    }

    /// The value as people read it.
    pub fn show(self, value: f64) -> String {
        match self {
            ValueFormat::Number => significant(value),
            ValueFormat::Percent => format!("{}%", significant(value * 100.0)),
        }
    }
}

impl TryFrom<String> for ValueFormat {
    type Error = String;
    fn try_from(word: String) -> Result<Self, String> {
        match word.as_str() {
            "number" => Ok(ValueFormat::Number),
            "percent" => Ok(ValueFormat::Percent),
            other => Err(format!("{other:?}: number or percent")),
        }
    }
}

impl From<ValueFormat> for String {
    fn from(format: ValueFormat) -> String {
        format.as_str().to_owned()
    }
}

/// One reading of the query: its value, or why there is none (the query failed, or did not
/// yield exactly one series).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Reading {
    /// What a query gave at `at`.
    pub fn of(at: DateTime<Utc>, value: Result<f64, String>) -> Self {
        let (value, error) = match value {
            Ok(value) => (Some(value), None),
            Err(error) => (None, Some(error)),
        };
        Self { at, value, error }
    }
}

/// A step's `verify_query` and what it read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The PromQL, as rendered for the alert.
    pub query: String,
    /// What people call the value (`error ratio`); absent: `verify_query`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub format: ValueFormat,
    /// Read just before the step acted (or, observed, would have).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Reading>,
    /// Read when `verify_within` was up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Reading>,
}

impl Evidence {
    /// For people: `error ratio 7.2% → 0.4%`, `error ratio 7.2% before acting` until the
    /// step is verified, and why a value is missing.
    pub fn line(&self) -> String {
        let name = self.name.as_deref().unwrap_or("verify_query");
        let before = self.shown(self.before.as_ref());
        match &self.after {
            Some(after) => format!("{name} {before} → {}", self.shown(Some(after))),
            None => format!("{name} {before} before acting"),
        }
    }

    fn shown(&self, reading: Option<&Reading>) -> String {
        match reading {
            Some(Reading {
                value: Some(value), ..
            }) => self.format.show(*value),
            Some(Reading {
                error: Some(error), ..
            }) => format!("unknown ({error})"),
            _ => "unknown".to_owned(),
        }
    }
}

/// Three significant digits, without trailing zeros: `7.2`, `0.4`, `1235`, `0.000123`.
fn significant(value: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        return format!("{value}");
    }
    let magnitude = value.abs().log10().floor() as i32;
    let decimals = (2 - magnitude).clamp(0, 12) as usize;
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evidence(before: Result<f64, String>, after: Option<Result<f64, String>>) -> Evidence {
        let at = Utc::now();
        Evidence {
            query: "q".into(),
            name: Some("error ratio".into()),
            format: ValueFormat::Percent,
            before: Some(Reading::of(at, before)),
            after: after.map(|after| Reading::of(at, after)),
        }
    }

    #[test]
    fn values_show_with_three_significant_digits() {
        assert_eq!(ValueFormat::Percent.show(0.072), "7.2%");
        assert_eq!(ValueFormat::Percent.show(0.004), "0.4%");
        assert_eq!(ValueFormat::Percent.show(1.0), "100%");
        assert_eq!(ValueFormat::Number.show(1234.5), "1234");
        assert_eq!(ValueFormat::Number.show(0.000_123_4), "0.000123");
        assert_eq!(ValueFormat::Number.show(0.0), "0");
        assert_eq!(ValueFormat::Number.show(-2.5), "-2.5");
    }

    #[test]
    fn the_line_reads_before_and_after_and_says_why_one_is_missing() {
        assert_eq!(
            evidence(Ok(0.072), Some(Ok(0.004))).line(),
            "error ratio 7.2% → 0.4%"
        );
        assert_eq!(evidence(Ok(0.072), None).line(), "error ratio 7.2% before acting");
        assert_eq!(
            evidence(Err("3 series, not one".into()), Some(Ok(0.004))).line(),
            "error ratio unknown (3 series, not one) → 0.4%"
        );
        let mut unnamed = evidence(Ok(2.0), Some(Ok(1.0)));
        unnamed.name = None;
        unnamed.format = ValueFormat::Number;
        assert_eq!(unnamed.line(), "verify_query 2 → 1");
    }

    #[test]
    fn evidence_reads_back_from_its_json() {
        let evidence = evidence(Ok(0.072), Some(Err("timeout".into())));
        let json = serde_json::to_value(&evidence).unwrap();
        assert_eq!(json["format"], "percent");
        assert_eq!(json["after"]["error"], "timeout");
        assert_eq!(serde_json::from_value::<Evidence>(json).unwrap(), evidence);
    }
}
