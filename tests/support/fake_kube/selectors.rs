//! Label selectors: a request's `labelSelector` and a budget's `matchLabels`.

use serde_json::Value;

use super::reply::{failure, Reply};

/// Whether every `matchLabels` entry is among `labels`.
pub(super) fn labels_match(match_labels: &Value, labels: &Value) -> bool {
    match match_labels.as_object() {
        Some(wanted) => wanted.iter().all(|(k, v)| &labels[k.as_str()] == v),
        None => true,
    }
}

enum Op {
    Eq,
    NotEq,
    In,
    NotIn,
    Exists,
    NotExists,
}

/// One term of a label selector.
pub(super) struct Requirement {
    key: String,
    op: Op,
    values: Vec<String>,
}

impl Requirement {
    pub(super) fn matches(&self, labels: &Value) -> bool {
        let value = labels[self.key.as_str()].as_str();
        let listed = value.is_some_and(|v| self.values.iter().any(|w| w == v));
        match self.op {
            Op::Eq | Op::In => listed,
            Op::NotEq | Op::NotIn => !listed,
            Op::Exists => value.is_some(),
            Op::NotExists => value.is_none(),
        }
    }
}

/// Splits a selector at the commas that are not inside parentheses.
fn split_terms(selector: &str) -> Vec<&str> {
    let (mut terms, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&selector[start..]);
    terms
}

fn parse_term(term: &str) -> Option<Requirement> {
    let term = term.trim();
    let requirement = |key: &str, op, values: Vec<String>| {
        let key = key.trim();
        let valid = !key.is_empty() && !key.contains(char::is_whitespace);
        valid.then(|| Requirement {
            key: key.to_owned(),
            op,
            values,
        })
    };
    if let Some(key) = term.strip_prefix('!') {
        return requirement(key, Op::NotExists, Vec::new());
    }
    if let (Some(open), true) = (term.find('('), term.ends_with(')')) {
        let values = term[open + 1..term.len() - 1]
            .split(',')
            .map(|v| v.trim().to_owned())
            .collect();
        let mut head = term[..open].split_whitespace();
        let (key, op) = (head.next()?, head.next()?);
        let op = match op {
            "in" => Op::In,
            "notin" => Op::NotIn,
            _ => return None,
        };
        if head.next().is_some() {
            return None;
        }
        return requirement(key, op, values);
    }
    let (key, op, value) = if let Some((k, v)) = term.split_once("!=") {
        (k, Op::NotEq, v)
    } else if let Some((k, v)) = term.split_once("==") {
        (k, Op::Eq, v)
    } else if let Some((k, v)) = term.split_once('=') {
        (k, Op::Eq, v)
    } else {
        return requirement(term, Op::Exists, Vec::new());
    };
    requirement(key, op, vec![value.trim().to_owned()])
}

pub(super) fn parse_selector(selector: &str) -> Result<Vec<Requirement>, Reply> {
    if selector.trim().is_empty() {
        return Ok(Vec::new());
    }
    split_terms(selector)
        .into_iter()
        .map(|term| {
            parse_term(term).ok_or_else(|| {
                let message = format!("unable to parse requirement: found {term:?} in selector {selector:?}");
                failure(400, "BadRequest", message, Value::Null)
            })
        })
        .collect()
}
