//! How urgent an alert is, read from its `severity` label with the aliases teams use.

/// An alert's urgency; an incident takes its most urgent alert's. Ordered: `Critical` is
/// greatest, an unknown or missing severity least.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Unknown,
    Info,
    Warning,
    Error,
    Critical,
}

impl Severity {
    /// The severity a `severity` label value means, case-insensitively.
    pub fn from_label(label: Option<&str>) -> Severity {
        match label.map(str::to_ascii_lowercase).as_deref() {
            Some("critical" | "page" | "emergency" | "fatal") => Severity::Critical,
            Some("error" | "high" | "major") => Severity::Error,
            Some("warning" | "warn" | "medium" | "minor") => Severity::Warning,
            Some("info" | "low" | "informational") => Severity::Info,
            _ => Severity::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_order_critical_error_warning_info_unknown() {
        let order = [
            Some("critical"),
            Some("error"),
            Some("warning"),
            Some("info"),
            Some("unknown"),
        ];
        for pair in order.windows(2) {
            assert!(
                Severity::from_label(pair[0]) > Severity::from_label(pair[1]),
                "{:?} should outrank {:?}",
                pair[0],
                pair[1]
            );
        }
        assert_eq!(Severity::from_label(Some("unknown")), Severity::from_label(None));
        assert_eq!(Severity::from_label(Some("")), Severity::Unknown);
        for (alias, of) in [
            ("page", "critical"),
            ("CRITICAL", "critical"),
            ("Major", "error"),
            ("warn", "warning"),
            ("low", "info"),
        ] {
            assert_eq!(
                Severity::from_label(Some(alias)),
                Severity::from_label(Some(of)),
                "{alias}"
            );
        }
    }
}
