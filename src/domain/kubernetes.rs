//! Kubernetes names and label selectors as the API server defines them, so that a value
//! rendered from alert labels is checked before it reaches a request: namespaces are DNS-1123
//! labels, object names DNS-1123 subdomains, selectors parse as label selectors and are
//! written back in one canonical form.

use std::fmt;

/// Longest DNS-1123 label: a namespace, a label name.
const LABEL_MAX: usize = 63;
/// Longest DNS-1123 subdomain: an object's name, a label key's prefix.
const SUBDOMAIN_MAX: usize = 253;

/// A DNS-1123 label (`[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters): a namespace.
pub fn check_label(value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > LABEL_MAX {
        return Err(format!(
            "{:?} must be 1 to {LABEL_MAX} characters",
            shorten(value)
        ));
    }
    let bytes = value.as_bytes();
    let inner_ok = bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
    let ends_ok = bytes[0].is_ascii_alphanumeric() && bytes[bytes.len() - 1].is_ascii_alphanumeric();
    if inner_ok && ends_ok {
        Ok(())
    } else {
        Err(format!(
            "{:?} is not a DNS-1123 label (lower case letters, digits and '-', starting and \
             ending with a letter or digit)",
            shorten(value)
        ))
    }
}

/// A DNS-1123 subdomain (labels joined by `.`, at most 253 characters): an object's name.
pub fn check_subdomain(value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > SUBDOMAIN_MAX {
        return Err(format!(
            "{:?} must be 1 to {SUBDOMAIN_MAX} characters",
            shorten(value)
        ));
    }
    if value.split('.').all(|label| check_label(label).is_ok()) {
        Ok(())
    } else {
        Err(format!(
            "{:?} is not a DNS-1123 subdomain (lower case letters, digits, '-' and '.')",
            shorten(value)
        ))
    }
}

/// At most 60 characters of a value, for messages about values that may be kilobytes long.
fn shorten(value: &str) -> String {
    let mut short: String = value.chars().take(60).collect();
    if short.len() < value.len() {
        short.push('…');
    }
    short
}

/// A label selector (`app=web,tier in (a,b),!canary`), parsed and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSelector(Vec<Requirement>);

/// One term of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl LabelSelector {
    /// Parses Kubernetes' selector syntax. A selector that matches by value nowhere (empty,
    /// or only `!=`, `notin` and existence terms) is refused: it would select nearly every pod.
    pub fn parse(text: &str) -> Result<LabelSelector, String> {
        let terms =
            split_terms(text).ok_or_else(|| format!("{:?}: unbalanced parentheses", shorten(text)))?;
        let requirements = terms
            .iter()
            .map(|term| parse_term(term.trim()).map_err(|e| format!("selector {:?}: {e}", shorten(text))))
            .collect::<Result<Vec<_>, _>>()?;
        let narrows = requirements
            .iter()
            .any(|r| matches!(r, Requirement::Equals(..) | Requirement::In(..)));
        if !narrows {
            return Err(format!(
                "selector {:?} must match at least one label by value (= or in)",
                shorten(text)
            ));
        }
        Ok(LabelSelector(requirements))
    }
}

impl fmt::Display for LabelSelector {
    /// The canonical form: no spaces but inside sets, `=` for equality.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, requirement) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match requirement {
                Requirement::Equals(key, value) => write!(f, "{key}={value}")?,
                Requirement::NotEquals(key, value) => write!(f, "{key}!={value}")?,
                Requirement::In(key, values) => write!(f, "{key} in ({})", values.join(","))?,
                Requirement::NotIn(key, values) => write!(f, "{key} notin ({})", values.join(","))?,
                Requirement::Exists(key) => f.write_str(key)?,
                Requirement::DoesNotExist(key) => write!(f, "!{key}")?,
            }
        }
        Ok(())
    }
}

/// Splits at the commas outside parentheses; None if parentheses do not balance.
fn split_terms(text: &str) -> Option<Vec<&str>> {
    let (mut terms, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if !(0..=1).contains(&depth) {
            return None;
        }
    }
    terms.push(&text[start..]);
    (depth == 0).then_some(terms)
}

