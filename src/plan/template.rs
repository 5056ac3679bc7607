//! Parameter templates over an alert's labels and annotations (`{{ labels.namespace }}`),
//! checked when the config compiles and rendered for each alert; and the same templates in
//! PromQL (a step's `verify_query`), where what an alert brings is quoted as a string literal's
//! inside.

use std::fmt;

use serde_json::Value;

use crate::{
    alertmanager::KV,
    domain::{HumanDuration, ParamKind, ParamLimits, ParamSpec},
};

/// A parameter as configured: a literal, or text with `{{ labels.x }}` / `{{ annotations.y }}`.
#[derive(Debug, Clone)]
pub enum ParamTemplate {
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

impl ParamTemplate {
    /// Checks a configured value against the parameter's kind; templates are checked for what
    /// they name.
    /// Literals are checked in full, against the limits too; a template is checked for what
    /// it names, and its value when rendered (see `Action::validate`).
    pub fn compile(value: &Value, spec: &ParamSpec, limits: &ParamLimits) -> Result<ParamTemplate, String> {
        match value {
            Value::String(text) if text.contains("{{") => parse_template(text).map(ParamTemplate::Template),
            literal => {
                check_literal(literal, spec.kind())?;
                spec.validate(literal, limits).map(ParamTemplate::Literal)
            }
        }
    }

    /// The value for one alert; fails when the alert lacks a label or annotation it names.
    pub fn render(&self, labels: &KV, annotations: &KV) -> Result<Value, String> {
        let pieces = match self {
            ParamTemplate::Literal(value) => return Ok(value.clone()),
            ParamTemplate::Template(pieces) => pieces,
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

impl fmt::Display for ParamTemplate {
    /// As configured: a literal as its value (text unquoted), a template with its
    /// `{{ labels.NAME }}` and `{{ annotations.NAME }}` written back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamTemplate::Literal(Value::String(text)) => f.write_str(text),
            ParamTemplate::Literal(value) => write!(f, "{value}"),
            ParamTemplate::Template(pieces) => pieces.iter().try_for_each(|piece| match piece {
                Piece::Text(text) => f.write_str(text),
                Piece::Label(name) => write!(f, "{{{{ labels.{name} }}}}"),
                Piece::Annotation(name) => write!(f, "{{{{ annotations.{name} }}}}"),
            }),
        }
    }
}

/// PromQL with `{{ labels.x }}` / `{{ annotations.y }}` in it, such as
/// `errors{deployment="{{ labels.deployment }}"}`. A value is escaped for a PromQL string
/// literal, so that an alert's label cannot end the literal and change the query.
#[derive(Debug, Clone)]
pub struct QueryTemplate(Vec<Piece>);

impl QueryTemplate {
    /// Checks what the text's templates name.
    pub fn compile(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Err("must not be empty".to_owned());
        }
        parse_template(text).map(QueryTemplate)
    }

    /// The query for one alert; fails when the alert lacks a label or annotation it names.
    pub fn render(&self, labels: &KV, annotations: &KV) -> Result<String, String> {
        let mut out = String::new();
        for piece in &self.0 {
            let value = match piece {
                Piece::Text(text) => {
                    out.push_str(text);
                    continue;
                }
                Piece::Label(name) => labels
                    .get(name)
                    .ok_or_else(|| format!("the alert has no label {name:?}"))?,
                Piece::Annotation(name) => annotations
                    .get(name)
                    .ok_or_else(|| format!("the alert has no annotation {name:?}"))?,
            };
            out.push_str(&promql_escape(value));
        }
        Ok(out)
    }
}

impl fmt::Display for QueryTemplate {
    /// As configured.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        ParamTemplate::Template(self.0.clone()).fmt(f)
    }
}

