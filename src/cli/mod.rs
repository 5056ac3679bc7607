//! The command line: `serve`, `migrate`, `check-config`, `explain` and `slo`, one file each.

mod check_config;
mod explain;
mod migrate;
mod serve;
mod slo;

use std::{future::Future, path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

use crate::{
    config::{LogFormat, Problems},
    telemetry,
};

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
        /// An Alertmanager webhook payload (JSON).
        payload: PathBuf,
    },
    /// Service level objectives.
    Slo {
        #[command(subcommand)]
        command: SloCommand,
    },
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
        }
    }
}

/// Runs `work` on what was loaded, once logging is set up; or prints every problem found.
async fn with_loaded<T, Fut>(
    loaded: Result<T, Problems>,
    log_format: impl Fn(&T) -> LogFormat,
    work: impl FnOnce(T) -> Fut,
) -> ExitCode
where
    Fut: Future<Output = anyhow::Result<()>>,
{
    let loaded = match loaded {
        Ok(loaded) => loaded,
        Err(problems) => {
            eprintln!("{problems}");
            return ExitCode::FAILURE;
        }
    };
    telemetry::init(log_format(&loaded));
    match work(loaded).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = ?e, "medic failed");
            eprintln!("error: {e:?}");
            ExitCode::FAILURE
        }
    }
}
