//! Service level objectives at work: the Prometheus rules that record each SLI's error ratio
//! and alert when the error budget burns too fast ([`rules`]), and the report that measures
//! each SLO in Prometheus beside the incidents that spent its budget ([`report`], asking
//! [`prometheus`]).

pub mod prometheus;
pub mod report;
pub mod rules;
