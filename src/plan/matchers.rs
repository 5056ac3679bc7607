//! Alertmanager-compatible label matchers, as written in a `matchers:` config list.
//!
//! The syntax follows Alertmanager's parser: `name op value`, where `op` is one of `=`, `!=`, `=~`,
//! `!~`; the value is double-quoted (with the escapes `\"`, `\\` and `\n`) or bare (up to the next
//! comma or closing brace, trimmed). One string may hold several matchers separated by commas,
//! optionally wrapped in braces: `{alertname="X", severity=~"critical|page"}`. Label names are
//! `[a-zA-Z_][a-zA-Z0-9_]*`, or any non-empty double-quoted string (Alertmanager's UTF-8 mode).
//! Regexes are anchored at both ends, and a missing label matches as the empty string.

use std::collections::BTreeMap;
use std::fmt;

use regex::Regex;

/// The comparison a [`Matcher`] makes between a label's value and its own value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`: the label equals the value.
    Equal,
    /// `!=`: the label differs from the value.
    NotEqual,
    /// `=~`: the whole label matches the regex.
    Regex,
    /// `!~`: the whole label does not match the regex.
    NotRegex,
}

impl Op {
    /// The operator as written in a matcher: `=`, `!=`, `=~` or `!~`.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Equal => "=",
            Op::NotEqual => "!=",
            Op::Regex => "=~",
            Op::NotRegex => "!~",
        }
    }

    fn is_regex(self) -> bool {
        matches!(self, Op::Regex | Op::NotRegex)
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A matcher or matcher list that could not be parsed: the text, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid matcher {input:?}: {message}")]
pub struct MatcherError {
    /// The text that failed to parse (one whole config entry).
    pub input: String,
    /// What is wrong with it.
    pub message: String,
}

impl MatcherError {
    fn new(input: &str, message: String) -> MatcherError {
        MatcherError {
            input: input.to_owned(),
            message,
        }
    }
}

/// One matcher: label name, operator, value. Regexes are anchored (`^(?:...)$`), as in Alertmanager.
#[derive(Debug, Clone)]
pub struct Matcher {
    name: String,
    op: Op,
    value: String,
    regex: Option<Regex>,
}

impl Matcher {
    /// Builds a matcher from its parts, compiling the value when `op` is a regex operator.
    pub fn new(name: &str, op: Op, value: &str) -> Result<Matcher, MatcherError> {
        build(name.to_owned(), op, value.to_owned())
            .map_err(|message| MatcherError::new(&format!("{name}{op}{value:?}"), message))
    }

    /// Parses exactly one matcher, such as `alertname="X"` or `severity =~ "critical|page"`.
    pub fn parse(text: &str) -> Result<Matcher, MatcherError> {
        let mut cur = Cursor::new(text);
        let parsed = matcher(&mut cur).and_then(|m| {
            cur.skip_ws();
            cur.expect_end("after matcher").map(|()| m)
        });
        parsed.map_err(|message| MatcherError::new(text, message))
    }

    /// The label name this matcher looks at.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The comparison this matcher makes.
    pub fn op(&self) -> Op {
        self.op
    }

    /// The value (or regex source, unanchored) as written, with escapes decoded.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// A missing label matches as the empty string (Alertmanager's rule), so `foo!="bar"` matches when
    /// foo is absent and `foo=""` matches absence.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let actual = labels.get(&self.name).map_or("", String::as_str);
        match (self.op, &self.regex) {
            (Op::Equal, _) => actual == self.value,
            (Op::NotEqual, _) => actual != self.value,
            (Op::Regex, Some(re)) => re.is_match(actual),
            (Op::NotRegex, Some(re)) => !re.is_match(actual),
            (Op::Regex | Op::NotRegex, None) => false,
        }
    }
}

impl fmt::Display for Matcher {
    /// Canonical form: `name="value"`, quoting the name only when it is not a plain identifier.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if is_plain_name(&self.name) {
            f.write_str(&self.name)?;
        } else {
            write_quoted(f, &self.name)?;
        }
        f.write_str(self.op.as_str())?;
        write_quoted(f, &self.value)
    }
}

/// A set of matchers that must all hold.
#[derive(Debug, Clone, Default)]
pub struct Matchers(Vec<Matcher>);

