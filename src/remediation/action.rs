//! The actions medic can take, their parameters, and parameter templates over an alert's
//! labels and annotations (`{{ labels.namespace }}`), checked when the config loads.

use std::{collections::BTreeMap, time::Duration};

use serde_json::Value;

use crate::{alertmanager::KV, config::Span};

/// A remediation handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    RestartPods,
    ScaleUp,
    ScaleTo,
    RolloutRestart,
    PostgresRelievePool,
}

/// What a parameter holds, checked at load (literals) and when rendered (templates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Integer,
    Duration,
}

/// One parameter an action takes.
#[derive(Debug)]
pub struct ParamSpec {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
}

const fn param(name: &'static str, kind: Kind, required: bool) -> ParamSpec {
    ParamSpec { name, kind, required }
}

const RESTART_PODS: &[ParamSpec] = &[
    param("namespace", Kind::Text, true),
    param("selector", Kind::Text, false),
    param("pod", Kind::Text, false),
    param("grace_period", Kind::Duration, false),
    param("max_restarts", Kind::Integer, false),
    param("max_pods", Kind::Integer, false),
    param("ready_timeout", Kind::Duration, false),
];
const SCALE_UP: &[ParamSpec] = &[
    param("namespace", Kind::Text, true),
    param("deployment", Kind::Text, true),
    param("step", Kind::Integer, false),
    param("max", Kind::Integer, false),
];
const SCALE_TO: &[ParamSpec] = &[
    param("namespace", Kind::Text, true),
    param("deployment", Kind::Text, true),
    param("replicas", Kind::Integer, true),
];
const ROLLOUT_RESTART: &[ParamSpec] = &[
    param("namespace", Kind::Text, true),
    param("deployment", Kind::Text, true),
];
const POSTGRES_RELIEVE_POOL: &[ParamSpec] = &[
    param("database", Kind::Text, true),
    param("threshold", Kind::Duration, false),
    param("max_terminations", Kind::Integer, false),
    param("namespace", Kind::Text, false),
    param("deployment", Kind::Text, false),
    param("env", Kind::Text, false),
    param("pool_step", Kind::Integer, false),
    param("pool_max", Kind::Integer, false),
];

impl Action {
    pub const ALL: [Action; 5] = [
        Action::RestartPods,
        Action::ScaleUp,
        Action::ScaleTo,
        Action::RolloutRestart,
        Action::PostgresRelievePool,
    ];

    /// The name used in the config, metrics and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::RestartPods => "restart_pods",
            Action::ScaleUp => "scale_up",
            Action::ScaleTo => "scale_to",
            Action::RolloutRestart => "rollout_restart",
            Action::PostgresRelievePool => "postgres_relieve_pool",
        }
    }

    pub fn parse(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == name)
    }

    /// Every parameter the action takes; any other is a config error.
    pub fn params(self) -> &'static [ParamSpec] {
        match self {
            Action::RestartPods => RESTART_PODS,
            Action::ScaleUp => SCALE_UP,
            Action::ScaleTo => SCALE_TO,
            Action::RolloutRestart => ROLLOUT_RESTART,
            Action::PostgresRelievePool => POSTGRES_RELIEVE_POOL,
        }
    }

    /// Whether the action needs the Kubernetes API.
    pub fn needs_kubernetes(self, params: &Params) -> bool {
        self != Action::PostgresRelievePool || params.0.contains_key("env")
    }
}

/// A parameter as configured: a literal, or text with `{{ labels.x }}` / `{{ annotations.y }}`.
#[derive(Debug, Clone)]
pub enum Param {
    Literal(Value),
    Template(Vec<Piece>),
}

/// Part of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Label(String),
    Annotation(String),
}

impl Param {
    /// Checks a configured value against the parameter's kind; templates are checked for what
    /// they name.
    pub fn compile(value: &Value, spec: &ParamSpec) -> Result<Param, String> {
        let Value::String(text) = value else {
            check_literal(value, spec.kind)?;
            return Ok(Param::Literal(value.clone()));
        };
        if !text.contains("{{") {
            check_literal(value, spec.kind)?;
            return Ok(Param::Literal(value.clone()));
        }
        parse_template(text).map(Param::Template)
    }

    /// The value for one alert; fails when the alert lacks a label or annotation it names.
    pub fn render(&self, labels: &KV, annotations: &KV) -> Result<Value, String> {
        let pieces = match self {
            Param::Literal(value) => return Ok(value.clone()),
            Param::Template(pieces) => pieces,
        };
        let mut out = String::new();
        for piece in pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Label(name) => out.push_str(
                    labels
                        .get(name)
                        .ok_or_else(|| format!("the alert has no label {name:?}"))?,
                ),
                Piece::Annotation(name) => out.push_str(
                    annotations
                        .get(name)
                        .ok_or_else(|| format!("the alert has no annotation {name:?}"))?,
                ),
            }
        }
        Ok(Value::String(out))
    }
}

