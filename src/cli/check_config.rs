//! `medic check-config FILE`: load and compile the settings as `serve` would, and print every
//! problem with its key path (exit 1), and every warning (exit 0).

use std::{path::Path, process::ExitCode};

use crate::{config::Source, plan};

pub fn run(file: &Path) -> ExitCode {
    if !file.exists() {
        eprintln!("{}: no such file", file.display());
        return ExitCode::FAILURE;
    }
    match plan::load(&Source::from_process(Some(file.to_owned()))) {
        Ok((_, plan)) => {
            for warning in &plan.warnings {
                println!("  warning: {warning}");
            }
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
