//! `medic replay`: what a settings file would have done with a period's recorded
//! notifications, compared with what medic did. Reads one read-only snapshot of the database
//! named by the settings; sends nothing, runs nothing, writes nothing. Exits 3 with
//! `--fail-on-change` when any incident's decisions differ, 1 on an error; clap exits 2 on a
//! usage error.

use std::{path::Path, process::ExitCode};

use chrono::{DateTime, Utc};
use clap::{Args, ValueEnum};

use crate::{
    config::Source,
    domain::HumanDuration,
    plan,
    replay::{self, report::Report},
    store::Store,
};

/// How the report is printed.
#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum Format {
    /// The summary and each incident's differences, for people.
    #[default]
    Text,
    /// The report as one JSON document (README: Replay).
    Json,
}

/// The period and how to report it.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The settings to try (`MEDIC_*` variables override it, as for `serve`); its `database:`
    /// is the one read.
    #[arg(long, short)]
    pub config: std::path::PathBuf,
    /// The period: this long before now.
    #[arg(long, value_parser = HumanDuration::parse, conflicts_with_all = ["from", "until"])]
    pub since: Option<HumanDuration>,
    /// The period's start, RFC 3339 (with --until).
    #[arg(long, requires = "until")]
    pub from: Option<DateTime<Utc>>,
    /// The period's end, RFC 3339 (with --from).
    #[arg(long, requires = "from")]
    pub until: Option<DateTime<Utc>>,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Exit 3 if any incident's decisions differ (for a settings repository's CI).
    #[arg(long)]
    pub fail_on_change: bool,
}

/// Exit status when decisions differ and `--fail-on-change` is given.
const CHANGED: u8 = 3;
/// The default period.
const DEFAULT_SINCE: std::time::Duration = std::time::Duration::from_secs(7 * 86_400);

/// Replays, prints the report, and says how it went.
pub async fn run(args: ReplayArgs) -> ExitCode {
    let report = match report(&args).await {
        Ok(report) => report,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match args.format {
        Format::Text => print!("{report}"),
        Format::Json => match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        },
    }
    if args.fail_on_change && report.changed > 0 {
        ExitCode::from(CHANGED)
    } else {
        ExitCode::SUCCESS
    }
}

/// Loads the settings, reads the snapshot and replays it.
pub async fn report(args: &ReplayArgs) -> Result<Report, String> {
    let (from, until) = period(args);
    let (settings, plan) = load(&args.config)?;
    let store = Store::new(&settings.database).map_err(|e| format!("{e:#}"))?;
    let report = replay::run(&store, &plan, from, until).await;
    store.close();
    report.map_err(|e| format!("reading the recorded history: {e}"))
}

fn period(args: &ReplayArgs) -> (DateTime<Utc>, DateTime<Utc>) {
    match (args.from, args.until) {
        (Some(from), Some(until)) => (from, until),
        _ => {
            let since = args.since.map_or(DEFAULT_SINCE, |s| s.0);
            let now = Utc::now();
            (
                now - chrono::TimeDelta::from_std(since).unwrap_or(chrono::TimeDelta::MAX),
                now,
            )
        }
    }
}

/// The settings to try, compiled; replay needs no webhook credential.
fn load(config: &Path) -> Result<(crate::config::Settings, plan::Plan), String> {
    let mut source = Source::from_process(Some(config.to_owned()));
    source
        .env
        .insert("MEDIC_SERVER__AUTH__ALLOW_UNAUTHENTICATED".into(), "true".into());
    plan::load(&source).map_err(|p| p.to_string())
}
