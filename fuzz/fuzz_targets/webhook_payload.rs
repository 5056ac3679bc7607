//! The webhook body, as medic parses and checks it: JSON into Alertmanager's `Data`, then the
//! domain's checks into a `Notification`. Nothing may panic; an accepted notification keeps
//! distinct episodes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| medic::fuzzing::webhook_payload(data));
