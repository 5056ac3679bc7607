//! Cluster context in Slack: the reply in the incident's thread (what the cluster said, the
//! headline first, the log lines as a code block) and the line on the incident's message.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::text::escape;
use crate::domain::{ClusterContext, ContextSummary};

/// Slack's limit on a section's text, with room to spare.
const SECTION_LIMIT: usize = 2900;

/// The thread reply: its fallback text and its blocks.
pub fn reply(context: &ClusterContext, opened_at: DateTime<Utc>) -> (String, Value) {
    let lines = context.lines(opened_at);
    let headline = lines.first().cloned().unwrap_or_else(|| "nothing to say".into());
    let text = format!("Cluster context: {headline}");
    let bullets: Vec<String> = lines.iter().map(|l| format!("• {}", escape(l))).collect();
    let body = cut(&format!("*Cluster context*\n{}", bullets.join("\n")));
    let mut blocks = vec![json!({"type": "section", "text": {"type": "mrkdwn", "text": body}})];
    if let Some(logs) = context.logs.as_ref().filter(|l| !l.lines.is_empty()) {
        let which = if logs.previous { ", previous instance" } else { "" };
        let code = logs.lines.join("\n").replace("```", "'''");
        let text = cut(&format!(
            "Last {} lines of {}/{}{which}:\n```{}```",
            logs.lines.len(),
            escape(&logs.pod),
            escape(&logs.container),
            escape(&code)
        ));
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": text}}));
    }
    (escape(&text), Value::Array(blocks))
}

/// The line on the incident's message once the context is in.
pub fn line(summary: &ContextSummary) -> String {
    let said = summary
        .headline
        .as_deref()
        .or(summary.rollout.as_deref())
        .unwrap_or("gathered, see the thread");
    escape(&format!("Cluster context: {said}"))
}

/// At most [`SECTION_LIMIT`] bytes, on a character boundary.
fn cut(text: &str) -> String {
    if text.len() <= SECTION_LIMIT {
        return text.to_owned();
    }
    let end = (0..=SECTION_LIMIT)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    format!("{}…", &text[..end])
}
