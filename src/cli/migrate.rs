//! `medic migrate`: apply the schema migrations and exit. Needs only the database settings,
//! so a migration job carries no notifier or webhook secrets.

use std::{path::PathBuf, process::ExitCode};

use crate::{
    config::{self, Source},
    store::Store,
};

pub async fn run(file: Option<PathBuf>) -> ExitCode {
    let loaded = config::load(&Source::from_process(file));
    super::lifecycle::with_loaded(
        loaded,
        |settings| (settings.log.format, None),
        |settings| async move {
            let store = Store::new(&settings.database)?;
            let applied = store.migrate().await?;
            tracing::info!(applied, "migrations done");
            store.close();
            Ok(())
        },
    )
    .await
}
