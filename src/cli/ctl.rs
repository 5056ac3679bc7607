//! `medic ctl`: the people-in-control actions of a running medic from a terminal or a script,
//! as a thin client of its HTTP API: requests for approval, the remediation pause, and
//! maintenance windows. Exits 0 on success, 1 when medic refused or could not be reached
//! (with its status and reason), 2 for usage errors.

mod api;

use std::{path::PathBuf, process::ExitCode};

use chrono::{DateTime, SecondsFormat, Utc};
use clap::{Args, Subcommand, ValueEnum};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};

use self::api::{Api, Failure};
use crate::domain::HumanDuration;

/// Where medic is, who is asking, and how to print the answer.
#[derive(Debug, Args)]
pub struct Ctl {
    /// medic's base URL (where `medic serve` listens; `server.listen` is port 9095).
    #[arg(
        long,
        env = "MEDIC_URL",
        default_value = "http://127.0.0.1:9095",
        global = true
    )]
    url: String,
    /// An API token (a user's of `server.auth.users`). Other users of this machine can read it
    /// in `ps` while the command runs, and it stays in shell history: prefer --token-file.
    #[arg(long, env = "MEDIC_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// A file holding the API token (a trailing newline is ignored).
    #[arg(long, env = "MEDIC_TOKEN_FILE", value_name = "FILE", global = true)]
    token_file: Option<PathBuf>,
    /// `text` for people, `json` for scripts (the API's answer as it is).
    #[arg(long, short, value_enum, default_value_t, global = true)]
    output: Output,
    #[command(subcommand)]
    command: CtlCommand,
}

/// How answers are printed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
enum Output {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum CtlCommand {
    /// The requests waiting for approval, newest first (viewer).
    Approvals,
    /// Approve a waiting request: the step runs through every guard rail again now (responder).
    Approve(Decision),
    /// Reject a waiting request: the step is skipped and people take over (responder).
    Reject(Decision),
    /// Pause every remediation in every replica (admin).
    Pause {
        /// Why, for everyone who wonders why nothing acts.
        #[arg(long)]
        reason: String,
        /// Resume by itself then (RFC 3339, e.g. 2026-11-30T18:00:00Z).
        #[arg(long, conflicts_with = "for")]
        until: Option<DateTime<Utc>>,
        /// Resume by itself after this long (90m, 2h).
        #[arg(long = "for", id = "for", value_name = "DURATION", value_parser = HumanDuration::parse)]
        duration: Option<HumanDuration>,
    },
    /// Resume remediation (admin).
    Resume,
    /// Whether remediation is paused: by whom, why, until when (viewer).
    Paused,
    /// Maintenance windows: remediation and pages muted for matching alerts.
    Maintenance {
        #[command(subcommand)]
        command: MaintenanceCommand,
    },
}

#[derive(Debug, Args)]
struct Decision {
    /// The request's id (`medic ctl approvals`).
    id: i64,
    /// A note, recorded with the decision.
    #[arg(long)]
    note: Option<String>,
}

#[derive(Debug, Subcommand)]
enum MaintenanceCommand {
    /// Open a window (responder).
    Add(NewWindow),
    /// The windows in force now or ahead (viewer).
    List,
    /// End a window now; what it held resumes within seconds (responder).
    End {
        /// The window's id (`medic ctl maintenance list`).
        id: i64,
    },
}

#[derive(Debug, Args)]
struct NewWindow {
    /// An Alertmanager matcher, e.g. 'namespace="shop"'; repeat it: an alert is covered
    /// when all hold.
    #[arg(long = "matcher", required = true, value_name = "MATCHER")]
    matchers: Vec<String>,
    /// Why, for everyone who wonders why nothing pages.
    #[arg(long)]
    reason: String,
    #[command(flatten)]
    end: WindowEnd,
    /// When it starts (RFC 3339; default now).
    #[arg(long)]
    starts_at: Option<DateTime<Utc>>,
    /// What it mutes.
    #[arg(long, value_enum, default_value_t)]
    mute: Mute,
}

/// A window's end: a time, or a length from its start.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct WindowEnd {
    /// When it ends (RFC 3339).
    #[arg(long)]
    until: Option<DateTime<Utc>>,
    /// How long it lasts from its start (90m, 2h).
    #[arg(long = "for", value_name = "DURATION", value_parser = HumanDuration::parse)]
    duration: Option<HumanDuration>,
}

#[derive(Debug, Clone, Copy, Default, ValueEnum)]
enum Mute {
    Remediation,
    Pages,
    #[default]
    Both,
}

impl Mute {
    fn words(self) -> Vec<&'static str> {
        match self {
            Mute::Remediation => vec!["remediation"],
            Mute::Pages => vec!["pages"],
            Mute::Both => vec!["remediation", "pages"],
        }
    }
}

