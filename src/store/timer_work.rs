//! A timer's work as a row, and back: the one place that knows what the columns whose meaning
//! depends on the kind hold (`step`, `notifier`, `subject`, `occurrence`), and that writes and
//! reads the JSON `payload`. Everything else speaks [`TimerWork`].
//!
//! | kind | `notifier` | `subject` | `payload` |
//! |---|---|---|---|
//! | opened, acknowledged, resolved, context_ready | the notifier | empty | none |
//! | escalation | the notifier | empty | none, or `handover` and `remediation_tried` |
//! | remediation, verify | the action | the alert episode | the [`RemediationJob`] |
//! | remediated | the notifier | the remediation's id (`<id>/verify` for its verification) | `action`, `target`, `result`, `summary` |
//! | approval | the notifier | the remediation's id | `remediation_id`, `action`, `target`, `plan`, `expires_at` |
//! | context | `context` | empty | none |
//!
//! The shapes are those every earlier version wrote, so that during a rolling update either
//! version reads the other's timers.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::{
    Action, ApprovalQuestion, Handover, RemediationJob, RemediationReport, RemediationWork, TimerKind,
    TimerWork, TriedStep,
};

/// A timer's work as the columns that store it.
#[derive(Debug, Clone, PartialEq)]
pub struct TimerRow {
    pub kind: TimerKind,
    pub step: i32,
    pub notifier: String,
    pub subject: String,
    /// The repeat an escalation is at (written by the engine as it repeats; 0 when scheduled).
    pub occurrence: i32,
    pub payload: Option<Value>,
}

/// The `notifier` column of a `context` timer, which goes to no notifier.
const CONTEXT: &str = "context";
/// The end of a verification report's subject, after the remediation's id.
const VERIFY: &str = "/verify";

/// The row that stores `work`.
pub fn encode(work: &TimerWork) -> TimerRow {
    let (notifier, subject) = key(work);
    let payload = match work {
        TimerWork::Escalation { handover, .. } => handover.as_ref().map(handover_payload),
        TimerWork::Remediation(work) | TimerWork::Verify(work) => Some(job_payload(&work.job)),
        TimerWork::Remediated { report, .. } => Some(report_payload(report)),
        TimerWork::Approval { question, .. } => Some(approval_payload(question)),
        TimerWork::Opened { .. }
        | TimerWork::Acknowledged { .. }
        | TimerWork::Resolved { .. }
        | TimerWork::ContextReady { .. }
        | TimerWork::Context => None,
    };
    TimerRow {
        kind: work.kind(),
        step: work.step(),
        notifier,
        subject,
        occurrence: work.occurrence(),
        payload,
    }
}

/// The `notifier` and `subject` columns of `work`: with its incident, kind, rule and step,
/// the key that schedules a timer once (without building its payload).
pub fn key(work: &TimerWork) -> (String, String) {
    match work {
        TimerWork::Opened { notifier }
        | TimerWork::Acknowledged { notifier }
        | TimerWork::Resolved { notifier }
        | TimerWork::ContextReady { notifier }
        | TimerWork::Escalation { notifier, .. } => (notifier.clone(), String::new()),
        TimerWork::Remediation(work) | TimerWork::Verify(work) => {
            (work.action.as_str().to_owned(), work.episode.clone())
        }
        TimerWork::Remediated { notifier, report } => (notifier.clone(), report_subject(report)),
        TimerWork::Approval { notifier, question } => (notifier.clone(), question.remediation_id.to_string()),
        TimerWork::Context => (CONTEXT.to_owned(), String::new()),
    }
}

