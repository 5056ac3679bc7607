//! medic receives Prometheus Alertmanager notifications and turns them into safe action.
//!
//! Where an alert goes after it arrives, module by module:
//!
//! - [`http`]: routes; the webhook handler parses, authenticates and stores, nothing more.
//! - [`alertmanager`]: the wire format Alertmanager posts (version 4).
//! - [`domain`]: a checked [`domain::Notification`] made of alert episodes.
//! - [`intake`]: group commit; notifications that arrive together share a transaction.
//! - [`rules`]: which rule takes an alert ([`matchers`]), and the timers it schedules.
//! - [`store`]: all SQL. Incidents (one firing episode of one Alertmanager group), alerts,
//!   deliveries, timers and their attempts, and the embedded migrations.
//! - [`engine`]: the timer engine every replica runs: claims due timers under a lease and
//!   sends their messages through [`notify`] (Slack, PagerDuty, webhooks), or runs their
//!   [`remediation`] behind its guard rails (Kubernetes through kube, or a database).
//! - [`metrics`], [`telemetry`]: what medic says about itself.
//! - [`config`], [`cli`], [`startup`]: settings, the command line, and wiring it together.

pub mod alertmanager;
pub mod cli;
pub mod config;
pub mod domain;
pub mod engine;
pub mod explain;
pub mod http;
pub mod intake;
pub mod matchers;
pub mod metrics;
pub mod notify;
pub mod remediation;
pub mod rules;
pub mod startup;
pub mod store;
pub mod telemetry;