impl Matchers {
    /// Parses a config list: each entry is one matcher (`alertname="X"`), or several in one string
    /// separated by commas, optionally wrapped in braces: `{alertname="X", severity=~"critical|page"}`.
    /// Empty list = matches everything. An entry that holds no matcher at all is an error.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Matchers, MatcherError> {
        let mut all = Vec::new();
        for entry in entries {
            let text = entry.as_ref();
            all.extend(entry_matchers(text).map_err(|message| MatcherError::new(text, message))?);
        }
        Ok(Matchers(all))
    }

    /// True when every matcher holds for `labels` (always true for an empty set).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|m| m.matches(labels))
    }

    /// The matchers, in the order they were written.
    pub fn iter(&self) -> impl Iterator<Item = &Matcher> {
        self.0.iter()
    }

    /// True when there are no matchers (the set matches everything).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Matchers {
    /// Brace form: `{a="b", c=~"d"}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, m) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{m}")?;
        }
        f.write_str("}")
    }
}

fn build(name: String, op: Op, value: String) -> Result<Matcher, String> {
    if name.is_empty() {
        return Err("empty label name".to_owned());
    }
    let regex = if op.is_regex() {
        let anchored = format!("^(?:{value})$");
        Some(Regex::new(&anchored).map_err(|e| format!("invalid regex {value:?}: {e}"))?)
    } else {
        None
    };
    Ok(Matcher {
        name,
        op,
        value,
        regex,
    })
}

fn is_plain_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c == '_' || c.is_ascii_alphabetic()) && chars.all(is_name_char)
}

fn is_name_char(c: char) -> bool {
    c == '_' || c.is_ascii_alphanumeric()
}

fn write_quoted(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    f.write_str("\"")?;
    for c in text.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            other => write!(f, "{other}")?,
        }
    }
    f.write_str("\"")
}

/// A position in the text being parsed.
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Cursor<'a> {
        Cursor { text, pos: 0 }
    }

    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn eat(&mut self, token: &str) -> bool {
        let found = self.rest().starts_with(token);
        if found {
            self.pos += token.len();
        }
        found
    }

    fn skip_ws(&mut self) {
        self.take_while(char::is_whitespace);
    }

    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> &'a str {
        let rest = self.rest();
        let len = rest.find(|c: char| !keep(c)).unwrap_or(rest.len());
        self.pos += len;
        &rest[..len]
    }

    fn expect_end(&self, context: &str) -> Result<(), String> {
        match self.rest() {
            "" => Ok(()),
            rest => Err(format!("unexpected text {rest:?} {context}")),
        }
    }
}

/// One config entry: matchers separated by commas, optionally in braces.
fn entry_matchers(text: &str) -> Result<Vec<Matcher>, String> {
    let mut cur = Cursor::new(text);
    cur.skip_ws();
    let braced = cur.eat("{");
    let list = matcher_list(&mut cur, braced)?;
    if braced && !cur.eat("}") {
        return Err(match cur.peek() {
            None => "missing closing brace '}'".to_owned(),
            Some(_) => format!("expected ',' or '}}' after matcher, found {:?}", cur.rest()),
        });
    }
    cur.skip_ws();
    cur.expect_end(if braced {
        "after closing brace"
    } else {
        "after matcher"
    })?;
    if list.is_empty() {
        return Err("no matchers in entry".to_owned());
    }
    Ok(list)
}

/// Comma-separated matchers up to the end of the text, or up to `}` when `braced`. A trailing comma
/// is allowed; an empty item between two commas is not.
fn matcher_list(cur: &mut Cursor<'_>, braced: bool) -> Result<Vec<Matcher>, String> {
    let mut list = Vec::new();
    loop {
        cur.skip_ws();
        if cur.peek().is_none() || (braced && cur.peek() == Some('}')) {
            return Ok(list);
        }
        list.push(matcher(cur)?);
        cur.skip_ws();
        if !cur.eat(",") {
            return Ok(list);
        }
    }
}

fn matcher(cur: &mut Cursor<'_>) -> Result<Matcher, String> {
    cur.skip_ws();
    let name = label_name(cur)?;
    cur.skip_ws();
    let op = operator(cur, &name)?;
    cur.skip_ws();
    let value = label_value(cur, &name, op)?;
    build(name, op, value)
}

