//! `medic serve`: compile the settings once, then run until SIGTERM or SIGINT.

use std::{path::PathBuf, process::ExitCode};

use crate::{config::Source, plan, startup::Application};

pub async fn run(file: Option<PathBuf>) -> ExitCode {
    let loaded = plan::load(&Source::from_process(file));
    super::lifecycle::with_loaded(
        loaded,
        |(settings, _)| (settings.log.format, Some(&settings.telemetry.otlp)),
        |(settings, plan)| async {
            Application::build(settings, plan)
                .await?
                .run_until_stopped()
                .await?;
            Ok(())
        },
    )
    .await
}
