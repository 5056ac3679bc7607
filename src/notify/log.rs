//! The `log` notifier: the message as one line of medic's own log, nothing sent. A first run
//! on a laptop shows what Slack or PagerDuty would have received; in production a log
//! pipeline may forward it.

use super::message::Message;

/// Writes the message: its headline, and the summary, runbook and console link when there are.
pub fn write(notifier: &str, message: &Message<'_>) {
    let timer = message.timer;
    tracing::info!(
        notifier,
        incident_id = timer.incident.id,
        event = timer.kind().as_str(),
        rule = %timer.rule,
        severity = message.severity(),
        summary = message.summary(),
        runbook_url = message.runbook_url,
        dedup_key = %message.dedup_key(),
        "{}",
        message.headline()
    );
}
