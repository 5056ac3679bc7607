//! The buttons of medic's Slack messages, as one type: what a button does is minted here when
//! a message is built and read back here when Slack sends the click, so the two cannot drift.

use std::time::Duration;

use serde_json::{json, Value};

use crate::domain::HumanDuration;

/// What a button asks medic to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Button {
    /// Acknowledge the incident.
    Acknowledge(i64),
    /// Silence the incident's alerts in Alertmanager for this long.
    Silence(i64, Duration),
    /// Approve a remediation step waiting for a person.
    Approve(i64),
    /// Reject it.
    Reject(i64),
}

impl Button {
    /// Slack's `action_id`.
    pub fn action_id(&self) -> &'static str {
        match self {
            Button::Acknowledge(_) => "medic_ack",
            Button::Silence(..) => "medic_silence",
            Button::Approve(_) => "medic_approve",
            Button::Reject(_) => "medic_reject",
        }
    }

    /// Slack's `value`: the id the act is about (and a silence's length).
    fn value(&self) -> String {
        match self {
            Button::Acknowledge(id) | Button::Approve(id) | Button::Reject(id) => id.to_string(),
            Button::Silence(id, duration) => format!("{id}:{}", HumanDuration(*duration)),
        }
    }

    /// What people see on it.
    fn label(&self) -> String {
        match self {
            Button::Acknowledge(_) => "Acknowledge".into(),
            Button::Silence(_, duration) => format!("Silence {}", HumanDuration(*duration)),
            Button::Approve(_) => "Approve".into(),
            Button::Reject(_) => "Reject".into(),
        }
    }

    fn style(&self) -> Option<&'static str> {
        match self {
            Button::Acknowledge(_) | Button::Approve(_) => Some("primary"),
            Button::Reject(_) => Some("danger"),
            Button::Silence(..) => None,
        }
    }

    /// The Block Kit element.
    pub fn element(&self) -> Value {
        let mut button = json!({
            "type": "button",
            "text": {"type": "plain_text", "text": self.label()},
            "action_id": self.action_id(),
            "value": self.value(),
        });
        if let Some(style) = self.style() {
            button["style"] = json!(style);
        }
        button
    }

    /// The button Slack says was clicked, or why it is none of medic's.
    pub fn parse(action_id: &str, value: &str) -> Result<Button, String> {
        let id = |text: &str| text.parse::<i64>().map_err(|_| format!("not an id: {text:?}"));
        match action_id {
            "medic_ack" => Ok(Button::Acknowledge(id(value)?)),
            "medic_silence" => {
                // Buttons from before the length was in the value silenced for an hour.
                let (incident, duration) = value.split_once(':').unwrap_or((value, "1h"));
                let duration = HumanDuration::parse(duration).map_err(|e| e.to_string())?;
                Ok(Button::Silence(id(incident)?, duration.0))
            }
            "medic_approve" => Ok(Button::Approve(id(value)?)),
            "medic_reject" => Ok(Button::Reject(id(value)?)),
            other => Err(format!("medic has no action {other:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_button_reads_back_as_it_was_minted() {
        let hour = Duration::from_secs(3600);
        for button in [
            Button::Acknowledge(7),
            Button::Silence(7, hour),
            Button::Approve(9),
            Button::Reject(9),
        ] {
            let element = button.element();
            let read = Button::parse(
                element["action_id"].as_str().unwrap(),
                element["value"].as_str().unwrap(),
            );
            assert_eq!(read, Ok(button));
        }
        assert_eq!(Button::Silence(7, hour).element()["text"]["text"], "Silence 1h");
        assert!(Button::parse("medic_nuke", "1").is_err());
        assert!(Button::parse("medic_ack", "x").is_err());
    }
}