/// The work a stored row describes, or why it cannot be read (damaged, or written by a
/// version that stored it otherwise): never made up.
pub(super) fn decode(row: TimerRow) -> Result<TimerWork, String> {
    let TimerRow {
        kind,
        step,
        notifier,
        subject,
        occurrence,
        payload,
    } = row;
    Ok(match kind {
        TimerKind::Opened => TimerWork::Opened { notifier },
        TimerKind::Acknowledged => TimerWork::Acknowledged { notifier },
        TimerKind::Resolved => TimerWork::Resolved { notifier },
        TimerKind::ContextReady => TimerWork::ContextReady { notifier },
        TimerKind::Context => TimerWork::Context,
        TimerKind::Escalation => TimerWork::Escalation {
            notifier,
            step,
            occurrence,
            handover: payload.and_then(handover),
        },
        TimerKind::Remediation => TimerWork::Remediation(remediation(notifier, step, subject, payload)?),
        TimerKind::Verify => TimerWork::Verify(remediation(notifier, step, subject, payload)?),
        TimerKind::Remediated => TimerWork::Remediated {
            notifier,
            report: report(&subject, payload)?,
        },
        TimerKind::Approval => TimerWork::Approval {
            notifier,
            question: approval(payload)?,
        },
    })
}

/// The action a remediation or verify row names, when it names one this build knows; for
/// counting a row that cannot be decoded otherwise.
pub(super) fn action_of(kind: TimerKind, notifier: &str) -> Option<Action> {
    matches!(kind, TimerKind::Remediation | TimerKind::Verify)
        .then(|| Action::parse(notifier))
        .flatten()
}

/// The payload of a remediation or verify timer.
pub(super) fn job_payload(job: &RemediationJob) -> Value {
    serde_json::to_value(job).unwrap_or_default()
}

/// The keys merged into an escalation timer's payload when a ladder hands the incident over.
pub(super) fn handover_payload(handover: &Handover) -> Value {
    serde_json::to_value(HandoverOut {
        handover: &handover.text,
        remediation_tried: handover.tried.as_deref(),
    })
    .unwrap_or_default()
}

/// The payload of a report to the rule's channels.
pub(super) fn report_payload(report: &RemediationReport) -> Value {
    serde_json::to_value(ReportPayload {
        action: report.action.clone(),
        target: report.target.clone(),
        result: report.result.clone(),
        summary: report.summary.clone(),
    })
    .unwrap_or_default()
}

/// The subject of a report: one per remediation, and one for its verification.
pub(super) fn report_subject(report: &RemediationReport) -> String {
    match report.verification {
        true => format!("{}{VERIFY}", report.remediation_id),
        false => report.remediation_id.to_string(),
    }
}

/// The payload of a request for approval.
pub(super) fn approval_payload(question: &ApprovalQuestion) -> Value {
    serde_json::to_value(ApprovalPayload {
        remediation_id: question.remediation_id,
        action: question.action.clone(),
        target: question.target.clone(),
        plan: question.plan.clone(),
        expires_at: question.expires_at,
    })
    .unwrap_or_default()
}

/// What a ladder tried, as merged into an escalation's payload: `handover` is the line (all
/// that earlier versions stored), `remediation_tried` the steps.
#[derive(Serialize)]
struct HandoverOut<'a> {
    handover: &'a str,
    remediation_tried: Option<&'a [TriedStep]>,
}

/// [`HandoverOut`] read back, leniently: any other keys are ignored, and steps that cannot be
/// read leave the line standing.
#[derive(Deserialize)]
struct HandoverIn {
    handover: Option<Value>,
    remediation_tried: Option<Value>,
}

#[derive(Serialize, Deserialize)]
struct ReportPayload {
    action: String,
    target: String,
    result: String,
    summary: String,
}

#[derive(Serialize, Deserialize)]
struct ApprovalPayload {
    remediation_id: i64,
    action: String,
    target: String,
    plan: String,
    /// Written by the database as `2026-11-26T10:00:00.123456+00:00` by earlier versions.
    expires_at: Option<DateTime<Utc>>,
}

/// An escalation's handover: None when the step was not brought forward by a ladder.
fn handover(payload: Value) -> Option<Handover> {
    let HandoverIn {
        handover,
        remediation_tried,
    } = serde_json::from_value(payload).ok()?;
    let text = handover?.as_str()?.to_owned();
    let tried = remediation_tried.and_then(|steps| serde_json::from_value::<Vec<TriedStep>>(steps).ok());
    Some(Handover { text, tried })
}