/// Runs `medic ctl`: prints the answer, or the reason on standard error.
pub async fn run(ctl: Ctl) -> ExitCode {
    match act(ctl).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {failure}");
            failure.exit_code()
        }
    }
}

async fn act(ctl: Ctl) -> Result<(), Failure> {
    let token = token(ctl.token, ctl.token_file.as_deref())?;
    let api = Api::new(&ctl.url, token)?;
    let output = ctl.output;
    let (answer, text) = match ctl.command {
        CtlCommand::Approvals => {
            let answer = api
                .call(Method::GET, "/api/v1/remediations?state=awaiting_approval", None)
                .await?;
            let text = approvals_table(&answer)?;
            (answer, text)
        }
        CtlCommand::Approve(decision) => decide(&api, "approve", decision).await?,
        CtlCommand::Reject(decision) => decide(&api, "reject", decision).await?,
        CtlCommand::Pause {
            reason,
            until,
            duration,
        } => {
            let until = until.or_else(|| duration.map(|d| after(Utc::now(), d)));
            let body = json!({"reason": reason, "until": until});
            let answer = api.call(Method::PUT, PAUSE, Some(&body)).await?;
            let text = pause_line(&answer)?;
            (answer, text)
        }
        CtlCommand::Resume => {
            let answer = api.call(Method::DELETE, PAUSE, None).await?;
            let text = if answer["was_paused"] == true {
                "remediation resumed".to_owned()
            } else {
                "remediation was not paused".to_owned()
            };
            (answer, text)
        }
        CtlCommand::Paused => {
            let answer = api.call(Method::GET, PAUSE, None).await?;
            let text = pause_line(&answer)?;
            (answer, text)
        }
        CtlCommand::Maintenance { command } => maintenance(&api, command).await?,
    };
    print(output, &answer, &text);
    Ok(())
}

const PAUSE: &str = "/api/v1/remediation/pause";
const MAINTENANCE: &str = "/api/v1/maintenance";

fn print(output: Output, answer: &Value, text: &str) {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(answer).unwrap_or_default()),
        Output::Text => println!("{}", text.trim_end()),
    }
}

/// The token from `--token` (or `MEDIC_TOKEN`) or from the file `--token-file` (or
/// `MEDIC_TOKEN_FILE`) names; none at all is allowed (a medic that lets anyone in).
fn token(token: Option<String>, file: Option<&std::path::Path>) -> Result<Option<String>, Failure> {
    let token = match (token, file) {
        (Some(_), Some(_)) => {
            return Err(Failure::Usage(
                "a token and a token file are both given (--token or MEDIC_TOKEN, --token-file or \
                 MEDIC_TOKEN_FILE): give one"
                    .into(),
            ))
        }
        (Some(token), None) => token,
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| Failure::Usage(format!("token file {}: {e}", path.display())))?,
        (None, None) => return Ok(None),
    };
    let token = token.trim();
    if token.is_empty() {
        return Err(Failure::Usage("the token is empty".into()));
    }
    // It goes into a header: say so here rather than as a failure to send.
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Failure::Usage(
            "the token holds a space or a control character".into(),
        ));
    }
    Ok(Some(token.to_owned()))
}

