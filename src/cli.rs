//! The command line: `serve`, `migrate`, `check-config` and `explain`.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

use crate::{
    config::{self, Settings, Source},
    startup::Application,
    store::Store,
    telemetry,
};

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
}

impl Cli {
    /// Runs the chosen command.
    pub async fn run(self) -> ExitCode {
        match self.command {
            Command::Serve { config } => with_settings(config, serve).await,
            Command::Migrate { config } => with_settings(config, migrate).await,
            Command::CheckConfig { file } => check(file),
            Command::Explain { config, payload } => crate::explain::run(&config, &payload),
        }
    }
}

async fn with_settings<F, Fut>(file: Option<PathBuf>, run: F) -> ExitCode
where
    F: FnOnce(Settings) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let settings = match config::load(&Source::from_process(file)) {
        Ok(settings) => settings,
        Err(problems) => {
            eprintln!("{problems}");
            return ExitCode::FAILURE;
        }
    };
    telemetry::init(settings.log.format);
    match run(settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = ?e, "medic failed");
            eprintln!("error: {e:?}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    Application::build(settings).await?.run_until_stopped().await?;
    Ok(())
}

async fn migrate(settings: Settings) -> anyhow::Result<()> {
    let store = Store::new(&settings.database)?;
    let applied = store.migrate().await?;
    tracing::info!(applied, "migrations done");
    store.close();
    Ok(())
}

fn check(file: PathBuf) -> ExitCode {
    if !file.exists() {
        eprintln!("{}: no such file", file.display());
        return ExitCode::FAILURE;
    }
    match config::load(&Source::from_process(Some(file.clone()))) {
        Ok(_) => {
            println!("{}: ok", file.display());
            ExitCode::SUCCESS
        }
        Err(problems) => {
            println!("{}: {} problem(s)", file.display(), problems.0.len());
            for problem in &problems.0 {
                println!("  {problem}");
            }
            ExitCode::FAILURE
        }
    }
}