fn remediation(
    notifier: String,
    step: i32,
    episode: String,
    payload: Option<Value>,
) -> Result<RemediationWork, String> {
    let job = job(payload)?;
    let action =
        Action::parse(&notifier).ok_or_else(|| format!("unknown remediation action {notifier:?}"))?;
    Ok(RemediationWork {
        action,
        step,
        episode,
        job,
    })
}

/// A remediation job: never one without its alert episode, or without parameters or why
/// there are none.
fn job(payload: Option<Value>) -> Result<RemediationJob, String> {
    let payload = payload.ok_or("the remediation timer has no payload")?;
    let job: RemediationJob =
        serde_json::from_value(payload).map_err(|e| format!("undecodable remediation job: {e}"))?;
    if job.fingerprint.is_empty() {
        return Err("undecodable remediation job: empty fingerprint".into());
    }
    if job.params.is_none() && job.error.is_none() {
        return Err("undecodable remediation job: neither params nor error".into());
    }
    Ok(job)
}

fn report(subject: &str, payload: Option<Value>) -> Result<RemediationReport, String> {
    let undecodable = |why: String| format!("undecodable remediation report: {why}");
    let (id, verification) = match subject.strip_suffix(VERIFY) {
        Some(id) => (id, true),
        None => (subject, false),
    };
    let remediation_id = id
        .parse()
        .map_err(|_| undecodable(format!("subject {subject:?} names no remediation")))?;
    let payload = payload.ok_or_else(|| undecodable("no payload".into()))?;
    let ReportPayload {
        action,
        target,
        result,
        summary,
    } = serde_json::from_value(payload).map_err(|e| undecodable(e.to_string()))?;
    Ok(RemediationReport {
        remediation_id,
        verification,
        action,
        target,
        result,
        summary,
    })
}