/// `value` as the inside of a PromQL string literal, in single or double quotes.
fn promql_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn check_literal(value: &Value, kind: ParamKind) -> Result<(), String> {
    let ok = match kind {
        ParamKind::Text => value.is_string(),
        ParamKind::Integer => {
            value.as_i64().is_some() || value.as_str().is_some_and(|s| s.parse::<i64>().is_ok())
        }
        ParamKind::Duration => {
            value.as_u64().is_some() || value.as_str().is_some_and(|s| HumanDuration::parse(s).is_ok())
        }
        // Which count or percentage is checked by the parameter's own check.
        ParamKind::CountOrPercent => value.is_i64() || value.is_string(),
    };
    if ok {
        Ok(())
    } else {
        let expected = match kind {
            ParamKind::Text => "text",
            ParamKind::Integer => "an integer",
            ParamKind::Duration => "a duration such as 90s or 5m",
            ParamKind::CountOrPercent => "a count such as 2 or a percentage such as 50%",
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{param, Cap, Check};

    fn compile(value: &Value, spec: &ParamSpec) -> Result<ParamTemplate, String> {
        ParamTemplate::compile(value, spec, &ParamLimits::default())
    }

    fn kv(pairs: &[(&str, &str)]) -> KV {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn templates_render_labels_and_annotations_into_text() {
        let spec = param("x", Check::ObjectName, true);
        let param = compile(
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
    fn templates_read_back_as_configured() {
        let spec = param("x", Check::ObjectName, true);
        let param = compile(
            &Value::from("{{labels.namespace}}/{{ annotations.pod }}-x"),
            &spec,
        )
        .unwrap();
        assert_eq!(
            param.to_string(),
            "{{ labels.namespace }}/{{ annotations.pod }}-x"
        );
        assert_eq!(compile(&Value::from("web"), &spec).unwrap().to_string(), "web");
    }

    #[test]
    fn templates_that_name_nothing_are_refused() {
        let spec = param("x", Check::ObjectName, true);
        for bad in [
            "{{ namespace }}",
            "{{ labels. }}",
            "{{ values.x }}",
            "{{ labels.x",
        ] {
            assert!(compile(&Value::from(bad), &spec).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn a_query_quotes_what_the_alert_brings() {
        let query = QueryTemplate::compile(r#"errors{deployment="{{ labels.deployment }}"}"#).unwrap();
        let rendered = query.render(&kv(&[("deployment", "web")]), &kv(&[])).unwrap();
        assert_eq!(rendered, r#"errors{deployment="web"}"#);
        let hostile = query
            .render(&kv(&[("deployment", r#"x"} or up{a="\"#)]), &kv(&[]))
            .unwrap();
        assert_eq!(hostile, r#"errors{deployment="x\"} or up{a=\"\\"}"#);
        assert!(query.render(&kv(&[]), &kv(&[])).is_err());
        assert_eq!(
            query.to_string(),
            r#"errors{deployment="{{ labels.deployment }}"}"#
        );
        assert!(QueryTemplate::compile("  ").is_err());
        assert!(QueryTemplate::compile("up{a=\"{{ x }}\"}").is_err());
    }

    #[test]
    fn literals_must_fit_the_parameter() {
        let integer = param("step", Check::Count(1, Cap::Replicas), false);
        assert!(compile(&Value::from(2), &integer).is_ok());
        assert!(compile(&Value::from("two"), &integer).is_err());
        let duration = param("grace", Check::UpToActionTimeout, false);
        assert!(compile(&Value::from("5m"), &duration).is_ok());
        assert!(compile(&Value::from("soon"), &duration).is_err());
    }

    #[test]
    fn literals_must_stay_within_the_limits() {
        let replicas = param("replicas", Check::Count(0, Cap::Replicas), true);
        assert!(compile(&Value::from(50), &replicas).is_ok());
        let err = compile(&Value::from(51), &replicas).err().unwrap();
        assert!(err.contains("outside 0..=50"), "{err}");
        let grace = param("grace", Check::UpToActionTimeout, false);
        assert!(
            compile(&Value::from("11m"), &grace).is_err(),
            "longer than the action timeout"
        );
        let namespace = param("namespace", Check::Namespace, true);
        assert!(compile(&Value::from("Kube-System"), &namespace).is_err());
    }
}
