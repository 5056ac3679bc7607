//! What the fuzz targets in `fuzz/` run, here so that every input they ever crashed on is
//! replayed by the tests (`tests/api/fuzz_regressions.rs`) without the fuzzer. Each function
//! takes arbitrary bytes and must not panic; the assertions are properties that must hold.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::Value;

use crate::{
    alertmanager::{Data, KV},
    config,
    domain::{kubernetes::LabelSelector, Action, Notification, ParamLimits},
    plan::{self, matchers::Matcher, matchers::Matchers, template::ParamTemplate},
};

/// The webhook body: JSON into `Data`, then the domain's checks.
pub fn webhook_payload(data: &[u8]) {
    let Ok(parsed) = serde_json::from_slice::<Data>(data) else {
        return;
    };
    let Ok(notification) = Notification::parse(parsed) else {
        return;
    };
    let mut episodes = HashSet::new();
    for alert in &notification.alerts {
        assert!(episodes.insert(alert.key()), "a repeated episode survived");
    }
    assert!(!notification.alerts.is_empty());
}

/// Matchers: parsing never panics, and a parsed matcher written back reads the same.
pub fn matchers(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(parsed) = Matchers::parse(&[text]) else {
        return;
    };
    let labels: BTreeMap<String, String> = [("alertname", text), ("x", "")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    for matcher in parsed.iter() {
        let written = matcher.to_string();
        let again =
            Matcher::parse(&written).unwrap_or_else(|e| panic!("{written:?} does not parse back: {e}"));
        assert_eq!(
            (again.name(), again.op(), again.value()),
            (matcher.name(), matcher.op(), matcher.value())
        );
        assert_eq!(again.matches(&labels), matcher.matches(&labels));
    }
}

/// Configuration: `KEY=VALUE` lines (environment variables, `MEDIC_` added when missing), a
/// line `---`, then YAML; loaded and compiled as `check-config` does.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (vars, yaml) = text.split_once("\n---\n").unwrap_or(("", text));
    let env: HashMap<String, String> = vars
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| {
            let key = if k.starts_with("MEDIC_") {
                k.to_owned()
            } else {
                format!("MEDIC_{k}")
            };
            (key, v.to_owned())
        })
        .collect();
    let (settings, _problems) = config::read_yaml(Some(yaml), &env);
    if let Some(settings) = settings {
        let _ = plan::compile(&settings);
    }
}

/// Templates rendered from labels, and the checks of rendered values: `TEMPLATE \x1f VALUE`.
/// A value that passes its check is canonical: checking it again gives it back unchanged.
pub fn templates(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (template, value) = text.split_once('\u{1f}').unwrap_or((text, ""));
    let labels: KV = [("x".to_owned(), value.to_owned())].into_iter().collect();
    let limits = ParamLimits::default();
    for action in Action::ALL {
        for spec in action.params() {
            let Ok(compiled) = ParamTemplate::compile(&Value::from(template), spec, &limits) else {
                continue;
            };
            let Ok(rendered) = compiled.render(&labels, &labels) else {
                continue;
            };
            if let Ok(valid) = spec.validate(&rendered, &limits) {
                assert_eq!(
                    spec.validate(&valid, &limits).as_ref(),
                    Ok(&valid),
                    "{} not canonical",
                    spec.name
                );
            }
        }
    }
    if let Ok(selector) = LabelSelector::parse(value) {
        let written = selector.to_string();
        assert_eq!(
            LabelSelector::parse(&written).as_ref(),
            Ok(&selector),
            "{written:?}"
        );
    }
}
