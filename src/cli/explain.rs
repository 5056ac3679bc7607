//! `medic explain`: what medic would do with a payload, from the compiled settings alone.

use std::{fmt::Write as _, path::Path, process::ExitCode};

use crate::{
    alertmanager::{Data, Status},
    config::Source,
    domain::{HumanDuration, Notification, TimerKind},
    plan::{self, Plan},
    remediation,
};

/// Prints the explanation; exit 1 if the config or the payload is not valid.
pub fn run(config_file: &Path, payload: &Path) -> ExitCode {
    match explain(config_file, payload) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// The explanation as text.
pub fn explain(config_file: &Path, payload: &Path) -> Result<String, String> {
    let mut source = Source::from_process(Some(config_file.to_owned()));
    // Explaining needs no credential for the webhook.
    source
        .env
        .insert("MEDIC_SERVER__AUTH__ALLOW_UNAUTHENTICATED".into(), "true".into());
    let (_, plan) = plan::load(&source).map_err(|p| p.to_string())?;
    let text = std::fs::read_to_string(payload).map_err(|e| format!("{}: {e}", payload.display()))?;
    let data: Data = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", payload.display()))?;
    let notification = Notification::parse(data).map_err(|e| format!("{}: {e}", payload.display()))?;
    Ok(describe(&plan, &notification))
}

fn describe(plan: &Plan, n: &Notification) -> String {
    let rails = &plan.guard_rails;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "group {} ({}), {} alert(s)",
        n.group_key,
        n.status.as_str(),
        n.alerts.len()
    );
    for alert in &n.alerts {
        let name = alert
            .labels
            .get("alertname")
            .map_or("(no alertname)", String::as_str);
        let _ = writeln!(out, "\nalert {name} [{}] {}", alert.status.as_str(), alert.key());
        if alert.status != Status::Firing {
            let _ = writeln!(out, "  resolved: no rule acts on it");
            continue;
        }
        let mut matched = false;
        for rule in plan.rules.matching(&alert.labels) {
            matched = true;
            let _ = writeln!(out, "  rule {}", rule.name);
            if rule.remediate.is_empty() {
                let _ = writeln!(out, "    no remediation");
            }
            for (number, remediate) in (1..).zip(&rule.remediate) {
                let step = if rule.remediate.len() > 1 {
                    format!(" (step {number})")
                } else {
                    String::new()
                };
                let verify = remediate
                    .verify_within
                    .map(|v| format!("; verify within {}", HumanDuration(v)))
                    .unwrap_or_default();
                let approval = if remediate.approval {
                    "; needs approval"
                } else {
                    ""
                };
                let dry_run = remediate.dry_run.unwrap_or(rails.dry_run);
                let action = remediate.action.as_str();
                let rendered = remediate.render(&alert.labels, &alert.annotations);
                match rendered.map(|p| remediate.action.validate(&p, &rails.limits).map_err(|e| (p, e))) {
                    Ok(Ok(params)) => {
                        let target = remediation::target_key(remediate.action, &params);
                        let namespace_ok = params
                            .text("namespace")
                            .is_none_or(|ns| rails.namespace_allowed(ns));
                        let params = serde_json::to_string(&params.0).unwrap_or_default();
                        let _ = writeln!(out, "    remediate{step}: {action} on {target} with {params}");
                        let _ = writeln!(
                        out,
                        "    dry run: {dry_run}; namespace allowed: {namespace_ok}; cooldown: {}{verify}{approval}",
                        HumanDuration(remediate.cooldown.unwrap_or(rails.cooldown))
                    );
                    }
                    Ok(Err((params, e))) => {
                        let params = serde_json::to_string(&params.0).unwrap_or_default();
                        let _ = writeln!(
                            out,
                            "    remediate{step}: {action} with {params} would be skipped_invalid: {e}"
                        );
                    }
                    Err(e) => {
                        let _ = writeln!(out, "    remediate{step}: {action} would fail: {e}");
                    }
                }
            }
        }
        if !matched {
            let _ = writeln!(out, "  no rule matches");
        }
    }
    let _ = writeln!(
        out,
        "\ntimers (if this notification opens the incident or adds these alerts):"
    );
    let timers = plan.rules.plan(n);
    if timers.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for timer in timers {
        let what = match timer.kind {
            TimerKind::Escalation => format!("escalation step {}", timer.step),
            kind => kind.as_str().to_owned(),
        };
        let repeat = timer
            .repeat
            .map(|r| format!(", repeating every {}", HumanDuration(r)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  +{:<8} {what:<20} {} (rule {}){repeat}",
            HumanDuration(timer.after).to_string(),
            timer.notifier,
            timer.rule
        );
    }
    out
}
