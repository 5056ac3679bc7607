//! `context:` compiled: whether medic gathers cluster context, within which deadline, from
//! which labels, and the redaction every gathered text passes through before it is stored or
//! sent.

use std::time::Duration;

use regex::Regex;

use crate::{
    alertmanager::KV,
    config::{ContextLabels, Problem, Settings},
};

/// What the context gatherer does.
#[derive(Debug, Clone)]
pub struct ContextPlan {
    /// `context.enabled` (by default on) while `kubernetes.enabled`.
    pub enabled: bool,
    pub deadline: Duration,
    pub labels: ContextLabels,
    pub events_window: Duration,
    pub events_max: usize,
    pub log_lines: u32,
    pub max_line_bytes: usize,
    /// Read the crashed instance's logs when a container has restarted.
    pub previous: bool,
    pub redactor: Redactor,
}

/// The `redact` patterns, compiled.
#[derive(Debug, Clone, Default)]
pub struct Redactor(Vec<Regex>);

/// What a match becomes.
pub const REDACTED: &str = "[redacted]";

impl Redactor {
    /// `text` with every match of every pattern replaced by `[redacted]`.
    pub fn clean(&self, text: &str) -> String {
        self.0.iter().fold(text.to_owned(), |text, pattern| {
            pattern.replace_all(&text, REDACTED).into_owned()
        })
    }

    /// One log line: redacted first (a cut could split a secret past recognition), then cut
    /// at `max_bytes` on a character boundary.
    pub fn line(&self, text: &str, max_bytes: usize) -> String {
        let mut clean = self.clean(text.trim_end_matches('\r'));
        if clean.len() > max_bytes {
            let cut = (0..=max_bytes)
                .rev()
                .find(|&i| clean.is_char_boundary(i))
                .unwrap_or(0);
            clean.truncate(cut);
        }
        clean
    }
}

/// Where an alert points in the cluster: its namespace and the pod or workload it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextTarget {
    pub namespace: String,
    pub pod: Option<String>,
    pub deployment: Option<String>,
    pub statefulset: Option<String>,
}

impl ContextPlan {
    /// Compiles `context:`; a pattern that does not compile is a problem at its index.
    pub fn compile(settings: &Settings, problems: &mut Vec<Problem>) -> ContextPlan {
        let context = &settings.context;
        let mut patterns = Vec::new();
        for (i, pattern) in context.redact.iter().enumerate() {
            match Regex::new(pattern) {
                Ok(regex) => patterns.push(regex),
                Err(e) => problems.push(Problem::new(format!("context.redact[{i}]"), e.to_string())),
            }
        }
        ContextPlan {
            enabled: context.enabled.unwrap_or(true) && settings.kubernetes.enabled,
            deadline: context.deadline.0,
            labels: context.labels.clone(),
            events_window: context.events.window.0,
            events_max: context.events.max,
            log_lines: context.logs.lines,
            max_line_bytes: context.logs.max_line_bytes,
            previous: context.logs.previous,
            redactor: Redactor(patterns),
        }
    }

    /// Off: nothing is gathered.
    pub fn disabled() -> ContextPlan {
        ContextPlan {
            enabled: false,
            deadline: Duration::ZERO,
            labels: ContextLabels::default(),
            events_window: Duration::ZERO,
            events_max: 0,
            log_lines: 0,
            max_line_bytes: 0,
            previous: false,
            redactor: Redactor::default(),
        }
    }
}

impl ContextTarget {
    /// What these labels name, when they name a namespace and a pod or workload.
    pub fn of(labels: &KV, names: &ContextLabels) -> Option<ContextTarget> {
        let get = |name: &str| labels.get(name).filter(|v| !v.is_empty()).cloned();
        let target = ContextTarget {
            namespace: get(&names.namespace)?,
            pod: get(&names.pod),
            deployment: get(&names.deployment),
            statefulset: get(&names.statefulset),
        };
        let names_one = target.pod.is_some() || target.deployment.is_some() || target.statefulset.is_some();
        names_one.then_some(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor() -> Redactor {
        let patterns = crate::config::DEFAULT_REDACT
            .iter()
            .map(|p| Regex::new(p).unwrap());
        Redactor(patterns.collect())
    }

    #[test]
    fn the_default_patterns_redact_passwords_keys_and_tokens() {
        let r = redactor();
        assert_eq!(
            r.clean("connecting with password=hunter2 to db"),
            "connecting with [redacted] to db"
        );
        assert_eq!(r.clean("key AKIAABCDEFGHIJKLMNOP used"), "key [redacted] used");
        assert_eq!(
            r.clean("Bearer eyJhbGc.eyJzdWIi.c2lnbmF0dXJl"),
            "Bearer [redacted]"
        );
        assert_eq!(r.clean("API_KEY: abc123"), "[redacted]");
        assert_eq!(r.clean("nothing secret here"), "nothing secret here");
    }

    #[test]
    fn lines_are_redacted_before_they_are_cut_on_a_character_boundary() {
        let r = redactor();
        let line = format!("{}password=hunter2", "x".repeat(45));
        assert_eq!(r.line(&line, 50), format!("{}[reda", "x".repeat(45)));
        assert_eq!(r.line("ééé", 3), "é");
    }
}
