//! Settings in tests: YAML loaded and compiled as `medic serve` would, and the problems found.

use std::collections::HashMap;

use medic::{
    config::{Problem, Problems, Settings, Source},
    plan,
};

/// Accept anonymous callers, so that only what a test writes can be wrong.
pub const AUTH: &str = "server:\n  auth:\n    allow_unauthenticated: true\n";

pub fn yaml(text: &str) -> tempfile::NamedTempFile {
    let file = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    std::fs::write(file.path(), text).unwrap();
    file
}

/// Loads `AUTH` followed by `text`, with these environment variables only.
pub fn load_yaml(text: &str, vars: &[(&str, &str)]) -> Result<Settings, Problems> {
    let file = yaml(&format!("{AUTH}{text}"));
    plan::load(&Source {
        file: Some(file.path().into()),
        env: vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<HashMap<_, _>>(),
    })
    .map(|(settings, _)| settings)
}

/// The problems a config has; panics if it loads.
pub fn problems_in(text: &str) -> Vec<Problem> {
    match load_yaml(text, &[]) {
        Ok(_) => panic!("loaded, but should not have:\n{text}"),
        Err(problems) => problems.0,
    }
}

/// The problem at `path`, whose message must contain `message`.
#[track_caller]
pub fn assert_problem(problems: &[Problem], path: &str, message: &str) {
    let found = problems.iter().find(|p| p.path == path);
    match found {
        Some(problem) => assert!(
            problem.message.contains(message),
            "{path}: {:?} does not contain {message:?}; all problems: {problems:#?}",
            problem.message
        ),
        None => panic!("no problem at {path}; all problems: {problems:#?}"),
    }
}

/// `medic check-config FILE` with only these variables: its exit code and standard output.
pub fn check_config(file: &std::path::Path, vars: &[(&str, &str)]) -> (Option<i32>, String) {
    let (code, stdout, _) = medic(
        std::process::Command::new(env!("CARGO_BIN_EXE_medic"))
            .arg("check-config")
            .arg(file)
            .env_clear()
            .envs(vars.iter().copied()),
    );
    (code, stdout)
}

/// Runs a `medic` command line to its end: exit code, standard output, standard error.
pub fn medic(command: &mut std::process::Command) -> (Option<i32>, String, String) {
    let output = command.output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