fn check_literal(value: &Value, kind: Kind) -> Result<(), String> {
    let ok = match kind {
        Kind::Text => value.is_string(),
        Kind::Integer => value.as_i64().is_some() || value.as_str().is_some_and(|s| s.parse::<i64>().is_ok()),
        Kind::Duration => value.as_u64().is_some() || value.as_str().is_some_and(|s| Span::parse(s).is_ok()),
    };
    if ok {
        Ok(())
    } else {
        let expected = match kind {
            Kind::Text => "text",
            Kind::Integer => "an integer",
            Kind::Duration => "a duration such as 90s or 5m",
        };
        Err(format!("expected {expected}, got {value}"))
    }
}

fn parse_template(text: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            pieces.push(Piece::Text(rest[..start].to_owned()));
        }
        let end = rest[start..]
            .find("}}")
            .ok_or_else(|| format!("unclosed {{{{ in {text:?}"))?;
        let inner = rest[start + 2..start + end].trim();
        let piece = match inner.split_once('.') {
            Some(("labels", name)) if !name.is_empty() => Piece::Label(name.to_owned()),
            Some(("annotations", name)) if !name.is_empty() => Piece::Annotation(name.to_owned()),
            _ => {
                return Err(format!(
                    "{{{{ {inner} }}}} names nothing: use labels.NAME or annotations.NAME"
                ))
            }
        };
        pieces.push(piece);
        rest = &rest[start + end + 2..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_owned()));
    }
    Ok(pieces)
}

/// Parameters rendered for one alert.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Params(pub BTreeMap<String, Value>);

impl Params {
    /// A text parameter, if given.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(Value::as_str).filter(|s| !s.is_empty())
    }

    /// A required text parameter.
    pub fn required(&self, name: &str) -> Result<&str, String> {
        self.text(name)
            .ok_or_else(|| format!("parameter {name:?} is missing or empty"))
    }

    /// An integer parameter (a number, or text holding one after rendering), or the default.
    pub fn integer(&self, name: &str, default: i64) -> Result<i64, String> {
        match self.0.get(name) {
            None => Ok(default),
            Some(value) => value
                .as_i64()
                .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
                .ok_or_else(|| format!("parameter {name:?} is not an integer: {value}")),
        }
    }

    /// A duration parameter, or the default.
    pub fn duration(&self, name: &str, default: Duration) -> Result<Duration, String> {
        match self.0.get(name) {
            None => Ok(default),
            Some(Value::Number(n)) => n
                .as_u64()
                .map(Duration::from_secs)
                .ok_or_else(|| format!("parameter {name:?} is not a duration: {n}")),
            Some(Value::String(s)) => Span::parse(s).map(|s| s.0),
            Some(other) => Err(format!("parameter {name:?} is not a duration: {other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(pairs: &[(&str, &str)]) -> KV {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn templates_render_labels_and_annotations_into_text() {
        let spec = param("x", Kind::Text, true);
        let param = Param::compile(
            &Value::from("{{ labels.namespace }}/{{annotations.pod}}-x"),
            &spec,
        )
        .unwrap();
        let rendered = param
            .render(&kv(&[("namespace", "prod")]), &kv(&[("pod", "p1")]))
            .unwrap();
        assert_eq!(rendered, Value::from("prod/p1-x"));
        let missing = param.render(&kv(&[]), &kv(&[("pod", "p1")])).unwrap_err();
        assert!(missing.contains("namespace"), "{missing}");
    }

    #[test]
    fn templates_that_name_nothing_are_refused() {
        let spec = param("x", Kind::Text, true);
        for bad in [
            "{{ namespace }}",
            "{{ labels. }}",
            "{{ values.x }}",
            "{{ labels.x",
        ] {
            assert!(
                Param::compile(&Value::from(bad), &spec).is_err(),
                "{bad} accepted"
            );
        }
    }

    #[test]
    fn literals_must_fit_the_parameter() {
        let integer = param("step", Kind::Integer, false);
        assert!(Param::compile(&Value::from(2), &integer).is_ok());
        assert!(Param::compile(&Value::from("two"), &integer).is_err());
        let duration = param("grace", Kind::Duration, false);
        assert!(Param::compile(&Value::from("5m"), &duration).is_ok());
        assert!(Param::compile(&Value::from("soon"), &duration).is_err());
    }
}
