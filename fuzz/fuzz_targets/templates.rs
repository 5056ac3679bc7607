//! Parameter templates rendered from alert labels, and the checks of rendered values
//! (Kubernetes names, label selectors, counts, durations): never a panic, and a value that
//! passes is in canonical form (checking it again changes nothing).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| medic::fuzzing::templates(data));
