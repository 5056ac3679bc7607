//! Service level objectives at work: the Prometheus rules that record each SLI's error ratio
//! and alert when the error budget burns too fast ([`rules`]).

pub mod rules;
