//! The command line: `serve`, `migrate`, `check-config`, `explain`, `slo`, `capacity`, `replay` and `ctl`
//! (a client of a running medic's API), one file each.

mod capacity;
mod check_config;
mod ctl;
mod explain;
mod lifecycle;
mod migrate;
mod replay;
mod serve;
mod slo;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

pub use explain::explain;

/// medic: Alertmanager webhook receiver that turns alerts into safe action.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Receive notifications over HTTP until SIGTERM or SIGINT.
    Serve {
        /// YAML settings; `MEDIC_<SECTION>__<KEY>` variables override it.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Apply database migrations and exit.
    Migrate {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Check a settings file (with the environment's overrides); print every problem.
    CheckConfig {
        /// The YAML file to check.
        file: PathBuf,
    },
    /// Show what medic would do with an Alertmanager payload: the rule each alert matches, the
    /// action with its resolved parameters, and the timers it would schedule. Touches nothing.
    Explain {
        #[arg(long, short)]
        config: PathBuf,
        /// An Alertmanager webhook payload (JSON), or the labels of one alert (a JSON object, or
        /// matchers such as `alertname="X", namespace="shop"`).
        payload: PathBuf,
    },
    /// Service level objectives.
    Slo {
        #[command(subcommand)]
        command: SloCommand,
    },
    /// Forecast each Deployment of `capacity:` from its usage history in Prometheus: current
    /// utilisation, the 7- and 30-day forecast, the peak, the replicas it needs and the date
    /// capacity runs out.
    Capacity {
        /// The YAML settings (`capacity:`, `prometheus:`; secrets are not read).
        #[arg(long, short)]
        config: PathBuf,
        /// When the forecast is made (the history ends there), RFC 3339 (default: now).
        #[arg(long)]
        at: Option<chrono::DateTime<chrono::Utc>>,
        #[arg(long, value_enum, default_value_t)]
        format: capacity::Format,
    },
    /// Replay a period's recorded notifications under a settings file and show how its
    /// decisions differ from what medic did. Reads one read-only snapshot; sends nothing.
    Replay(replay::ReplayArgs),
    /// Act on a running medic through its API: approve or reject remediation steps, pause and
    /// resume remediation, open and end maintenance windows.
    Ctl(ctl::Ctl),
}

#[derive(Debug, Subcommand)]
enum SloCommand {
    /// Print the recording and burn-rate alerting rules for the settings' `slos:`.
    Rules {
        /// The YAML settings whose `slos:` to read (secrets are not read).
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long, value_enum, default_value_t)]
        format: slo::Format,
        /// The PrometheusRule object's name (`--format prometheusrule`).
        #[arg(long, default_value = "medic-slos")]
        name: String,
        /// A label of the PrometheusRule object, KEY=VALUE (e.g. the Prometheus Operator's
        /// `ruleSelector`'s); may be repeated.
        #[arg(long = "label")]
        labels: Vec<String>,
    },
    /// Measure each SLO in Prometheus, with the medic incidents that spent its error budget
    /// and the action items they call for.
    Report {
        /// The YAML settings (`slos:`, `prometheus:`, `database:`).
        #[arg(long, short)]
        config: PathBuf,
        /// The report's end, RFC 3339 (default: now).
        #[arg(long)]
        at: Option<chrono::DateTime<chrono::Utc>>,
        /// The report's period before `--at` (incidents, trend).
        #[arg(long, default_value = "7d", value_parser = crate::domain::HumanDuration::parse)]
        window: crate::domain::HumanDuration,
        #[arg(long, value_enum, default_value_t)]
        format: slo::ReportFormat,
    },
}

impl Cli {
    /// Runs the chosen command.
    pub async fn run(self) -> ExitCode {
        match self.command {
            Command::Serve { config } => serve::run(config).await,
            Command::Migrate { config } => migrate::run(config).await,
            Command::CheckConfig { file } => check_config::run(&file),
            Command::Explain { config, payload } => explain::run(&config, &payload),
            Command::Slo {
                command:
                    SloCommand::Rules {
                        config,
                        format,
                        name,
                        labels,
                    },
            } => slo::rules(&config, format, &name, &labels),
            Command::Slo {
                command:
                    SloCommand::Report {
                        config,
                        at,
                        window,
                        format,
                    },
            } => slo::report(&config, at, window.0, format).await,
            Command::Capacity { config, at, format } => capacity::run(&config, at, format).await,
            Command::Replay(args) => replay::run(args).await,
            Command::Ctl(ctl) => ctl::run(ctl).await,
        }
    }
}