fn label_name(cur: &mut Cursor<'_>) -> Result<String, String> {
    if cur.peek() == Some('"') {
        let name = quoted(cur, "label name")?;
        return if name.is_empty() {
            Err("empty label name".to_owned())
        } else {
            Ok(name)
        };
    }
    let name = cur.take_while(is_name_char);
    match (name.chars().next(), cur.peek()) {
        (Some(first), _) if first.is_ascii_digit() => Err(format!(
            "label name {name:?} must start with a letter or underscore"
        )),
        (Some(_), _) => Ok(name.to_owned()),
        (None, None) => Err("missing label name".to_owned()),
        (None, Some('=' | '!')) => Err("missing label name before operator".to_owned()),
        (None, Some(c)) => Err(format!("expected a label name, found {c:?}")),
    }
}

fn operator(cur: &mut Cursor<'_>, name: &str) -> Result<Op, String> {
    // `=~` before `=`, or the `~` would be read as part of the value.
    let ops = [Op::Regex, Op::NotRegex, Op::NotEqual, Op::Equal];
    if let Some(op) = ops.into_iter().find(|op| cur.eat(op.as_str())) {
        return Ok(op);
    }
    Err(match cur.peek() {
        None => format!("missing operator (=, !=, =~ or !~) after label name {name:?}"),
        Some(c) => format!("expected an operator (=, !=, =~ or !~) after label name {name:?}, found {c:?}"),
    })
}

fn label_value(cur: &mut Cursor<'_>, name: &str, op: Op) -> Result<String, String> {
    if cur.peek() == Some('"') {
        return quoted(cur, "value");
    }
    let start = cur.pos;
    let bare = cur.take_while(|c| c != ',' && c != '}').trim_end();
    // Leave the trailing whitespace unread; the caller skips it before looking at what follows.
    cur.pos = start + bare.len();
    if bare.is_empty() {
        return Err(format!(
            "missing value after {name}{op} (write \"\" for an empty value)"
        ));
    }
    if bare.contains('"') {
        return Err(format!(
            "unquoted value {bare:?} contains a double quote; quote the whole value"
        ));
    }
    Ok(bare.to_owned())
}

/// A double-quoted string starting at the cursor, with `\"`, `\\` and `\n` decoded.
fn quoted(cur: &mut Cursor<'_>, what: &str) -> Result<String, String> {
    let start = cur.pos;
    cur.bump();
    let mut out = String::new();
    loop {
        match cur.bump() {
            Some('"') => return Ok(out),
            Some('\\') => out.push(escape(cur, what)?),
            Some(c) => out.push(c),
            None => {
                let text = &cur.text[start..];
                return Err(format!(
                    "unterminated quoted {what} {text} (missing closing '\"')"
                ));
            }
        }
    }
}

