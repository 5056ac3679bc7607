//! Alertmanager matchers as rules and `filter` take them: parsing never panics, and a parsed
//! matcher written back parses to the same matcher.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| medic::fuzzing::matchers(data));
