//! `medic migrate`: apply the schema migrations and exit. Needs only the database settings,
//! so a migration job carries no notifier or webhook secrets.

use std::{path::PathBuf, process::ExitCode};

use crate::{
    config::{self, Source},
    store::Store,
    telemetry,
};

pub async fn run(file: Option<PathBuf>) -> ExitCode {
    let settings = match config::load(&Source::from_process(file)) {
        Ok(settings) => settings,
        Err(problems) => {
            eprintln!("{problems}");
            return ExitCode::FAILURE;
        }
    };
    telemetry::init(settings.log.format);
    let migrated = async {
        let store = Store::new(&settings.database)?;
        let applied = store.migrate().await?;
        tracing::info!(applied, "migrations done");
        store.close();
        Ok(())
    };
    super::exit_with(migrated.await)
}
