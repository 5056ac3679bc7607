//! Settings: defaults, the YAML file, environment overrides, and `medic check-config`.

use std::{collections::HashMap, process::Command};

use medic::config::{load, LogFormat, Source};
use secrecy::ExposeSecret;

use crate::helpers::config::{check_config, yaml};

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_are_sensible() {
    let settings = load(&Source {
        file: None,
        env: env(&[("MEDIC_SERVER__AUTH__BEARER_TOKEN", "t")]),
    })
    .unwrap();
    assert_eq!(settings.server.listen.to_string(), "0.0.0.0:9095");
    assert_eq!(settings.server.body_limit_bytes, 1024 * 1024);
    assert_eq!(settings.log.format, LogFormat::Json);
    assert!(settings.database.migrate_on_start);
    assert_eq!(
        settings.remediation.approval.timeout.0,
        std::time::Duration::from_secs(15 * 60),
        "remediation.approval.timeout"
    );
}

#[test]
fn the_environment_overrides_the_file() {
    let file = yaml(
        "server:\n  listen: 127.0.0.1:1000\n  auth:\n    bearer_token: from-file\nlog:\n  format: text\n",
    );
    let settings = load(&Source {
        file: Some(file.path().into()),
        env: env(&[
            ("MEDIC_SERVER__LISTEN", "127.0.0.1:2000"),
            ("MEDIC_SERVER__AUTH__BEARER_TOKEN", "00123"),
        ]),
    })
    .unwrap();
    assert_eq!(settings.server.listen.to_string(), "127.0.0.1:2000");
    let token = medic::plan::compile(&settings)
        .unwrap()
        .credentials
        .webhook_token
        .unwrap()
        .current()
        .expect("a token");
    assert_eq!(
        token.expose_secret(),
        "00123",
        "a numeric-looking token must stay a string"
    );
    assert_eq!(settings.log.format, LogFormat::Text);
}

#[test]
fn database_url_is_honoured_when_medic_database_url_is_unset() {
    let base = [
        ("MEDIC_SERVER__AUTH__BEARER_TOKEN", "t"),
        ("DATABASE_URL", "postgres://a@db-one/x"),
    ];
    let settings = load(&Source {
        file: None,
        env: env(&base),
    })
    .unwrap();
    assert_eq!(settings.database.url.expose_secret(), "postgres://a@db-one/x");

    let mut both = base.to_vec();
    both.push(("MEDIC_DATABASE__URL", "postgres://b@db-two/y"));
    let settings = load(&Source {
        file: None,
        env: env(&both),
    })
    .unwrap();
    assert_eq!(settings.database.url.expose_secret(), "postgres://b@db-two/y");
}

#[test]
fn unknown_keys_are_errors_that_name_every_key() {
    let file = yaml("server:\n  listen: 127.0.0.1:1\n  lisen: x\n  auth:\n    bearer_tokn: y\ndatabse: {}\n");
    let problems = load(&Source {
        file: Some(file.path().into()),
        env: env(&[
            ("MEDIC_SERVER__AUTH__BEARER_TOKEN", "t"),
            ("MEDIC_LOG__LEVEL", "debug"),
        ]),
    })
    .unwrap_err();
    let text = problems.to_string();
    for key in ["server.lisen", "server.auth.bearer_tokn", "databse", "log.level"] {
        assert!(
            text.contains(&format!("{key}: unknown key")),
            "{key} missing from:\n{text}"
        );
    }
}

#[test]
fn secrets_are_never_printed() {
    let settings = load(&Source {
        file: None,
        env: env(&[
            ("MEDIC_SERVER__AUTH__BEARER_TOKEN", "very-secret-token"),
            ("MEDIC_DATABASE__URL", "postgres://u:very-secret-password@h/db"),
        ]),
    })
    .unwrap();
    let printed = format!("{settings:?} {:?}", medic::plan::compile(&settings).unwrap());
    assert!(!printed.contains("very-secret"), "{printed}");

    let problems = load(&Source {
        file: None,
        env: env(&[
            ("MEDIC_SERVER__AUTH__BEARER_TOKEN", "t"),
            ("MEDIC_DATABASE__URL", "postgres://u:very-secret@h:notaport/db"),
        ]),
    })
    .unwrap_err();
    assert!(problems.to_string().contains("database.url"), "{problems}");
    assert!(!problems.to_string().contains("very-secret"), "{problems}");
}

#[test]
fn check_config_prints_every_problem_with_its_key_path_and_fails() {
    let file = yaml(
        "server:\n  body_limit_bytes: 0\n  auth:\n    bearer_token: a\n    bearer_token_file: /nonexistent\n  extra: 1\n\
         database:\n  max_connections: 0\n",
    );

    let (code, stdout) = check_config(file.path(), &[]);
    assert_eq!(code, Some(1));
    for expected in [
        "server.extra: unknown key",
        "server.auth.bearer_token: set either server.auth.bearer_token or server.auth.bearer_token_file",
        "server.body_limit_bytes: must be greater than 0",
        "database.max_connections: must be greater than 0",
    ] {
        assert!(stdout.contains(expected), "{expected:?} missing from:\n{stdout}");
    }
}