fn parse_term(term: &str) -> Result<Requirement, String> {
    if let Some(key) = term.strip_prefix('!') {
        return Ok(Requirement::DoesNotExist(key_checked(key.trim())?));
    }
    for (operator, negated) in [("!=", true), ("==", false), ("=", false)] {
        if let Some((key, value)) = term.split_once(operator) {
            let (key, value) = (key_checked(key.trim())?, value_checked(value.trim())?);
            return Ok(if negated {
                Requirement::NotEquals(key, value)
            } else {
                Requirement::Equals(key, value)
            });
        }
    }
    if let Some(open) = term.find('(') {
        let head: Vec<&str> = term[..open].split_whitespace().collect();
        let set = term[open + 1..]
            .strip_suffix(')')
            .ok_or_else(|| format!("{term:?}: expected ')' at the end"))?;
        let values = set
            .split(',')
            .map(|v| value_checked(v.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        return match head.as_slice() {
            [key, "in"] => Ok(Requirement::In(key_checked(key)?, values)),
            [key, "notin"] => Ok(Requirement::NotIn(key_checked(key)?, values)),
            _ => Err(format!("{term:?}: expected KEY in (...) or KEY notin (...)")),
        };
    }
    Ok(Requirement::Exists(key_checked(term)?))
}

/// A label key: an optional DNS subdomain prefix and `/`, then a name of at most 63
/// characters (letters, digits, `-`, `_`, `.`, starting and ending with a letter or digit).
fn key_checked(key: &str) -> Result<String, String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        check_subdomain(prefix).map_err(|e| format!("label key prefix: {e}"))?;
    }
    if name.is_empty() || !is_label_value(name) {
        return Err(format!("{:?} is not a label key", shorten(key)));
    }
    Ok(key.to_owned())
}

/// A label value: empty, or as a key's name part.
fn value_checked(value: &str) -> Result<String, String> {
    if value.is_empty() || is_label_value(value) {
        Ok(value.to_owned())
    } else {
        Err(format!("{:?} is not a label value", shorten(value)))
    }
}

fn is_label_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    value.len() <= LABEL_MAX
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_dns_labels() {
        for good in ["prod", "a", "whiteboard-production", "x1", &"a".repeat(63)] {
            assert!(check_label(good).is_ok(), "{good}");
        }
        let long = "a".repeat(64);
        for bad in [
            "",
            "Prod",
            "-a",
            "a-",
            "a.b",
            "kube-system/x",
            "..",
            "a b",
            "a%2Fb",
            &long,
        ] {
            assert!(check_label(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn object_names_are_dns_subdomains() {
        for good in ["web", "web.v1", "a-b.c-d", "x"] {
            assert!(check_subdomain(good).is_ok(), "{good}");
        }
        let long = format!("{}.{}", "a".repeat(200), "b".repeat(60));
        for bad in [
            "", "Web", "a..b", ".a", "a.", "../etc", "a/b", "a?b", "a#b", "a%2Fb", "a b", &long,
        ] {
            assert!(check_subdomain(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn selectors_parse_and_print_in_one_canonical_form() {
        let canonical = |text: &str| LabelSelector::parse(text).map(|s| s.to_string());
        assert_eq!(canonical("app=web"), Ok("app=web".into()));
        assert_eq!(
            canonical(" app == web , tier!=db "),
            Ok("app=web,tier!=db".into())
        );
        assert_eq!(
            canonical("app in (web, api),!canary,track"),
            Ok("app in (web,api),!canary,track".into())
        );
        assert_eq!(
            canonical("app.kubernetes.io/name=web,env notin (dev)"),
            Ok("app.kubernetes.io/name=web,env notin (dev)".into())
        );
        for bad in [
            "",
            "!canary",
            "tier!=db",
            "app=web&x=1",
            "app=web/../x",
            "app=we b",
            "app in (web",
            "app=web)",
            "app=web#",
            "app=web?x",
            "a$pp=web",
            "app=web,=x",
            &format!("app={}", "v".repeat(64)),
        ] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
