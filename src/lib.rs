//! medic receives Prometheus Alertmanager notifications and turns them into safe action.
//!
//! The house has floors; each module imports only floors below its own, and
//! `scripts/check-layers` (run by CI) keeps it so. From the top:
//!
//! 1. [`cli`]: one file per command (`serve`, `migrate`, `check-config`, `explain`, `slo`,
//!    `capacity`, `replay`, and `ctl`: a client of a running medic's API).
//!    `fuzzing`: what the fuzz targets in `fuzz/` run (hidden from the docs).
//! 2. [`startup`]: wires the compiled plan, the store, metrics, the HTTP server and the
//!    engine together, once.
//! 3. [`http`]: routes; the webhook handler parses, authenticates and stores, nothing more.
//!    [`engine`]: the timer engine every replica runs: the claim loop, firing a timer by its
//!    kind, the retry policy and the completion writer.
//! 4. [`acts`]: what people do, one command per act (acknowledge, approve, reject, windows,
//!    pause, resume, silences), with its role check, limits, store, audit, metrics and log;
//!    every surface calls it. [`intake`]: group commit of notifications. [`notify`]: Slack, PagerDuty and webhooks.
//!    [`remediation`]: guard rails, then the actions on Kubernetes and Postgres.
//!    [`metrics`]: what medic says about itself. [`telemetry`]: logs and traces. [`retention`]: pruning
//!    history. [`control`]: the maintenance windows and pause people switched, as this
//!    replica sees them. [`silences`]: silencing incidents in Alertmanager. [`slo`]: the
//!    recording and burn-rate rules for the service level objectives. [`capacity`]: each
//!    Deployment's usage forecast from Prometheus, and the replicas it will need.
//!    [`outbound`]: the one HTTP client builder for calls out, trusting the platform's CAs
//!    and `SSL_CERT_FILE`. [`context`]: what the cluster says about an incident's workload,
//!    gathered outside the page's way.
//!    [`replay`]: a period's recorded notifications run again under other settings on a
//!    virtual clock, from one read-only snapshot, and compared with what medic did.
//! 5. [`store`]: all SQL, with its own input and output types: incidents, alerts, deliveries,
//!    timers and their attempts, remediations, and the embedded migrations.
//! 6. [`plan`]: the settings compiled into what runs (credentials, notifiers, rules, guard
//!    rails, databases) with every check that spans sections; matching alerts to rules and
//!    planning the timers a notification asks for.
//! 7. [`config`]: the settings as plain data, with single-field checks.
//! 8. [`domain`], [`alertmanager`]: the shared vocabulary, and the wire format Alertmanager
//!    posts (version 4).

pub mod acts;
pub mod alertmanager;
pub mod capacity;
pub mod cli;
pub mod config;
pub mod context;
pub mod control;
pub mod domain;
pub mod engine;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod intake;
pub mod metrics;
pub mod notify;
pub mod outbound;
pub mod plan;
pub mod remediation;
pub mod replay;
pub mod retention;
pub mod silences;
pub mod slo;
pub mod startup;
pub mod store;
pub mod telemetry;