#[test]
fn check_config_accepts_the_example_config() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/medic.example.yaml");

    let output = Command::new(env!("CARGO_BIN_EXE_medic"))
        .args(["check-config", example])
        .env_clear()
        .env("MEDIC_SERVER__AUTH__BEARER_TOKEN", "t")
        .output()
        .unwrap();

    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[test]
fn check_config_reports_a_wrong_type_with_its_path() {
    let file = yaml("server:\n  listen: not-an-address\n  auth:\n    allow_unauthenticated: true\n");

    let output = Command::new(env!("CARGO_BIN_EXE_medic"))
        .arg("check-config")
        .arg(file.path())
        .env_clear()
        .output()
        .unwrap();

    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("server.listen:"), "{stdout}");
}

#[test]
fn variables_kubernetes_injects_for_a_service_named_medic_are_not_settings() {
    let settings = load(&Source {
        file: None,
        env: env(&[
            ("MEDIC_SERVER__AUTH__BEARER_TOKEN", "t"),
            ("MEDIC_SERVICE_HOST", "10.0.0.1"),
            ("MEDIC_SERVICE_PORT_HTTP", "9095"),
            ("MEDIC_PORT", "tcp://10.0.0.1:9095"),
            ("MEDIC_PORT_9095_TCP_ADDR", "10.0.0.1"),
        ]),
    });
    assert!(settings.is_ok(), "{:?}", settings.err());
    let typo = load(&Source {
        file: None,
        env: env(&[
            ("MEDIC_SERVER__AUTH__BEARER_TOKEN", "t"),
            ("MEDIC_SERVER__LISTN", "x"),
        ]),
    });
    let problems = typo.unwrap_err().0;
    assert_eq!(problems[0].path, "server.listn", "{problems:?}");
}

/// The key paths of every setting that has a default, walked through `Settings`' pretty
/// `Debug` form (a nested settings struct opens a block; anything else is a leaf).
fn setting_paths() -> Vec<String> {
    let text = format!("{:#?}", medic::config::Settings::default());
    let mut stack: Vec<String> = Vec::new();
    let mut paths = Vec::new();
    for line in text.lines().skip(1) {
        let indent = line.len() - line.trim_start().len();
        let depth = indent / 4;
        if depth != stack.len() + 1 {
            // A closing brace of a struct, or the inside of a leaf (a list, a tuple struct).
            if line.trim_start().starts_with('}') && depth == stack.len() {
                stack.pop();
            }
            continue;
        }
        let Some((name, value)) = line.trim().split_once(": ") else {
            continue;
        };
        let path = stack
            .iter()
            .chain([&name.to_owned()])
            .cloned()
            .collect::<Vec<_>>()
            .join(".");
        let nested = value.ends_with(" {") && value.starts_with(|c: char| c.is_ascii_uppercase());
        if nested {
            stack.push(name.to_owned());
        } else {
            paths.push(path);
        }
    }
    paths
}

/// The key paths the configuration reference documents: the first column of its tables, where
/// `.x` and `/ x` continue the previous key's parent.
fn documented_paths(reference: &str) -> Vec<String> {
    let mut documented = Vec::new();
    for row in reference.lines().filter(|l| l.starts_with("| `")) {
        let first = row.split(" | ").next().unwrap_or_default();
        let mut parent = String::new();
        for code in first.split('`').skip(1).step_by(2) {
            let code = code.replace("[]", "").replace("[i]", "");
            let full = if let Some(rest) = code.strip_prefix('.') {
                format!("{parent}.{rest}")
            } else if !code.contains('.') && !parent.is_empty() {
                format!("{parent}.{code}")
            } else {
                code.clone()
            };
            parent = full.rsplit_once('.').map_or(String::new(), |(p, _)| p.to_owned());
            documented.push(full);
        }
    }
    documented
}

#[test]
fn every_setting_is_in_the_configuration_reference() {
    let reference =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/src/configuration.md"))
            .expect("docs/src/configuration.md");
    let documented = documented_paths(&reference);
    let paths = setting_paths();
    assert!(paths.len() > 40, "the walk found too few settings: {paths:?}");
    let missing: Vec<&String> = paths
        .iter()
        .filter(|path| {
            // A documented key covers its own fields (`remediation.budget.per_target` its
            // `actions` and `window`), and a section is covered by any key inside it.
            !documented.iter().any(|d| {
                d == *path || d.starts_with(&format!("{path}.")) || path.starts_with(&format!("{d}."))
            })
        })
        .collect();
    assert!(
        missing.is_empty(),
        "settings missing from docs/src/configuration.md: {missing:?}"
    );
}
