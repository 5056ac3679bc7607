//! `medic explain`: what medic would do with a payload (or labels), from the compiled settings
//! alone; the explanation itself is [`crate::plan::explain`], which the console shows too.

use std::{path::Path, process::ExitCode};

use crate::{
    config::Source,
    plan,
    plan::explain::{explain as describe, notification},
};

/// Prints the explanation; exit 1 if the config or the payload is not valid.
pub fn run(config_file: &Path, payload: &Path) -> ExitCode {
    match explain(config_file, payload) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// The explanation as text.
pub fn explain(config_file: &Path, payload: &Path) -> Result<String, String> {
    let mut source = Source::from_process(Some(config_file.to_owned()));
    // Explaining needs no credential for the webhook.
    source
        .env
        .insert("MEDIC_SERVER__AUTH__ALLOW_UNAUTHENTICATED".into(), "true".into());
    let (_, plan) = plan::load(&source).map_err(|p| p.to_string())?;
    let text = std::fs::read_to_string(payload).map_err(|e| format!("{}: {e}", payload.display()))?;
    let notification = notification(&text).map_err(|e| format!("{}: {e}", payload.display()))?;
    Ok(describe(&plan.rules, &plan.guard_rails, &notification).to_string())
}
