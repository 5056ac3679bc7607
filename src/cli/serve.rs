//! `medic serve`: compile the settings once, then run until SIGTERM or SIGINT.

use std::{path::PathBuf, process::ExitCode};

use crate::{config::Source, plan, startup::Application, telemetry};

pub async fn run(file: Option<PathBuf>) -> ExitCode {
    let (settings, plan) = match plan::load(&Source::from_process(file)) {
        Ok(loaded) => loaded,
        Err(problems) => {
            eprintln!("{problems}");
            return ExitCode::FAILURE;
        }
    };
    telemetry::init(settings.log.format);
    let served = async {
        Application::build(settings, plan)
            .await?
            .run_until_stopped()
            .await?;
        Ok(())
    };
    super::exit_with(served.await)
}
