//! Configuration loading: YAML text plus `MEDIC_*` variables, loaded and compiled as
//! `check-config` does. Problems are reported, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| medic::fuzzing::config(data));
