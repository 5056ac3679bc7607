//! Every input the fuzz targets (`fuzz/`) ever crashed on, in `fuzz/regressions/<target>/`,
//! and their seed corpus, replayed through the same code on every test run.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut replayed = 0;
    for folder in ["regressions", "corpus"] {
        let Ok(entries) = std::fs::read_dir(root.join(folder).join(target)) else {
            continue;
        };
        for entry in entries.flatten() {
            let bytes = std::fs::read(entry.path()).unwrap();
            let outcome = std::panic::catch_unwind(|| run(&bytes));
            assert!(outcome.is_ok(), "{target}: {} panics", entry.path().display());
            replayed += 1;
        }
    }
    replayed
}

#[test]
fn every_kept_fuzz_input_runs_without_a_panic() {
    for (target, run) in [
        ("webhook_payload", medic::fuzzing::webhook_payload as fn(&[u8])),
        ("matchers", medic::fuzzing::matchers),
        ("config", medic::fuzzing::config),
        ("templates", medic::fuzzing::templates),
    ] {
        assert!(replay(target, run) > 0, "no input kept for {target}");
    }
}