fn after(start: DateTime<Utc>, duration: HumanDuration) -> DateTime<Utc> {
    let duration = chrono::Duration::from_std(duration.0).unwrap_or(chrono::Duration::MAX);
    start
        .checked_add_signed(duration)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

async fn decide(api: &Api, verb: &str, decision: Decision) -> Result<(Value, String), Failure> {
    let path = format!("/api/v1/remediations/{}/{verb}", decision.id);
    let body = json!({"note": decision.note});
    let answer = api.call(Method::POST, &path, Some(&body)).await?;
    let text = format!(
        "remediation {} {} by {}",
        decision.id,
        answer["decision"].as_str().unwrap_or(verb),
        answer["decided_by"].as_str().unwrap_or("?"),
    );
    Ok((answer, text))
}

async fn maintenance(api: &Api, command: MaintenanceCommand) -> Result<(Value, String), Failure> {
    match command {
        MaintenanceCommand::Add(window) => {
            let starts_at = window.starts_at;
            let end = window.end;
            let ends_at = end
                .until
                .or_else(|| end.duration.map(|d| after(starts_at.unwrap_or_else(Utc::now), d)));
            let body = json!({
                "matchers": window.matchers,
                "starts_at": starts_at,
                "ends_at": ends_at,
                "mute": window.mute.words(),
                "reason": window.reason,
            });
            let answer = api.call(Method::POST, MAINTENANCE, Some(&body)).await?;
            let opened = parse::<Window>(&answer)?;
            Ok((answer, format!("opened maintenance window {}", opened.describe())))
        }
        MaintenanceCommand::List => {
            let answer = api.call(Method::GET, MAINTENANCE, None).await?;
            let text = windows_table(&answer)?;
            Ok((answer, text))
        }
        MaintenanceCommand::End { id } => {
            let answer = api
                .call(Method::DELETE, &format!("{MAINTENANCE}/{id}"), None)
                .await?;
            let ended = parse::<Window>(&answer)?;
            Ok((answer, format!("ended maintenance window {}", ended.describe())))
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(answer: &Value) -> Result<T, Failure> {
    T::deserialize(answer).map_err(|e| Failure::Garbled(format!("unexpected answer {answer}: {e}")))
}

/// A request for approval as `GET /api/v1/remediations` lists it.
#[derive(Debug, Deserialize)]
struct Request {
    id: i64,
    incident_id: i64,
    rule: String,
    step: i64,
    action: String,
    target: String,
    plan: Option<String>,
    requested_at: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize)]
struct Requests {
    remediations: Vec<Request>,
}

fn approvals_table(answer: &Value) -> Result<String, Failure> {
    let requests = parse::<Requests>(answer)?.remediations;
    if requests.is_empty() {
        return Ok("no request is waiting for approval".into());
    }
    let header = [
        "ID",
        "INCIDENT",
        "RULE",
        "STEP",
        "ACTION",
        "TARGET",
        "REQUESTED",
        "EXPIRES",
        "PLAN",
    ];
    let rows = requests.iter().map(|r| {
        vec![
            r.id.to_string(),
            r.incident_id.to_string(),
            r.rule.clone(),
            r.step.to_string(),
            r.action.clone(),
            r.target.clone(),
            time(r.requested_at),
            time(r.expires_at),
            r.plan.clone().unwrap_or_else(|| "-".into()),
        ]
    });
    Ok(table(&header, rows))
}

/// The pause as `GET /api/v1/remediation/pause` answers it.
#[derive(Debug, Deserialize)]
struct Pause {
    paused: bool,
    paused_by: Option<String>,
    reason: Option<String>,
    until: Option<DateTime<Utc>>,
    paused_at: Option<DateTime<Utc>>,
}

fn pause_line(answer: &Value) -> Result<String, Failure> {
    let pause = parse::<Pause>(answer)?;
    if !pause.paused {
        return Ok("remediation is not paused".into());
    }
    let until = match pause.until {
        Some(until) => format!("until {}", time(Some(until))),
        None => "until someone resumes it".into(),
    };
    Ok(format!(
        "remediation paused by {} at {}, {until}: {}",
        pause.paused_by.as_deref().unwrap_or("?"),
        time(pause.paused_at),
        pause.reason.as_deref().unwrap_or(""),
    ))
}

/// A maintenance window as the API shows it.
#[derive(Debug, Deserialize)]
struct Window {
    id: i64,
    matchers: Vec<String>,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    mute: Vec<String>,
    reason: String,
    created_by: String,
}

impl Window {
    fn describe(&self) -> String {
        format!(
            "{} ({}) from {} until {}, muting {}: {}",
            self.id,
            self.matchers.join(", "),
            time(Some(self.starts_at)),
            time(Some(self.ends_at)),
            self.mute.join(", "),
            self.reason,
        )
    }
}

#[derive(Debug, Deserialize)]
struct Windows {
    windows: Vec<Window>,
}

fn windows_table(answer: &Value) -> Result<String, Failure> {
    let windows = parse::<Windows>(answer)?.windows;
    if windows.is_empty() {
        return Ok("no maintenance window is in force or ahead".into());
    }
    let header = ["ID", "STARTS", "ENDS", "MUTE", "BY", "MATCHERS", "REASON"];
    let rows = windows.iter().map(|w| {
        vec![
            w.id.to_string(),
            time(Some(w.starts_at)),
            time(Some(w.ends_at)),
            w.mute.join(","),
            w.created_by.clone(),
            w.matchers.join(", "),
            w.reason.clone(),
        ]
    });
    Ok(table(&header, rows))
}

/// RFC 3339 to the second, as `--until` takes it back.
fn time(at: Option<DateTime<Utc>>) -> String {
    at.map_or_else(|| "-".into(), |at| at.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// Columns padded to their widest cell, two spaces apart; the last one is not padded, so a
/// long plan or reason does not widen every line.
fn table(header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let mut lines: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    lines.extend(rows.map(|row| row.into_iter().map(|cell| one_line(&cell)).collect()));
    let mut widths = vec![0; header.len()];
    for line in &lines {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for line in &lines {
        let last = line.len() - 1;
        for (i, cell) in line.iter().enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        out.push('\n');
    }
    out
}

/// A cell on one line: a person's text may hold newlines or a terminal's control characters.
fn one_line(cell: &str) -> String {
    cell.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}
