//! Two-way: a Slack app's one message per incident (posted, updated, threaded) against a local
//! server answering as Slack's Web API does; its signed button clicks; PagerDuty Webhooks v3
//! back into medic; and silences in a real Alertmanager 0.25.

mod config;
mod pagerduty;
mod setup;
mod silences;
mod slack_buttons;
mod slack_messages;