fn approval(payload: Option<Value>) -> Result<ApprovalQuestion, String> {
    let undecodable = |why: String| format!("undecodable request for approval: {why}");
    let payload = payload.ok_or_else(|| undecodable("no payload".into()))?;
    let ApprovalPayload {
        remediation_id,
        action,
        target,
        plan,
        expires_at,
    } = serde_json::from_value(payload).map_err(|e| undecodable(e.to_string()))?;
    Ok(ApprovalQuestion {
        remediation_id,
        action,
        target,
        plan,
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::{ActionParams, Verification};

    fn job() -> RemediationJob {
        let params: ActionParams =
            serde_json::from_value(json!({"namespace": "shop", "deployment": "web"})).expect("parameters");
        RemediationJob {
            params: Some(params),
            error: None,
            fingerprint: "0123abcd".into(),
            starts_at: "2026-11-26T10:00:00.123456Z".parse().expect("time"),
            labels: [("alertname".to_owned(), "HighLatency".to_owned())].into(),
            annotations: [("summary".to_owned(), "slow".to_owned())].into(),
        }
    }

    fn step(action: &str, result: &str) -> TriedStep {
        TriedStep {
            action: action.into(),
            target: "deployment/shop/web".into(),
            result: result.into(),
            verification: "not_fixed".into(),
            note: None,
        }
    }

    /// One work of every kind, with every field that kind carries set.
    fn every_kind() -> Vec<TimerWork> {
        let remediation = RemediationWork {
            action: Action::ScaleUp,
            step: 2,
            episode: "0123abcd@2026-11-26T10:00:00.123456Z".into(),
            job: job(),
        };
        let report = RemediationReport {
            remediation_id: 42,
            verification: false,
            action: "scale_up".into(),
            target: "deployment/shop/web".into(),
            result: "success".into(),
            summary: "2 → 3 replicas".into(),
        };
        vec![
            TimerWork::Opened {
                notifier: "slack".into(),
            },
            TimerWork::Escalation {
                notifier: "pd".into(),
                step: 2,
                occurrence: 3,
                handover: Some(Handover::new(vec![step("scale_up", "success")])),
            },
            TimerWork::Escalation {
                notifier: "pd".into(),
                step: 1,
                occurrence: 0,
                handover: None,
            },
            TimerWork::Acknowledged {
                notifier: "slack".into(),
            },
            TimerWork::Resolved {
                notifier: "slack".into(),
            },
            TimerWork::Remediation(remediation.clone()),
            TimerWork::Remediated {
                notifier: "slack".into(),
                report: report.clone(),
            },
            TimerWork::Remediated {
                notifier: "slack".into(),
                report: RemediationReport::of_verification(
                    42,
                    "scale_up",
                    "deployment/shop/web",
                    Verification::NotFixed,
                ),
            },
            TimerWork::Verify(remediation),
            TimerWork::Approval {
                notifier: "slack".into(),
                question: ApprovalQuestion {
                    remediation_id: 7,
                    action: "rollout_restart".into(),
                    target: "deployment/shop/web".into(),
                    plan: "would restart 3 pods".into(),
                    expires_at: Some("2026-11-26T10:30:00.5Z".parse().expect("time")),
                },
            },
            TimerWork::Context,
            TimerWork::ContextReady {
                notifier: "slack-app".into(),
            },
        ]
    }

    #[test]
    fn every_kind_of_work_reads_back_as_itself() {
        let works = every_kind();
        let kinds: std::collections::BTreeSet<&str> = works.iter().map(|w| w.kind().as_str()).collect();
        assert_eq!(
            kinds.len(),
            TimerKind::ALL.len(),
            "a kind is missing from the test"
        );
        for work in works {
            let row = encode(&work);
            assert_eq!(row.kind, work.kind());
            // Through the database's JSON, as a claim reads it.
            let row = TimerRow {
                payload: row
                    .payload
                    .map(|p| serde_json::from_str(&p.to_string()).expect("JSON")),
                ..row
            };
            assert_eq!(decode(row).as_ref(), Ok(&work));
        }
    }

    #[test]
    fn rows_keep_the_columns_earlier_versions_wrote() {
        let works = every_kind();
        let rows: Vec<TimerRow> = works.iter().map(encode).collect();
        let remediation = &rows[5];
        assert_eq!(
            (
                remediation.notifier.as_str(),
                remediation.subject.as_str(),
                remediation.step
            ),
            ("scale_up", "0123abcd@2026-11-26T10:00:00.123456Z", 2)
        );
        assert_eq!(rows[6].subject, "42");
        assert_eq!(rows[7].subject, "42/verify");
        assert_eq!(rows[9].subject, "7");
        assert_eq!(rows[10].notifier, "context");
        assert_eq!(
            rows[6].payload,
            Some(
                json!({"action": "scale_up", "target": "deployment/shop/web", "result": "success",
                        "summary": "2 → 3 replicas"})
            )
        );
        assert_eq!(
            rows[7].payload.as_ref().map(|p| p["summary"].clone()),
            Some(json!("the alert still fires after verify_within"))
        );
        let handover = rows[1].payload.clone().expect("handover");
        assert_eq!(
            handover["handover"],
            "automatic remediation did not fix it: scale_up (success, not fixed)"
        );
        assert_eq!(handover["remediation_tried"][0]["action"], "scale_up");
    }

    /// What earlier versions stored, as the database wrote it: an approval's time with an
    /// offset, an escalation handed over with only the line (and with other keys beside it), a
    /// job without annotations, a first step numbered 0.
    #[test]
    fn rows_written_by_earlier_versions_are_read() {
        let row = |kind, step, notifier: &str, subject: &str, payload: Value| TimerRow {
            kind,
            step,
            notifier: notifier.into(),
            subject: subject.into(),
            occurrence: 0,
            payload: Some(payload),
        };
        let approval = decode(row(
            TimerKind::Approval,
            0,
            "slack",
            "7",
            json!({"remediation_id": 7, "action": "scale_up", "target": "deployment/shop/web",
                   "plan": "would scale", "expires_at": "2026-11-26T10:30:00.123456+00:00"}),
        ));
        let Ok(TimerWork::Approval { question, .. }) = approval else {
            panic!("{approval:?}")
        };
        assert_eq!(
            question.expires_at,
            Some("2026-11-26T10:30:00.123456Z".parse().expect("time"))
        );

        let text = "automatic remediation did not fix it: scale_up (failure)";
        let escalation = decode(row(
            TimerKind::Escalation,
            1,
            "pd",
            "",
            json!({"handover": text, "other": 1}),
        ));
        let Ok(TimerWork::Escalation { handover, .. }) = escalation else {
            panic!("{escalation:?}")
        };
        assert_eq!(
            handover,
            Some(Handover {
                text: text.into(),
                tried: None
            })
        );
        let damaged = json!({"handover": "x", "remediation_tried": "not a list"});
        let Ok(TimerWork::Escalation { handover, .. }) =
            decode(row(TimerKind::Escalation, 1, "pd", "", damaged))
        else {
            panic!("an escalation")
        };
        assert_eq!(handover.and_then(|h| h.tried), None);

        let old_job = json!({"params": {"namespace": "prod"}, "error": null, "fingerprint": "abc",
                             "starts_at": "2026-11-26T15:53:17.755987Z", "labels": {"alertname": "X"}});
        let remediation = decode(row(TimerKind::Remediation, 0, "scale_up", "abc@x", old_job));
        let Ok(TimerWork::Remediation(work)) = remediation else {
            panic!("{remediation:?}")
        };
        assert_eq!((work.step, work.episode.as_str()), (0, "abc@x"));
        assert_eq!(work.job.params().map(|p| p.text("namespace")), Ok(Some("prod")));
        assert!(work.job.annotations.is_empty());
    }

    #[test]
    fn an_escalation_without_a_handover_has_none() {
        for payload in [
            None,
            Some(json!({})),
            Some(json!({"handover": 3})),
            Some(json!("text")),
        ] {
            let row = TimerRow {
                kind: TimerKind::Escalation,
                step: 1,
                notifier: "pd".into(),
                subject: String::new(),
                occurrence: 0,
                payload,
            };
            assert!(matches!(
                decode(row),
                Ok(TimerWork::Escalation { handover: None, .. })
            ));
        }
    }

    #[test]
    fn a_payload_that_is_not_what_its_kind_needs_is_an_error_not_made_up_work() {
        let row = |kind, notifier: &str, subject: &str, payload: Option<Value>| TimerRow {
            kind,
            step: 1,
            notifier: notifier.into(),
            subject: subject.into(),
            occurrence: 0,
            payload,
        };
        for bad in [
            None,
            Some(json!({})),
            Some(json!({"params": {}, "fingerprint": "", "starts_at": "2026-11-26T15:53:17Z", "labels": {}})),
            Some(json!({"params": {}, "fingerprint": "abc", "labels": {}})),
            Some(json!({"fingerprint": "abc", "starts_at": "2026-11-26T15:53:17Z", "labels": {}})),
            Some(json!("text")),
        ] {
            for kind in [TimerKind::Remediation, TimerKind::Verify] {
                let decoded = decode(row(kind, "scale_up", "abc@x", bad.clone()));
                assert!(decoded.is_err(), "{bad:?} decoded as {decoded:?}");
            }
        }
        let good = Some(job_payload(&job()));
        let unknown = decode(row(TimerKind::Remediation, "reboot_node", "abc@x", good));
        assert_eq!(unknown, Err("unknown remediation action \"reboot_node\"".into()));
        assert_eq!(action_of(TimerKind::Verify, "scale_to"), Some(Action::ScaleTo));
        assert_eq!(action_of(TimerKind::Opened, "scale_to"), None);

        let report = json!({"action": "a", "target": "t", "result": "success", "summary": "s"});
        assert!(decode(row(TimerKind::Remediated, "slack", "x", Some(report.clone()))).is_err());
        assert!(decode(row(TimerKind::Remediated, "slack", "42", None)).is_err());
        assert!(decode(row(
            TimerKind::Remediated,
            "slack",
            "42",
            Some(json!({"action": "a"}))
        ))
        .is_err());
        assert!(decode(row(TimerKind::Remediated, "slack", "42", Some(report))).is_ok());
        let question = json!({"action": "a", "target": "t", "plan": "p"});
        let refused = decode(row(TimerKind::Approval, "slack", "7", Some(question)));
        assert!(refused.is_err_and(|e| e.starts_with("undecodable request for approval: ")));
    }
}