fn escape(cur: &mut Cursor<'_>, what: &str) -> Result<char, String> {
    match cur.bump() {
        Some('n') => Ok('\n'),
        Some(c @ ('"' | '\\')) => Ok(c),
        Some(c) => Err(format!(
            "unknown escape \\{c} in quoted {what} (only \\\", \\\\ and \\n are allowed)"
        )),
        None => Err(format!("unterminated quoted {what} (ends in a backslash)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn one(text: &str) -> Matcher {
        Matcher::parse(text).unwrap()
    }

    fn error(text: &str) -> String {
        Matcher::parse(text).unwrap_err().message
    }

    fn list_error(entries: &[&str]) -> MatcherError {
        Matchers::parse(entries).unwrap_err()
    }

    fn all(entries: &[&str]) -> Matchers {
        Matchers::parse(entries).unwrap()
    }

    #[test]
    fn equal_matches_only_the_exact_value() {
        let m = one(r#"alertname="Disk""#);
        assert_eq!((m.name(), m.op(), m.value()), ("alertname", Op::Equal, "Disk"));
        assert!(m.matches(&labels(&[("alertname", "Disk")])));
        assert!(!m.matches(&labels(&[("alertname", "DiskFull")])));
    }

    #[test]
    fn not_equal_rejects_the_value_and_accepts_others() {
        let m = one(r#"env!="prod""#);
        assert_eq!(m.op(), Op::NotEqual);
        assert!(!m.matches(&labels(&[("env", "prod")])));
        assert!(m.matches(&labels(&[("env", "staging")])));
    }

    #[test]
    fn regex_matches_any_alternative() {
        let m = one(r#"severity=~"critical|page""#);
        assert_eq!(m.op(), Op::Regex);
        assert!(m.matches(&labels(&[("severity", "critical")])));
        assert!(m.matches(&labels(&[("severity", "page")])));
        assert!(!m.matches(&labels(&[("severity", "warning")])));
    }

    #[test]
    fn not_regex_rejects_matching_values() {
        let m = one(r#"instance!~"db-.*""#);
        assert_eq!(m.op(), Op::NotRegex);
        assert!(!m.matches(&labels(&[("instance", "db-1")])));
        assert!(m.matches(&labels(&[("instance", "web-1")])));
    }

    #[test]
    fn regex_matchers_are_anchored() {
        let m = one(r#"job=~"foo""#);
        assert!(m.matches(&labels(&[("job", "foo")])));
        assert!(!m.matches(&labels(&[("job", "foobar")])));
        assert!(!m.matches(&labels(&[("job", "barfoo")])));
        let alternatives = one(r#"job=~"a|b""#);
        assert!(!alternatives.matches(&labels(&[("job", "ab")])));
    }

    #[test]
    fn missing_labels_match_as_the_empty_string() {
        let none = labels(&[]);
        assert!(one(r#"foo!="bar""#).matches(&none));
        assert!(one(r#"foo="""#).matches(&none));
        assert!(!one(r#"foo="bar""#).matches(&none));
        assert!(one(r#"foo=~".*""#).matches(&none));
        assert!(!one(r#"foo=~".+""#).matches(&none));
        assert!(one(r#"foo!~".+""#).matches(&none));
    }

    #[test]
    fn quoted_value_escapes_are_decoded() {
        assert_eq!(one(r#"a="say \"hi\"""#).value(), r#"say "hi""#);
        assert_eq!(one(r#"a="back\\slash""#).value(), r"back\slash");
        assert_eq!(one(r#"a="two\nlines""#).value(), "two\nlines");
    }

    #[test]
    fn display_prints_the_canonical_form_and_parses_back() {
        let m = one(r#"  a =~ "x\"y\\z\nw"  "#);
        assert_eq!(m.to_string(), r#"a=~"x\"y\\z\nw""#);
        let again = one(&m.to_string());
        assert_eq!(
            (again.name(), again.op(), again.value()),
            (m.name(), m.op(), m.value())
        );
        assert_eq!(one("alertname=Foo").to_string(), r#"alertname="Foo""#);
    }

    #[test]
    fn whitespace_around_name_operator_and_value_is_allowed() {
        let m = one(" \tseverity  !=  \"info\" ");
        assert_eq!((m.name(), m.op(), m.value()), ("severity", Op::NotEqual, "info"));
    }

    #[test]
    fn unquoted_values_are_accepted_and_trimmed() {
        let m = one("alertname = Foo Bar  ");
        assert_eq!(m.value(), "Foo Bar");
        let list = all(&["{alertname=Foo , severity=~crit.* }"]);
        let values: Vec<_> = list.iter().map(Matcher::value).collect();
        assert_eq!(values, ["Foo", "crit.*"]);
    }

    #[test]
    fn quoted_label_names_are_supported() {
        let m = one(r#""service name"="api""#);
        assert_eq!(m.name(), "service name");
        assert!(m.matches(&labels(&[("service name", "api")])));
        assert_eq!(m.to_string(), r#""service name"="api""#);
    }

    #[test]
    fn braces_hold_several_matchers() {
        let list = all(&[r#"{alertname="X", severity=~"critical|page"}"#]);
        assert_eq!(list.iter().count(), 2);
        assert!(list.matches(&labels(&[("alertname", "X"), ("severity", "page")])));
        assert!(!list.matches(&labels(&[("alertname", "X"), ("severity", "info")])));
        assert!(!list.matches(&labels(&[("alertname", "Y"), ("severity", "page")])));
        assert_eq!(list.to_string(), r#"{alertname="X", severity=~"critical|page"}"#);
    }

    #[test]
    fn several_matchers_may_share_an_entry_without_braces() {
        let list = all(&[r#"a="1", b!="2""#]);
        assert_eq!(list.iter().map(Matcher::name).collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn all_entries_must_hold() {
        let list = all(&[r#"a="1""#, "b=~2|3"]);
        assert!(list.matches(&labels(&[("a", "1"), ("b", "3")])));
        assert!(!list.matches(&labels(&[("a", "1"), ("b", "4")])));
    }

    #[test]
    fn an_empty_list_matches_everything() {
        let list = Matchers::parse::<&str>(&[]).unwrap();
        assert!(list.is_empty());
        assert!(list.matches(&labels(&[("anything", "at all")])));
        assert!(Matchers::default().matches(&labels(&[])));
    }

    #[test]
    fn commas_inside_quoted_values_do_not_split() {
        let list = all(&[r#"a="x,y", b="z""#]);
        assert_eq!(list.iter().map(Matcher::value).collect::<Vec<_>>(), ["x,y", "z"]);
    }

    #[test]
    fn closing_braces_inside_quoted_values_are_literal() {
        let list = all(&[r#"{a="}", b="{x}"}"#]);
        assert_eq!(list.iter().map(Matcher::value).collect::<Vec<_>>(), ["}", "{x}"]);
    }

    #[test]
    fn a_trailing_comma_is_allowed() {
        assert_eq!(all(&[r#"{a="1",}"#]).iter().count(), 1);
        assert_eq!(all(&[r#"a="1","#]).iter().count(), 1);
    }

    #[test]
    fn an_unterminated_quote_is_an_error() {
        assert!(error(r#"a="abc"#).contains("unterminated quoted value"));
        assert!(error(r#"a="abc\"#).contains("ends in a backslash"));
        assert!(error(r#""abc=1"#).contains("unterminated quoted label name"));
    }

    #[test]
    fn an_unknown_escape_is_an_error() {
        assert!(error(r#"a="x\ty""#).contains(r"unknown escape \t"));
    }

    #[test]
    fn a_missing_operator_is_an_error() {
        assert!(error("alertname").contains("missing operator"));
        assert!(error(r#"alertname "X""#).contains("expected an operator"));
        assert!(error(r#"alertname~"X""#).contains("expected an operator"));
    }

    #[test]
    fn an_empty_name_is_an_error() {
        assert!(error(r#"="X""#).contains("missing label name"));
        assert!(error(r#"""="X""#).contains("empty label name"));
        assert!(error("").contains("missing label name"));
        assert!(error(r#"-a="X""#).contains("expected a label name"));
    }

    #[test]
    fn a_name_starting_with_a_digit_is_an_error() {
        assert!(error(r#"9lives="X""#).contains("must start with a letter or underscore"));
    }

    #[test]
    fn a_missing_value_is_an_error() {
        assert!(error("a=").contains("missing value"));
        assert!(error("a= ,").contains("missing value"));
    }

    #[test]
    fn a_quote_inside_an_unquoted_value_is_an_error() {
        assert!(error(r#"a=x"y"#).contains("contains a double quote"));
    }

    #[test]
    fn trailing_garbage_is_an_error() {
        assert!(error(r#"a="1" b"#).contains(r#"unexpected text "b""#));
        assert!(error(r#"a="1", b="2""#).contains("unexpected text"));
        assert!(list_error(&[r#"a="1" junk"#]).message.contains("unexpected text"));
        assert!(list_error(&[r#"{a="1"} junk"#])
            .message
            .contains("after closing brace"));
        assert!(list_error(&["a=b}"]).message.contains(r#"unexpected text "}""#));
    }

    #[test]
    fn an_invalid_regex_reports_the_regex_error() {
        let message = error(r#"a=~"(unclosed""#);
        assert!(message.starts_with(r#"invalid regex "(unclosed""#), "{message}");
        assert!(message.contains("unclosed group"), "{message}");
    }

    #[test]
    fn a_missing_closing_brace_is_an_error() {
        assert!(list_error(&[r#"{a="1""#])
            .message
            .contains("missing closing brace"));
        assert!(list_error(&[r#"{a="}""#])
            .message
            .contains("missing closing brace"));
    }

    #[test]
    fn empty_items_and_entries_are_errors() {
        assert!(list_error(&[r#"a="1",,b="2""#])
            .message
            .contains("expected a label name, found ','"));
        assert!(list_error(&[""]).message.contains("no matchers"));
        assert!(list_error(&["{ }"]).message.contains("no matchers"));
    }

    #[test]
    fn errors_name_the_whole_entry() {
        let err = list_error(&[r#"a="1""#, r#"{b="2", c=~"("}"#]);
        assert_eq!(err.input, r#"{b="2", c=~"("}"#);
        assert!(err
            .to_string()
            .starts_with(r#"invalid matcher "{b=\"2\", c=~\"(\"}": invalid regex"#));
    }

    #[test]
    fn new_builds_and_validates_a_matcher() {
        let m = Matcher::new("job", Op::Regex, "api|web").unwrap();
        assert!(m.matches(&labels(&[("job", "web")])));
        assert!(Matcher::new("job", Op::Regex, "(").is_err());
        assert!(Matcher::new("", Op::Equal, "x").is_err());
    }
}
